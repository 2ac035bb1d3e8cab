/**
 * Live per-pool figures for the event stream and the dashboard: requests per second, error ratio
 * and p99 latency over the last few seconds, from differences of the data plane's cumulative
 * counters (the same counters the rollout judge reads), sampled about once a second.
 */
import type { PoolOutcomeSnapshot } from '../data/pool-outcomes.js';

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

interface Sample {
  readonly atMs: number;
  readonly counts: ReadonlyMap<string, PoolOutcomeSnapshot>;
}

/** A ring of count samples; rates come from the oldest and newest. */
export class PoolRates {
  readonly #maxSamples: number;
  #samples: Sample[] = [];

  /** `maxSamples`: samples kept (taken about once a second: the window in seconds plus one). */
  constructor(maxSamples = 11) {
    if (!Number.isInteger(maxSamples) || maxSamples < 2) {
      throw new RangeError(`PoolRates: maxSamples ${maxSamples} is not an integer >= 2`);
    }
    this.#maxSamples = maxSamples;
  }

  /** Records the counters as they are at `atMs`. */
  sample(counts: ReadonlyMap<string, PoolOutcomeSnapshot>, atMs: number): void {
    this.#samples.push({ atMs, counts });
    if (this.#samples.length > this.#maxSamples) this.#samples.shift();
  }

  /** Forgets every sample (nobody is watching: no need to keep copying counters). */
  clear(): void {
    this.#samples = [];
  }

  /** The figures between the oldest and the newest sample. */
  report(): PoolRateReport {
    const oldest = this.#samples[0];
    const newest = this.#samples.at(-1);
    if (oldest === undefined || newest === undefined || newest === oldest) {
      return { windowMs: 0, pools: {} };
    }
    const windowMs = newest.atMs - oldest.atMs;
    const pools: Record<string, PoolRate> = {};
    for (const [pool, now] of newest.counts) {
      const before = oldest.counts.get(pool);
      const requests = now.requests - (before?.requests ?? 0);
      const errors = now.errors - (before?.errors ?? 0);
      let p99Ms: number | null = null;
      if (requests > 0) {
        const latency = before === undefined ? now.latency : now.latency.since(before.latency);
        p99Ms = latency.total > 0 ? latency.quantile(0.99) : null;
      }
      pools[pool] = {
        requestsPerSecond: windowMs > 0 ? (requests * 1000) / windowMs : 0,
        errorRatio: requests > 0 ? errors / requests : null,
        p99Ms,
      };
    }
    return { windowMs, pools };
  }
}
