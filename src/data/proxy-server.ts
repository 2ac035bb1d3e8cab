/**
 * The data plane: an HTTP server that routes every request by the current compiled snapshot of
 * the routing table and forwards it to an upstream endpoint (SPEC §3). Tables arrive through
 * applyTable(), which swaps the snapshot in one assignment; the request path never awaits
 * anything but forwarding I/O.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as NetServer, type AddressInfo, type Socket } from 'node:net';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { BurstLog } from '../lib/burst-log.js';
import type { Metrics } from '../observability/metrics.js';
import type { RoutingTable } from '../table/types.js';
import { StickyIdSource } from '../table/sticky-hash.js';
import { ConnTracker, SHUTDOWN_CLOSE_CODE } from './conn-tracker.js';
import { Drainer } from './drainer.js';
import {
  MAX_HEADER_FIELDS,
  overrideDigest,
  ProxyExchange,
  Routed,
  type ForwardContext,
} from './forward.js';
import {
  HealthChecker,
  healthOptionsFrom,
  type HealthConfigKey,
  type SettledPoolHealth,
} from './health-checker.js';
import { AccessLog } from './access-log.js';
import { MirrorSender } from './mirror.js';
import { reachesListener, type ListenAddress } from './own-listeners.js';
import { collectPoolLoads, DepartedPools, type PoolLoad } from './pool-loads.js';
import { writeRawProxyError } from './proxy-error.js';
import { RetryBudgets } from './retry-budget.js';
import { compileSnapshot, poolMetricChildren, type RoutingSnapshot } from './router.js';
import { SeriesRetirer } from './series-retirer.js';
import { PoolOutcomes, type PoolOutcomeSnapshot } from './pool-outcomes.js';
import { TrafficWindow } from './traffic-window.js';
import { UpgradeRelay } from './upgrade.js';
import { UpstreamPool, type UpstreamPoolOptions } from './upstream-pool.js';

/** The configuration slice the data plane uses. */
export type ProxyServerOptions = Pick<
  Config,
  | 'listen'
  | 'stickyKey'
  | 'trustedProxies'
  | 'upstreamHeader'
  | 'overrideToken'
  | 'upstreamTimeout'
  | 'connectTimeout'
  | 'upstreamKeepAliveTimeout'
  | 'upstreamConnections'
  | 'keepAliveTimeout'
  | 'headersTimeout'
  | 'requestTimeout'
  | 'drainTimeout'
  | 'drainSpread'
> &
  // Optional: without healthCheckInterval no active checks run (see healthOptionsFrom).
  Partial<Pick<Config, HealthConfigKey>> &
  // Optional: mirror limits default as in the config schema; no access log unless named.
  Partial<
    Pick<
      Config,
      'mirrorConcurrency' | 'mirrorMaxBodyBytes' | 'mirrorTimeout' | 'accessLog' | 'accessLogSample'
    >
  >;

/** Injected dependencies of the data plane. */
export interface ProxyServerDeps {
  logger: Logger;
  metrics: Metrics;
  /** The `Via` token (default: random): the workers of one group share one (SPEC §13). */
  viaToken?: string | undefined;
}

type State = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

/**
 * Largest request head accepted (request line + headers), Node's default made explicit: a
 * larger head gets 431 before any routing. Load balancers allow 8-64 KiB; 16 KiB fits cookies.
 */
const MAX_HEADER_BYTES = 16 * 1024;
/**
 * At close, idle keep-alive connections are closed only after this grace: a request already on
 * the wire arrives and is answered (with Connection: close) instead of meeting a closed socket.
 */
const IDLE_CLOSE_GRACE_MS = 250;
/** Then idle connections are swept at this interval until none is left. */
const IDLE_SWEEP_MS = 100;

/**
 * Node checks headersTimeout and requestTimeout only every connectionsCheckingInterval (default
 * 30 s, so a 20 s headers timeout could take 50 s to fire on a slow-loris client): check at a
 * quarter of the headers timeout, at most every second.
 */
function checkingIntervalFor(headersTimeoutMs: number): number {
  if (headersTimeoutMs <= 0) return 1_000;
  return Math.max(50, Math.min(1_000, Math.floor(headersTimeoutMs / 4)));
}

