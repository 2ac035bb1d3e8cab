import { randomBytes } from 'node:crypto';
import { closeAll, delay, type BenchChild } from '../lib/child.js';
import { runLoad, type LoadResult } from '../lib/load.js';
import { startRedis } from '../lib/redis-server.js';
import type { Check, ScenarioContext, ScenarioResult } from '../lib/scenario.js';
import { round } from '../lib/stats.js';
import {
  admin,
  BENCH_VERSIONS,
  startReferenceServer,
  startSwitchyard,
  upstreamPoolOf,
  type BenchProxy,
} from '../lib/switchyard.js';
import { formatTable } from '../lib/table.js';

const REPLICAS = 2;
/** autocannon connections per replica. */
const CONNECTIONS = 8;
const BAD_ERROR_RATE = 0.2;

interface RolloutStatus {
  id: string;
  phase: string;
  step: number;
  decisions: Array<{ time: string; action: string; reason: string }>;
}

/** What one run of a rollout under load saw. */
interface RunFigures {
  phase: string;
  /** ms from the rollout's start call to its final phase (promoted or aborted). */
  toEndMs: number;
  /** ms from the first 5xx answered by the target to the abort decision (bad target only). */
  firstBadToAbortMs: number | null;
  /** Target 5xx answers from the first one to the abort decision. */
  failedTargetBeforeAbort: number;
  /** Target 5xx answers in all (after the abort: in flight when the weight went to 0). */
  failedTargetTotal: number;
  /** Every non-2xx answer and socket error of the load. */
  failedTotal: number;
  requests: number;
  reason: string;
}

/**
 * Two `switchyard proxy --redis` replicas on one redis-server; autocannon through both; a rollout
 * of `canary` against `blue` started through the first replica; polled until it ends.
 */
async function runOne(
  ctx: ScenarioContext,
  name: string,
  canaryErrorRate: number,
  steps: unknown[],
  durationS: number,
): Promise<RunFigures> {
  const children: BenchChild[] = [];
  try {
    const redis = await startRedis(undefined);
    children.push(redis.child);
    const blue = await startReferenceServer('blue', BENCH_VERSIONS.blue, ctx.pinning.loadCpu);
    children.push(blue.child);
    const canary = await startReferenceServer(
      'canary',
      BENCH_VERSIONS.canary,
      ctx.pinning.loadCpu,
      canaryErrorRate > 0 ? ['--error-rate', String(canaryErrorRate)] : [],
    );
    children.push(canary.child);
    const namespace = `bench-${randomBytes(4).toString('hex')}`;
    const replicas: BenchProxy[] = [];
    for (let i = 0; i < REPLICAS; i++) {
      const replica = await startSwitchyard({
        name: `replica ${i + 1}`,
        pools: [blue, canary],
        redisUrl: redis.url,
        namespace,
        cpu: ctx.pinning.proxyCpu,
      });
      children.push(replica.child);
      replicas.push(replica);
    }
    let firstBadAt: number | null = null;
    const badAt: number[] = [];
    const onHeaders = (status: number, raw: readonly string[]): void => {
      if (status < 500 || upstreamPoolOf(raw) !== 'canary') return;
      const now = Date.now();
      firstBadAt ??= now;
      badAt.push(now);
    };
    const loads: Promise<LoadResult>[] = replicas.map((r) =>
      runLoad({ url: r.url, connections: CONNECTIONS, durationS, onHeaders }),
    );
    // Some baseline traffic first, as in production.
    await delay(1000);
    const first = replicas[0] as BenchProxy;
    const startedAt = Date.now();
    await admin(first.adminUrl, 'POST', '/v1/rollouts', { pool: 'canary', steps });
    let status: RolloutStatus | null = null;
    let endedAt = 0;
    while (Date.now() - startedAt < (durationS - 1) * 1000) {
      status = await admin<RolloutStatus>(first.adminUrl, 'GET', '/v1/rollouts/current');
      if (status.phase === 'promoted' || status.phase === 'aborted') {
        endedAt = Date.now();
        break;
      }
      await delay(100);
    }
    const results = await Promise.all(loads);
    const abort = status?.decisions.find((d) => d.action === 'abort');
    const abortAt = abort === undefined ? null : Date.parse(abort.time);
    const figures: RunFigures = {
      phase: status?.phase ?? 'none',
      toEndMs: endedAt === 0 ? Number.NaN : endedAt - startedAt,
      firstBadToAbortMs: abortAt !== null && firstBadAt !== null ? abortAt - firstBadAt : null,
      failedTargetBeforeAbort:
        abortAt === null ? badAt.length : badAt.filter((t) => t <= abortAt).length,
      failedTargetTotal: badAt.length,
      failedTotal: results.reduce((n, r) => n + r.non2xx + r.errors, 0),
      requests: results.reduce((n, r) => n + r.total, 0),
      reason: abort?.reason ?? status?.decisions.at(-1)?.reason ?? '',
    };
    ctx.log(`${name}: ${JSON.stringify(figures)}`);
    return figures;
  } finally {
    await closeAll(children);
  }
}

