/**
 * The reference upstream used by the demo, the tests and the bench: it answers with its pool name
 * and version, and offers a slow endpoint, an SSE stream, body echo and hashing, arbitrary status
 * codes, a WebSocket echo and a raw upgrade echo. Faults can be injected (issue 12): a share of
 * requests answered with 500 and added latency, so a bad canary can be tried in the demo, the
 * rollout tests and the bench.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { WebSocketServer, type WebSocket } from 'ws';

/** Options of a reference server. */
export interface ReferenceServerOptions {
  /** Pool name reported in every answer. */
  pool: string;
  /** Version (fake git SHA) reported in every answer. */
  version: string;
  /** Listen host; default 127.0.0.1. */
  host?: string;
  /** Listen port; default 0 (any free port). */
  port?: number;
  /** Keep-alive timeout for client sockets in ms; default Node's 5000. */
  keepAliveTimeout?: number;
  /**
   * Share 0..1 of HTTP requests (all but `/healthz`) answered with 500; default 0. Spread evenly
   * and deterministically: the k-th such request fails when floor(k × rate) grows, so any n
   * requests hold floor(n × rate) or one more failures.
   */
  errorRate?: number;
  /** Delay in ms added before answering every HTTP request but `/healthz`; default 0. */
  latencyMs?: number;
  /** Extra random delay, uniform in [0, latencyJitterMs) ms, on top of latencyMs; default 0. */
  latencyJitterMs?: number;
}

type State = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

/** Longest `/slow` delay and SSE interval accepted, so a typo cannot hold a test for hours. */
const MAX_DELAY_MS = 600_000;

/** Throws a RangeError naming `field` unless `value` is a finite number in [min, max]. */
function checkRange(field: string, value: number, min: number, max: number, unit: string): void {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(`${field}: ${value} must be ${unit} between ${min} and ${max}`);
  }
}

