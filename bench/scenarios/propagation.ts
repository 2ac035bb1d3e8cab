import { randomBytes } from 'node:crypto';
import { closeAll, delay, type BenchChild } from '../lib/child.js';
import { startRedis } from '../lib/redis-server.js';
import type { Check, ScenarioContext, ScenarioResult } from '../lib/scenario.js';
import { percentile, round } from '../lib/stats.js';
import {
  appliedRevision,
  BENCH_VERSIONS,
  setCanary,
  startReferenceServer,
  startSwitchyard,
  type BenchProxy,
} from '../lib/switchyard.js';
import { formatTable } from '../lib/table.js';

const REPLICAS = 3;
const TARGET_P99_MS = 50;
const PER_CHANGE_TIMEOUT_MS = 5_000;

/** Polls every replica's GET /v1/state until all report `revision`; ms per replica (performance.now()). */
async function waitApplied(replicas: readonly BenchProxy[], revision: number): Promise<number[]> {
  const deadline = performance.now() + PER_CHANGE_TIMEOUT_MS;
  return Promise.all(
    replicas.map(async (r) => {
      // Back-to-back keep-alive GETs: resolution is one admin round trip (a fraction of a ms).
      while (performance.now() < deadline) {
        if ((await appliedRevision(r.adminUrl)) >= revision) return performance.now();
      }
      return Number.POSITIVE_INFINITY;
    }),
  );
}

function summary(values: readonly number[]): { p50: number; p99: number; max: number } {
  return { p50: percentile(values, 50), p99: percentile(values, 99), max: Math.max(...values) };
}

/**
 * SPEC §8 propagation: three `switchyard proxy` processes on one redis-server; 100 changes, each
 * made through one replica's admin API (rotating); time from the change being accepted (admin
 * answer) until every replica reports it applied in GET /v1/state.
 */
export async function runPropagation(ctx: ScenarioContext): Promise<ScenarioResult> {
  const changesWanted = ctx.quick ? 20 : 100;
  const children: BenchChild[] = [];
  try {
    // Propagation is not a CPU race: no pinning, let the scheduler place them.
    const redis = await startRedis(undefined);
    children.push(redis.child);
    const upstreams = [];
    for (const pool of ['blue', 'green', 'canary'] as const) {
      const up = await startReferenceServer(pool, BENCH_VERSIONS[pool], undefined);
      children.push(up.child);
      upstreams.push(up);
    }
    const namespace = `bench-${randomBytes(4).toString('hex')}`;
    const replicas: BenchProxy[] = [];
    for (let i = 0; i < REPLICAS; i++) {
      const replica = await startSwitchyard({
        name: `replica ${i + 1}`,
        pools: upstreams,
        redisUrl: redis.url,
        namespace,
      });
      children.push(replica.child);
      replicas.push(replica);
    }
    ctx.log(
      `  ${REPLICAS} replicas on redis ${redis.url} namespace ${namespace}; ${changesWanted} changes (canary percent), each through replica (i mod ${REPLICAS})`,
    );

    // Start from a table every replica has.
    const seed = await setCanary((replicas[0] as BenchProxy).adminUrl, 0);
    await waitApplied(replicas, seed.revision);

    const fromAccepted: number[] = [];
    const fromSent: number[] = [];
    let timedOut = 0;
    for (let i = 0; i < changesWanted; i++) {
      const via = replicas[i % REPLICAS] as BenchProxy;
      const sent = performance.now();
      const table = await setCanary(via.adminUrl, 1 + (i % 50));
      const accepted = performance.now();
      const applied = await waitApplied(replicas, table.revision);
      const all = Math.max(...applied);
      if (!Number.isFinite(all)) {
        timedOut += 1;
        continue;
      }
      fromAccepted.push(Math.max(0, all - accepted));
      fromSent.push(all - sent);
      // Space the changes a little so each one is measured on its own.
      await delay(5);
    }
    const acc = summary(fromAccepted);
    const snt = summary(fromSent);
    const rows = [
      ['measured from', 'p50 ms', 'p99 ms', 'max ms'],
      [
        'change accepted (admin answer)',
        acc.p50.toFixed(2),
        acc.p99.toFixed(2),
        acc.max.toFixed(2),
      ],
      ['change sent', snt.p50.toFixed(2), snt.p99.toFixed(2), snt.max.toFixed(2)],
    ];
    const checks: Check[] = [
      {
        name: `all ${changesWanted} changes applied by every replica`,
        ok: timedOut === 0,
        detail: `${fromAccepted.length} applied, ${timedOut} not within ${PER_CHANGE_TIMEOUT_MS} ms`,
        hard: true,
      },
      {
        name: `propagation p99 < ${TARGET_P99_MS} ms`,
        ok: acc.p99 < TARGET_P99_MS,
        detail: `${round(acc.p99, 2)} ms`,
        hard: false,
      },
    ];
    return {
      table: formatTable(rows),
      checks,
      warnings: [],
      data: {
        replicas: REPLICAS,
        changes: changesWanted,
        timedOut,
        method:
          'child processes (switchyard proxy --redis), change via admin POST /v1/canary, poll GET /v1/state appliedRevision on every replica',
        fromAcceptedMs: { p50: round(acc.p50, 3), p99: round(acc.p99, 3), max: round(acc.max, 3) },
        fromSentMs: { p50: round(snt.p50, 3), p99: round(snt.p99, 3), max: round(snt.max, 3) },
      },
    };
  } finally {
    await closeAll(children);
  }
}