/**
 * SPEC §9 under load, two replicas sharing the rollout through Redis: a target answering 20 % 500s
 * is aborted (time from its first bad answer to the abort, and its failed requests meanwhile); a
 * healthy target walks every step to 100 % with no failed request.
 */
export async function runRollout(ctx: ScenarioContext): Promise<ScenarioResult> {
  const durationS = ctx.quick ? 12 : 25;
  const bad = await runOne(
    ctx,
    'bad target',
    BAD_ERROR_RATE,
    [{ weight: 5 }, { pause: '1m' }, { weight: 100 }],
    ctx.quick ? 10 : 15,
  );
  const healthy = await runOne(
    ctx,
    'healthy target',
    0,
    [
      { weight: 5 },
      { pause: '2s' },
      { weight: 25 },
      { pause: '2s' },
      { weight: 50 },
      { pause: '2s' },
      { weight: 100 },
    ],
    durationS,
  );
  const rows = [
    [
      `bad target (${BAD_ERROR_RATE * 100} % 500s), first step 5 %`,
      bad.phase,
      bad.firstBadToAbortMs === null ? '–' : String(bad.firstBadToAbortMs),
      String(bad.failedTargetBeforeAbort),
      String(bad.failedTargetTotal),
      String(bad.requests),
    ],
    [
      'healthy target, 5 → 25 → 50 → 100 % (2 s pauses)',
      healthy.phase,
      '–',
      '–',
      String(healthy.failedTotal),
      String(healthy.requests),
    ],
  ];
  const table = formatTable([
    [
      'rollout, 2 replicas (Redis)',
      'phase',
      'first bad → abort ms',
      'target 5xx before',
      'failed',
      'requests',
    ],
    ...rows,
  ]);
  const checks: Check[] = [
    {
      name: 'bad target aborted',
      ok: bad.phase === 'aborted',
      detail: `${bad.phase}: ${bad.reason}`,
      hard: true,
    },
    {
      name: 'bad target aborted within 5 s of its first bad answer',
      ok: bad.firstBadToAbortMs !== null && bad.firstBadToAbortMs < 5000,
      detail: `${bad.firstBadToAbortMs ?? '–'} ms, ${bad.failedTargetBeforeAbort} target 5xx before it`,
      hard: false,
    },
    {
      name: 'healthy target promoted',
      ok: healthy.phase === 'promoted',
      detail: `${healthy.phase} after ${round(healthy.toEndMs / 1000, 1)} s`,
      hard: true,
    },
    {
      name: 'healthy rollout: 0 failed requests',
      ok: healthy.failedTotal === 0,
      detail: `${healthy.failedTotal} of ${healthy.requests}`,
      hard: true,
    },
  ];
  return { table, checks, warnings: [], data: { bad, healthy } };
}
