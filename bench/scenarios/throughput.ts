import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeAll, type BenchChild } from '../lib/child.js';
import { startHaproxy, startHttpProxyBaseline, startNginx, type BenchPeer } from '../lib/peers.js';
import { runInterleaved, type LoadTarget, type TargetSummary } from '../lib/rounds.js';
import type { Check, ScenarioContext, ScenarioResult } from '../lib/scenario.js';
import { resultsDir } from '../lib/results.js';
import { round } from '../lib/stats.js';
import {
  admin,
  BENCH_VERSIONS,
  startReferenceServer,
  startSwitchyard,
  type BenchProxy,
  type BenchUpstream,
} from '../lib/switchyard.js';
import { cell, formatTable } from '../lib/table.js';

const BODY_SIZES = [100, 10 * 1024] as const;
const CONNECTIONS = 50;

// Issue 6 targets, for 100-byte responses with every feature on.
const TARGETS = {
  minRatioToNginx: 0.7,
  minRatioToHttpProxy: 2.0,
  maxCpuUsPerRequest: 70,
  maxAddedP50Ms: 1.5,
  maxRssMb: 150,
};

const SWITCHYARD = 'switchyard';

/**
 * Ten rules of every kind that the bench's requests never match: each request tries them all
 * before the weighted split (the worst case of ten rules).
 */
const TEN_RULES = [
  { name: 'beta-header', match: [{ header: 'x-beta', value: '1' }], pool: 'green' },
  { name: 'beta-cookie', match: [{ cookie: 'beta', value: 'yes' }], pool: 'green' },
  { name: 'preview', match: [{ query: 'preview', present: true }], pool: 'green' },
  { name: 'api-v2', match: [{ path: true, prefix: '/api/v2' }], pool: 'green' },
  { name: 'users', match: [{ path: true, regex: '^/users/[0-9]+$' }], pool: 'green' },
  { name: 'internal', match: [{ header: 'x-internal', present: true }], pool: 'green' },
  { name: 'mobile', match: [{ header: 'user-agent', regex: 'Mobile|Android' }], pool: 'green' },
  { name: 'team', match: [{ cookie: 'team', prefix: 'core-' }], pool: 'green' },
  { name: 'lang', match: [{ header: 'accept-language', prefix: 'fr' }], pool: 'green' },
  {
    name: 'admin-path',
    match: [
      { path: true, prefix: '/admin' },
      { header: 'x-admin', present: true },
    ],
    pool: 'green',
  },
];

/** A feature variant of the proxy, measured beside the plain one on 100 B responses. */
interface Variant {
  readonly name: string;
  readonly proxy: BenchProxy;
}

/**
 * Proxies with one feature on each (issue 15): ten rules, a 10 % mirror to green, the access log
 * to a file. Same pools and pinning as the plain proxy, so their rows compare in one run.
 */
async function startVariants(
  pools: readonly BenchUpstream[],
  cpu: number | undefined,
  logDir: string,
  children: BenchChild[],
): Promise<Variant[]> {
  const rules = await startSwitchyard({ name: 'switchyard-rules', pools, cpu });
  children.push(rules.child);
  await admin(rules.adminUrl, 'PUT', '/v1/rules', { rules: TEN_RULES });
  const mirror = await startSwitchyard({ name: 'switchyard-mirror', pools, cpu });
  children.push(mirror.child);
  await admin(mirror.adminUrl, 'PUT', '/v1/mirror', { pool: 'green', percent: 10 });
  const accessLog = await startSwitchyard({
    name: 'switchyard-access-log',
    pools,
    cpu,
    extraArgs: ['--access-log', join(logDir, 'access.log')],
  });
  children.push(accessLog.child);
  return [
    { name: `${SWITCHYARD} 10 rules`, proxy: rules },
    { name: `${SWITCHYARD} mirror 10 %`, proxy: mirror },
    { name: `${SWITCHYARD} access log`, proxy: accessLog },
  ];
}

const LEGEND = [
  'req/s, p50, p99, cpu: medians over rounds. best: highest req/s and lowest cpu of any round',
  '(others sharing the machine only ever slow a run down). cpu: CPU time of the proxy process',
  '(tree) per completed request. load cpu: autocannon + upstreams as % of one core; near 100 %',
  'with pinning, the load side set the pace and req/s ratios understate the gap: compare cpu.',
].join('\n');

