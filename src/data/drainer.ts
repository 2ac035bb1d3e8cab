/**
 * Drains endpoints that stop receiving new traffic (SPEC §4): their pool's weight fell to 0, or
 * they left the table. Requests already running complete; connections still open after
 * `drainTimeout` (WebSockets, tunnels, streamed responses) are closed one by one at a moment
 * drawn uniformly from a further `drainSpread`, so their clients do not reconnect all at once.
 * WebSockets get close code 1012 (service restart). If the endpoint receives traffic again
 * before its connections are closed (a rollback), the drain is cancelled.
 *
 * An endpoint ejected by health checking is not drained here: it still serves what it has.
 */
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import {
  DRAIN_CLOSE_CODE,
  type ConnTracker,
  type DrainWatcher,
  type TrackedConnection,
} from './conn-tracker.js';
import type { UpstreamPool } from './upstream-pool.js';

/** Timing of drains, in ms. */
export interface DrainerOptions {
  drainTimeout: number;
  drainSpread: number;
}

/** Dependencies of the drainer. */
export interface DrainerDeps {
  log: Logger;
  metrics: Metrics;
  /** Upgraded connections by endpoint URL. */
  tracker: ConnTracker;
  /** Uniform random number in [0, 1) (tests may pin it). */
  random?: () => number;
}

/** Why an endpoint is drained (log field). */
export type DrainReason = 'weight-zero' | 'removed';

/** Starts, cancels and completes endpoint drains as tables change. */
export class Drainer {
  readonly #options: DrainerOptions;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #tracker: ConnTracker;
  readonly #random: () => number;
  readonly #drains = new Map<UpstreamPool, EndpointDrain>();
  /** Endpoints that received new traffic under the last table. */
  #live = new Set<UpstreamPool>();
  #closed = false;

  constructor(options: DrainerOptions, deps: DrainerDeps) {
    this.#options = options;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
    this.#tracker = deps.tracker;
    this.#random = deps.random ?? Math.random;
  }

