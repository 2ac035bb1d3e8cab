/**
 * One upstream endpoint: its undici connection pool (keep-alive, bounded connections) and the
 * count of requests outstanding on it, shared by every snapshot that names the endpoint.
 */
import { isIP } from 'node:net';
import { Client, Pool, type Dispatcher } from 'undici';
import { ConnList } from './conn-tracker.js';

/**
 * Margin subtracted from an upstream's `Keep-Alive: timeout=N` hint before a socket counts as
 * expired (undici's keepAliveTimeoutThreshold, default 2 s): the upstream starts its idle timer
 * when it finishes writing, a little before we finish reading, so reusing a socket right up to
 * the hint races its close. 1 s covers loopback and LAN latency plus event-loop lag; hints of
 * 1 s or less therefore disable reuse (a fresh connection per request, never a failed one).
 */
const KEEP_ALIVE_HINT_MARGIN_MS = 1_000;

/** Connection settings for every upstream pool, in ms. */
export interface UpstreamPoolOptions {
  connections: number;
  keepAliveTimeout: number;
  headersTimeout: number;
  connectTimeout: number;
}

/** An upstream endpoint and its keep-alive connection pool. */
export class UpstreamPool {
  /** The endpoint URL as written in the table. */
  readonly url: string;
  /** `http://host:port`. */
  readonly origin: string;
  /** Host name or address (IPv6 without brackets). */
  readonly hostname: string;
  /** TCP port (the scheme's default when the URL names none: 443 for https, 80 for http). */
  readonly port: number;
  /**
   * TLS server name (SNI and certificate check) for an https endpoint named by a host name. undici
   * otherwise takes it from each request's Host header: a client could pick the name the upstream
   * certificate is checked against, and every new Host would reconnect (issue 10).
   */
  readonly servername: string | undefined;
  /** Requests dispatched to this endpoint and not yet finished (least-outstanding balancing). */
  outstanding = 0;
  /** False while failed health checks or an ejection keep new requests away (HealthChecker). */
  healthy = true;
  /** Failed requests in a row (connection failures, 5xx); any other answer resets it. */
  failures = 0;
  /** `failures` at which `onFailures` is called; 0 = never (passive ejection off). */
  failureLimit = 0;
  /**
   * True when the endpoint is one of this replica's own listeners (proxy or admin port): requests
   * are answered 508 instead of forwarded (set by ProxyServer, issue 10).
   */
  ownListener = false;
  /** Set by the HealthChecker: decides whether to eject the endpoint. */
  onFailures: ((endpoint: UpstreamPool) => void) | null = null;
  /** HTTP exchanges running on this endpoint (the drainer closes the long ones). */
  readonly conns = new ConnList();
  readonly #pool: Pool;
  readonly #options: UpstreamPoolOptions;
  #retired = false;
  #destroyTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  constructor(url: string, options: UpstreamPoolOptions) {
    const parsed = new URL(url);
    this.url = url;
    this.origin = parsed.origin;
    this.hostname = parsed.hostname.startsWith('[')
      ? parsed.hostname.slice(1, -1)
      : parsed.hostname;
    const https = parsed.protocol === 'https:';
    this.port = parsed.port !== '' ? Number(parsed.port) : https ? 443 : 80;
    this.servername = https && isIP(this.hostname) === 0 ? this.hostname : undefined;
    this.#options = options;
    this.#pool = new Pool(this.origin, this.#clientOptions(options.connections));
  }

  #clientOptions(connections: number): Pool.Options {
    return {
      connections,
      pipelining: 1,
      // Idle sockets close after upstreamKeepAliveTimeout, or after the upstream's own
      // `Keep-Alive: timeout` hint minus a margin, whichever is shorter.
      keepAliveTimeout: this.#options.keepAliveTimeout,
      keepAliveMaxTimeout: this.#options.keepAliveTimeout,
      keepAliveTimeoutThreshold: KEEP_ALIVE_HINT_MARGIN_MS,
      headersTimeout: this.#options.headersTimeout,
      // Streams (SSE, downloads) may idle between chunks for long; client aborts and drains end them.
      bodyTimeout: 0,
      connectTimeout: this.#options.connectTimeout,
    };
  }

  /** Counts a failed request: a connection failure or a 5xx answer. */
  recordFailure(): void {
    const n = ++this.failures;
    if (this.failureLimit > 0 && n >= this.failureLimit && this.onFailures !== null)
      this.onFailures(this);
  }

  /** Counts a request answered with a status below 500. */
  recordSuccess(): void {
    // hot path: a read, and a write only after failures
    if (this.failures !== 0) this.failures = 0;
  }

  /** Dispatches one request on a pooled keep-alive connection. */
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void {
    // hot path
    this.#pool.dispatch(options, handler);
  }

  /**
   * Dispatches on a brand-new connection that is closed afterwards: the retry of a request whose
   * pooled socket was reset, when the pool has no other endpoint (SPEC §3).
   */
  dispatchFresh(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void {
    const client = new Client(this.origin, {
      keepAliveTimeout: this.#options.keepAliveTimeout,
      headersTimeout: this.#options.headersTimeout,
      bodyTimeout: 0,
      connectTimeout: this.#options.connectTimeout,
    });
    client.dispatch({ ...options, reset: true }, handler);
    // close() lets the request finish, then releases the socket.
    client.close().catch(() => undefined);
  }

  /** True once the endpoint left the table. */
  get retired(): boolean {
    return this.#retired;
  }

  /**
   * Retires the endpoint: no new work is expected; queued and in-flight requests finish, then the
   * sockets close. Whatever is still running after `graceMs` is destroyed.
   */
  retire(graceMs: number, onClosed: () => void): void {
    if (this.#retired) return;
    this.#retired = true;
    this.#closing = this.#pool.close().catch(() => undefined);
    this.#destroyTimer = setTimeout(() => {
      this.#pool.destroy().catch(() => undefined);
    }, graceMs);
    this.#destroyTimer.unref();
    void this.#closing.then(() => {
      clearTimeout(this.#destroyTimer);
      onClosed();
    });
  }

  /** Aborts every request and socket at once. */
  destroy(): void {
    this.#retired = true;
    clearTimeout(this.#destroyTimer);
    this.#pool.destroy().catch(() => undefined);
  }

  /** Closes gracefully, destroying after `deadlineMs`. Resolves when the sockets are gone. */
  async close(deadlineMs: number): Promise<void> {
    this.#retired = true;
    this.#closing ??= this.#pool.close().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#pool.destroy().then(resolve, () => resolve());
      }, deadlineMs);
      timer.unref();
    });
    await Promise.race([this.#closing, deadline]);
    clearTimeout(timer);
    clearTimeout(this.#destroyTimer);
  }
}
