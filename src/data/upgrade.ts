/**
 * Upgrade requests (SPEC §3). Only WebSocket is relayed: message by message with `ws` on both
 * sides, so the proxy can end a drained connection with a clean close frame (1012, issue 5), and
 * only after the upstream completed the handshake (101 with a valid Sec-WebSocket-Accept). An
 * upstream that answers anything else has that answer relayed, and the connection is closed.
 *
 * Any other `Upgrade` (h2c, an unknown token) is forwarded as an ordinary request with the Upgrade
 * header removed, and the connection is closed after the answer (issue 10, item 1). Not tunnelled
 * after a 101: a raw tunnel carries whatever the client writes next past every rule of the proxy
 * (one Host, X-Forwarded-* only from trusted proxies, override headers stripped), and for h2c the
 * upstream would then take HTTP/2 requests straight from the client ("h2c smuggling"). Not
 * refused either: RFC 9110 §7.8 lets a server ignore Upgrade, `curl --http2` offers h2c on every
 * plain-http request and expects an HTTP/1.1 answer, and HAProxy and nginx behave this way too
 * (they pass Upgrade on only when configured to).
 *
 * Every relayed WebSocket is registered in the ConnTracker under its endpoint.
 */
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { ERROR_CODES, type ErrorCode } from '../errors.js';
import { trackedConnection, type ConnTracker } from './conn-tracker.js';
import { classifyUpstreamError, ProxyExchange, Routed, type ForwardContext } from './forward.js';
import { stripHopByHop } from './hop-by-hop.js';
import { writeProxyError } from './proxy-error.js';
import type {
  CompiledPool,
  PoolMetricChildren,
  RoutingSnapshot,
  UpstreamErrorReason,
} from './router.js';
import type { UpstreamPool } from './upstream-pool.js';

/** Options of the upgrade relay. */
export interface UpgradeRelayOptions {
  /** Time allowed for the upstream handshake (connect, TLS and the answer's head), in ms. */
  handshakeTimeout: number;
}

/** Buffered bytes on one side above which the other side is paused. */
const HIGH_WATER_BYTES = 1024 * 1024;

/**
 * Request headers the `ws` client sets itself, or that must not be forwarded on a WebSocket.
 * `host` is forwarded (the upstream sees the client's Host, as on every request); TLS SNI and
 * certificate checks still use the endpoint's own host name (ws's tlsConnect).
 */
const WS_OWN_HEADERS = new Set([
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-extensions',
  'sec-websocket-protocol',
  'sec-websocket-accept',
  'content-length',
]);

/** RFC 6455 §4.1: the key is 16 random bytes in base64. */
const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;

