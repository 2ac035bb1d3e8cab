/**
 * Endpoint health (issue 5): active checks and passive ejection, folded into one boolean per
 * endpoint (`UpstreamPool.healthy`) that the picker reads on the request path.
 *
 * - Active: every endpoint in the table (weight-0 pools too, so a switch target's health is known)
 *   gets `GET healthCheckPath` every `healthCheckInterval` on a fresh connection of its own
 *   (never a forwarding socket). Connection failures, timeouts and 5xx fail a check; any other
 *   status passes, so an app without that path (404) is still checked for being up.
 *   `unhealthyThreshold` failures in a row mark the endpoint down, `healthyThreshold` passes up.
 *   A new endpoint is checked as soon as it enters the table and is unknown until then: it takes
 *   traffic (a proxy starting up must not refuse everything), but until its first pass it is not
 *   known to work, so one failure takes it down and one pass brings it up (thresholds smooth the
 *   flapping of an endpoint seen working; issue 10 item 11). Guards such as the POOL_UNHEALTHY
 *   switch guard wait a bounded moment for those first checks (`settledPoolHealth`).
 * - Passive: `ejectionThreshold` failed requests in a row (connection failures or 5xx, counted by
 *   the request path) eject the endpoint for `ejectionDuration`, doubled on each repeat up to
 *   `maxEjectionDuration`; passing active checks re-admit it early (as Envoy does). Passive
 *   ejection never takes the last healthy endpoint of a pool: it is a guess from traffic, and
 *   with nothing left to route to, trying the endpoint beats refusing every request. Only active
 *   checks can mark a whole pool down, and then the pool answers 503 NO_HEALTHY_UPSTREAM.
 */
import { Client } from 'undici';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { RoutingSnapshot } from './router.js';
import type { UpstreamPool } from './upstream-pool.js';

/** Health settings, durations in ms. */
export interface HealthCheckerOptions {
  /** Path of the active check, e.g. `/healthz`. */
  path: string;
  /** Time between two checks of one endpoint; 0 turns active checks off. */
  intervalMs: number;
  /** A check not answered within this time fails. */
  timeoutMs: number;
  /** Passing checks in a row that bring a down endpoint back. */
  healthyThreshold: number;
  /** Failing checks in a row that take an endpoint down. */
  unhealthyThreshold: number;
  /** Failed requests in a row that eject an endpoint; 0 turns passive ejection off. */
  ejectionThreshold: number;
  /** First ejection length; doubled on each repeat. */
  ejectionMs: number;
  /** Longest ejection; also how long an endpoint must stay in before the doubling restarts. */
  maxEjectionMs: number;
}

/** Config keys of health checking, ejection and the retry budget. */
export type HealthConfigKey =
  | 'healthCheckPath'
  | 'healthCheckInterval'
  | 'healthCheckTimeout'
  | 'healthyThreshold'
  | 'unhealthyThreshold'
  | 'ejectionThreshold'
  | 'ejectionDuration'
  | 'maxEjectionDuration'
  | 'retryBudgetPercent'
  | 'retryBudgetMin';

/**
 * Health options from a config slice. An absent key takes the schema's default, except
 * `healthCheckInterval`: a ProxyServer built without it (embedded, data-plane tests) sends no
 * active checks, so upstream request counts stay exact. The app passes the full config.
 */
export function healthOptionsFrom(config: Partial<Pick<Config, HealthConfigKey>>): {
  health: HealthCheckerOptions;
  retryBudget: { percent: number; minPerSecond: number };
} {
  return {
    health: {
      path: config.healthCheckPath ?? '/healthz',
      intervalMs: config.healthCheckInterval ?? 0,
      timeoutMs: config.healthCheckTimeout ?? 1_000,
      healthyThreshold: config.healthyThreshold ?? 2,
      unhealthyThreshold: config.unhealthyThreshold ?? 3,
      ejectionThreshold: config.ejectionThreshold ?? 5,
      ejectionMs: config.ejectionDuration ?? 10_000,
      maxEjectionMs: config.maxEjectionDuration ?? 120_000,
    },
    retryBudget: {
      percent: config.retryBudgetPercent ?? 20,
      minPerSecond: config.retryBudgetMin ?? 10,
    },
  };
}