/** A small HTTP + WebSocket upstream that reports which pool answered. */
export class ReferenceServer {
  readonly #options: Required<Omit<ReferenceServerOptions, 'keepAliveTimeout'>> & {
    keepAliveTimeout: number | undefined;
  };
  /** HTTP requests subject to faults so far (everything but `/healthz`). */
  #faultable = 0;
  #injectedErrors = 0;
  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #rawSockets = new Set<Socket>();
  #openStreams = 0;
  #requests = 0;
  #state: State = 'idle';
  #closing: Promise<void> | undefined;

  constructor(options: ReferenceServerOptions) {
    this.#options = {
      pool: options.pool,
      version: options.version,
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 0,
      keepAliveTimeout: options.keepAliveTimeout,
      errorRate: options.errorRate ?? 0,
      latencyMs: options.latencyMs ?? 0,
      latencyJitterMs: options.latencyJitterMs ?? 0,
    };
    checkRange('errorRate', this.#options.errorRate, 0, 1, 'a share');
    checkRange('latencyMs', this.#options.latencyMs, 0, MAX_DELAY_MS, 'milliseconds');
    checkRange('latencyJitterMs', this.#options.latencyJitterMs, 0, MAX_DELAY_MS, 'milliseconds');
    this.#server = createServer((req, res) => this.#onRequest(req, res));
    if (this.#options.keepAliveTimeout !== undefined) {
      this.#server.keepAliveTimeout = this.#options.keepAliveTimeout;
    }
    this.#wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
      this.#onUpgrade(req, socket, head),
    );
    this.#server.on('clientError', (_err, socket: Socket) => {
      socket.destroy();
    });
  }

  /** Starts listening; resolves when the port is bound. */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error('ReferenceServer.start() called twice');
    this.#state = 'starting';
    this.#server.listen(this.#options.port, this.#options.host);
    await once(this.#server, 'listening');
    this.#state = 'running';
  }

  /** The bound address (after start). */
  address(): { host: string; port: number } {
    const addr = this.#server.address() as AddressInfo | null;
    if (!addr) throw new Error('ReferenceServer is not listening');
    return { host: addr.address, port: addr.port };
  }

  /** `http://host:port` of this server (after start). */
  url(): string {
    const { host, port } = this.address();
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  /** Stops at once: closes every socket, WebSocket and pending timer. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#state = 'closing';
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const ws of this.#wss.clients) ws.terminate();
    for (const s of this.#rawSockets) s.destroy();
    if (this.#server.listening) {
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      this.#server.closeAllConnections();
      await closed;
    }
    this.#wss.close();
    this.#state = 'closed';
  }

  #info(req: IncomingMessage, path: string): string {
    return JSON.stringify({
      pool: this.#options.pool,
      version: this.#options.version,
      path,
      method: req.method,
      headers: req.headers,
    });
  }

  #json(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-reference-pool': this.#options.pool,
      'x-reference-version': this.#options.version,
    });
    res.end(body);
  }

  #later(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
    return t;
  }

  /**
   * Counters for tests: requests received, SSE streams currently open, and requests answered
   * with an injected 500.
   */
  stats(): { requests: number; openStreams: number; injectedErrors: number } {
    return {
      requests: this.#requests,
      openStreams: this.#openStreams,
      injectedErrors: this.#injectedErrors,
    };
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.#requests += 1;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path === '/healthz') {
      // Health checks never see injected faults: a failing canary must stay in rotation so the
      // rollout judge, not the health checker, is what pulls it.
      this.#json(
        res,
        200,
        JSON.stringify({ status: 'ok', pool: this.#options.pool, version: this.#options.version }),
      );
      return;
    }
    const { errorRate, latencyMs, latencyJitterMs } = this.#options;
    if (errorRate === 0 && latencyMs === 0 && latencyJitterMs === 0) {
      this.#answer(req, res, path, url, q);
      return;
    }
    // Decided on arrival, so the share is exact in arrival order whatever the delays.
    this.#faultable += 1;
    const fail =
      Math.floor(this.#faultable * errorRate) > Math.floor((this.#faultable - 1) * errorRate);
    const delayMs = latencyMs + (latencyJitterMs > 0 ? Math.random() * latencyJitterMs : 0);
    const respond = (): void => {
      if (!fail) {
        this.#answer(req, res, path, url, q);
        return;
      }
      this.#injectedErrors += 1;
      req.resume();
      res.setHeader('x-reference-fault', 'error-rate');
      this.#json(
        res,
        500,
        JSON.stringify({
          error: 'injected fault (--error-rate)',
          pool: this.#options.pool,
          version: this.#options.version,
        }),
      );
    };
    if (delayMs <= 0) {
      respond();
      return;
    }
    const t = this.#later(delayMs, respond);
    res.on('close', () => {
      clearTimeout(t);
      this.#timers.delete(t);
    });
  }

  #answer(req: IncomingMessage, res: ServerResponse, path: string, url: string, q: number): void {
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
    if (path === '/bytes') {
      // fixed-size body for throughput benches
      const n = clampInt(query.get('n'), 100, 0, 16 * 1024 * 1024);
      res.writeHead(200, {
        'content-type': 'text/plain',
        'content-length': n,
        'x-reference-pool': this.#options.pool,
      });
      res.end(Buffer.alloc(n, 120));
      return;
    }
    if (path === '/hop-headers') {
      // hop-by-hop response headers the proxy must strip (RFC 9110 §7.6.1)
      req.resume();
      const body = this.#info(req, path);
      res.writeHead(200, [
        'content-type',
        'application/json',
        'content-length',
        String(Buffer.byteLength(body)),
        'connection',
        'keep-alive, x-upstream-secret',
        'keep-alive',
        'timeout=5',
        'x-upstream-secret',
        '1',
        'x-reference-pool',
        this.#options.pool,
      ]);
      res.end(body);
      return;
    }
    if (path === '/slow') {
      const ms = clampInt(query.get('ms'), 1000, 0, MAX_DELAY_MS);
      const t = this.#later(ms, () => this.#json(res, 200, this.#info(req, path)));
      res.on('close', () => {
        clearTimeout(t);
        this.#timers.delete(t);
      });
      req.resume();
      return;
    }
    if (path === '/stream') {
      this.#stream(
        res,
        clampInt(query.get('n'), 10, 1, 1_000_000),
        clampInt(query.get('intervalMs'), 100, 0, MAX_DELAY_MS),
      );
      req.resume();
      return;
    }
    if (path === '/echo') {
      const headers: Record<string, string> = {
        'content-type': req.headers['content-type'] ?? 'application/octet-stream',
        'x-reference-pool': this.#options.pool,
      };
      res.writeHead(200, headers);
      req.pipe(res);
      return;
    }
    if (path === '/upload-hash') {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      req.on('end', () => {
        this.#json(
          res,
          200,
          JSON.stringify({ pool: this.#options.pool, sha256: hash.digest('hex'), bytes }),
        );
      });
      return;
    }
    const status = /^\/status\/(\d{3})$/.exec(path);
    if (status) {
      const code = Number(status[1]);
      req.resume();
      if (code < 200 || code > 599) {
        this.#json(res, 400, JSON.stringify({ error: 'status must be 200..599' }));
        return;
      }
      if (code === 204 || code === 304) {
        res.writeHead(code, { 'x-reference-pool': this.#options.pool });
        res.end();
        return;
      }
      this.#json(res, code, this.#info(req, path));
      return;
    }
    req.resume();
    this.#json(res, 200, this.#info(req, path));
  }

  #stream(res: ServerResponse, n: number, intervalMs: number): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'x-reference-pool': this.#options.pool,
    });
    res.flushHeaders();
    this.#openStreams += 1;
    let i = 0;
    let timer: NodeJS.Timeout | undefined;
    const tick = (): void => {
      res.write(`id: ${i}\ndata: ${JSON.stringify({ i, pool: this.#options.pool })}\n\n`);
      i += 1;
      if (i >= n) {
        res.end();
        return;
      }
      timer = this.#later(intervalMs, tick);
    };
    res.on('close', () => {
      this.#openStreams -= 1;
      if (timer) {
        clearTimeout(timer);
        this.#timers.delete(timer);
      }
    });
    tick();
  }

  #onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const protocol = (req.headers.upgrade ?? '').toLowerCase();
    if (protocol === 'websocket') {
      this.#wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        ws.on('error', () => ws.terminate());
        ws.send(
          JSON.stringify({
            pool: this.#options.pool,
            version: this.#options.version,
            protocol: ws.protocol,
            path: req.url,
          }),
        );
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      });
      return;
    }
    // Any other protocol: switch and echo raw bytes, to exercise the proxy's TCP tunnel.
    this.#rawSockets.add(socket);
    socket.on('close', () => this.#rawSockets.delete(socket));
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${protocol}\r\nConnection: Upgrade\r\n` +
        `X-Reference-Pool: ${this.#options.pool}\r\n\r\n`,
    );
    if (head.length > 0) socket.write(head);
    socket.pipe(socket);
  }
}