/** Close codes that may not be sent in a close frame (RFC 6455 §7.4.1). */
function sendableCode(code: number): number | undefined {
  return code === 1000 ||
    (code >= 1001 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
    ? code
    : undefined;
}

interface Pending {
  protocol: string | false;
  headers: string[];
}

/** Handles the server's `upgrade` events. */
export class UpgradeRelay {
  readonly #ctx: ForwardContext;
  readonly #tracker: ConnTracker;
  readonly #options: UpgradeRelayOptions;
  readonly #wss: WebSocketServer;
  /** Handshake data for the client side, passed to ws's callbacks by request. */
  readonly #pending = new WeakMap<IncomingMessage, Pending>();
  readonly #handshakes = new Set<() => void>();

  constructor(ctx: ForwardContext, tracker: ConnTracker, options: UpgradeRelayOptions) {
    this.#ctx = ctx;
    this.#tracker = tracker;
    this.#options = options;
    this.#wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      // The subprotocol is the one the upstream chose; the client sees it unchanged.
      handleProtocols: (_offered, req) => this.#pending.get(req)?.protocol ?? false,
    });
    this.#wss.on('headers', (headers: string[], req: IncomingMessage) => {
      const p = this.#pending.get(req);
      if (p)
        for (let i = 0; i < p.headers.length; i += 2)
          headers.push(`${p.headers[i]}: ${p.headers[i + 1]}`);
    });
  }

  /** Routes one upgrade request: relays a WebSocket, forwards anything else as plain HTTP. */
  handle(req: IncomingMessage, socket: Socket, head: Buffer, snap: RoutingSnapshot | null): void {
    socket.on('error', () => socket.destroy());
    const res = responseOn(req, socket);
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      this.#forwardWithoutUpgrade(req, res, snap);
      return;
    }
    const problem = webSocketProblem(req);
    if (problem !== undefined) {
      const status = sendUpgradeError(res, 'BAD_REQUEST', problem, this.#ctx.unrouted);
      this.#logRefused(req, status);
      return;
    }
    // Same routing and request hygiene as every request; a refusal is answered by the exchange.
    const exchange = new ProxyExchange(this.#ctx, req, res);
    if (exchange.route(snap) === Routed.Failed) {
      socket.resume(); // read what else the client sent, so closing sends no reset
      return;
    }
    res.detachSocket(socket);
    const pool = exchange.pool as CompiledPool;
    const endpoint = exchange.endpoint as UpstreamPool;
    pool.traffic.record(Date.now());
    const extra: string[] = [];
    exchange.decorate(extra);
    // During shutdown decorate() adds `connection: close`, which must not reach a 101 answer.
    for (let i = extra.length - 2; i >= 0; i -= 2)
      if (extra[i] === 'connection') extra.splice(i, 2);
    this.#relayWebSocket(req, socket, head, exchange, pool, endpoint, extra);
  }

  /**
   * A non-WebSocket Upgrade: forwarded like any request (route() drops Upgrade and what
   * Connection names), answered on the handed-over socket, which then closes. Node stops parsing
   * at the head of an upgrade request, so a body could not be framed: such requests are refused.
   */
  #forwardWithoutUpgrade(
    req: IncomingMessage,
    res: ServerResponse,
    snap: RoutingSnapshot | null,
  ): void {
    // Bytes after the head (a pipelined request) are never read as HTTP: the connection closes.
    res.socket?.resume();
    if (hasBody(req)) {
      const status = sendUpgradeError(
        res,
        'BAD_REQUEST',
        'only WebSocket upgrades are supported; this Upgrade request has a body',
        this.#ctx.unrouted,
      );
      this.#logRefused(req, status);
      return;
    }
    const exchange = new ProxyExchange(this.#ctx, req, res);
    if (exchange.route(snap) !== Routed.Failed) exchange.forward();
  }

  #relayWebSocket(
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
    exchange: ProxyExchange,
    pool: CompiledPool,
    endpoint: UpstreamPool,
    extra: string[],
  ): void {
    const headers: Record<string, string> = {};
    const h = exchange.headers;
    for (let i = 0; i < h.length; i += 2) {
      const name = (h[i] as string).toLowerCase();
      if (WS_OWN_HEADERS.has(name)) continue;
      headers[name] =
        headers[name] === undefined
          ? (h[i + 1] as string)
          : `${headers[name]}, ${h[i + 1] as string}`;
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    // wss:// for an https endpoint: ws connects with TLS, SNI and certificate check against the
    // endpoint's host name, trusting the same CAs as undici (Node's, plus NODE_EXTRA_CA_CERTS).
    const upstream = new WebSocket(webSocketUrl(endpoint.origin, exchange.path), offered, {
      headers,
      perMessageDeflate: false,
      followRedirects: false,
    });
    // Errors are handled below or by the relay; this keeps a late one from crashing the process.
    upstream.on('error', noop);
    // One access log line per upgrade request, whichever way it ends.
    let logged = false;
    const log = (status: number): void => {
      if (logged) return;
      logged = true;
      exchange.logUpgrade(status, socket.bytesWritten);
    };
    let settled = false;
    // Our own timer rather than ws's handshakeTimeout: a timeout is then told by this flag, not
    // by the text of ws's error message.
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      upstream.terminate();
    }, this.#options.handshakeTimeout);
    timer.unref();
    const cancel = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      upstream.terminate();
      // The client left (or the proxy is closing) before the upstream answered.
      log(499);
    };
    this.#handshakes.add(cancel);
    socket.once('close', cancel);
    const endHandshake = (): void => {
      settled = true;
      clearTimeout(timer);
      this.#handshakes.delete(cancel);
      socket.off('close', cancel);
    };

    upstream.once('unexpected-response', (_r, upRes: IncomingMessage) => {
      endHandshake();
      // The upstream refused the upgrade: relay its answer, then close (never tunnel).
      const status = upRes.statusCode ?? 502;
      pool.metrics.tally.count(status);
      const res = responseOn(req, socket);
      socket.resume();
      res.once('close', () => {
        upstream.terminate();
        log(status);
      });
      upRes.once('error', () => socket.destroy());
      res.writeHead(status, upRes.statusMessage, [...stripHopByHop(upRes.rawHeaders), ...extra]);
      upRes.pipe(res);
    });
    upstream.once('error', (err: Error & { code?: string }) => {
      if (settled) return;
      endHandshake();
      const reason: UpstreamErrorReason = timedOut ? 'timeout' : classifyUpstreamError(err);
      pool.metrics.errors[reason].inc();
      this.#ctx.upstreamErrorLog.record(
        { err, pool: pool.name, endpoint: endpoint.url, reason, websocket: true },
        Date.now(),
      );
      const res = responseOn(req, socket);
      const status =
        reason === 'timeout'
          ? sendUpgradeError(
              res,
              'UPSTREAM_TIMEOUT',
              'upstream did not answer in time',
              pool.metrics,
            )
          : sendUpgradeError(
              res,
              'UPSTREAM_ERROR',
              'upstream websocket handshake failed',
              pool.metrics,
            );
      log(status);
    });
    upstream.once('open', () => {
      endHandshake();
      if (socket.destroyed) {
        upstream.terminate();
        log(499);
        return;
      }
      this.#pending.set(req, {
        protocol: upstream.protocol === '' ? false : upstream.protocol,
        headers: extra,
      });
      // ws gives up on a socket that closed meanwhile without calling back.
      const gone = (): void => {
        upstream.terminate();
        log(499);
      };
      socket.once('close', gone);
      this.#wss.handleUpgrade(req, socket, head, (client) => {
        socket.off('close', gone);
        this.#pending.delete(req);
        this.#pipeWebSockets(client, upstream, pool, endpoint, () => log(101));
      });
    });
  }

  #pipeWebSockets(
    client: WebSocket,
    upstream: WebSocket,
    pool: CompiledPool,
    endpoint: UpstreamPool,
    ended: () => void,
  ): void {
    pool.metrics.tally.count(101);
    const gauge = this.#ctx.metrics.upgradedConnections.labels(pool.name);
    gauge.inc();
    const untrack = this.#tracker.add(
      endpoint.url,
      trackedConnection(
        pool.name,
        (code: number) => {
          const c = sendableCode(code);
          client.close(c);
          upstream.close(c);
        },
        () => {
          client.terminate();
          upstream.terminate();
        },
      ),
    );
    let done = false;
    const end = (): void => {
      if (done) return;
      done = true;
      untrack();
      gauge.dec();
      ended();
    };
    relay(client, upstream);
    relay(upstream, client);
    client.on('close', (code, reason) => {
      end();
      if (upstream.readyState === WebSocket.OPEN) upstream.close(sendableCode(code), reason);
      else upstream.terminate();
    });
    upstream.on('close', (code, reason) => {
      end();
      if (client.readyState === WebSocket.OPEN) client.close(sendableCode(code), reason);
      else client.terminate();
    });
    client.on('error', () => {
      end();
      client.terminate();
      upstream.terminate();
    });
    upstream.on('error', () => {
      end();
      upstream.terminate();
      client.terminate();
    });
  }

  /** The access log line of an upgrade request refused before it was routed. */
  #logRefused(req: IncomingMessage, status: number): void {
    const log = this.#ctx.accessLog;
    if (log === null || !log.sampled()) return;
    const path = req.url ?? '';
    const q = path.indexOf('?');
    log.write({
      method: req.method ?? '',
      path: q === -1 ? path : path.slice(0, q),
      status,
      pool: null,
      version: null,
      endpoint: null,
      durationMs: 0,
      bytes: 0,
      sticky: null,
      rule: null,
      retry: false,
    });
  }

  /** Cancels upstream handshakes still in progress. Open relays are closed through the tracker. */
  close(): void {
    for (const cancel of [...this.#handshakes]) cancel();
    this.#handshakes.clear();
    this.#wss.close();
  }
}

function relay(from: WebSocket, to: WebSocket): void {
  const sent = (): void => {
    if (from.isPaused && to.bufferedAmount < HIGH_WATER_BYTES) from.resume();
  };
  from.on('message', (data: RawData, isBinary: boolean) => {
    if (to.readyState !== WebSocket.OPEN) return;
    to.send(data, { binary: isBinary }, sent);
    if (to.bufferedAmount >= HIGH_WATER_BYTES && !from.isPaused) from.pause();
  });
}

function noop(): void {}

/** Why a WebSocket upgrade request cannot be relayed, or undefined when it can (RFC 6455 §4.2.1). */
function webSocketProblem(req: IncomingMessage): string | undefined {
  if (req.method !== 'GET') return 'a WebSocket handshake must use GET';
  const url = req.url ?? '';
  if (url === '*') return 'a WebSocket handshake needs a path';
  if (!WEBSOCKET_KEY.test(req.headers['sec-websocket-key'] ?? ''))
    return 'Sec-WebSocket-Key is missing or invalid';
  const version = req.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') return 'Sec-WebSocket-Version must be 13';
  if (hasBody(req)) return 'a WebSocket handshake has no body';
  return undefined;
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** `ws://` or `wss://` URL of `path` on the endpoint with origin `http(s)://host[:port]`. */
function webSocketUrl(origin: string, path: string): string {
  return origin.startsWith('https:')
    ? `wss:${origin.slice('https:'.length)}${path}`
    : `ws:${origin.slice('http:'.length)}${path}`;
}

/**
 * A response on a socket Node handed over with an `upgrade` event, for answers that are not a
 * 101: it frames the answer like any response, and the connection closes once it is sent.
 */
function responseOn(req: IncomingMessage, socket: Socket): ServerResponse {
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.once('finish', () => socket.end(() => socket.destroy()));
  return res;
}

/**
 * The one place this file answers an error: the status comes from the catalogue, the body is
 * the proxy's JSON error, the answer is counted under its real status (returned), and the
 * connection closes.
 */
function sendUpgradeError(
  res: ServerResponse,
  code: ErrorCode,
  message: string,
  metrics: PoolMetricChildren,
): number {
  const socket = res.socket;
  if (res.headersSent || socket === null || !socket.writable) {
    metrics.tally.count(ERROR_CODES[code]);
    socket?.destroy();
    return ERROR_CODES[code];
  }
  socket.resume();
  const status = writeProxyError(res, code, message);
  metrics.tally.count(status);
  return status;
}
