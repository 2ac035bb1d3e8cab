/**
 * What the rollout judge (SPEC §9) reads from the data plane: per pool, answered requests, errors
 * (any 5xx: the upstream's, or the proxy's own 502/503/504 for the pool) and a latency histogram.
 * Client aborts are never counted (the exchange records nothing when the client leaves first).
 * Counters only grow; the engine judges differences of snapshots.
 */
import { LatencyHistogram } from '../rollout/latency-histogram.js';

/** One pool's cumulative outcomes; observe() allocates nothing. */
export class PoolOutcomeCounter {
  requests = 0;
  errors = 0;
  readonly latency = new LatencyHistogram();

  /** Counts one answered request with its status and duration in milliseconds. */
  observe(status: number, ms: number): void {
    // hot path
    this.requests++;
    if (status >= 500) this.errors++;
    this.latency.observe(ms);
  }
}

/** A copy of one pool's counters at a moment. */
export interface PoolOutcomeSnapshot {
  readonly requests: number;
  readonly errors: number;
  readonly latency: LatencyHistogram;
}

/** Per-pool outcome counters that survive table changes (keyed by pool name). */
export class PoolOutcomes {
  readonly #pools = new Map<string, PoolOutcomeCounter>();

  /** The counter of `pool`, created on first use (at table apply, not per request). */
  counter(pool: string): PoolOutcomeCounter {
    let c = this.#pools.get(pool);
    if (!c) {
      c = new PoolOutcomeCounter();
      this.#pools.set(pool, c);
    }
    return c;
  }

  /** Copies of every pool's counters (a few KiB per pool; read about once a second). */
  snapshot(): Map<string, PoolOutcomeSnapshot> {
    const out = new Map<string, PoolOutcomeSnapshot>();
    for (const [pool, c] of this.#pools) {
      out.set(pool, { requests: c.requests, errors: c.errors, latency: c.latency.clone() });
    }
    return out;
  }
}
