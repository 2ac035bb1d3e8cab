/**
 * Live per-pool figures for the event stream and the dashboard: requests per second, error ratio
 * and p99 latency over the last few seconds, from differences of the data plane's cumulative
 * counters (the same counters the rollout judge reads), sampled about once a second.
 */
import type { PoolOutcomeSnapshot } from '../data/pool-outcomes.js';
import { LatencyHistogram } from '../rollout/latency-histogram.js';

/** One pool's figures over the window; null figures mean "no requests in the window". */
export interface PoolRate {
  readonly requestsPerSecond: number;
  readonly errorRatio: number | null;
  /** 99th percentile latency in ms (upper edge of its histogram bucket, within ~4.4 %). */
  readonly p99Ms: number | null;
}

/** Figures per pool and the span they cover. */
export interface PoolRateReport {
  /** Milliseconds between the oldest and newest sample (0: only one sample so far). */
  readonly windowMs: number;
  readonly pools: Record<string, PoolRate>;
}

type Counts = ReadonlyMap<string, PoolOutcomeSnapshot>;

/** The last `maxSamples` samples of `T`, each with the time it was taken. */
class Samples<T> {
  readonly #maxSamples: number;
  #items: Array<{ readonly atMs: number; readonly value: T }> = [];

  constructor(what: string, maxSamples: number) {
    if (!Number.isInteger(maxSamples) || maxSamples < 2) {
      throw new RangeError(`${what}: maxSamples ${maxSamples} is not an integer >= 2`);
    }
    this.#maxSamples = maxSamples;
  }

  add(value: T, atMs: number): void {
    this.#items.push({ atMs, value });
    if (this.#items.length > this.#maxSamples) this.#items.shift();
  }

  clear(): void {
    this.#items = [];
  }

  /** Oldest first. */
  get items(): ReadonlyArray<{ readonly atMs: number; readonly value: T }> {
    return this.#items;
  }
}

/** A ring of count samples; rates come from the oldest and newest. */
export class PoolRates {
  readonly #samples: Samples<Counts>;

  /** `maxSamples`: samples kept (taken about once a second: the window in seconds plus one). */
  constructor(maxSamples = 11) {
    this.#samples = new Samples('PoolRates', maxSamples);
  }

  /** Records the counters as they are at `atMs`. */
  sample(counts: Counts, atMs: number): void {
    this.#samples.add(counts, atMs);
  }

  /** Forgets every sample (nobody is watching: no need to keep copying counters). */
  clear(): void {
    this.#samples.clear();
  }

  /** The figures between the oldest and the newest sample. */
  report(): PoolRateReport {
    const items = this.#samples.items;
    const oldest = items[0];
    const newest = items.at(-1);
    if (oldest === undefined || newest === undefined || newest === oldest) {
      return { windowMs: 0, pools: {} };
    }
    const windowMs = newest.atMs - oldest.atMs;
    const sums = new Map<string, Added>();
    addDifference(sums, oldest.value, newest.value, windowMs);
    return { windowMs, pools: ratesOf(sums) };
  }
}

/**
 * The same figures for the whole fleet (with Redis): samples of every replica's counters, as each
 * last published them. Each replica's rate comes from its own oldest good sample in the window
 * (present in every sample since, counters never going down), then the replicas are summed: a
 * replica that joins counts from its second sample, one that restarts (counters went down) from
 * its first sample after, and one that stopped (counters standing still) adds nothing.
 */
export class FleetRates {
  readonly #samples: Samples<ReadonlyMap<string, Counts>>;

  /** `maxSamples` as for PoolRates. */
  constructor(maxSamples = 11) {
    this.#samples = new Samples('FleetRates', maxSamples);
  }

  /** Records every replica's counters (replica id → pool → counts) as read at `atMs`. */
  sample(byReplica: ReadonlyMap<string, Counts>, atMs: number): void {
    this.#samples.add(byReplica, atMs);
  }

  clear(): void {
    this.#samples.clear();
  }

  /** The fleet's figures over the window, and how many replicas served requests in it. */
  report(): PoolRateReport & { readonly replicas: number } {
    const samples = this.#samples.items;
    const newest = samples.at(-1);
    if (newest === undefined || samples.length < 2) return { windowMs: 0, pools: {}, replicas: 0 };
    const sums = new Map<string, Added>();
    let serving = 0;
    for (const [id, now] of newest.value) {
      let base: (typeof samples)[number] | undefined;
      let later = now;
      for (let k = samples.length - 2; k >= 0; k--) {
        const sample = samples[k];
        const c = sample?.value.get(id);
        if (sample === undefined || c === undefined || wentDown(c, later)) break;
        base = sample;
        later = c;
      }
      if (base === undefined) continue;
      const spanMs = newest.atMs - base.atMs;
      if (addDifference(sums, later, now, spanMs)) serving++;
    }
    const oldest = samples[0] as (typeof samples)[number];
    return { windowMs: newest.atMs - oldest.atMs, pools: ratesOf(sums), replicas: serving };
  }
}

/** True when a counter of `now` is below `before`'s: the replica restarted in between. */
function wentDown(before: Counts, now: Counts): boolean {
  for (const [pool, b] of before) {
    const n = now.get(pool);
    if (n === undefined || n.requests < b.requests || n.errors < b.errors) return true;
  }
  return false;
}

interface Added {
  requests: number;
  errors: number;
  /** Requests per second, summed over the replicas (each over its own span). */
  perSecond: number;
  latency: LatencyHistogram;
}

/**
 * Adds `now - before` per pool (over `spanMs`) to `sums`; true when `now` counts more requests.
 */
function addDifference(
  sums: Map<string, Added>,
  before: Counts,
  now: Counts,
  spanMs: number,
): boolean {
  let served = false;
  for (const [pool, n] of now) {
    const b = before.get(pool);
    let sum = sums.get(pool);
    if (sum === undefined) {
      sum = { requests: 0, errors: 0, perSecond: 0, latency: new LatencyHistogram() };
      sums.set(pool, sum);
    }
    const requests = n.requests - (b?.requests ?? 0);
    sum.requests += requests;
    sum.errors += n.errors - (b?.errors ?? 0);
    if (spanMs > 0) sum.perSecond += (requests * 1000) / spanMs;
    sum.latency.add(b === undefined ? n.latency : n.latency.since(b.latency));
    if (requests > 0) served = true;
  }
  return served;
}

function ratesOf(sums: ReadonlyMap<string, Added>): Record<string, PoolRate> {
  const pools: Record<string, PoolRate> = {};
  for (const [pool, a] of sums) {
    pools[pool] = {
      requestsPerSecond: a.perSecond,
      errorRatio: a.requests > 0 ? a.errors / a.requests : null,
      p99Ms: a.requests > 0 && a.latency.total > 0 ? a.latency.quantile(0.99) : null,
    };
  }
  return pools;
}
