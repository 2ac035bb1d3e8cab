/**
 * The admin API server (SPEC §5) on its own listener: node:http, a small router, bearer-token
 * auth, one error handler. Changes go through the control store; reads come from the store and
 * the proxy's ProxyView.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Config } from '../config/schema.js';
import { fail, isSwitchyardError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { isLoopbackHost } from '../lib/loopback.js';
import type { AdminDeps } from './admin-deps.js';
import { createTokenCheck } from './auth.js';
import { EventHub, type EventHubOptions } from './event-hub.js';
import { requireJsonContentType } from './body.js';
import { buildOpenApiDocument } from './openapi.js';
import type { OwnListener } from './own-listeners.js';
import { RequestGuard } from './request-guard.js';
import { Router, type Route, type RouteReply } from './router.js';
import { auditRoutes } from './routes/audit.js';
import { changeRoutes } from './routes/changes.js';
import { drainRoutes } from './routes/drain.js';
import { eventRoutes } from './routes/events.js';
import { opsRoutes } from './routes/ops.js';
import { rolloutRoutes } from './routes/rollouts.js';
import { stateRoutes } from './routes/state.js';
import { trafficRoutes } from './routes/traffic.js';
import { uiRoutes } from './routes/ui.js';

/** The configuration slice the admin server reads (`namespace`: shown by GET /v1/state with Redis). */
export type AdminServerOptions = Pick<
  Config,
  'adminListen' | 'adminToken' | 'metricsAuth' | 'buildSha'
> &
  Partial<Pick<Config, 'adminAllowedHosts' | 'namespace'>> & {
    /** Event-stream tunables (tests lower the buffer cap); defaults in event-hub.ts. */
    readonly events?: EventHubOptions;
  };

type State = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

/** How long close() lets in-flight admin calls finish before cutting their connections. */
const CLOSE_GRACE_MS = 2_000;

/** The admin HTTP API. */
export class AdminServer {
  readonly #options: AdminServerOptions;
  readonly #log: Logger;
  readonly #router: Router;
  readonly #checkToken: ((authorization: string | undefined) => boolean) | null;
  readonly #guard: RequestGuard;
  readonly #events: EventHub;
  readonly #closing = new AbortController();
  #state: State = 'idle';
  #server: Server | null = null;
  #closed: Promise<void> | null = null;

