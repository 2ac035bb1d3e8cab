/**
 * The data plane: an HTTP server that routes every request by the current compiled snapshot of
 * the routing table and forwards it to an upstream endpoint (SPEC §3). Tables arrive through
 * applyTable(), which swaps the snapshot in one assignment; the request path never awaits
 * anything but forwarding I/O.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { RoutingTable } from '../table/types.js';
import { ConnTracker } from './conn-tracker.js';
import { overrideDigest, ProxyExchange, Routed, type ForwardContext } from './forward.js';
import { HealthChecker, healthOptionsFrom, type HealthConfigKey } from './health-checker.js';
import { RetryBudgets } from './retry-budget.js';
import { compileSnapshot, poolMetricChildren, type RoutingSnapshot } from './router.js';
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
  Partial<Pick<Config, HealthConfigKey>>;

/** Injected dependencies of the data plane. */
export interface ProxyServerDeps {
  logger: Logger;
  metrics: Metrics;
}

type State = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

/** The weighted reverse proxy (data plane). */
export class ProxyServer {
  readonly #options: ProxyServerOptions;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #server: Server;
  readonly #ctx: ForwardContext;
  readonly #traffic = new TrafficWindow();
  readonly #endpoints = new Map<string, UpstreamPool>();
  /** Endpoints that left the table and still finish in-flight work. */
  readonly #retiring = new Set<UpstreamPool>();
  readonly #poolOptions: UpstreamPoolOptions;
  readonly #upgrades: UpgradeRelay;
  readonly #health: HealthChecker;
  readonly #retryBudgets: RetryBudgets;
  /** Long-lived (upgraded) connections by endpoint, for the drainer and shutdown. */
  readonly connections = new ConnTracker();
  #snapshot: RoutingSnapshot | null = null;
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
    this.#ctx = {
      stickySource: options.stickyKey.source,
      stickyName: options.stickyKey.name,
      trustedProxies: new Set(options.trustedProxies),
      overrideDigest: overrideDigest(options.overrideToken),
      upstreamHeader: options.upstreamHeader,
      metrics: deps.metrics,
      log: this.#log,
      unrouted: poolMetricChildren(deps.metrics, 'none', 'none'),
      shuttingDown: false,
      inFlight: 0,
      onIdle: null,
    };
    this.#server = createServer({
      requestTimeout: options.requestTimeout,
      headersTimeout: Math.min(
        options.headersTimeout,
        options.requestTimeout || options.headersTimeout,
      ),
      // Header and request timeouts are only checked at this interval (Node default 30 s).
      connectionsCheckingInterval: 2_000,
    });
    this.#server.keepAliveTimeout = options.keepAliveTimeout;
    this.#server.on('request', this.#onRequest);
    // Answer `Expect: 100-continue` ourselves (RFC 9110 §10.1.1) and forward without Expect:
    // undici refuses the header, and the client must not stall waiting for a 100.
    this.#server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      res.writeContinue();
      this.#onRequest(req, res);
    });
    this.#server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
      if (socket.writable && !socket.destroyed) {
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      } else {
        socket.destroy();
      }
    });
    this.#upgrades = new UpgradeRelay(this.#ctx, this.connections, {
      handshakeTimeout: options.connectTimeout + options.upstreamTimeout,
    });
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.#upgrades.handle(req, socket, head, this.#snapshot);
    });
  }

  /** Starts listening on `listen`; resolves when bound. */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error('ProxyServer.start() called twice');
    this.#setState('starting');
    this.#server.listen(this.#options.listen.port, this.#options.listen.host);
    await once(this.#server, 'listening');
    this.#setState('running');
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
          this.#endpoints.set(url, ep);
        }
        return ep;
      },
      this.#metrics,
      this.#traffic,
      this.#retryBudgets,
    );
    const previous = this.#snapshot;
    this.#snapshot = snapshot;
    this.#health.sync(snapshot);
    this.#retryBudgets.retain(snapshot.pools.keys());

    const graceMs = this.#options.drainTimeout + this.#options.drainSpread;
    for (const [url, ep] of this.#endpoints) {
      if (!used.has(url)) {
        this.#endpoints.delete(url);
        this.#retiring.add(ep);
        ep.retire(graceMs, () => this.#retiring.delete(ep));
        this.#log.info({ endpoint: url, graceMs }, 'endpoint retired');
      }
    }
    for (const [pool, weight] of Object.entries(table.weights))
      this.#metrics.poolWeight.set({ pool }, weight);
    if (previous !== null) {
      for (const pool of previous.pools.keys()) {
        if (!(pool in table.pools)) this.#metrics.poolWeight.remove({ pool });
      }
    }
    this.#metrics.routingRevision.set(table.revision);
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

  /** Healthy and total endpoints of `pool` (active checks and passive ejection). */
  poolHealth(pool: string): { healthy: number; total: number } {
    return this.#health.poolHealth(pool);
  }

  /** From now on every response carries `Connection: close`, so clients leave politely. */
  beginShutdown(): void {
    this.#ctx.shuttingDown = true;
  }

  /**
   * Stops accepting, lets in-flight requests finish (at most drainTimeout), closes upgraded
   * connections (1001) and the upstream pools. Idempotent; every caller gets the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#setState('closing');
    this.#ctx.shuttingDown = true;
    this.#health.close();
    const deadlineMs = this.#options.drainTimeout;
    const failures: unknown[] = [];
    const serverClosed = new Promise<void>((resolve) => {
      if (!this.#server.listening) {
        resolve();
        return;
      }
      this.#server.close(() => resolve());
    });
    this.connections.closeAll(1001);
    // Idle keep-alive sockets are closed by server.close() (Node >= 19); wait for busy ones.
    const idle = new Promise<void>((resolve) => {
      if (this.#ctx.inFlight === 0) resolve();
      else this.#ctx.onIdle = resolve;
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), deadlineMs);
      timer.unref();
    });
    if ((await Promise.race([idle, deadline])) === 'deadline') {
      this.#log.warn(
        { inFlight: this.#ctx.inFlight, deadlineMs },
        'close deadline reached, destroying connections',
      );
    }
    this.#server.closeIdleConnections();
    this.#server.closeAllConnections();
    await Promise.race([serverClosed, deadline]);
    clearTimeout(timer);
    this.#upgrades.close();
    const pools = [...this.#endpoints.values(), ...this.#retiring];
    this.#endpoints.clear();
    this.#retiring.clear();
    const results = await Promise.allSettled(pools.map((p) => p.close(1_000)));
    for (const r of results) if (r.status === 'rejected') failures.push(r.reason);
    this.#setState('closed');
    if (failures.length > 0) throw new AggregateError(failures, 'ProxyServer.close() failed');
  }

  /** Aborts at once: every client connection, upgraded connection and upstream pool. */
  destroy(): void {
    this.#ctx.shuttingDown = true;
    this.#health.close();
    if (this.#server.listening) this.#server.close();
    this.#server.closeAllConnections();
    this.connections.closeAll(1001);
    this.#upgrades.close();
    for (const ep of [...this.#endpoints.values(), ...this.#retiring]) ep.destroy();
    this.#endpoints.clear();
    this.#retiring.clear();
    if (this.#ctx.onIdle !== null) this.#ctx.onIdle();
  }

  #setState(next: State): void {
    this.#log.debug({ from: this.#state, to: next }, 'proxy state changed');
    this.#state = next;
  }
}
