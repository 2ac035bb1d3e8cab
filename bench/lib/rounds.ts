import os from 'node:os';
import { runLoad, type LoadResult } from './load.js';
import { cpuMicros, processTree, sampleRss } from './proc-stats.js';
import { HIGH_VARIANCE_CV, coefficientOfVariation, median, round } from './stats.js';

/** Something the load is aimed at: direct upstream, our proxy, a peer. */
export interface LoadTarget {
  name: string;
  url: string;
  /** Root pid of the process under test (its descendants are included); none for direct. */
  pid?: number;
  headers?: Record<string, string>;
}

/** One measured run of one target. */
export interface RoundSample extends LoadResult {
  round: number;
  /** CPU of the process under test divided by completed requests, in microseconds. */
  cpuUsPerRequest: number | undefined;
  /** Peak RSS of the process under test during the run, in MB. */
  rssPeakMb: number | undefined;
  /** 1-minute load average after the run (others' work on a shared machine shows here). */
  loadAverage1m: number;
  /**
   * CPU used by the load side (this process: autocannon; plus `loadPids`: the upstreams) as a
   * percentage of one core. Near 100 % with pinning means the load side, not the target, set
   * the pace: requests/s then understates the gap between targets; CPU per request does not.
   */
  loadSideCpuPct: number;
}

/** Medians over rounds for one target. */
export interface TargetSummary {
  name: string;
  rounds: number;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerRequest: number | undefined;
  rssPeakMb: number | undefined;
  /** Median requests/s relative to the baseline target's median. */
  ratio: number | undefined;
  /**
   * Best round: highest requests/s, lowest CPU per request. Interference from other work only
   * ever slows a run down, so on a shared machine the best round is the closest to a quiet one.
   */
  bestRequestsPerSec: number;
  bestCpuUsPerRequest: number | undefined;
  /** Median of the rounds' load-side CPU (percent of one core). */
  loadSideCpuPct: number;
  /** Spread of requests/s between rounds (coefficient of variation). */
  cv: number;
  highVariance: boolean;
  total: number;
  non2xx: number;
  errors: number;
  samples: RoundSample[];
}

/** Options for {@link runInterleaved}. */
export interface InterleavedOptions {
  targets: readonly LoadTarget[];
  rounds: number;
  warmupS: number;
  /** Warm-up of each target's first round (JIT, connection pools); default `warmupS`. */
  firstWarmupS?: number;
  measureS: number;
  connections: number;
  /** Name of the target ratios are computed against (e.g. `direct`). */
  baseline: string;
  /** Processes on the load side besides this one (upstreams), for `loadSideCpuPct`. */
  loadPids?: readonly number[];
  log: (line: string) => void;
}

async function measure(
  target: LoadTarget,
  options: InterleavedOptions,
  roundNo: number,
): Promise<RoundSample> {
  const headers = target.headers;
  const warmupS = roundNo === 1 ? (options.firstWarmupS ?? options.warmupS) : options.warmupS;
  if (warmupS > 0) {
    await runLoad({
      url: target.url,
      connections: options.connections,
      durationS: warmupS,
      ...(headers === undefined ? {} : { headers }),
    });
  }
  const pids = target.pid === undefined ? [] : processTree(target.pid);
  const loadPids = (options.loadPids ?? []).flatMap((pid) => processTree(pid));
  const loadBefore = cpuMicros(loadPids) + cpuOfSelf();
  const wallBefore = performance.now();
  const cpuBefore = cpuMicros(pids);
  const rss = pids.length > 0 ? sampleRss(pids) : undefined;
  const result = await runLoad({
    url: target.url,
    connections: options.connections,
    durationS: options.measureS,
    ...(headers === undefined ? {} : { headers }),
  });
  const cpuAfter = cpuMicros(pids);
  const loadSideCpuPct =
    ((cpuMicros(loadPids) + cpuOfSelf() - loadBefore) / ((performance.now() - wallBefore) * 1000)) *
    100;
  const rssPeak = rss?.stop();
  return {
    ...result,
    round: roundNo,
    cpuUsPerRequest:
      pids.length > 0 && result.total > 0 ? (cpuAfter - cpuBefore) / result.total : undefined,
    rssPeakMb: rssPeak === undefined ? undefined : rssPeak / 1024 / 1024,
    loadAverage1m: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
    loadSideCpuPct,
  };
}

function cpuOfSelf(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function optionalMin(values: readonly (number | undefined)[]): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined);
  return defined.length === 0 ? undefined : Math.min(...defined);
}

function optionalMedian(values: readonly (number | undefined)[]): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined);
  return defined.length === 0 ? undefined : median(defined);
}

/**
 * Runs every target once per round, in the same order each round (A B C A B C ...), so slow
 * drifts of the machine hit every target alike; each run warms up before it measures.
 */
export async function runInterleaved(options: InterleavedOptions): Promise<TargetSummary[]> {
  const samples = new Map<string, RoundSample[]>(options.targets.map((t) => [t.name, []]));
  for (let r = 1; r <= options.rounds; r++) {
    for (const target of options.targets) {
      const sample = await measure(target, options, r);
      samples.get(target.name)?.push(sample);
      const cpu =
        sample.cpuUsPerRequest === undefined
          ? ''
          : ` cpu ${round(sample.cpuUsPerRequest, 1)} µs/req`;
      options.log(
        `  round ${r}/${options.rounds} ${target.name.padEnd(24)} ${Math.round(sample.requestsPerSec)} req/s p50 ${round(sample.p50Ms, 2)} ms p99 ${round(sample.p99Ms, 2)} ms${cpu} (load side ${Math.round(sample.loadSideCpuPct)}% cpu, loadavg ${sample.loadAverage1m})` +
          (sample.errors + sample.non2xx > 0
            ? ` errors ${sample.errors} non2xx ${sample.non2xx}`
            : ''),
      );
    }
  }
  const summaries = options.targets.map((target): TargetSummary => {
    const list = samples.get(target.name) ?? [];
    const rps = list.map((s) => s.requestsPerSec);
    const cv = coefficientOfVariation(rps);
    return {
      name: target.name,
      rounds: list.length,
      loadSideCpuPct: median(list.map((s) => s.loadSideCpuPct)),
      requestsPerSec: median(rps),
      p50Ms: median(list.map((s) => s.p50Ms)),
      p99Ms: median(list.map((s) => s.p99Ms)),
      cpuUsPerRequest: optionalMedian(list.map((s) => s.cpuUsPerRequest)),
      bestRequestsPerSec: Math.max(...rps),
      bestCpuUsPerRequest: optionalMin(list.map((s) => s.cpuUsPerRequest)),
      rssPeakMb: list.some((s) => s.rssPeakMb !== undefined)
        ? Math.max(...list.map((s) => s.rssPeakMb ?? 0))
        : undefined,
      ratio: undefined,
      cv,
      highVariance: cv > HIGH_VARIANCE_CV,
      total: list.reduce((s, x) => s + x.total, 0),
      non2xx: list.reduce((s, x) => s + x.non2xx, 0),
      errors: list.reduce((s, x) => s + x.errors, 0),
      samples: list,
    };
  });
  const base = summaries.find((s) => s.name === options.baseline)?.requestsPerSec;
  for (const s of summaries)
    s.ratio = base === undefined || base === 0 ? undefined : s.requestsPerSec / base;
  return summaries;
}