/** Ejection length for the `n`-th ejection in a row (1-based): base doubled, capped at `max`. */
export function ejectionDurationMs(baseMs: number, maxMs: number, n: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(n - 1, 0), 30));
}

/** Health of a pool for a guard: endpoints awaiting their first check are counted apart. */
export interface SettledPoolHealth {
  /** Endpoints that take traffic and, with active checks on, have been checked. */
  healthy: number;
  total: number;
  /** Endpoints whose first active check has not answered yet (0 when checks are off). */
  unchecked: number;
}

/** Longest a guard waits for first checks, whatever `healthCheckTimeout` says. */
const MAX_FIRST_CHECK_WAIT_MS = 5_000;
/** Slack past the check timeout for the check's own timers on a busy event loop. */
const FIRST_CHECK_SLACK_MS = 500;

/** Why an endpoint's health changed (the `reason` log field). */
type HealthReason = 'check-failed' | 'check-passed' | 'ejected' | 'ejection-ended';

class EndpointState {
  readonly endpoint: UpstreamPool;
  /** Names of the pools that list this endpoint in the current snapshot. */
  pools: readonly string[] = [];
  /** Verdict of the active checks; true until they say otherwise. */
  up = true;
  /** True once an active check answered (passed or failed). */
  checked = false;
  /** True once an active check passed: thresholds apply from then on. */
  everPassed = false;
  passes = 0;
  fails = 0;
  checkTimer: NodeJS.Timeout | undefined;
  checkAbort: AbortController | null = null;
  ejectTimer: NodeJS.Timeout | undefined;
  /** Ejections in a row (for doubling). */
  ejections = 0;
  /** When the last ejection ended (ms), for resetting the doubling. */
  readmittedAt = 0;

  constructor(endpoint: UpstreamPool) {
    this.endpoint = endpoint;
  }

  get ejected(): boolean {
    return this.ejectTimer !== undefined;
  }
}

/** Active checks and passive ejection for every endpoint of the routing table. */
export class HealthChecker {
  readonly #options: HealthCheckerOptions;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #states = new Map<UpstreamPool, EndpointState>();
  #snapshot: RoutingSnapshot | null = null;
  #closed = false;
  /** Called on every first verdict, table change and close: settledPoolHealth() waiters. */
  readonly #verdictListeners = new Set<() => void>();

  constructor(options: HealthCheckerOptions, deps: { logger: Logger; metrics: Metrics }) {
    this.#options = options;
    this.#log = deps.logger;
    this.#metrics = deps.metrics;
  }