function rounded(s: TargetSummary): Record<string, unknown> {
  return {
    name: s.name,
    rounds: s.rounds,
    requestsPerSec: round(s.requestsPerSec, 0),
    ratioToDirect: s.ratio === undefined ? null : round(s.ratio, 3),
    p50Ms: round(s.p50Ms, 3),
    p99Ms: round(s.p99Ms, 3),
    cpuUsPerRequest: s.cpuUsPerRequest === undefined ? null : round(s.cpuUsPerRequest, 1),
    rssPeakMb: s.rssPeakMb === undefined ? null : round(s.rssPeakMb, 1),
    bestRequestsPerSec: round(s.bestRequestsPerSec, 0),
    bestCpuUsPerRequest:
      s.bestCpuUsPerRequest === undefined ? null : round(s.bestCpuUsPerRequest, 1),
    loadSideCpuPct: round(s.loadSideCpuPct, 0),
    cv: round(s.cv, 3),
    highVariance: s.highVariance,
    total: s.total,
    non2xx: s.non2xx,
    errors: s.errors,
    samples: s.samples.map((x) => ({
      round: x.round,
      requestsPerSec: round(x.requestsPerSec, 0),
      p50Ms: round(x.p50Ms, 3),
      p99Ms: round(x.p99Ms, 3),
      cpuUsPerRequest: x.cpuUsPerRequest === undefined ? null : round(x.cpuUsPerRequest, 1),
      loadSideCpuPct: round(x.loadSideCpuPct, 0),
      loadAverage1m: x.loadAverage1m,
    })),
  };
}

function targetChecks(summaries: readonly TargetSummary[]): Check[] {
  const by = (name: string): TargetSummary | undefined => summaries.find((s) => s.name === name);
  const ours = by(SWITCHYARD);
  const direct = by('direct');
  if (ours === undefined || direct === undefined) return [];
  const checks: Check[] = [];
  const vsPeer = (peer: string, min: number): void => {
    const p = by(peer);
    if (p === undefined) return;
    const ratio = ours.requestsPerSec / p.requestsPerSec;
    checks.push({
      name: `100 B: throughput vs ${peer} >= ${min}x`,
      ok: ratio >= min,
      detail: `${round(ratio, 2)}x (${Math.round(ours.requestsPerSec)} vs ${Math.round(p.requestsPerSec)} req/s)`,
      hard: false,
    });
  };
  vsPeer('nginx', TARGETS.minRatioToNginx);
  vsPeer('node-http-proxy', TARGETS.minRatioToHttpProxy);
  if (ours.cpuUsPerRequest !== undefined) {
    checks.push({
      name: `100 B: proxy CPU <= ${TARGETS.maxCpuUsPerRequest} µs/request`,
      ok: ours.cpuUsPerRequest <= TARGETS.maxCpuUsPerRequest,
      detail: `${round(ours.cpuUsPerRequest, 1)} µs`,
      hard: false,
    });
  }
  const addedP50 = ours.p50Ms - direct.p50Ms;
  checks.push({
    name: `100 B: added p50 over direct <= ${TARGETS.maxAddedP50Ms} ms`,
    ok: addedP50 <= TARGETS.maxAddedP50Ms,
    detail: `${round(addedP50, 2)} ms (${round(ours.p50Ms, 2)} vs ${round(direct.p50Ms, 2)} ms)`,
    hard: false,
  });
  if (ours.rssPeakMb !== undefined) {
    checks.push({
      name: `100 B: proxy RSS < ${TARGETS.maxRssMb} MB`,
      ok: ours.rssPeakMb < TARGETS.maxRssMb,
      detail: `${round(ours.rssPeakMb, 0)} MB peak`,
      hard: false,
    });
  }
  return checks;
}

/**
 * SPEC §8 throughput: the same autocannon load straight at a reference server, through
 * Switchyard (every feature on) and through each peer, interleaved rounds, medians.
 */