  /**
   * Takes the endpoints of a newly applied table: `live` are those of pools with weight > 0,
   * `removed` those that left the table. Endpoints that were live and are not any more start
   * draining; draining endpoints that are live again are cancelled.
   */
  update(live: ReadonlySet<UpstreamPool>, removed: readonly UpstreamPool[]): void {
    if (this.#closed) return;
    for (const ep of live) this.#drains.get(ep)?.cancel();
    for (const ep of this.#live) {
      if (!live.has(ep)) this.#start(ep, removed.includes(ep) ? 'removed' : 'weight-zero');
    }
    // An endpoint that never had weight may still hold connections made with the override header.
    for (const ep of removed) if (!this.#live.has(ep)) this.#start(ep, 'removed');
    this.#live = new Set(live);
  }

  /** Endpoints currently draining. */
  get draining(): number {
    return this.#drains.size;
  }

  /** True while `endpoint` is draining. */
  isDraining(endpoint: UpstreamPool): boolean {
    return this.#drains.has(endpoint);
  }

  /** Stops every drain timer (shutdown closes the connections itself). Idempotent. */
  close(): void {
    this.#closed = true;
    for (const d of [...this.#drains.values()]) d.cancel('shutdown');
  }

  #start(endpoint: UpstreamPool, reason: DrainReason): void {
    if (this.#drains.has(endpoint)) return; // already draining since it lost its weight
    const members = [...this.#tracker.forEndpoint(endpoint.url), ...endpoint.conns.toArray()];
    const drain = new EndpointDrain(endpoint, reason, members, this.#options, {
      log: this.#log,
      metrics: this.#metrics,
      random: this.#random,
      done: () => this.#drains.delete(endpoint),
    });
    this.#drains.set(endpoint, drain);
    drain.begin();
  }
}

interface EndpointDrainDeps {
  log: Logger;
  metrics: Metrics;
  random: () => number;
  done: () => void;
}

/** The drain of one endpoint: the connections open when it began, and their close schedule. */
class EndpointDrain implements DrainWatcher {
  readonly #endpoint: UpstreamPool;
  readonly #reason: DrainReason;
  readonly #options: DrainerOptions;
  readonly #deps: EndpointDrainDeps;
  /** Connections still open that this drain counts. */
  readonly #open = new Set<TrackedConnection>();
  readonly #startedAt = performance.now();
  #schedule: Array<{ at: number; conn: TrackedConnection }> = [];
  #next = 0;
  #timer: NodeJS.Timeout | undefined;
  #completed = 0;
  #closed = 0;
  #over = false;

  constructor(
    endpoint: UpstreamPool,
    reason: DrainReason,
    members: readonly TrackedConnection[],
    options: DrainerOptions,
    deps: EndpointDrainDeps,
  ) {
    this.#endpoint = endpoint;
    this.#reason = reason;
    this.#options = options;
    this.#deps = deps;
    for (const conn of members) {
      // A connection counted by an older drain (same endpoint object) stays with it.
      if (conn.trackDrain !== null) continue;
      conn.trackDrain = this;
      this.#open.add(conn);
      deps.metrics.drainingConnections.labels(conn.poolName).inc();
    }
  }

  begin(): void {
    const { drainTimeout, drainSpread } = this.#options;
    this.#deps.log.info(
      {
        endpoint: this.#endpoint.url,
        reason: this.#reason,
        connections: this.#open.size,
        drainTimeoutMs: drainTimeout,
        drainSpreadMs: drainSpread,
      },
      'drain started',
    );
    if (this.#open.size === 0) {
      this.#finish();
      return;
    }
    // Each connection gets its own moment in [drainTimeout, drainTimeout + drainSpread).
    const start = this.#startedAt;
    for (const conn of this.#open)
      this.#schedule.push({ at: start + drainTimeout + this.#deps.random() * drainSpread, conn });
    this.#schedule.sort((a, b) => a.at - b.at);
    this.#arm();
  }

  #arm(): void {
    const entry = this.#schedule[this.#next];
    if (entry === undefined) return;
    this.#timer = setTimeout(this.#tick, Math.max(0, entry.at - performance.now()));
    this.#timer.unref();
  }

  #tick = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    let entry = this.#schedule[this.#next];
    while (entry !== undefined && entry.at <= now + 1) {
      this.#next++;
      this.#closeOne(entry.conn);
      if (this.#over) return;
      entry = this.#schedule[this.#next];
    }
    this.#arm();
  };

  #closeOne(conn: TrackedConnection): void {
    if (!this.#open.has(conn)) return;
    // Detach first, so the close below does not count as the connection completing by itself.
    conn.trackDrain = null;
    if (!conn.close(DRAIN_CLOSE_CODE)) {
      // Still waiting for its response: a request, not a stream; it completes by itself.
      conn.trackDrain = this;
      if (conn.trackList === null) this.ended(conn);
      return;
    }
    this.#open.delete(conn);
    this.#closed++;
    const m = this.#deps.metrics;
    m.drainingConnections.labels(conn.poolName).dec();
    m.drainedConnections.labels(conn.poolName, 'closed').inc();
    if (this.#open.size === 0) this.#finish();
  }

  /** A member ended by itself (request completed, client or upstream closed). */
  ended(conn: TrackedConnection): void {
    if (!this.#open.delete(conn)) return;
    this.#completed++;
    const m = this.#deps.metrics;
    m.drainingConnections.labels(conn.poolName).dec();
    m.drainedConnections.labels(conn.poolName, 'completed').inc();
    if (this.#open.size === 0) this.#finish();
  }

  /** The endpoint is live again (rollback), or the proxy shuts down: stop without closing. */
  cancel(why: 'rollback' | 'shutdown' = 'rollback'): void {
    if (this.#over) return;
    this.#over = true;
    clearTimeout(this.#timer);
    for (const conn of this.#open) {
      conn.trackDrain = null;
      this.#deps.metrics.drainingConnections.labels(conn.poolName).dec();
    }
    this.#deps.log.info(
      {
        endpoint: this.#endpoint.url,
        why,
        open: this.#open.size,
        completed: this.#completed,
        closed: this.#closed,
      },
      'drain cancelled',
    );
    this.#open.clear();
    this.#deps.done();
  }

  #finish(): void {
    if (this.#over) return;
    this.#over = true;
    clearTimeout(this.#timer);
    this.#deps.log.info(
      {
        endpoint: this.#endpoint.url,
        reason: this.#reason,
        completed: this.#completed,
        closed: this.#closed,
        durationMs: Math.round(performance.now() - this.#startedAt),
      },
      'drain finished',
    );
    this.#deps.done();
  }
}
