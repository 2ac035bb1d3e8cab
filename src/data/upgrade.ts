/**
 * Upgrade requests (SPEC §3): WebSocket is relayed message by message with `ws` on both sides,
 * so the proxy can end a drained connection with a clean close frame (1012, issue 5); any other
 * protocol is tunnelled as raw TCP. Every upgraded connection is registered in the ConnTracker
 * under its endpoint.
 */
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { trackedConnection, type ConnTracker } from './conn-tracker.js';
import { ProxyExchange, Routed, type ForwardContext } from './forward.js';
import type { CompiledPool, RoutingSnapshot } from './router.js';
import type { UpstreamPool } from './upstream-pool.js';

/** Options of the upgrade relay. */
export interface UpgradeRelayOptions {
  /** Time allowed for the upstream handshake, in ms. */
  handshakeTimeout: number;
}

/** Buffered bytes on one side above which the other side is paused. */
const HIGH_WATER_BYTES = 1024 * 1024;

/** Request headers the `ws` client sets itself, or that must not be forwarded on a WebSocket. */
const WS_OWN_HEADERS = new Set([
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-extensions',
  'sec-websocket-protocol',
  'sec-websocket-accept',
  'host',
  'content-length',
]);

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

  /** Routes and relays one upgrade request. */
  handle(req: IncomingMessage, socket: Socket, head: Buffer, snap: RoutingSnapshot | null): void {
    socket.on('error', () => socket.destroy());
    const exchange = new ProxyExchange(this.#ctx, req, null);
    if (exchange.route(snap) === Routed.Failed) {
      writeRawError(socket, exchange.errorStatus, exchange.errorCode, exchange.errorMessage);
      return;
    }
    const pool = exchange.pool as CompiledPool;
    const endpoint = exchange.endpoint as UpstreamPool;
    pool.traffic.record(Date.now());
    const extra: string[] = [];
    exchange.decorate(extra);
    const protocol = (req.headers.upgrade ?? '').toLowerCase();
    // During shutdown decorate() adds `connection: close`, which must not reach a 101 answer.
    if (protocol === 'websocket')
      for (let i = extra.length - 2; i >= 0; i -= 2)
        if (extra[i] === 'connection') extra.splice(i, 2);
    if (protocol === 'websocket')
      this.#relayWebSocket(req, socket, head, exchange, pool, endpoint, extra);
    else this.#tunnel(req, socket, head, exchange, pool, endpoint, protocol);
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
    const target = `ws://${endpoint.origin.slice('http://'.length)}${exchange.path}`;
    const upstream = new WebSocket(target, offered, {
      headers,
      perMessageDeflate: false,
      handshakeTimeout: this.#options.handshakeTimeout,
      followRedirects: false,
      ...(req.headers.host === undefined ? {} : { host: req.headers.host }),
    });
    // Errors are handled below or by the relay; this keeps a late one from crashing the process.
    upstream.on('error', noop);
    let settled = false;
    const cancel = (): void => {
      if (settled) return;
      settled = true;
      upstream.terminate();
    };
    this.#handshakes.add(cancel);
    socket.once('close', cancel);
    const endHandshake = (): void => {
      settled = true;
      this.#handshakes.delete(cancel);
      socket.off('close', cancel);
    };

    upstream.once('unexpected-response', (_r, res) => {
      endHandshake();
      // The upstream refused the upgrade: relay its answer as is.
      const lines = [`HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}`];
      const raw = res.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) {
        const n = (raw[i] as string).toLowerCase();
        if (
          n === 'connection' ||
          n === 'keep-alive' ||
          n === 'transfer-encoding' ||
          n === 'upgrade'
        )
          continue;
        lines.push(`${raw[i] as string}: ${raw[i + 1] as string}`);
      }
      for (let i = 0; i < extra.length; i += 2)
        lines.push(`${extra[i] as string}: ${extra[i + 1] as string}`);
      lines.push('connection: close', '', '');
      socket.write(lines.join('\r\n'));
      socket.once('close', () => upstream.terminate());
      res.pipe(socket);
      res.on('error', () => socket.destroy());
      pool.metrics.tally.count(res.statusCode ?? 502);
    });
    upstream.once('error', (err: Error & { code?: string }) => {
      if (settled) return;
      endHandshake();
      const reason =
        err.code === 'ECONNREFUSED'
          ? 'refused'
          : /timeout/i.test(err.message)
            ? 'timeout'
            : 'other';
      pool.metrics.errors[reason].inc();
      this.#ctx.log.debug(
        { err, pool: pool.name, endpoint: endpoint.url },
        'websocket upstream failed',
      );
      if (reason === 'timeout')
        writeRawError(socket, 504, 'UPSTREAM_TIMEOUT', 'upstream did not answer in time');
      else writeRawError(socket, 502, 'UPSTREAM_ERROR', 'upstream refused the websocket');
      pool.metrics.tally.count(502);
    });
    upstream.once('open', () => {
      endHandshake();
      if (socket.destroyed) {
        upstream.terminate();
        return;
      }
      this.#pending.set(req, {
        protocol: upstream.protocol === '' ? false : upstream.protocol,
        headers: extra,
      });
      this.#wss.handleUpgrade(req, socket, head, (client) => {
        this.#pending.delete(req);
        this.#pipeWebSockets(client, upstream, pool, endpoint);
      });
    });
  }

  #pipeWebSockets(
    client: WebSocket,
    upstream: WebSocket,
    pool: CompiledPool,
    endpoint: UpstreamPool,
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
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      untrack();
      gauge.dec();
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

  #tunnel(
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
    exchange: ProxyExchange,
    pool: CompiledPool,
    endpoint: UpstreamPool,
    protocol: string,
  ): void {
    const lines = [`${req.method ?? 'GET'} ${exchange.path} HTTP/1.1`];
    const h = exchange.headers;
    for (let i = 0; i < h.length; i += 2) lines.push(`${h[i] as string}: ${h[i + 1] as string}`);
    lines.push('connection: upgrade', `upgrade: ${protocol}`, '', '');
    const upstream = connect({ host: endpoint.hostname, port: endpoint.port });
    upstream.setTimeout(this.#options.handshakeTimeout, () =>
      upstream.destroy(new Error('upstream connect timeout')),
    );
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      upstream.setTimeout(0);
      upstream.write(lines.join('\r\n'));
      if (head.length > 0) upstream.write(head);
      socket.pipe(upstream);
      upstream.pipe(socket);
    });
    const gauge = this.#ctx.metrics.upgradedConnections.labels(pool.name);
    gauge.inc();
    const untrack = this.#tracker.add(
      endpoint.url,
      trackedConnection(
        pool.name,
        () => {
          socket.end();
          upstream.end();
        },
        () => {
          socket.destroy();
          upstream.destroy();
        },
      ),
    );
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      untrack();
      gauge.dec();
    };
    upstream.on('error', (err: Error & { code?: string }) => {
      end();
      if (!connected) {
        pool.metrics.errors[err.code === 'ECONNREFUSED' ? 'refused' : 'other'].inc();
        writeRawError(socket, 502, 'UPSTREAM_ERROR', 'upstream request failed');
      } else {
        socket.destroy();
      }
    });
    upstream.on('close', () => {
      end();
      socket.destroy();
    });
    socket.on('close', () => {
      end();
      upstream.destroy();
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

function writeRawError(socket: Socket, status: number, code: string, message: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