/** The weighted reverse proxy (data plane). */
export class ProxyServer {
  readonly #options: ProxyServerOptions;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #server: Server;
  readonly #ctx: ForwardContext;
  readonly #traffic = new TrafficWindow();
  readonly #outcomes = new PoolOutcomes();
  readonly #endpoints = new Map<string, UpstreamPool>();
  /** Endpoints that left the table and still finish in-flight work. */
  readonly #retiring = new Set<UpstreamPool>();
  readonly #poolOptions: UpstreamPoolOptions;
  readonly #upgrades: UpgradeRelay;
  readonly #drainer: Drainer;
  readonly #health: HealthChecker;
  readonly #retryBudgets: RetryBudgets;
  readonly #series: SeriesRetirer;
  /** Pools that left the table lately: still in drainReport() (SPEC §10). */
  readonly #departed = new DepartedPools();
  /** Long-lived (upgraded) connections by endpoint, for the drainer and shutdown. */
  readonly connections = new ConnTracker();
  #snapshot: RoutingSnapshot | null = null;
  /** This replica's listeners: endpoints reaching them are answered 508 (issue 10). */
  readonly #ownListeners: ListenAddress[] = [];
  #state: State = 'idle';
  #closing: Promise<void> | undefined;

  constructor(options: ProxyServerOptions, deps: ProxyServerDeps) {
    this.#options = options;
    this.#log = deps.logger.child({ component: 'proxy' });
    this.#metrics = deps.metrics;
    const health = healthOptionsFrom(options);
    this.#health = new HealthChecker(health.health, {
      logger: this.#log,
      metrics: deps.metrics,
    });
    this.#retryBudgets = new RetryBudgets(health.retryBudget);
    this.#poolOptions = {
      connections: options.upstreamConnections,
      keepAliveTimeout: options.upstreamKeepAliveTimeout,
      headersTimeout: options.upstreamTimeout,
      connectTimeout: options.connectTimeout,
    };
    // Random, so the Via header names no host; 48 bits keep replicas apart.
    const viaToken = deps.viaToken ?? `switchyard-${randomBytes(6).toString('hex')}`;
    this.#ctx = {
      stickySource: options.stickyKey.source,
      stickyName: options.stickyKey.name,
      stickyIds: new StickyIdSource(),
      trustedProxies: new Set(options.trustedProxies),
      overrideDigest: overrideDigest(options.overrideToken),
      upstreamHeader: options.upstreamHeader,
      metrics: deps.metrics,
      log: this.#log,
      upstreamErrorLog: new BurstLog(this.#log, 'upstream errors'),
      unrouted: poolMetricChildren(deps.metrics, 'none', 'none'),
      accessLog:
        options.accessLog === undefined
          ? null
          : new AccessLog({
              destination: options.accessLog,
              sample: options.accessLogSample ?? 1,
            }),
      mirrors: new MirrorSender(
        {
          concurrency: options.mirrorConcurrency ?? 64,
          maxBodyBytes: options.mirrorMaxBodyBytes ?? 64 * 1024,
          timeoutMs: options.mirrorTimeout ?? 10_000,
        },
        deps.metrics,
      ),
      viaToken,
      via10: `1.0 ${viaToken}`,
      via11: `1.1 ${viaToken}`,
      snapshot: null,
      shuttingDown: false,
      inFlight: 0,
      onIdle: null,
    };
    // Node requires headersTimeout <= requestTimeout (0 = no request timeout).
    const headersTimeout = Math.min(
      options.headersTimeout,
      options.requestTimeout || options.headersTimeout,
    );
    this.#server = createServer({
      requestTimeout: options.requestTimeout,
      headersTimeout,
      connectionsCheckingInterval: checkingIntervalFor(headersTimeout),
      maxHeaderSize: MAX_HEADER_BYTES,
    });
    // Fields past the limit are hidden from rawHeaders but still parsed: route() refuses a request
    // that reaches it (issue 10).
    this.#server.maxHeadersCount = MAX_HEADER_FIELDS;
    // Above the idle timeout of the load balancer in front (60 s on most), so it never reuses a
    // connection the proxy is closing (SPEC §4, docs/draining.md).
    this.#server.keepAliveTimeout = options.keepAliveTimeout;
    this.#server.on('request', this.#onRequest);
    // Answer `Expect: 100-continue` ourselves (RFC 9110 §10.1.1) and forward without Expect:
    // undici refuses the header, and the client must not stall waiting for a 100.
    this.#server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      res.writeContinue();
      this.#onRequest(req, res);
    });
    const unrouted = this.#ctx.unrouted.tally;
    this.#server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
      if (!socket.writable || socket.destroyed) {
        socket.destroy();
        return;
      }
      // headersTimeout / requestTimeout (slow clients) and oversized heads get their own codes.
      const status =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? writeRawProxyError(socket, 'REQUEST_TIMEOUT', 'the request did not arrive in time')
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? writeRawProxyError(
                socket,
                'HEADERS_TOO_LARGE',
                `request head over ${MAX_HEADER_BYTES / 1024} KiB`,
              )
            : writeRawProxyError(socket, 'BAD_REQUEST', 'malformed request');
      unrouted.count(status);
    });
    // CONNECT (a forward-proxy tunnel) is never served: answer 405 like any refusal, instead of
    // Node's default of dropping the connection without a word.
    this.#server.on('connect', (_req: IncomingMessage, socket: Socket) => {
      unrouted.count(
        writeRawProxyError(socket, 'METHOD_NOT_ALLOWED', 'CONNECT: this is a reverse proxy'),
      );
    });
    this.#upgrades = new UpgradeRelay(this.#ctx, this.connections, {
      handshakeTimeout: options.connectTimeout + options.upstreamTimeout,
    });
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.#upgrades.handle(req, socket, head, this.#snapshot);
    });
    this.#drainer = new Drainer(
      { drainTimeout: options.drainTimeout, drainSpread: options.drainSpread },
      { log: this.#log, metrics: deps.metrics, tracker: this.connections },
    );
    this.#series = new SeriesRetirer(
      { graceMs: options.drainTimeout + options.drainSpread },
      {
        metrics: deps.metrics,
        tracker: this.connections,
        endpoints: () => [...this.#endpoints.values(), ...this.#retiring],
      },
    );
  }

  /** Starts listening on `listen`; resolves when bound. */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error('ProxyServer.start() called twice');
    this.#setState('starting');
    await this.#ctx.accessLog?.start();
    this.#server.listen(this.#options.listen.port, this.#options.listen.host);
    await once(this.#server, 'listening');
    this.addOwnListener(this.address());
    this.#log.info({ viaToken: this.#ctx.viaToken }, 'proxy listening');
    this.#setState('running');
  }

  /** The token this replica adds to `Via` (RFC 9110 §7.6.3) and recognises loops by. */
  get viaToken(): string {
    return this.#ctx.viaToken;
  }

  /**
   * Registers another listener of this replica (the admin API's address, once bound): endpoints
   * that reach it are answered 508 LOOP_DETECTED. The proxy's own address is added by start().
   */
  addOwnListener(address: ListenAddress): void {
    this.#ownListeners.push({ host: address.host, port: address.port });
    for (const ep of this.#endpoints.values())
      ep.ownListener = reachesListener(ep.hostname, ep.port, this.#ownListeners);
  }

  /** True when the endpoint URL `url` reaches one of this replica's listeners (admin checks). */
  isOwnListener(url: string): boolean {
    const u = new URL(url);
    const port = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
    return reachesListener(u.hostname, port, this.#ownListeners);
  }

  /** The bound address (after start). */
  address(): { host: string; port: number } {
    const addr = this.#server.address() as AddressInfo | null;
    if (!addr) throw new Error('ProxyServer is not listening');
    return { host: addr.address, port: addr.port };
  }

  #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // hot path: one snapshot read per request
    const snap = this.#snapshot;
    const exchange = new ProxyExchange(this.#ctx, req, res);
    const routed = exchange.route(snap);
    if (routed === Routed.Forward) exchange.forward();
    else if (routed === Routed.HoldBody) exchange.holdBodyThenForward();
  };

  /**
   * Compiles `table` and swaps it in: the next request routes by it. Endpoints that left the
   * table are closed once their in-flight requests finish and destroyed after
   * drainTimeout + drainSpread; weight-0 pools stay open and warm.
   */
  applyTable(table: RoutingTable): void {
    if (this.#snapshot?.table === table) return;
    const used = new Set<string>();
    const snapshot = compileSnapshot(
      table,
      (url) => {
        used.add(url);
        let ep = this.#endpoints.get(url);
        if (ep === undefined) {
          ep = new UpstreamPool(url, this.#poolOptions);
          ep.ownListener = reachesListener(ep.hostname, ep.port, this.#ownListeners);
          this.#endpoints.set(url, ep);
        }
        return ep;
      },
      this.#metrics,
      this.#traffic,
      this.#retryBudgets,
      this.#outcomes,
    );
    const previous = this.#snapshot;
    this.#snapshot = snapshot;
    this.#ctx.snapshot = snapshot;
    this.#health.sync(snapshot);
    this.#retryBudgets.retain(snapshot.pools.keys());

    const graceMs = this.#options.drainTimeout + this.#options.drainSpread;
    const removed: UpstreamPool[] = [];
    for (const [url, ep] of this.#endpoints) {
      if (!used.has(url)) {
        this.#endpoints.delete(url);
        this.#retiring.add(ep);
        removed.push(ep);
        ep.retire(graceMs, () => this.#retiring.delete(ep));
        this.#log.info({ endpoint: url, graceMs }, 'endpoint retired');
      }
    }
    // Endpoints that no longer get new traffic drain; live again (rollback) cancels the drain.
    const live = new Set<UpstreamPool>();
    for (const pool of snapshot.pools.values())
      if (pool.weightBp > 0) for (const ep of pool.endpoints) live.add(ep);
    this.#drainer.update(live, removed);
    for (const [pool, weight] of Object.entries(table.weights))
      this.#metrics.poolWeight.set({ pool }, weight);
    if (previous !== null) {
      for (const pool of previous.pools.keys()) {
        if (!Object.hasOwn(table.pools, pool)) this.#metrics.poolWeight.remove({ pool });
      }
      this.#departed.tableChanged(previous.pools.keys(), snapshot.pools, Date.now());
    }
    this.#metrics.routingRevision.set(table.revision);
    // Series of versions and pools that left the table go once drained (issue 10).
    this.#series.tableApplied(previous, snapshot);
    this.#log.info(
      {
        revision: table.revision,
        previousRevision: previous?.revision ?? null,
        weights: table.weights,
      },
      'table applied',
    );
  }

  /** Revision of the table requests are routed by; 0 before the first table. */
  appliedRevision(): number {
    return this.#snapshot?.revision ?? 0;
  }

  /** Requests routed per pool over the last `windowMs` (at most 300 s). */
  trafficSnapshot(windowMs: number): Record<string, number> {
    return this.#traffic.snapshot(windowMs);
  }

  /** Requests routed per pool since start (a worker's report to its primary, SPEC §13). */
  trafficTotals(): Record<string, number> {
    return this.#traffic.totals();
  }

  /**
   * Cumulative requests, errors and latency per pool since start, for the rollout judge (SPEC
   * §9): copies, so a caller judges differences of two snapshots. Cheap enough once a second.
   */
  poolCounts(): Map<string, PoolOutcomeSnapshot> {
    return this.#outcomes.snapshot();
  }

  /** Healthy and total endpoints of `pool` (active checks and passive ejection). */
  poolHealth(pool: string): { healthy: number; total: number } {
    return this.#health.poolHealth(pool);
  }

  /** Health of `pool` for a guard, waiting (bounded) for first checks: HealthChecker's. */
  settledPoolHealth(pool: string, signal?: AbortSignal): Promise<SettledPoolHealth> {
    return this.#health.settledPoolHealth(pool, signal);
  }

  /** Each endpoint of `pool` with its health (admin API: GET /v1/state). */
  endpointHealth(pool: string): { url: string; healthy: boolean }[] {
    return this.#health.endpointHealth(pool);
  }

  /** From now on every response carries `Connection: close`, so clients leave politely. */
  beginShutdown(): void {
    this.#ctx.shuttingDown = true;
  }

  /** Client requests being forwarded right now. */
  inFlight(): number {
    return this.#ctx.inFlight;
  }

  /**
   * Per pool: its weight in the applied table (0 once it left) and the requests and long-lived
   * connections still open to it (SPEC §10). Walks the drain lists: O(open connections), for
   * the heartbeat and the admin API, never the request path.
   */
  drainReport(): Record<string, PoolLoad> {
    return collectPoolLoads(
      this.#snapshot?.table.weights ?? {},
      this.#departed.names(Date.now()),
      [...this.#endpoints.values(), ...this.#retiring],
      this.connections,
    );
  }

  /** Endpoints currently draining (tests, admin). */
  drainingEndpoints(): number {
    return this.#drainer.draining;
  }

  /**
   * Stops accepting, ends long-lived connections (WebSockets 1001, tunnels, SSE streams), lets
   * in-flight requests finish and closes keep-alive connections only when idle, all within
   * drainTimeout; then destroys what is left and closes the upstream pools. Idempotent; every
   * caller gets the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#setState('closing');
    this.#ctx.shuttingDown = true;
    this.#ctx.mirrors.close();
    this.#health.close();
    this.#drainer.close();
    this.#series.close();
    const startedAt = performance.now();
    const deadlineMs = this.#options.drainTimeout;
    const failures: unknown[] = [];
    // Stop accepting, but not with http.Server#close(): on Node >= 19 it also destroys idle
    // keep-alive connections at once, racing clients whose next request is already on the wire
    // (nodejs/node#60617). Resolves once every client connection, upgraded ones too, is gone.
    const allClosed = this.#stopAccepting();
    const longLived =
      this.connections.closeAll(SHUTDOWN_CLOSE_CODE) + this.#closeStreams(SHUTDOWN_CLOSE_CODE);
    // Busy connections close after their response, which carries Connection: close; idle ones
    // are closed after a short grace, then swept until none is left.
    let sweep: NodeJS.Timeout | undefined;
    const sweepIdle = (): void => {
      this.#server.closeIdleConnections();
      sweep = setTimeout(sweepIdle, IDLE_SWEEP_MS);
      sweep.unref();
    };
    sweep = setTimeout(sweepIdle, Math.min(IDLE_CLOSE_GRACE_MS, deadlineMs));
    sweep.unref();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), deadlineMs);
      timer.unref();
    });
    const outcome = await Promise.race([allClosed.then(() => 'closed' as const), deadline]);
    clearTimeout(sweep);
    clearTimeout(timer);
    if (outcome === 'deadline') {
      this.#log.warn(
        { inFlight: this.#ctx.inFlight, deadlineMs },
        'close deadline reached, destroying connections',
      );
      this.#server.closeAllConnections();
      this.connections.destroyAll();
      await Promise.race([allClosed, delay(1_000, undefined, { ref: false })]);
    }
    // Now http.Server#close(): it stops the timeout checks that stayed on during the drain.
    this.#server.close();
    this.#upgrades.close();
    const pools = [...this.#endpoints.values(), ...this.#retiring];
    this.#endpoints.clear();
    this.#retiring.clear();
    const results = await Promise.allSettled(pools.map((p) => p.close(1_000)));
    for (const r of results) if (r.status === 'rejected') failures.push(r.reason);
    // Last: every request that will be logged has been (flushes the buffered lines).
    try {
      await this.#ctx.accessLog?.close();
    } catch (err) {
      failures.push(err);
    }
    this.#log.info(
      { durationMs: Math.round(performance.now() - startedAt), longLived, outcome },
      'proxy closed',
    );
    this.#setState('closed');
    if (failures.length > 0) throw new AggregateError(failures, 'ProxyServer.close() failed');
  }

  /** Stops listening without touching open connections; resolves when all have closed. */
  #stopAccepting(): Promise<void> {
    if (!this.#server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      NetServer.prototype.close.call(this.#server, () => resolve());
    });
  }

  /** Asks every HTTP exchange to close with `code`; returns how many did. */
  #closeStreams(code: number): number {
    let n = 0;
    for (const ep of [...this.#endpoints.values(), ...this.#retiring])
      for (const c of ep.conns.toArray()) if (c.close(code)) n++;
    return n;
  }

  /** Aborts at once: every client connection, upgraded connection and upstream pool. */
  destroy(): void {
    this.#ctx.shuttingDown = true;
    this.#health.close();
    this.#drainer.close();
    this.#series.close();
    this.#server.close();
    this.#server.closeAllConnections();
    this.connections.closeAll(SHUTDOWN_CLOSE_CODE);
    this.connections.destroyAll();
    this.#upgrades.close();
    for (const ep of [...this.#endpoints.values(), ...this.#retiring]) ep.destroy();
    this.#endpoints.clear();
    this.#retiring.clear();
    this.#ctx.mirrors.close();
    this.#ctx.accessLog?.close().catch(() => undefined);
    if (this.#ctx.onIdle !== null) this.#ctx.onIdle();
  }

  #setState(next: State): void {
    this.#log.debug({ from: this.#state, to: next }, 'proxy state changed');
    this.#state = next;
  }
}