function clampInt(raw: string | null, fallback: number, min: number, max: number): number {
  if (raw === null || !/^\d+$/.test(raw)) return fallback;
  return Math.min(max, Math.max(min, Number(raw)));
}

/** `switchyard reference-server --help`. Defaults match runReferenceServerCli's. */
export const REFERENCE_SERVER_USAGE = `usage: switchyard reference-server [options]

The small upstream used by the demo, the tests and the bench. Every answer names its pool and
version (JSON body, x-reference-pool and x-reference-version headers).

options:
  --listen HOST:PORT          address to listen on (default 127.0.0.1:3000; port 0: any free port)
  --pool NAME                 pool name reported in every answer (default blue)
  --version SHA               version reported in every answer (default 0000000)
  --keep-alive-timeout MS     client keep-alive timeout in milliseconds (default Node's 5000)
  --error-rate SHARE          answer this share (0..1, e.g. 0.2) of requests with 500, evenly
                              spread; /healthz stays 200 (default 0)
  --latency DURATION          delay every answer but /healthz (e.g. 50ms, 1s; default 0)
  --latency-jitter DURATION   plus a random delay up to this long (default 0)
  -h, --help                  print this help

paths:
  /healthz                    200 with pool and version
  /slow?ms=N                  answers after N ms (default 1000)
  /stream?n=N&intervalMs=MS   server-sent events: N events, MS apart
  /echo                       streams the request body back
  /upload-hash                sha256 and length of the request body
  /bytes?n=N                  an N-byte body
  /status/CODE                answers with status CODE (200..599)
  /hop-headers                sends hop-by-hop headers a proxy must remove
  anything else               200 with pool, version, path, method and request headers
  WebSocket upgrade           echoes messages; any other Upgrade: echoes raw bytes
`;

