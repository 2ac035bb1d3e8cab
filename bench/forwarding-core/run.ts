import { fileURLToPath, pathToFileURL } from 'node:url';
import { closeAll, startNodeChild, type BenchChild } from '../lib/child.js';
import { busyMachineWarning, describeEnvironment, formatEnvironment } from '../lib/environment.js';
import { choosePinning, pinSelf } from '../lib/pinning.js';
import { writeResults } from '../lib/results.js';
import { runInterleaved, type LoadTarget, type TargetSummary } from '../lib/rounds.js';
import { round } from '../lib/stats.js';
import { cell, formatTable } from '../lib/table.js';

// Issue 2: which forwarding core should the data plane be built on? Minimal proxies with the
// same behaviour, the same load, interleaved in one run.
const CANDIDATES = [
  { name: 'http-proxy', script: 'proxy-http-proxy.js' },
  { name: 'undici request+pipeline', script: 'proxy-undici-request.js' },
  { name: 'undici stream', script: 'proxy-undici-stream.js' },
  { name: 'undici dispatch (raw)', script: 'proxy-undici-dispatch.js' },
  { name: 'undici dispatch (v7 api)', script: 'proxy-undici-dispatch-v7.js' },
] as const;

/** Knobs of the forwarding-core run (env `FC_ROUNDS`, `FC_WARMUP_S`, `FC_MEASURE_S`). */
export interface ForwardingCoreOptions {
  rounds: number;
  warmupS: number;
  measureS: number;
  connections: number;
  bodyBytes: number;
}

function script(name: string): string {
  return fileURLToPath(new URL(`./${name}`, import.meta.url));
}

function numberFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`${name}: must be a positive number, got ${raw}`);
  return n;
}

/** Defaults: 3 rounds of (3 s warm-up + 5 s measured) per candidate, 50 connections, 100 bytes. */
export function forwardingCoreOptionsFromEnv(): ForwardingCoreOptions {
  return {
    rounds: numberFromEnv('FC_ROUNDS', 3),
    warmupS: numberFromEnv('FC_WARMUP_S', 3),
    measureS: numberFromEnv('FC_MEASURE_S', 5),
    connections: 50,
    bodyBytes: numberFromEnv('FC_BODY_BYTES', 100),
  };
}

/** Runs the forwarding-core comparison, prints the table, writes bench/results/forwarding-core.json. */
export async function runForwardingCore(
  options = forwardingCoreOptionsFromEnv(),
): Promise<TargetSummary[]> {
  const env = describeEnvironment();
  const pinning = choosePinning();
  pinSelf(pinning);
  console.log(`forwarding-core: ${formatEnvironment(env)}`);
  console.log(`pinning: ${pinning.description}`);
  const busy = busyMachineWarning(env);
  if (busy !== undefined) console.log(busy);
  console.log(
    `load: autocannon, ${options.connections} connections, ${options.bodyBytes}-byte responses, ` +
      `${options.rounds} interleaved rounds of ${options.warmupS} s warm-up + ${options.measureS} s measured`,
  );

  const children: BenchChild[] = [];
  try {
    const upstream = await startNodeChild({
      name: 'upstream',
      script: script('upstream.js'),
      args: [String(options.bodyBytes)],
      cpu: pinning.loadCpu,
    });
    children.push(upstream.child);
    const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
    const targets: LoadTarget[] = [{ name: 'direct', url: `${upstreamUrl}/` }];
    for (const candidate of CANDIDATES) {
      const started = await startNodeChild({
        name: candidate.name,
        script: script(candidate.script),
        args: [upstreamUrl],
        cpu: pinning.proxyCpu,
      });
      children.push(started.child);
      targets.push({
        name: candidate.name,
        url: `http://127.0.0.1:${started.port}/`,
        pid: started.child.pid,
      });
    }
    // Direct last in each round, as in the brief (A B C D direct).
    targets.push(targets.shift() as LoadTarget);

    const summaries = await runInterleaved({
      targets,
      rounds: options.rounds,
      warmupS: options.warmupS,
      measureS: options.measureS,
      connections: options.connections,
      baseline: 'direct',
      loadPids: [upstream.child.pid],
      log: (line) => console.log(line),
    });

    const bestDirect = summaries.find((s) => s.name === 'direct')?.bestRequestsPerSec;
    const rows = [
      [
        'candidate',
        'req/s',
        'x direct',
        'p50 ms',
        'p99 ms',
        'cpu µs/req',
        'best req/s',
        'best x dir',
        'best cpu',
        'rss MB',
        'load cpu',
        'cv',
        'err',
      ],
      ...summaries.map((s) => [
        s.name,
        cell(s.requestsPerSec),
        cell(s.ratio, 2),
        cell(s.p50Ms, 2),
        cell(s.p99Ms, 2),
        cell(s.cpuUsPerRequest, 1),
        cell(s.bestRequestsPerSec),
        cell(bestDirect === undefined ? undefined : s.bestRequestsPerSec / bestDirect, 2),
        cell(s.bestCpuUsPerRequest, 1),
        cell(s.rssPeakMb, 0),
        `${cell(s.loadSideCpuPct, 0)}%`,
        `${cell(s.cv * 100, 0)}%${s.highVariance ? '!' : ''}`,
        String(s.errors + s.non2xx),
      ]),
    ];
    console.log(`\n${formatTable(rows)}`);
    console.log(
      'req/s, p50, p99, cpu: medians over rounds; best: highest req/s and lowest cpu of any round',
    );
    if (summaries.some((s) => s.highVariance)) {
      console.log(
        'warning: high variance between rounds (cv > 10 %, marked !): compare cpu µs/req, rerun on a quieter machine',
      );
    }
    const path = await writeResults('forwarding-core.json', {
      scenario: 'forwarding-core',
      command: 'npm run bench -- forwarding-core',
      environment: env,
      pinning: pinning.description,
      options,
      results: summaries.map((s) => ({
        ...s,
        requestsPerSec: round(s.requestsPerSec, 0),
        ratio: s.ratio === undefined ? undefined : round(s.ratio, 3),
        cpuUsPerRequest: s.cpuUsPerRequest === undefined ? undefined : round(s.cpuUsPerRequest, 1),
        cv: round(s.cv, 3),
      })),
    });
    console.log(`written ${path}`);
    return summaries;
  } finally {
    await closeAll(children);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runForwardingCore();
}
