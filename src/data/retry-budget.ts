/**
 * Retry budget per pool (Envoy's retry_budget idea): a retry is allowed only while the retries of
 * the last second stay under `percent` % of the pool's requests in that second, or under a small
 * floor `minPerSecond` so a quiet pool can still retry. A dead pool therefore costs at most
 * about `percent` % extra upstream attempts instead of doubling every request (a retry storm).
 *
 * Requests are not counted here: the pool's traffic counter already counts them per second, so the
 * request path pays nothing; only the failure path reads the counters.
 */
import type { PoolTrafficCounter } from './traffic-window.js';

/** Retry budget settings. */
export interface RetryBudgetOptions {
  /** Retries allowed per second as a percentage of the pool's requests (0..100). */
  percent: number;
  /** Retries always allowed per second, whatever the request rate. */
  minPerSecond: number;
}

/**
 * Estimates a per-second rate over a sliding one-second window from whole-second buckets: all of
 * the current second plus the part of the previous one the window still covers.
 */
export function slidingRate(current: number, previous: number, msIntoSecond: number): number {
  return current + previous * (1 - msIntoSecond / 1000);
}

/** The retry budget of one pool; survives table changes (keyed by pool name). */
export class RetryBudget {
  readonly #options: RetryBudgetOptions;
  #second = -1;
  #current = 0;
  #previous = 0;

  constructor(options: RetryBudgetOptions) {
    this.#options = options;
  }

  /**
   * Takes one retry from the budget if it has room at `nowMs`; `traffic` supplies the pool's
   * request counts. Returns false (and takes nothing) when the budget is spent.
   */
  tryAcquire(nowMs: number, traffic: PoolTrafficCounter): boolean {
    this.#roll(nowMs);
    const into = nowMs % 1000;
    const requestsBoth = traffic.sum(2000, nowMs);
    const requestsNow = traffic.sum(1000, nowMs);
    const requests = slidingRate(requestsNow, requestsBoth - requestsNow, into);
    const retries = slidingRate(this.#current, this.#previous, into);
    const allowed = Math.max(this.#options.minPerSecond, (requests * this.#options.percent) / 100);
    if (retries + 1 > allowed) return false;
    this.#current++;
    return true;
  }

  #roll(nowMs: number): void {
    const second = Math.floor(nowMs / 1000);
    if (second === this.#second) return;
    this.#previous = second === this.#second + 1 ? this.#current : 0;
    this.#current = 0;
    this.#second = second;
  }
}

/** Retry budgets by pool name, created at table apply. */
export class RetryBudgets {
  readonly #options: RetryBudgetOptions;
  readonly #pools = new Map<string, RetryBudget>();

  constructor(options: RetryBudgetOptions) {
    this.#options = options;
  }

  /** The budget of `pool`, created on first use. */
  for(pool: string): RetryBudget {
    let b = this.#pools.get(pool);
    if (b === undefined) {
      b = new RetryBudget(this.#options);
      this.#pools.set(pool, b);
    }
    return b;
  }

  /** Forgets pools no longer in the table. */
  retain(pools: Iterable<string>): void {
    const keep = new Set(pools);
    for (const name of this.#pools.keys()) if (!keep.has(name)) this.#pools.delete(name);
  }
}
