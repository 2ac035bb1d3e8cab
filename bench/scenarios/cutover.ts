import { closeAll, delay, type BenchChild } from '../lib/child.js';
import { runLoad } from '../lib/load.js';
import { cpuMicros, processTree, sampleRss } from '../lib/proc-stats.js';
import type { Check, ScenarioContext, ScenarioResult } from '../lib/scenario.js';
import { round } from '../lib/stats.js';
import {
  BENCH_VERSIONS,
  setCanary,
  startReferenceServer,
  startSwitchyard,
  switchTo,
  upstreamPoolOf,
  type BenchTable,
} from '../lib/switchyard.js';
import { formatTable } from '../lib/table.js';

const POOLS = ['blue', 'green', 'canary'] as const;
const CHANGE_INTERVAL_MS = 500;
const CONNECTIONS = 50;
const MAX_SPLIT_DIFF_PP = 1;

// One cycle: blue<->green switches, then a canary ramp on top of green, back to blue.
type Change = { op: 'switch'; to: string } | { op: 'canary'; percent: number };
const CYCLE: readonly Change[] = [
  { op: 'switch', to: 'green' },
  { op: 'switch', to: 'blue' },
  { op: 'switch', to: 'green' },
  { op: 'canary', percent: 5 },
  { op: 'canary', percent: 25 },
  { op: 'canary', percent: 50 },
  { op: 'switch', to: 'blue' },
];

/** A table in force from `answeredAt`; it was being applied from `sentAt` (performance.now()). */
interface TableSpan {
  sentAt: number;
  answeredAt: number;
  weights: Record<string, number>;
}

/**
 * Observed vs configured split. The proxy picks the pool somewhere between a request's start and
 * its response, so a response counts against a table only when its whole [start, end] lies
 * inside that table's span (from its change's answer to the next change being sent); the others
 * overlapped a change and either table would be right for them.
 */
function compareSplit(
  startedAt: readonly number[],
  endedAt: readonly number[],
  poolIndex: readonly number[],
  tables: readonly TableSpan[],
): { observed: number[]; expected: number[]; counted: number; inTransition: number } {
  const observed = POOLS.map(() => 0);
  const expected = POOLS.map(() => 0);
  let counted = 0;
  let inTransition = 0;
  const order = startedAt
    .map((_, i) => i)
    .sort((a, b) => (startedAt[a] ?? 0) - (startedAt[b] ?? 0));
  let t = 0;
  for (const i of order) {
    const at = startedAt[i] ?? 0;
    while (t + 1 < tables.length && (tables[t + 1]?.answeredAt ?? Infinity) <= at) t += 1;
    const next = tables[t + 1];
    const answered = tables[t]?.answeredAt ?? 0;
    if (at < answered || (next !== undefined && next.sentAt <= (endedAt[i] ?? 0))) {
      inTransition += 1;
      continue;
    }
    const weights = tables[t]?.weights ?? {};
    counted += 1;
    observed[poolIndex[i] ?? 0] = (observed[poolIndex[i] ?? 0] ?? 0) + 1;
    POOLS.forEach((p, k) => {
      expected[k] = (expected[k] ?? 0) + (weights[p] ?? 0) / 10_000;
    });
  }
  return { observed, expected, counted, inTransition };
}

/**
 * SPEC §8 cutover: steady load (a fresh sticky id per request) while the table switches
 * blue<->green every 500 ms and ramps a canary; every request must succeed, and the observed
 * split must follow the configured weights.
 */
