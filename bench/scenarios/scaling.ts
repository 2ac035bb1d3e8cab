import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { request } from 'undici';
import { closeAll, type BenchChild } from '../lib/child.js';
import { startNginx, type BenchPeer } from '../lib/peers.js';
import { pinSelf } from '../lib/pinning.js';
import { runInterleaved, type LoadTarget, type TargetSummary } from '../lib/rounds.js';
import type { Check, ScenarioContext, ScenarioResult } from '../lib/scenario.js';
import { round } from '../lib/stats.js';
import {
  BENCH_VERSIONS,
  startReferenceServer,
  startSwitchyard,
  type BenchProxy,
} from '../lib/switchyard.js';
import { cell, formatTable } from '../lib/table.js';

const CONNECTIONS = 64;

const LEGEND = [
  'req/s, p50, p99, cpu: medians over rounds. cpu: CPU time of the whole process tree (primary +',
  'workers; nginx master + workers) per request. spread: requests of the busiest worker over the',
  "quietest one's (1.00 = even). autocannon and the upstream are pinned to CPU 0; the",
  'proxies may use every core. sched none = NODE_CLUSTER_SCHED_POLICY=none (the kernel spreads',
  "accepts); the others use round robin in the primary (Node's default on Linux).",
].join('\n');

/** Worker counts to compare: `SCALING_WORKERS=1,2,4,auto` (default `1,2,auto`). */
function workerCounts(): Array<number | 'auto'> {
  const raw = process.env.SCALING_WORKERS ?? '1,2,auto';
  return raw.split(',').map((w) => {
    const t = w.trim();
    if (t === 'auto') return 'auto';
    const n = Number(t);
    if (!Number.isInteger(n) || n < 1) throw new Error(`SCALING_WORKERS: "${t}" is not N or auto`);
    return n;
  });
}

/** Requests per worker slot from the primary's switchyard_worker_requests_total. */
async function perWorker(adminUrl: string): Promise<number[]> {
  const res = await request(`${adminUrl}/metrics`);
  const text = await res.body.text();
  const out: number[] = [];
  for (const m of text.matchAll(/^switchyard_worker_requests_total\{worker="(\d+)"\} (\S+)$/gm))
    out[Number(m[1]) - 1] = Number(m[2]);
  return out.filter((n) => n !== undefined);
}

function spread(counts: readonly number[]): number | undefined {
  if (counts.length < 2) return undefined;
  const min = Math.min(...counts);
  return min === 0 ? Number.POSITIVE_INFINITY : Math.max(...counts) / min;
}

/**
 * Issue 16: throughput and CPU per request of `switchyard proxy --workers N` at 1, 2 and auto
 * workers, beside nginx with the same worker_processes, in the same interleaved rounds; plus
 * the two cluster scheduling policies at 2 workers (round robin in the primary vs the kernel).
 */