  constructor(options: AdminServerOptions, deps: AdminDeps) {
    this.#options = options;
    this.#log = deps.logger;
    this.#checkToken =
      options.adminToken === undefined ? null : createTokenCheck(options.adminToken);
    const allowedHosts = options.adminAllowedHosts ?? [];
    this.#guard = new RequestGuard({
      listenHost: options.adminListen.host,
      allowedHosts,
      checkHost: this.#checkToken === null || allowedHosts.length > 0,
    });
    this.#events = new EventHub(deps, options.events);
    let openApi: Record<string, unknown> | null = null;
    const routes: Route[] = [
      ...stateRoutes(deps, options.buildSha, options.namespace),
      ...changeRoutes(deps, this.#log, () =>
        listening([
          ['proxy', () => deps.proxy.address()],
          ['admin', () => this.address()],
        ]),
      ),
      ...auditRoutes(deps),
      ...trafficRoutes(deps),
      ...drainRoutes(deps),
      ...rolloutRoutes(deps),
      ...eventRoutes(this.#events),
      ...uiRoutes(),
      ...opsRoutes(
        deps,
        options.buildSha,
        () =>
          (openApi ??= buildOpenApiDocument(
            this.#router.routes(),
            options.buildSha,
            this.#checkToken !== null,
          )),
      ),
    ];
    this.#router = new Router(routes);
  }

  /** Every route this server answers (the OpenAPI document is built from the same list). */
  routes(): Route[] {
    return this.#router.routes();
  }

  /**
   * Listens on `adminListen`. Throws (before binding) when the address is not loopback and no
   * admin token is configured: main.ts turns that into exit code 2.
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error(`AdminServer.start() called while ${this.#state}`);
    const { host, port } = this.#options.adminListen;
    if (this.#checkToken === null && !isLoopbackHost(host)) {
      throw new Error(
        `adminListen: refusing to expose the admin API on ${host}:${port} without a token; set SWITCHYARD_ADMIN_TOKEN or bind to 127.0.0.1`,
      );
    }
    this.#setState('starting');
    const server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
      this.#handle(req, res);
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        server.off('listening', onListening);
        reject(err);
      };
      const onListening = (): void => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(port, host);
    }).catch((err: unknown) => {
      this.#server = null;
      this.#setState('closed');
      throw err;
    });
    server.on('error', (err) => this.#log.error({ err }, 'admin server error'));
    this.#events.start();
    this.#setState('running');
    this.#log.info(this.address(), 'admin api listening');
  }

  /** The bound address (port is the real one when configured as 0). */
  address(): { host: string; port: number } {
    const addr = this.#server?.address();
    if (addr === null || addr === undefined || typeof addr === 'string') {
      throw new Error('AdminServer.address() called before start()');
    }
    return { host: addr.address, port: addr.port };
  }

  /**
   * Stops accepting connections, lets in-flight calls finish (waits for replicas are cut short)
   * for up to 2 s, then closes what is left. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= this.#doClose();
    return this.#closed;
  }

  async #doClose(): Promise<void> {
    const server = this.#server;
    if (server === null) {
      this.#setState('closed');
      return;
    }
    this.#setState('closing');
    this.#closing.abort();
    // Event streams never end by themselves: end them, or close() would wait for the grace.
    this.#events.close();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const timer = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
    timer.unref();
    await closed;
    clearTimeout(timer);
    this.#setState('closed');
  }

  #setState(state: State): void {
    this.#log.debug({ from: this.#state, to: state }, 'admin server state');
    this.#state = state;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    this.#dispatch(req, res).catch((err: unknown) => {
      this.#log.error({ err }, 'admin response failed');
      res.destroy();
    });
  }

  async #dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      // Browsers first: a page of another site learns nothing, not even which paths exist.
      this.#guard.refuseCrossSite(req);
      const url = new URL(req.url ?? '/', 'http://admin.invalid');
      const match = this.#router.match(req.method ?? 'GET', url.pathname);
      if (match.route === null) {
        res.setHeader('allow', match.allowed.join(', '));
        throw fail(
          'METHOD_NOT_ALLOWED',
          `${req.method ?? ''} not allowed on ${url.pathname}; use ${match.allowed.join(', ')}`,
        );
      }
      const { route, params } = match;
      // The probes (/healthz, /readyz) answer whatever the Host: kubelets send the pod IP, load
      // balancers whatever they are configured with, and they reveal nothing.
      if (route.auth !== 'none') this.#guard.checkHost(req);
      if (!this.#authorized(route, req)) {
        res.setHeader('www-authenticate', 'Bearer');
        throw fail('UNAUTHORIZED', 'authorization: missing or wrong bearer token');
      }
      if (route.method !== 'GET') requireJsonContentType(req);
      const reply = await route.handle({
        req,
        res,
        params,
        query: url.searchParams,
        source: req.headers['x-switchyard-source'] === 'cli' ? 'cli' : 'admin',
        signal: this.#closing.signal,
      });
      send(res, reply);
    } catch (err) {
      this.#sendError(req, res, err);
    }
  }

  #authorized(route: Route, req: IncomingMessage): boolean {
    if (this.#checkToken === null || route.auth === 'none') return true;
    if (route.auth === 'metrics' && !this.#options.metricsAuth) return true;
    return this.#checkToken(req.headers.authorization);
  }

  #sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (isSwitchyardError(err)) {
      if (err.code === 'BODY_TOO_LARGE') {
        // The rest of the body was not read: close the connection rather than drain it.
        res.setHeader('connection', 'close');
        res.once('finish', () => req.socket.destroySoon());
      }
      send(res, { status: err.statusCode, json: err.toJSON() });
      return;
    }
    this.#log.error(
      { err, method: req.method, path: req.url?.slice(0, 200) },
      'admin request failed',
    );
    send(res, {
      status: 500,
      json: { error: { code: 'INTERNAL', message: 'internal error (see the server log)' } },
    });
  }
}

/**
 * The listeners that are bound now. A listener already closed (the proxy stops before the admin
 * API during shutdown) throws from address(): nothing can loop to it, so it is left out.
 */
function listening(
  listeners: ReadonlyArray<readonly [string, () => { host: string; port: number }]>,
): OwnListener[] {
  const out: OwnListener[] = [];
  for (const [name, address] of listeners) {
    let bound;
    try {
      bound = address();
    } catch {
      continue;
    }
    out.push({ name, ...bound });
  }
  return out;
}

function send(res: ServerResponse, reply: RouteReply): void {
  if ('streamed' in reply) return;
  if ('body' in reply) {
    res.writeHead(reply.status, { ...reply.headers, 'content-length': reply.body.length });
    res.end(reply.body);
    return;
  }
  if ('json' in reply) {
    const body = JSON.stringify(reply.json);
    res.writeHead(reply.status, {
      ...reply.headers,
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(body);
  } else {
    res.writeHead(reply.status, {
      'content-type': reply.contentType,
      'content-length': Buffer.byteLength(reply.text),
      'cache-control': 'no-store',
    });
    res.end(reply.text);
  }
}
