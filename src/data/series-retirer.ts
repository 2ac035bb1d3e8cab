/**
 * Drops the metric series of versions and pools that left the routing table (issue 10): without
 * it every deploy of a new SHA adds `switchyard_requests_total` series that never go away, and a
 * year of deploys grows Prometheus' cardinality without bound.
 *
 * A series goes once nothing can count into it any more: no request still running on that
 * version (a request counts when it ends) and, for a pool, no connection of the pool still open
 * (the drainer and the upgrade relay write its connection gauges when it ends). At the latest it
 * goes at drainTimeout + drainSpread after leaving the table, when the drain has closed what was
 * left; a request still running then is answered but its count is not exported. Series of pools
 * and versions still in the table stay, weight 0 or not.
 */
import type { Metrics, RequestTally } from '../observability/metrics.js';
import type { ConnTracker } from './conn-tracker.js';
import { ProxyExchange } from './forward.js';
import type { RoutingSnapshot } from './router.js';
import type { UpstreamPool } from './upstream-pool.js';

/** Dependencies of the retirer. */
export interface SeriesRetirerDeps {
  metrics: Metrics;
  /** Upgraded connections by endpoint URL. */
  tracker: ConnTracker;
  /** Every endpoint that may still carry requests: those in the table and retiring ones. */
  endpoints: () => Iterable<UpstreamPool>;
}

/** Pool of the requests answered before any pool was chosen; never in a table's lifecycle. */
const UNROUTED_POOL = 'none';

/** Watches versions and pools that left the table and drops their series once drained. */
export class SeriesRetirer {
  readonly #graceMs: number;
  readonly #deps: SeriesRetirerDeps;
  /** Tallies of versions that left the table, with the time (ms) their series go regardless. */
  readonly #versions = new Map<RequestTally, number>();
  /** Pools that left the table, with the time (ms) their request series go regardless. */
  readonly #pools = new Map<string, { deadline: number; talliesDropped: boolean }>();
  #current: RoutingSnapshot | null = null;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  /** `graceMs` is drainTimeout + drainSpread: the longest a drain keeps a connection open. */
  constructor(options: { graceMs: number }, deps: SeriesRetirerDeps) {
    this.#graceMs = options.graceMs;
    this.#deps = deps;
  }

  /** Takes a newly applied snapshot (after the swap): what left the table starts retiring. */
  tableApplied(previous: RoutingSnapshot | null, next: RoutingSnapshot): void {
    this.#current = next;
    if (this.#closed) return;
    if (previous !== null) {
      const deadline = performance.now() + this.#graceMs;
      for (const pool of previous.pools.values()) {
        const now = next.pools.get(pool.name);
        if (now?.version === pool.version) continue;
        if (!this.#versions.has(pool.metrics.tally))
          this.#versions.set(pool.metrics.tally, deadline);
        if (now === undefined && !this.#pools.has(pool.name))
          this.#pools.set(pool.name, { deadline, talliesDropped: false });
      }
    }
    this.sweep();
  }

  /** Pools and versions waiting for their drain (tests). */
  get pending(): number {
    return this.#versions.size + this.#pools.size;
  }

  /**
   * Drops the series of every retired version and pool that has drained or passed its deadline;
   * re-arms the timer while some are left. Not on the request path: one pass over the open
   * connections, only while something is retiring.
   */
  sweep(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#closed || this.pending === 0) return;
    const table = this.#current?.pools;
    const { busyTallies, busyPools } = this.#busy();
    const now = performance.now();
    const m = this.#deps.metrics;
    for (const [tally, deadline] of this.#versions) {
      if (table?.get(tally.pool)?.version === tally.version) {
        this.#versions.delete(tally); // back in the table (a redeploy of the same version)
      } else if (!busyTallies.has(tally) || now >= deadline) {
        this.#versions.delete(tally);
        m.dropVersion(tally);
      }
    }
    for (const [pool, entry] of this.#pools) {
      if (table?.has(pool) === true || pool === UNROUTED_POOL) {
        this.#pools.delete(pool);
      } else if (!busyPools.has(pool)) {
        this.#pools.delete(pool);
        m.dropPool(pool);
      } else if (now >= entry.deadline && !entry.talliesDropped) {
        // A connection of the pool is still open (its endpoint serves another pool too): its
        // gauges stay until it ends, or it would write them back when it does.
        entry.talliesDropped = true;
        m.dropPool(pool, { keepConnectionSeries: true });
      }
    }
    if (this.pending > 0) {
      // Often enough that a drained version goes within a second, or a quarter of a short grace.
      this.#timer = setTimeout(
        () => this.sweep(),
        Math.max(50, Math.min(1_000, this.#graceMs / 4)),
      );
      this.#timer.unref();
    }
  }

  /** Stops the timer (proxy shutdown). Idempotent. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The request tallies and pools that open connections still count into. */
  #busy(): { busyTallies: Set<RequestTally>; busyPools: Set<string> } {
    const busyTallies = new Set<RequestTally>();
    const busyPools = new Set<string>();
    for (const ep of this.#deps.endpoints()) {
      for (const conn of ep.conns.toArray()) {
        busyPools.add(conn.poolName);
        if (conn instanceof ProxyExchange && conn.pool !== undefined)
          busyTallies.add(conn.pool.metrics.tally);
      }
    }
    const tracker = this.#deps.tracker;
    for (const url of tracker.endpoints())
      for (const conn of tracker.forEndpoint(url)) busyPools.add(conn.poolName);
    return { busyTallies, busyPools };
  }
}
