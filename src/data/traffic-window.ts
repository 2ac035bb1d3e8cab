/**
 * Requests routed per pool over a sliding window (GET /v1/traffic): a ring of one-second buckets
 * per pool. Recording is an array write and a compare; no allocation on the hot path.
 */

/** Longest window the ring can answer for, in seconds. */
const RING_SECONDS = 300;

/** Counts for one pool; handed to the compiled snapshot so the hot path skips map lookups. */
export class PoolTrafficCounter {
  readonly #counts = new Uint32Array(RING_SECONDS);
  readonly #stamps = new Float64Array(RING_SECONDS).fill(-1);
  /** Requests counted since start (worker reports to the primary, SPEC §13). */
  total = 0;

  /** Counts one request at `nowMs`. */
  record(nowMs: number): void {
    // hot path
    this.add(nowMs, 1);
  }

  /** Counts `n` requests at `nowMs` (a worker's report, in the primary). */
  add(nowMs: number, n: number): void {
    // hot path (through record)
    this.total += n;
    const second = Math.floor(nowMs / 1000);
    const i = second % RING_SECONDS;
    if (this.#stamps[i] !== second) {
      this.#stamps[i] = second;
      this.#counts[i] = n;
    } else {
      this.#counts[i] = (this.#counts[i] as number) + n;
    }
  }

  /** Requests counted during the last `windowMs` (whole seconds, the current one included). */
  sum(windowMs: number, nowMs: number): number {
    const now = Math.floor(nowMs / 1000);
    const seconds = Math.min(RING_SECONDS, Math.max(1, Math.ceil(windowMs / 1000)));
    let total = 0;
    for (let s = now - seconds + 1; s <= now; s++) {
      const i = ((s % RING_SECONDS) + RING_SECONDS) % RING_SECONDS;
      if (this.#stamps[i] === s) total += this.#counts[i] as number;
    }
    return total;
  }
}

/** Per-pool traffic counters that survive table changes (keyed by pool name). */
export class TrafficWindow {
  readonly #pools = new Map<string, PoolTrafficCounter>();

  /** The counter of `pool`, created on first use (at table apply, not per request). */
  counter(pool: string): PoolTrafficCounter {
    let c = this.#pools.get(pool);
    if (!c) {
      c = new PoolTrafficCounter();
      this.#pools.set(pool, c);
    }
    return c;
  }

  /** Requests per pool since start. */
  totals(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [pool, c] of this.#pools) out[pool] = c.total;
    return out;
  }

  /** Requests per pool over the last `windowMs` (at most 300 s). */
  snapshot(windowMs: number, nowMs = Date.now()): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [pool, c] of this.#pools) out[pool] = c.sum(windowMs, nowMs);
    return out;
  }
}
