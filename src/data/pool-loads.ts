/**
 * What this replica still carries per pool, for the "drained" signal (SPEC §10): requests in
 * flight and long-lived connections, counted from the lists the drainer already keeps (every
 * forwarded request is in its endpoint's ConnList, every upgraded connection in the
 * ConnTracker). Nothing is added to the request path: the lists are walked when a report is
 * taken, about once a second.
 *
 * Each connection carries the pool it was routed to, so an endpoint URL shared by two pools is
 * counted per pool correctly.
 */
import type { ConnTracker, TrackedConnection } from './conn-tracker.js';
import type { UpstreamPool } from './upstream-pool.js';

/** One pool's weight in the applied table and what still flows to it. */
export interface PoolLoad {
  /** Basis points in the applied table; 0 when the pool left it. */
  weight: number;
  /** Requests being forwarded (waiting for or receiving their response). */
  inFlight: number;
  /** WebSockets, tunnels and SSE streams. */
  longLived: number;
}

/** How long a pool that left the table stays in the report (answerable as drained). */
export const DEPARTED_POOL_MEMORY_MS = 60 * 60 * 1000;
/** At most this many departed pools are remembered (oldest forgotten first). */
export const DEPARTED_POOL_LIMIT = 256;

/** Pools that left the table recently, so "is it drained?" still has an answer for them. */
export class DepartedPools {
  /** Pool name -> when it left (ms, Date.now()); insertion order is departure order. */
  readonly #leftAt = new Map<string, number>();

  /** Records the pools of `previous` missing from `current`; forgets those back in it. */
  tableChanged(
    previous: Iterable<string>,
    current: { has(pool: string): boolean },
    nowMs: number,
  ): void {
    for (const pool of this.#leftAt.keys()) if (current.has(pool)) this.#leftAt.delete(pool);
    for (const pool of previous) {
      if (!current.has(pool)) {
        this.#leftAt.delete(pool);
        this.#leftAt.set(pool, nowMs);
      }
    }
    this.#prune(nowMs);
  }

  /** Pools that left less than DEPARTED_POOL_MEMORY_MS ago. */
  names(nowMs: number): IterableIterator<string> {
    this.#prune(nowMs);
    return this.#leftAt.keys();
  }

  #prune(nowMs: number): void {
    for (const [pool, at] of this.#leftAt) {
      if (nowMs - at < DEPARTED_POOL_MEMORY_MS && this.#leftAt.size <= DEPARTED_POOL_LIMIT) break;
      this.#leftAt.delete(pool);
    }
  }
}

/**
 * Builds the report: every pool of `weights`, every departed pool, and every pool something
 * still flows to (a pool dropped from memory but still carrying traffic stays visible).
 */
export function collectPoolLoads(
  weights: Readonly<Record<string, number>>,
  departed: Iterable<string>,
  endpoints: Iterable<UpstreamPool>,
  tracker: ConnTracker,
): Record<string, PoolLoad> {
  // No prototype: a pool may be named `constructor`.
  const loads = Object.create(null) as Record<string, PoolLoad>;
  for (const [pool, weight] of Object.entries(weights))
    loads[pool] = { weight, inFlight: 0, longLived: 0 };
  for (const pool of departed) loads[pool] ??= { weight: 0, inFlight: 0, longLived: 0 };
  const count = (conn: TrackedConnection): void => {
    const load = (loads[conn.poolName] ??= { weight: 0, inFlight: 0, longLived: 0 });
    if (conn.longLived) load.longLived++;
    else load.inFlight++;
  };
  for (const ep of endpoints) ep.conns.forEach(count);
  tracker.forEach(count);
  return loads;
}