export async function runCutover(ctx: ScenarioContext): Promise<ScenarioResult> {
  const { pinning } = ctx;
  const durationS = ctx.quick ? 3 : 12;
  const children: BenchChild[] = [];
  try {
    const upstreams = [];
    for (const pool of POOLS) {
      const up = await startReferenceServer(pool, BENCH_VERSIONS[pool], pinning.loadCpu);
      children.push(up.child);
      upstreams.push(up);
    }
    const proxy = await startSwitchyard({ pools: upstreams, cpu: pinning.proxyCpu });
    children.push(proxy.child);

    const startedAt: number[] = [];
    const endedAt: number[] = [];
    const poolIndex: number[] = [];
    let unlabelled = 0;
    const setupClient = (client: unknown): void => {
      const emitter = client as NodeJS.EventEmitter;
      let pool = -1;
      // Untyped in @types/autocannon. Without pipelining 'headers' and 'response' alternate.
      emitter.on('headers', (info: { headers: string[] }) => {
        const name = upstreamPoolOf(info.headers);
        pool = name === undefined ? -1 : POOLS.indexOf(name as (typeof POOLS)[number]);
      });
      emitter.on('response', (status: number, _bytes: number, durationMs: number) => {
        if (status < 200 || status > 299) return;
        if (pool === -1) {
          unlabelled += 1;
          return;
        }
        const now = performance.now();
        startedAt.push(now - durationMs);
        endedAt.push(now);
        poolIndex.push(pool);
      });
    };

    let stop = false;
    const tables: TableSpan[] = [{ sentAt: 0, answeredAt: 0, weights: { blue: 10_000 } }];
    const changes: { op: string; revision: number; ms: number }[] = [];
    const changeErrors: string[] = [];
    const driver = (async () => {
      // The first change lands once the load is running.
      await delay(CHANGE_INTERVAL_MS);
      for (let i = 0; !stop; i++) {
        const change = CYCLE[i % CYCLE.length] as Change;
        const sentAt = performance.now();
        try {
          const table: BenchTable =
            change.op === 'switch'
              ? await switchTo(proxy.adminUrl, change.to)
              : await setCanary(proxy.adminUrl, change.percent);
          // The admin API answers once this replica has the table (one replica, memory store).
          const answeredAt = performance.now();
          tables.push({ sentAt, answeredAt, weights: table.weights });
          changes.push({
            op: change.op === 'switch' ? `switch ${change.to}` : `canary ${change.percent}`,
            revision: table.revision,
            ms: round(answeredAt - sentAt, 2),
          });
        } catch (err) {
          changeErrors.push((err as Error).message);
        }
        await delay(Math.max(0, CHANGE_INTERVAL_MS - (performance.now() - sentAt)));
      }
    })();

    ctx.log(
      `  ${durationS} s of load (${CONNECTIONS} connections, fresh sy_id cookie per request), a change every ${CHANGE_INTERVAL_MS} ms`,
    );
    const proxyPids = processTree(proxy.child.pid);
    const cpuBefore = cpuMicros(proxyPids);
    const rss = sampleRss(proxyPids);
    const load = await runLoad({
      url: `${proxy.url}/`,
      connections: CONNECTIONS,
      durationS,
      headers: { cookie: 'sy_id=[<id>]' },
      idReplacement: true,
      setupClient,
    });
    stop = true;
    const cpuUsPerRequest = (cpuMicros(proxyPids) - cpuBefore) / Math.max(1, load.total);
    const rssPeakMb = rss.stop() / 1024 / 1024;
    await driver;

    const { observed, expected, counted, inTransition } = compareSplit(
      startedAt,
      endedAt,
      poolIndex,
      tables,
    );
    const rows = [['pool', 'responses', 'observed %', 'configured %', 'diff pp']];
    const split: Record<string, unknown> = {};
    let maxDiffPp = 0;
    POOLS.forEach((pool, k) => {
      const obs = counted === 0 ? 0 : ((observed[k] ?? 0) / counted) * 100;
      const exp = counted === 0 ? 0 : ((expected[k] ?? 0) / counted) * 100;
      maxDiffPp = Math.max(maxDiffPp, Math.abs(obs - exp));
      split[pool] = {
        responses: observed[k],
        observedPct: round(obs, 2),
        configuredPct: round(exp, 2),
      };
      rows.push([
        pool,
        String(observed[k]),
        obs.toFixed(2),
        exp.toFixed(2),
        (obs - exp).toFixed(2),
      ]);
    });
    const checks: Check[] = [
      {
        name: 'requests completed',
        ok: load.total > 0,
        detail: `${load.total} in ${load.durationS} s (${Math.round(load.requestsPerSec)} req/s, proxy ${round(cpuUsPerRequest, 1)} µs CPU/request, RSS ${Math.round(rssPeakMb)} MB)`,
        hard: true,
      },
      {
        name: 'non-2xx responses = 0',
        ok: load.non2xx === 0,
        detail: String(load.non2xx),
        hard: true,
      },
      {
        name: 'socket errors = 0',
        ok: load.errors === 0,
        detail: `${load.errors} (timeouts ${load.timeouts})`,
        hard: true,
      },
      {
        name: 'table changes applied',
        ok: changeErrors.length === 0 && changes.length > 0,
        detail: `${changes.length} changes, ${changeErrors.length} refused${changeErrors[0] === undefined ? '' : `: ${changeErrors[0]}`}`,
        hard: true,
      },
      {
        name: 'responses labelled with x-switchyard-upstream',
        ok: unlabelled === 0,
        detail: `${unlabelled} unlabelled`,
        hard: false,
      },
      {
        // 0/100 tables are exact; canary tables add binomial noise of a few tenths of a point.
        name: `observed split within ${MAX_SPLIT_DIFF_PP} pp of configured`,
        ok: maxDiffPp <= MAX_SPLIT_DIFF_PP,
        detail: `max diff ${round(maxDiffPp, 2)} pp over ${counted} responses (${inTransition} overlapped a change, left out)`,
        hard: false,
      },
    ];
    return {
      table: formatTable(rows),
      checks,
      warnings: [],
      data: {
        durationS,
        connections: CONNECTIONS,
        changeIntervalMs: CHANGE_INTERVAL_MS,
        total: load.total,
        requestsPerSec: round(load.requestsPerSec, 0),
        non2xx: load.non2xx,
        errors: load.errors,
        timeouts: load.timeouts,
        p50Ms: round(load.p50Ms, 3),
        p99Ms: round(load.p99Ms, 3),
        cpuUsPerRequest: round(cpuUsPerRequest, 1),
        rssPeakMb: round(rssPeakMb, 1),
        changes: changes.length,
        changeErrors,
        changeLatencyMs: changes.map((c) => c.ms),
        split,
        splitCounted: counted,
        inTransition,
        unlabelled,
        maxSplitDiffPp: round(maxDiffPp, 3),
      },
    };
  } finally {
    await closeAll(children);
  }
}