  /**
   * Adopts a new snapshot: starts watching endpoints that entered the table, stops watching
   * those that left, and refreshes the healthy-endpoint gauge of every pool.
   */
  sync(snapshot: RoutingSnapshot): void {
    if (this.#closed) return;
    const previous = this.#snapshot;
    this.#snapshot = snapshot;
    const poolsOf = new Map<UpstreamPool, string[]>();
    for (const pool of snapshot.pools.values()) {
      for (const ep of pool.endpoints) {
        const names = poolsOf.get(ep);
        if (names === undefined) poolsOf.set(ep, [pool.name]);
        else if (!names.includes(pool.name)) names.push(pool.name);
      }
    }
    for (const [ep, state] of this.#states) {
      if (!poolsOf.has(ep)) {
        this.#stop(state);
        this.#states.delete(ep);
      }
    }
    for (const [ep, names] of poolsOf) {
      let state = this.#states.get(ep);
      if (state === undefined) {
        state = new EndpointState(ep);
        this.#states.set(ep, state);
        ep.failureLimit = this.#options.ejectionThreshold;
        ep.onFailures = this.#onFailures;
        if (this.#options.intervalMs > 0) this.#scheduleCheck(state, 0);
      }
      state.pools = names;
    }
    for (const pool of snapshot.pools.keys()) this.#updateGauge(pool);
    if (previous !== null) {
      for (const pool of previous.pools.keys()) {
        if (!snapshot.pools.has(pool)) this.#metrics.healthyEndpoints.remove({ pool });
      }
    }
    this.#notifyVerdict();
  }

  /** Healthy and total endpoints of `pool` in the current snapshot. */
  poolHealth(pool: string): { healthy: number; total: number } {
    const eps = this.#snapshot?.pools.get(pool)?.endpoints;
    if (eps === undefined) return { healthy: 0, total: 0 };
    let healthy = 0;
    for (const ep of eps) if (ep.healthy) healthy++;
    return { healthy, total: eps.length };
  }

  /**
   * Health of `pool` for a guard. While the pool has no healthy checked endpoint but some whose
   * first check is pending (a pool just added), waits for those checks: at most the check
   * timeout plus 500 ms, capped at 5 s, or until `signal` aborts. Endpoints still unchecked then
   * are reported as such, not as healthy. With active checks off it answers at once.
   */
  async settledPoolHealth(pool: string, signal?: AbortSignal): Promise<SettledPoolHealth> {
    const waitMs =
      this.#options.intervalMs > 0
        ? Math.min(this.#options.timeoutMs + FIRST_CHECK_SLACK_MS, MAX_FIRST_CHECK_WAIT_MS)
        : 0;
    const deadline = Date.now() + waitMs;
    for (;;) {
      const health = this.#settledHealth(pool);
      const remainingMs = deadline - Date.now();
      if (health.healthy > 0 || health.unchecked === 0 || remainingMs <= 0) return health;
      if (this.#closed || signal?.aborted === true) return health;
      await this.#nextVerdict(remainingMs, signal);
    }
  }

  /** Each endpoint of `pool` in the current snapshot, in table order, with its health. */
  endpointHealth(pool: string): { url: string; healthy: boolean }[] {
    const eps = this.#snapshot?.pools.get(pool)?.endpoints ?? [];
    return eps.map((ep) => ({ url: ep.url, healthy: ep.healthy }));
  }

  /** Stops every check and ejection timer and aborts checks in flight. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const state of this.#states.values()) this.#stop(state);
    this.#states.clear();
    this.#notifyVerdict();
  }

  #settledHealth(pool: string): SettledPoolHealth {
    const eps = this.#snapshot?.pools.get(pool)?.endpoints;
    if (eps === undefined) return { healthy: 0, total: 0, unchecked: 0 };
    let healthy = 0;
    let unchecked = 0;
    for (const ep of eps) {
      const state = this.#states.get(ep);
      if (this.#options.intervalMs > 0 && state !== undefined && !state.checked) unchecked++;
      else if (ep.healthy) healthy++;
    }
    return { healthy, total: eps.length, unchecked };
  }

  /** Resolves on the next first verdict, table change or close, after `ms`, or on abort. */
  #nextVerdict(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#verdictListeners.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.#verdictListeners.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  #notifyVerdict(): void {
    for (const listener of [...this.#verdictListeners]) listener();
  }

  #stop(state: EndpointState): void {
    clearTimeout(state.checkTimer);
    clearTimeout(state.ejectTimer);
    state.checkTimer = undefined;
    state.ejectTimer = undefined;
    state.checkAbort?.abort();
    state.checkAbort = null;
    state.endpoint.onFailures = null;
  }

  #scheduleCheck(state: EndpointState, delayMs: number): void {
    state.checkTimer = setTimeout(() => {
      state.checkTimer = undefined;
      void this.#check(state);
    }, delayMs);
    state.checkTimer.unref();
  }

  async #check(state: EndpointState): Promise<void> {
    const opts = this.#options;
    const abort = new AbortController();
    state.checkAbort = abort;
    const timer = setTimeout(() => abort.abort(), opts.timeoutMs);
    timer.unref();
    // A client of its own per check: a fresh connection, closed after, so the check neither
    // disturbs the forwarding pool nor races an upstream closing an idle keep-alive socket.
    const client = new Client(state.endpoint.origin, {
      connectTimeout: opts.timeoutMs,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    });
    let failure: string | null = null;
    try {
      const res = await client.request({
        path: opts.path,
        method: 'GET',
        headers: { 'user-agent': 'switchyard-health-check' },
        reset: true,
        signal: abort.signal,
      });
      await res.body.dump();
      if (res.statusCode >= 500) failure = `status ${res.statusCode}`;
    } catch (err) {
      const e = err as Error & { code?: string };
      failure = abort.signal.aborted ? 'timeout' : (e.code ?? e.message);
    } finally {
      clearTimeout(timer);
      client.destroy().catch(() => undefined);
    }
    if (state.checkAbort !== abort || this.#closed) return; // stopped meanwhile
    state.checkAbort = null;
    if (failure === null) this.#checkPassed(state);
    else this.#checkFailed(state, failure);
    if (!state.checked) {
      state.checked = true;
      this.#notifyVerdict();
    }
    this.#scheduleCheck(state, opts.intervalMs);
  }

  #checkPassed(state: EndpointState): void {
    state.fails = 0;
    state.passes++;
    const firstPass = !state.everPassed;
    state.everPassed = true;
    if (firstPass && !state.up) {
      // Down only because it had never passed: no flapping to smooth.
      state.up = true;
      this.#apply(state, 'check-passed', {});
      return;
    }
    if (state.passes < this.#options.healthyThreshold) return;
    if (!state.up) {
      state.up = true;
      this.#apply(state, 'check-passed', {});
    } else if (state.ejected) {
      // Envoy's rule: a host passing its active checks is un-ejected early.
      clearTimeout(state.ejectTimer);
      state.ejectTimer = undefined;
      state.readmittedAt = Date.now();
      this.#apply(state, 'check-passed', {});
    }
  }

  #checkFailed(state: EndpointState, cause: string): void {
    state.passes = 0;
    state.fails++;
    // Never seen working (a new endpoint): one failure is enough to stop trusting it.
    if (state.up && (!state.everPassed || state.fails >= this.#options.unhealthyThreshold)) {
      state.up = false;
      this.#apply(state, 'check-failed', { cause });
    }
  }

  /** Called by the request path once an endpoint's failures in a row reach the threshold. */
  #onFailures = (ep: UpstreamPool): void => {
    const state = this.#states.get(ep);
    if (state === undefined || state.ejected || !state.up || this.#closed) return;
    if (this.#isLastHealthy(state)) return;
    const now = Date.now();
    if (state.readmittedAt !== 0 && now - state.readmittedAt >= this.#options.maxEjectionMs)
      state.ejections = 0;
    state.ejections++;
    const ms = ejectionDurationMs(
      this.#options.ejectionMs,
      this.#options.maxEjectionMs,
      state.ejections,
    );
    state.passes = 0;
    state.ejectTimer = setTimeout(() => {
      state.ejectTimer = undefined;
      state.readmittedAt = Date.now();
      ep.failures = 0;
      this.#apply(state, 'ejection-ended', {});
    }, ms);
    state.ejectTimer.unref();
    this.#apply(state, 'ejected', { failures: ep.failures, ejectionMs: ms });
  };

  #isLastHealthy(state: EndpointState): boolean {
    const snap = this.#snapshot;
    if (snap === null) return true;
    for (const name of state.pools) {
      const pool = snap.pools.get(name);
      if (pool === undefined) continue;
      let others = 0;
      for (const ep of pool.endpoints) if (ep !== state.endpoint && ep.healthy) others++;
      if (others === 0) return true;
    }
    return false;
  }

  /** Publishes the state's verdict on the endpoint handle, logs the change, updates gauges. */
  #apply(state: EndpointState, reason: HealthReason, extra: Record<string, unknown>): void {
    const ep = state.endpoint;
    const healthy = state.up && !state.ejected;
    if (ep.healthy === healthy) return;
    ep.healthy = healthy;
    if (healthy) ep.failures = 0;
    this.#log.info(
      { pool: state.pools.join(','), endpoint: ep.url, healthy, reason, ...extra },
      'endpoint health changed',
    );
    for (const pool of state.pools) this.#updateGauge(pool);
  }

  #updateGauge(pool: string): void {
    this.#metrics.healthyEndpoints.set({ pool }, this.poolHealth(pool).healthy);
  }
}