export async function runScaling(ctx: ScenarioContext): Promise<ScenarioResult> {
  const { pinning } = ctx;
  const rounds = ctx.quick ? 1 : 2;
  const warmupS = ctx.quick ? 0.5 : 1;
  // Each worker warms its own JIT: the first round warms up longer than later ones.
  const firstWarmupS = ctx.quick ? 1 : 5;
  const measureS = ctx.quick ? 1 : 3;
  // The runner pinned this process (autocannon) to the load CPU, and children inherit that
  // affinity: widen it while the proxies start, so they may use every core (and `auto` sees
  // them all); autocannon goes back to its CPU before the load starts.
  const cores = cpus().length;
  const unpin = (): void => {
    if (!pinning.enabled) return;
    execFileSync('taskset', ['-a', '-p', '-c', `0-${cores - 1}`, String(process.pid)], {
      stdio: 'ignore',
    });
  };
  const children: BenchChild[] = [];
  const peers: BenchPeer[] = [];
  const proxies = new Map<string, BenchProxy>();
  try {
    const blue = await startReferenceServer('blue', BENCH_VERSIONS.blue, pinning.loadCpu);
    children.push(blue.child);
    unpin();
    const path = '/bytes?n=100';
    const targets: LoadTarget[] = [{ name: 'direct', url: `${blue.url}${path}` }];
    const addSwitchyard = async (
      name: string,
      workers: number | 'auto',
      env: NodeJS.ProcessEnv = {},
    ): Promise<void> => {
      const proxy = await startSwitchyard({
        name,
        pools: [blue],
        extraArgs: ['--workers', String(workers), '--health-check-interval', '0'],
        env,
      });
      children.push(proxy.child);
      proxies.set(name, proxy);
      targets.push({
        name,
        url: `${proxy.url}${path}`,
        pid: proxy.child.pid,
        headers: { cookie: 'sy_id=bench-client-1' },
      });
    };
    for (const w of workerCounts()) {
      const label = w === 'auto' ? `auto (${cores})` : String(w);
      await addSwitchyard(`switchyard ${label}`, w);
      const nginx = await startNginx(blue.url, undefined, w);
      if (nginx === undefined) {
        ctx.log('  (nginx not on PATH: skipped)');
        continue;
      }
      peers.push(nginx);
      targets.push({ name: `nginx ${label}`, url: `${nginx.url}${path}`, pid: nginx.child.pid });
    }
    await addSwitchyard('switchyard 2 sched none', 2, { NODE_CLUSTER_SCHED_POLICY: 'none' });
    pinSelf(pinning);
    ctx.log(
      `  ${cores} cores; ${rounds} rounds x ${targets.length} targets (${warmupS} s warm-up, ${measureS} s measured), ${CONNECTIONS} connections`,
    );
    const summaries = await runInterleaved({
      targets,
      rounds,
      firstWarmupS,
      warmupS,
      measureS,
      connections: CONNECTIONS,
      baseline: 'direct',
      loadPids: [blue.child.pid],
      log: ctx.log,
    });
    const spreads = new Map<string, number | undefined>();
    for (const [name, proxy] of proxies) spreads.set(name, spread(await perWorker(proxy.adminUrl)));

    const rows: string[][] = [
      ['target', 'req/s', 'x direct', 'p50 ms', 'p99 ms', 'cpu µs/req', 'spread', 'err'],
    ];
    for (const s of summaries) {
      const sp = spreads.get(s.name);
      rows.push([
        s.name,
        cell(s.requestsPerSec),
        cell(s.ratio, 2),
        cell(s.p50Ms, 2),
        cell(s.p99Ms, 2),
        cell(s.cpuUsPerRequest, 1),
        sp === undefined ? '–' : cell(sp, 2),
        String(s.errors + s.non2xx),
      ]);
    }
    const errors = summaries.reduce((n, s) => n + s.errors + s.non2xx, 0);
    const checks: Check[] = [
      { name: 'zero errors and non-2xx', ok: errors === 0, detail: String(errors), hard: false },
    ];
    const warnings =
      cores <= 2
        ? [
            `scaling: ${cores} cores shared by autocannon, the upstream and the proxy under test: more workers cannot show more throughput here, only their overhead and spread (run it on a bigger host: SCALING_WORKERS=1,2,4,8,auto npm run bench -- scaling)`,
          ]
        : [];
    return {
      table: `${formatTable(rows)}\n${LEGEND}`,
      checks,
      warnings,
      data: {
        cores,
        connections: CONNECTIONS,
        rounds,
        measureS,
        targets: summaries.map((s: TargetSummary) => ({
          name: s.name,
          requestsPerSec: round(s.requestsPerSec, 0),
          ratioToDirect: s.ratio === undefined ? null : round(s.ratio, 3),
          p50Ms: round(s.p50Ms, 3),
          p99Ms: round(s.p99Ms, 3),
          cpuUsPerRequest: s.cpuUsPerRequest === undefined ? null : round(s.cpuUsPerRequest, 1),
          bestRequestsPerSec: round(s.bestRequestsPerSec, 0),
          workerSpread: spreads.has(s.name) ? (spreads.get(s.name) ?? null) : null,
          errors: s.errors + s.non2xx,
        })),
      },
    };
  } finally {
    pinSelf(pinning);
    await Promise.allSettled(peers.map((p) => p.close()));
    await closeAll(children);
  }
}