export async function runThroughput(ctx: ScenarioContext): Promise<ScenarioResult> {
  const { pinning } = ctx;
  const rounds = ctx.quick ? 1 : 3;
  const firstWarmupS = ctx.quick ? 1 : 3;
  const warmupS = ctx.quick ? 0.5 : 1;
  const measureS = ctx.quick ? 1 : 3;
  const children: BenchChild[] = [];
  const peers: BenchPeer[] = [];
  const logDir = await mkdtemp(join(tmpdir(), 'switchyard-bench-'));
  try {
    const blue = await startReferenceServer('blue', BENCH_VERSIONS.blue, pinning.loadCpu);
    children.push(blue.child);
    const green = await startReferenceServer('green', BENCH_VERSIONS.green, pinning.loadCpu);
    children.push(green.child);
    // BENCH_CPU_PROF=1: profile the proxy's request path (bench/results/*.cpuprofile).
    const profile = process.env.BENCH_CPU_PROF === '1';
    const proxy = await startSwitchyard({
      pools: [blue, green],
      cpu: pinning.proxyCpu,
      ...(profile ? { cpuProfileDir: resultsDir() } : {}),
    });
    children.push(proxy.child);
    const variants = await startVariants([blue, green], pinning.proxyCpu, logDir, children);

    peers.push(await startHttpProxyBaseline(blue.url, pinning.proxyCpu));
    for (const start of [startNginx, startHaproxy]) {
      const peer = await start(blue.url, pinning.proxyCpu);
      if (peer === undefined)
        ctx.log(`  (${start === startNginx ? 'nginx' : 'haproxy'} not on PATH: skipped)`);
      else peers.push(peer);
    }
    ctx.log(
      `  peers: ${peers.map((p) => p.name).join(', ')}; switchyard with every feature on (sticky cookie, X-Forwarded-*, metrics, x-switchyard-upstream)`,
    );

    const bySize: Record<string, Record<string, unknown>[]> = {};
    const rows: string[][] = [
      [
        'body',
        'target',
        'req/s',
        'x direct',
        'p50 ms',
        'p99 ms',
        'cpu µs/req',
        'best req/s',
        'best cpu',
        'rss MB',
        'load cpu',
        'cv',
        'err',
      ],
    ];
    const warnings: string[] = [];
    let checks: Check[] = [];
    for (const size of BODY_SIZES) {
      const path = `/bytes?n=${size}`;
      // A returning client: the sticky cookie is present, as for all but a visitor's first request.
      const targets: LoadTarget[] = [
        { name: 'direct', url: `${blue.url}${path}` },
        {
          name: SWITCHYARD,
          url: `${proxy.url}${path}`,
          pid: proxy.child.pid,
          headers: { cookie: 'sy_id=bench-client-1' },
        },
        // Feature variants on the small body only: their cost shows best where a request is cheap.
        ...(size === 100
          ? variants.map((v) => ({
              name: v.name,
              url: `${v.proxy.url}${path}`,
              pid: v.proxy.child.pid,
              headers: { cookie: 'sy_id=bench-client-1' },
            }))
          : []),
        ...peers.map((p) => ({ name: p.name, url: `${p.url}${path}`, pid: p.child.pid })),
      ];
      ctx.log(
        `  ${size}-byte responses: ${rounds} rounds x ${targets.length} targets (${firstWarmupS} s then ${warmupS} s warm-up, ${measureS} s measured)`,
      );
      const summaries = await runInterleaved({
        targets,
        rounds,
        firstWarmupS,
        warmupS,
        measureS,
        connections: CONNECTIONS,
        baseline: 'direct',
        // green also receives the mirror variant's copies.
        loadPids: [blue.child.pid, green.child.pid],
        log: ctx.log,
      });
      bySize[String(size)] = summaries.map(rounded);
      for (const s of summaries) {
        rows.push([
          size >= 1024 ? `${size / 1024} KB` : `${size} B`,
          s.name,
          cell(s.requestsPerSec),
          cell(s.ratio, 2),
          cell(s.p50Ms, 2),
          cell(s.p99Ms, 2),
          cell(s.cpuUsPerRequest, 1),
          cell(s.bestRequestsPerSec),
          cell(s.bestCpuUsPerRequest, 1),
          cell(s.rssPeakMb, 0),
          `${cell(s.loadSideCpuPct, 0)}%`,
          `${cell(s.cv * 100, 0)}%${s.highVariance ? '!' : ''}`,
          String(s.errors + s.non2xx),
        ]);
        if (s.highVariance)
          warnings.push(
            `throughput ${size} B ${s.name}: high variance between rounds (cv ${round(s.cv * 100, 0)} %)`,
          );
      }
      const errors = summaries.reduce((n, s) => n + s.errors + s.non2xx, 0);
      checks.push({
        name: `${size} B: zero errors and non-2xx`,
        ok: errors === 0,
        detail: `${errors}`,
        hard: false,
      });
      if (size === 100) checks = [...checks, ...targetChecks(summaries)];
    }
    return {
      table: `${formatTable(rows)}\n${LEGEND}`,
      checks,
      warnings,
      data: {
        connections: CONNECTIONS,
        rounds,
        warmupS: { first: firstWarmupS, later: warmupS },
        measureS,
        switchyardFeatures:
          'sticky cookie (sent by the client), X-Forwarded-*, metrics, x-switchyard-upstream',
        peers: peers.map((p) => p.name),
        targets: TARGETS,
        bySize,
      },
    };
  } finally {
    await Promise.allSettled(peers.map((p) => p.close()));
    await closeAll(children);
    await rm(logDir, { recursive: true, force: true });
  }
}