/** Parses `--flag` DURATION: `50ms`, `1.5s`, `2m` or milliseconds, at most MAX_DELAY_MS. */
function parseDelay(flag: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw.trim());
  const ms = m ? Number(m[1]) * (m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 1) : Number.NaN;
  if (!(ms <= MAX_DELAY_MS)) {
    throw new Error(
      `${flag}: "${raw}" is not a duration up to 10m (e.g. 50ms, 1s or milliseconds)`,
    );
  }
  return ms;
}

/** Parses `--error-rate`: a share 0..1 such as 0.2. */
function parseShare(flag: string, raw: string): number {
  const share = /^(?:\d+(?:\.\d*)?|\.\d+)$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!(share >= 0 && share <= 1)) {
    throw new Error(`${flag}: "${raw}" is not a share between 0 and 1 (e.g. 0.2 for 20 %)`);
  }
  return share;
}

/**
 * `switchyard reference-server --listen HOST:PORT --pool NAME --version SHA
 * [--keep-alive-timeout MS] [--error-rate SHARE] [--latency D] [--latency-jitter D]`: starts a
 * reference server and returns it; the caller (main.ts) owns signals and calls close(). Throws an
 * Error with a usage message on bad arguments.
 */
export async function runReferenceServerCli(argv: readonly string[]): Promise<ReferenceServer> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      listen: { type: 'string', default: '127.0.0.1:3000' },
      pool: { type: 'string', default: 'blue' },
      version: { type: 'string', default: '0000000' },
      'keep-alive-timeout': { type: 'string' },
      'error-rate': { type: 'string' },
      latency: { type: 'string' },
      'latency-jitter': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(values.listen);
  if (!m || Number(m[3]) > 65535) {
    throw new Error(`--listen: "${values.listen}" is not HOST:PORT (e.g. 127.0.0.1:3000)`);
  }
  const kat = values['keep-alive-timeout'];
  if (kat !== undefined && !/^\d+$/.test(kat)) {
    throw new Error(`--keep-alive-timeout: "${kat}" is not a number of milliseconds`);
  }
  const errorRate =
    values['error-rate'] === undefined ? 0 : parseShare('--error-rate', values['error-rate']);
  const latencyMs = values.latency === undefined ? 0 : parseDelay('--latency', values.latency);
  const latencyJitterMs =
    values['latency-jitter'] === undefined
      ? 0
      : parseDelay('--latency-jitter', values['latency-jitter']);
  const server = new ReferenceServer({
    pool: values.pool,
    version: values.version,
    host: (m[1] ?? m[2]) as string,
    port: Number(m[3]),
    ...(kat === undefined ? {} : { keepAliveTimeout: Number(kat) }),
    errorRate,
    latencyMs,
    latencyJitterMs,
  });
  await server.start();
  const faults =
    errorRate > 0 || latencyMs > 0 || latencyJitterMs > 0
      ? { errorRate, latencyMs, latencyJitterMs }
      : {};
  process.stdout.write(
    `${JSON.stringify({ msg: 'reference server listening', url: server.url(), pool: values.pool, version: values.version, ...faults })}\n`,
  );
  return server;
}
