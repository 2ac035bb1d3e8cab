/**
 * The request path: one ProxyExchange per client request routes it against one snapshot (sticky
 * key, pool, endpoint), rewrites headers (hop-by-hop, X-Forwarded-*, override), and forwards it
 * with undici's low-level dispatch, streaming both bodies with backpressure. It is its own undici
 * handler (the legacy callback API, which undici's core calls without an adapter) so a request
 * costs one object plus the header arrays.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { ERROR_CODES, type ErrorCode } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { BurstLog } from '../lib/burst-log.js';
import type { Metrics } from '../observability/metrics.js';
import type { StickyIdSource } from '../table/sticky-hash.js';
import {
  pickEndpoint,
  type CompiledPool,
  type CompiledRoute,
  type PoolMetricChildren,
  type RoutingSnapshot,
  type UpstreamErrorReason,
} from './router.js';
import type { AccessLog } from './access-log.js';
import { MIRROR_HEADER, MirrorChoice, type CompiledMirror, type MirrorSender } from './mirror.js';
import { readCookie, RuleRequestView } from './rule-request.js';
import type { UpstreamPool } from './upstream-pool.js';
import { HOP_BY_HOP_HEADERS, removeConnectionNamed } from './hop-by-hop.js';
import { writeProxyError } from './proxy-error.js';
import {
  SHUTDOWN_CLOSE_CODE,
  type ConnList,
  type DrainWatcher,
  type TrackedConnection,
} from './conn-tracker.js';

/** Largest PUT/DELETE body held in memory so the request can be retried (SPEC §3). */
export const MAX_RETRY_BODY_BYTES = 64 * 1024;

/**
 * Header fields a request may carry (the server's maxHeadersCount). Node stops collecting fields
 * at its limit but its parser still frames the body by the ones it hid, so a request that reaches
 * the limit is refused with 431 (issue 10). Far above what clients send (HAProxy allows 101), and
 * low enough that the few fields the proxy adds stay under a Node upstream's own limit of 2,000.
 */
export const MAX_HEADER_FIELDS = 1000;

/** `Allow` of the proxy's own answer to `OPTIONS *`: the methods it forwards. */
const ASTERISK_ALLOW = 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH';

const OWN_LISTENER_MESSAGE = 'the endpoint is a listener of this proxy';

/** Settings and shared state of the request path, built once per ProxyServer. */
export interface ForwardContext {
  readonly stickySource: 'cookie' | 'header' | 'client-address';
  /** Cookie name, or lower-case header name. */
  readonly stickyName: string;
  /** New sticky ids for clients without the cookie. */
  readonly stickyIds: StickyIdSource;
  readonly trustedProxies: ReadonlySet<string>;
  /** sha256 of the override token, or null when overrides are off. */
  readonly overrideDigest: Buffer | null;
  readonly upstreamHeader: boolean;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Upstream failures, logged at most once per window with the count in between (issue 3). */
  readonly upstreamErrorLog: BurstLog;
  /** The access log, or null when it is off. */
  readonly accessLog: AccessLog | null;
  /** Sends mirrored copies (SPEC §12), apart from real traffic. */
  readonly mirrors: MirrorSender;
  /** Metric children for requests answered before a pool was chosen. */
  readonly unrouted: PoolMetricChildren;
  /**
   * This replica's `Via` received-by token (RFC 9110 §7.6.3): a request that already carries it
   * has looped back and is answered 508. Random per process, so it names no host.
   */
  readonly viaToken: string;
  /** `1.0 <token>` and `1.1 <token>`: the Via entry added to HTTP/1.0 and 1.1 requests. */
  readonly via10: string;
  readonly via11: string;
  /**
   * The snapshot new requests route by (ProxyServer.applyTable sets it): a request that waited
   * (held body, retry) while its endpoint left the table picks again from it (issue 10).
   */
  snapshot: RoutingSnapshot | null;
  /** Set by beginShutdown(): every response then carries `Connection: close`. */
  shuttingDown: boolean;
  /** Requests in flight (for close()). */
  inFlight: number;
  /** Called when inFlight drops to 0. */
  onIdle: (() => void) | null;
}

/** Builds the sha256 digest an override token is compared against (constant time). */
export function overrideDigest(token: string | undefined): Buffer | null {
  return token === undefined ? null : createHash('sha256').update(token).digest();
}

/** A header lookup table: 1 = drop, 2 = drop but read. */
function dropTable(read: readonly string[], drop: readonly string[]): Record<string, number> {
  const table: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const name of drop) table[name] = 1;
  for (const name of read) table[name] = 2;
  return table;
}

// Request headers never forwarded as received: hop-by-hop ones, `expect` (undici refuses it; we
// answer it), our override headers, the forwarding headers we rebuild (the client's are kept
// only from trusted proxies, issue 10), and the mirror mark, which only the proxy may set (an
// upstream may skip side effects for copies: a client must not pass for one).
const REQUEST_DROP = dropTable(
  [
    'connection',
    'transfer-encoding',
    'x-switchyard-pool',
    'x-switchyard-token',
    'x-forwarded-for',
    'x-forwarded-proto',
    'x-forwarded-host',
    'forwarded',
    'x-real-ip',
    'via',
  ],
  [...HOP_BY_HOP_HEADERS, 'expect', MIRROR_HEADER],
);

const RESPONSE_DROP = dropTable(['connection'], HOP_BY_HOP_HEADERS);

/** Marks (index = length) the lengths of the names in `table`. */
function nameLengths(table: Record<string, number>): Uint8Array {
  const lengths = new Uint8Array(256);
  for (const name of Object.keys(table)) lengths[name.length] = 1;
  return lengths;
}

// Most response headers have a length no dropped name has: they skip lower-casing and lookup.
const RESPONSE_DROP_LENGTHS = nameLengths(RESPONSE_DROP);

/** Normalises an IPv4-mapped IPv6 peer address (`::ffff:127.0.0.1` → `127.0.0.1`). */
export function normaliseAddress(addr: string | undefined): string {
  if (addr === undefined) return '';
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

/**
 * True when the Via value `via` has an entry received by `token` (`1.1 token`, optionally with a
 * comment): the request has passed through this replica before.
 */
export function viaHasToken(via: string, token: string): boolean {
  let from = 0;
  for (;;) {
    const i = via.indexOf(token, from);
    if (i === -1) return false;
    const before = via.charCodeAt(i - 1);
    const after = i + token.length < via.length ? via.charCodeAt(i + token.length) : 44;
    // received-by follows the protocol and a space; a comma, space or tab ends it
    if ((before === 32 || before === 9) && (after === 44 || after === 32 || after === 9))
      return true;
    from = i + 1;
  }
}

/** The metrics reason of an upstream failure (undici, net or ws errors), by its code. */
export function classifyUpstreamError(err: Error & { code?: string }): UpstreamErrorReason {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
      return 'reset';
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return 'timeout';
    default:
      return 'other';
  }
}

/** True for undici refusing the request itself (a method, target or field it rejects). */
function isRefusedRequest(err: Error & { code?: string }): boolean {
  return err.code === 'UND_ERR_INVALID_ARG' || err.code === 'UND_ERR_NOT_SUPPORTED';
}

/** Outcome of ProxyExchange.route(). */
export const enum Routed {
  /** Routed: call forward(). */
  Forward = 0,
  /** Routed, but the small body must be held first: call holdBodyThenForward(). */
  HoldBody = 1,
  /**
   * Answered by the proxy itself (an error, or `OPTIONS *`): for an upgrade (no response object)
   * the error to write is in errorCode/errorMessage (errorStatus is its status).
   */
  Failed = 2,
}

const enum Retry {
  /** Retry once on refused, reset or closed: idempotent and the body (if any) is held. */
  Idempotent = 0,
  /** Retry only when the connection was refused (nothing was sent). */
  RefusedOnly = 1,
}

/** One client request through the proxy; also the undici dispatch handler of its upstream leg. */
export class ProxyExchange implements Dispatcher.DispatchHandler, TrackedConnection {
  readonly #ctx: ForwardContext;
  readonly #req: IncomingMessage;
  /** null for upgrade requests (the caller owns the raw socket). */
  readonly #res: ServerResponse | null;
  readonly #start: number;
  errorStatus = 0;
  errorCode: ErrorCode = 'INTERNAL';
  errorMessage = '';
  /** Forwarded request headers as a flat [name, value, ...] list. */
  headers: string[] = [];
  path = '/';
  pool: CompiledPool | undefined;
  endpoint: UpstreamPool | undefined;
  /** `Set-Cookie` value for a newly created sticky id, or null. */
  setCookie: string | null = null;
  #body: IncomingMessage | Buffer | null = null;
  /** How the pool was chosen (access log `sticky`); null until one is. */
  #how: string | null = null;
  /** The rule that chose the pool, or null. */
  #rule: string | null = null;
  /** Response body bytes relayed to the client. */
  #bytes = 0;
  /** The mirror this request is copied to once forwarded; null when it is not copied. */
  #mirror: CompiledMirror | null = null;
  /** Sticky key the pool was picked by; undefined when an override header or a rule chose it. */
  #key: string | undefined;
  #retry = Retry.RefusedOnly;
  #attempt = 0;
  #abort: ((err?: Error) => void) | null = null;
  /**
   * True while undici's dispatch() runs: an error it reports synchronously (request refused, pool
   * closed or destroyed) happened before any byte left for the upstream.
   */
  #dispatching = false;
  #responseStarted = false;
  #finished = false;
  #resume: (() => void) | null = null;
  /** Response headers as sent (read only when a drain or shutdown closes the exchange). */
  #responseHeaders: string[] | null = null;
  // TrackedConnection links: the exchange is in its endpoint's ConnList while it runs.
  trackPrev: TrackedConnection | null = null;
  trackNext: TrackedConnection | null = null;
  trackList: ConnList | null = null;
  trackDrain: DrainWatcher | null = null;

  constructor(ctx: ForwardContext, req: IncomingMessage, res: ServerResponse | null) {
    this.#ctx = ctx;
    this.#req = req;
    this.#res = res;
    this.#start = performance.now();
  }

  /**
   * Routes against `snap`: validates Host and target, rewrites headers, chooses pool and endpoint.
   * On failure, answers the client itself (when it has a response object) and returns Failed.
   */
  route(snap: RoutingSnapshot | null): Routed {
    // hot path
    const ctx = this.#ctx;
    const req = this.#req;
    const raw = req.rawHeaders;
    // Node hid the fields past its limit, but they still framed the body (issue 10): refuse, and
    // close, since the connection's framing is unknown to us.
    if (raw.length >= MAX_HEADER_FIELDS * 2)
      return this.fail(
        'HEADERS_TOO_LARGE',
        `more than ${MAX_HEADER_FIELDS - 1} header fields`,
        true,
      );
    const out = this.headers;
    let hosts = 0;
    let host = '';
    let cookie: string | undefined;
    let stickyHeader: string | undefined;
    let connection: string | undefined;
    let xff: string | undefined;
    let xfp: string | undefined;
    let xfh: string | undefined;
    let forwarded: string | undefined;
    let realIp: string | undefined;
    let via: string | undefined;
    let overridePool: string | undefined;
    let overrideToken: string | undefined;
    let contentLength: string | undefined;
    let chunked = false;
    const stickyName = ctx.stickySource === 'header' ? ctx.stickyName : '';
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string;
      const value = raw[i + 1] as string;
      const lower = name.toLowerCase();
      const drop = REQUEST_DROP[lower];
      if (drop === undefined) {
        if (lower === 'host') {
          hosts++;
          host = value;
        } else if (lower === 'cookie') {
          cookie = cookie === undefined ? value : `${cookie}; ${value}`;
        } else if (lower === 'content-length') {
          contentLength = value;
        }
        if (lower === stickyName) stickyHeader = value;
        out.push(name, value);
      } else if (drop === 2) {
        switch (lower) {
          case 'connection':
            connection = connection === undefined ? value : `${connection},${value}`;
            break;
          case 'transfer-encoding':
            chunked = true;
            break;
          case 'x-forwarded-for':
            xff = xff === undefined ? value : `${xff}, ${value}`;
            break;
          case 'x-forwarded-proto':
            xfp ??= value;
            break;
          case 'x-forwarded-host':
            xfh ??= value;
            break;
          case 'forwarded':
            forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
            break;
          case 'x-real-ip':
            realIp ??= value;
            break;
          case 'via':
            via = via === undefined ? value : `${via}, ${value}`;
            break;
          case 'x-switchyard-pool':
            overridePool = value;
            break;
          case 'x-switchyard-token':
            overrideToken = value;
            break;
        }
      }
    }
    // RFC 9112 §3.2: a request with more than one Host is invalid (Node keeps the first silently).
    if (hosts > 1) return this.fail('BAD_REQUEST', 'more than one Host header');
    // Node refuses HTTP/1.1 without Host; HTTP/1.0 may omit it, and then undici would send the
    // endpoint's internal address in its place (issue 10).
    if (hosts === 0) return this.fail('BAD_REQUEST', 'missing Host header');
    const url = req.url ?? '/';
    if (url.charCodeAt(0) === 47 /* / */) {
      this.path = url;
    } else if (url === '*') {
      // RFC 9112 §3.2.4: the asterisk form asks about the server itself, only with OPTIONS. The
      // proxy answers it for the set of upstreams behind it rather than ask one of them.
      if (req.method !== 'OPTIONS' || this.#res === null)
        return this.fail('BAD_REQUEST', 'the asterisk-form target is only for OPTIONS');
      return this.#answerAsterisk(this.#res);
    } else {
      // Absolute-form target: accept it only for the Host it names; never route by it.
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        return this.fail('BAD_REQUEST', 'invalid request target');
      }
      if (target.protocol !== 'http:' && target.protocol !== 'https:')
        return this.fail('BAD_REQUEST', 'request target scheme must be http or https');
      if (target.host.toLowerCase() !== host.toLowerCase()) {
        return this.fail('BAD_REQUEST', 'request target names another host');
      }
      this.path = target.pathname + target.search;
    }
    if (via !== undefined && viaHasToken(via, ctx.viaToken))
      return this.fail('LOOP_DETECTED', 'the request has already passed through this proxy');
    if (connection !== undefined) this.headers = removeConnectionNamed(this.headers, connection);

    const peer = normaliseAddress(req.socket.remoteAddress);
    const trusted = ctx.trustedProxies.size > 0 && ctx.trustedProxies.has(peer);
    const headers = this.headers;
    const viaEntry = req.httpVersionMinor === 0 ? ctx.via10 : ctx.via11;
    headers.push(
      'x-forwarded-for',
      trusted && xff !== undefined ? `${xff}, ${peer}` : peer,
      'x-forwarded-proto',
      trusted && xfp !== undefined ? xfp : 'encrypted' in req.socket ? 'https' : 'http',
      'x-forwarded-host',
      trusted && xfh !== undefined ? xfh : host,
      'via',
      via === undefined ? viaEntry : `${via}, ${viaEntry}`,
    );
    // Like X-Forwarded-*, these say who the client is: believed only from a trusted proxy.
    if (trusted) {
      if (forwarded !== undefined) headers.push('forwarded', forwarded);
      if (realIp !== undefined) headers.push('x-real-ip', realIp);
    }

    if (snap === null) return this.fail('NO_HEALTHY_UPSTREAM', 'no routing table loaded yet');

    let pool: CompiledPool | undefined;
    if (overridePool !== undefined && overrideToken !== undefined && ctx.overrideDigest !== null) {
      const digest = createHash('sha256').update(overrideToken).digest();
      if (timingSafeEqual(digest, ctx.overrideDigest)) {
        this.#how = 'override';
        pool = snap.pools.get(overridePool);
        if (pool === undefined)
          return this.fail('NO_HEALTHY_UPSTREAM', 'override pool is not in the table');
      }
    }
    // Rules come before stickiness and the weighted split; without rules, one length check.
    let view: RuleRequestView | undefined;
    if (pool === undefined && snap.rules.length !== 0) {
      const rules = snap.rules;
      view = new RuleRequestView(raw, cookie, this.path);
      for (let i = 0; i < rules.length; i++) {
        const rule = rules[i] as CompiledRoute;
        if (rule.test(view)) {
          rule.hits.inc();
          pool = rule.pool;
          this.#how = 'rule';
          this.#rule = rule.name;
          break;
        }
      }
    }
    if (pool === undefined) {
      let key: string | undefined;
      if (ctx.stickySource === 'cookie') {
        key = cookie === undefined ? undefined : readCookie(cookie, ctx.stickyName);
        this.#how = 'cookie';
        if (key === undefined || key === '') {
          key = ctx.stickyIds.next();
          this.setCookie = `${ctx.stickyName}=${key}; Path=/; HttpOnly; SameSite=Lax`;
          this.#how = 'new-cookie';
        }
      } else if (ctx.stickySource === 'header') {
        // Without the header, fall back to the client address: stable for that client.
        key = stickyHeader ?? peer;
        this.#how = stickyHeader === undefined ? 'client-address' : 'header';
      } else {
        key = trusted && xff !== undefined ? lastListItem(xff) : peer;
        this.#how = 'client-address';
      }
      this.#key = key;
      const name = snap.pick(key);
      pool = name === undefined ? undefined : snap.pools.get(name);
      if (pool === undefined) return this.fail('NO_HEALTHY_UPSTREAM', 'no pool has traffic weight');
    }
    this.pool = pool;
    const endpoint = pickEndpoint(pool);
    if (endpoint === undefined)
      return this.fail('NO_HEALTHY_UPSTREAM', 'pool has no healthy endpoint');
    // A listener of this replica (proxy or admin port): forwarding would loop, or serve the admin
    // API on the public port (issue 10). Refused before any connection is made.
    if (endpoint.ownListener) return this.fail('LOOP_DETECTED', OWN_LISTENER_MESSAGE);
    this.endpoint = endpoint;

    const method = req.method as string;
    const hasBody = chunked || (contentLength !== undefined && contentLength !== '0');
    const mirror = snap.mirror;
    // Upgrade requests (no response object) are tunnelled, never copied.
    if (mirror !== null && this.#res !== null) {
      const path = this.path;
      const choice = ctx.mirrors.choose(
        mirror,
        method,
        pool,
        () => (view ??= new RuleRequestView(raw, cookie, path)),
        hasBody,
        chunked,
        contentLength,
      );
      if (choice !== MirrorChoice.None) {
        this.#mirror = mirror;
        // The copy needs the body's bytes: hold the (small, sized) body, then forward both.
        if (choice === MirrorChoice.CopyWithBody) {
          if (
            (method === 'PUT' || method === 'DELETE') &&
            Number(contentLength) <= MAX_RETRY_BODY_BYTES
          )
            this.#retry = Retry.Idempotent;
          return Routed.HoldBody;
        }
      }
    }
    if (!hasBody) {
      this.#retry =
        method === 'GET' ||
        method === 'HEAD' ||
        method === 'OPTIONS' ||
        method === 'PUT' ||
        method === 'DELETE'
          ? Retry.Idempotent
          : Retry.RefusedOnly;
    } else if (
      (method === 'PUT' || method === 'DELETE') &&
      !chunked &&
      Number(contentLength) <= MAX_RETRY_BODY_BYTES
    ) {
      this.#retry = Retry.Idempotent;
      return Routed.HoldBody;
    } else {
      this.#body = req;
    }
    return Routed.Forward;
  }

  /** Answers `OPTIONS *` (RFC 9110 §9.3.7) with the methods the proxy forwards. */
  #answerAsterisk(res: ServerResponse): Routed {
    this.#finished = true;
    this.#req.resume();
    const headers = ['allow', ASTERISK_ALLOW, 'content-length', '0'];
    this.decorate(headers);
    res.writeHead(200, headers);
    res.end();
    this.#count(200);
    return Routed.Failed;
  }

  /** Forwards the routed request (after route() returned Forward). */
  forward(): void {
    // hot path
    const ctx = this.#ctx;
    ctx.inFlight++;
    (this.#res as ServerResponse).once('close', this.#onClientClose);
    this.pool?.traffic.record(Date.now());
    this.#dispatch(this.endpoint as UpstreamPool, false);
    const mirror = this.#mirror;
    if (mirror !== null) {
      const body = this.#body;
      ctx.mirrors.send(
        mirror,
        this.#req.method as string,
        this.path,
        this.headers,
        body instanceof Buffer ? body : null,
      );
    }
  }

  /** Reads a small PUT/DELETE body into memory (so it can be resent), then forwards. */
  holdBodyThenForward(): void {
    const chunks: Buffer[] = [];
    const req = this.#req;
    const onData = (c: Buffer): void => {
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => {
      req.off('data', onData);
      // The client may have gone between the last body byte and now: forward() would attach
      // its close listener too late and stream the answer into a dead socket.
      const res = this.#res as ServerResponse;
      if (res.destroyed || res.socket === null || res.socket.destroyed) return;
      this.#body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      this.forward();
    });
    req.once('error', () => {
      // client went away before the body arrived: nothing was sent upstream
      req.off('data', onData);
    });
  }

  #dispatch(endpoint: UpstreamPool, fresh: boolean): void {
    // hot path
    if (endpoint.retired || endpoint.ownListener) {
      // The table dropped the endpoint while this request waited (held body, retry) and its pool
      // is closing: pick again from the table requests route by now (issue 10). A retry's pick
      // may also be one of our own listeners (route() checked only the first).
      const current = this.#repick();
      if (current === undefined) return;
      endpoint = current;
      fresh = false;
    }
    this.endpoint = endpoint;
    endpoint.outstanding++;
    const list = this.trackList;
    if (list !== null) list.remove(this); // a retry moves to another endpoint
    endpoint.conns.add(this);
    // `servername` is read by undici's core but missing from its DispatchOptions type.
    const opts: Dispatcher.DispatchOptions & { servername: string | undefined } = {
      origin: endpoint.origin,
      path: this.path,
      method: this.#req.method as Dispatcher.HttpMethod,
      headers: this.headers,
      body: this.#body,
      servername: endpoint.servername,
    };
    this.#dispatching = true;
    if (fresh) endpoint.dispatchFresh(opts, this);
    else endpoint.dispatch(opts, this);
    this.#dispatching = false;
  }

  /**
   * Picks an endpoint for this request from the current snapshot: its pool there, or the pool its
   * sticky key picks if that pool has left. Answers the client (and returns undefined) when none
   * is left.
   */
  #repick(): UpstreamPool | undefined {
    const snap = this.#ctx.snapshot;
    const name = (this.pool as CompiledPool).name;
    let pool = snap?.pools.get(name);
    if (pool === undefined && snap !== null && this.#key !== undefined) {
      const picked = snap.pick(this.#key);
      pool = picked === undefined ? undefined : snap.pools.get(picked);
    }
    let code: ErrorCode = 'NO_HEALTHY_UPSTREAM';
    let message = 'the pool left the routing table';
    if (pool !== undefined) {
      this.pool = pool;
      const endpoint = pickEndpoint(pool);
      if (endpoint !== undefined && !endpoint.retired && !endpoint.ownListener) return endpoint;
      message = 'pool has no healthy endpoint';
      if (endpoint?.retired === true) {
        // Every pool is closing: the proxy is shutting down.
        code = 'CLOSED';
        message = 'the proxy is shutting down';
      } else if (endpoint?.ownListener === true) {
        code = 'LOOP_DETECTED';
        message = OWN_LISTENER_MESSAGE;
      }
    }
    this.#finished = true;
    this.#sendError(this.#res as ServerResponse, code, message);
    this.#done();
    return undefined;
  }

  #onClientClose = (): void => {
    if (this.#finished) return;
    // The client went away before the response ended: cancel the upstream leg now.
    this.#finished = true;
    // 499 (nginx's "client closed request"): logged, not counted in the request metrics.
    if (this.#ctx.accessLog !== null) this.#logAccess(499, performance.now() - this.#start);
    this.#done();
    const abort = this.#abort;
    if (abort !== null) abort(new Error('client closed the connection'));
  };

  #done(): void {
    const ctx = this.#ctx;
    ctx.inFlight--;
    const list = this.trackList;
    if (list !== null) list.remove(this);
    if (ctx.inFlight === 0 && ctx.onIdle !== null) ctx.onIdle();
  }

  // undici handler (legacy callback API)

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#finished) abort(new Error('client closed the connection'));
  }

  onHeaders(
    statusCode: number,
    rawHeaders: Buffer[],
    resume: () => void,
    statusText: string,
  ): boolean {
    // hot path
    if (statusCode < 200) return true; // 1xx: we answered Expect ourselves; early hints dropped
    if (this.#finished) return false;
    // Passive health: 5xx answers count toward ejection, anything else clears the streak.
    if (statusCode >= 500) (this.endpoint as UpstreamPool).recordFailure();
    else (this.endpoint as UpstreamPool).recordSuccess();
    this.#responseStarted = true;
    this.#resume = resume;
    const out: string[] = [];
    let connection: string | undefined;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = (rawHeaders[i] as Buffer).toString('latin1');
      const drop =
        RESPONSE_DROP_LENGTHS[name.length] === 1 ? RESPONSE_DROP[name.toLowerCase()] : undefined;
      if (drop === undefined) {
        out.push(name, (rawHeaders[i + 1] as Buffer).toString('latin1'));
      } else if (drop === 2) {
        const v = (rawHeaders[i + 1] as Buffer).toString('latin1');
        connection = connection === undefined ? v : `${connection},${v}`;
      }
    }
    const headers = connection === undefined ? out : removeConnectionNamed(out, connection);
    this.decorate(headers);
    this.#responseHeaders = headers;
    (this.#res as ServerResponse).writeHead(statusCode, statusText, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    // hot path
    this.#bytes += chunk.length;
    const res = this.#res as ServerResponse;
    if (res.write(chunk)) return true;
    res.once('drain', this.#onDrain);
    return false;
  }

  #onDrain = (): void => {
    const resume = this.#resume;
    if (resume !== null) resume();
  };

  onComplete(): void {
    // hot path
    const endpoint = this.endpoint as UpstreamPool;
    endpoint.outstanding--;
    if (this.#finished) return;
    this.#finished = true;
    const res = this.#res as ServerResponse;
    res.end();
    this.#count(res.statusCode);
    this.#done();
  }

  onError(err: Error): void {
    const endpoint = this.endpoint as UpstreamPool;
    endpoint.outstanding--;
    if (this.#finished) return; // our own abort after the client left
    const pool = this.pool as CompiledPool;
    // A failure of the proxy's own making never counts against the endpoint (ejection, upstream
    // error metrics): issue 10, where `OPTIONS *` answered 502 ejected healthy endpoints.
    if (this.#dispatching || isRefusedRequest(err)) {
      this.#failLocally(err, pool, endpoint);
      return;
    }
    const reason = classifyUpstreamError(err);
    pool.metrics.errors[reason].inc();
    if (!this.#responseStarted) endpoint.recordFailure(); // a 5xx was counted in onHeaders
    if (this.#responseStarted) {
      // Mid-body failure: the status is sent, so cut the client connection to signal it.
      this.#finished = true;
      this.#ctx.upstreamErrorLog.record(
        { err, pool: pool.name, endpoint: endpoint.url, reason, midResponse: true },
        Date.now(),
      );
      (this.#res as ServerResponse).destroy(err);
      this.#count(502);
      this.#done();
      return;
    }
    if (
      this.#attempt === 0 &&
      (reason === 'refused' || (reason === 'reset' && this.#retry === Retry.Idempotent))
    ) {
      // The budget keeps a dead pool from doubling its upstream attempts (a retry storm).
      if (pool.retryBudget.tryAcquire(Date.now(), pool.traffic)) {
        this.#attempt = 1;
        pool.metrics.retries.inc();
        const other = pickEndpoint(pool, endpoint);
        if (other !== undefined) this.#dispatch(other, false);
        else this.#dispatch(endpoint, true);
        return;
      }
      pool.metrics.retriesDenied.inc();
    }
    this.#ctx.upstreamErrorLog.record(
      { err, pool: pool.name, endpoint: endpoint.url, reason },
      Date.now(),
    );
    this.#finished = true;
    const res = this.#res as ServerResponse;
    if (reason === 'timeout')
      this.#sendError(res, 'UPSTREAM_TIMEOUT', 'upstream did not answer in time');
    else this.#sendError(res, 'UPSTREAM_ERROR', 'upstream request failed');
    this.#done();
  }

  /**
   * Answers a failure raised before any byte left for the upstream; the endpoint is not blamed.
   */
  #failLocally(err: Error & { code?: string }, pool: CompiledPool, endpoint: UpstreamPool): void {
    this.#finished = true;
    const res = this.#res as ServerResponse;
    const fields = { err, pool: pool.name, endpoint: endpoint.url };
    if (isRefusedRequest(err)) {
      // Node's parser accepted what undici will not send: the client's request, not the endpoint.
      this.#ctx.log.debug(fields, 'request refused by the upstream client');
      this.#sendError(res, 'BAD_REQUEST', 'the request cannot be forwarded');
    } else if (err.code === 'UND_ERR_CLOSED' || err.code === 'UND_ERR_DESTROYED') {
      // #dispatch moves off retired endpoints, so only a shutdown closes a pool under a request.
      this.#sendError(res, 'CLOSED', 'the proxy is shutting down');
    } else {
      this.#ctx.log.error(fields, 'request failed before it was sent');
      this.#sendError(res, 'INTERNAL', 'internal error');
    }
    this.#done();
  }

  // TrackedConnection (drain and shutdown; never on the request path)

  /** Pool of the exchange (metric label). */
  get poolName(): string {
    return this.pool?.name ?? 'none';
  }

  /** An SSE response under way counts as long-lived; any other exchange as a request. */
  get longLived(): boolean {
    return this.#responseStarted && isEventStream(this.#responseHeaders);
  }

  /**
   * Ends a streamed response for a drain (1012) or shutdown (1001). An SSE stream is ended
   * cleanly, so EventSource clients reconnect (to the new pool); any other response still
   * streaming after drainTimeout is cut, so its client sees it incomplete rather than short.
   * At shutdown only SSE streams are ended; other responses run until the shutdown deadline.
   * A request still waiting for its response headers is left alone (returns false).
   */
  close(code: number): boolean {
    const res = this.#res;
    if (this.#finished || !this.#responseStarted || res === null) return false;
    const sse = isEventStream(this.#responseHeaders);
    if (!sse && code === SHUTDOWN_CLOSE_CODE) return false;
    this.#finished = true;
    if (sse) res.end();
    else res.destroy();
    this.#count(res.statusCode);
    this.#done();
    const abort = this.#abort;
    if (abort !== null) abort(new Error('connection drained'));
    return true;
  }

  /** Aborts the exchange at once: the client connection and the upstream request. */
  destroy(): void {
    const res = this.#res;
    if (res !== null) res.destroy();
    else this.#onClientClose();
  }

  /** Adds the proxy's own response headers. */
  decorate(headers: string[]): void {
    const ctx = this.#ctx;
    if (this.setCookie !== null) headers.push('set-cookie', this.setCookie);
    if (ctx.upstreamHeader && this.pool !== undefined)
      headers.push('x-switchyard-upstream', this.pool.upstreamHeader);
    if (ctx.shuttingDown) headers.push('connection', 'close');
  }

  #count(status: number): void {
    // hot path
    const ms = performance.now() - this.#start;
    if (this.#ctx.accessLog !== null) this.#logAccess(status, ms);
    const pool = this.pool;
    if (pool === undefined) {
      this.#ctx.unrouted.tally.record(status, ms / 1000);
      return;
    }
    pool.metrics.tally.record(status, ms / 1000);
    pool.outcomes.observe(status, ms);
  }

  /**
   * The access log line of a WebSocket upgrade (upgrade.ts): `status` 101 when the relay ends
   * (the duration is the connection's), else the answer the client got (499: it left first);
   * `bytes` written to the client's connection, frames included.
   */
  logUpgrade(status: number, bytes: number): void {
    if (this.#ctx.accessLog === null) return;
    this.#bytes = bytes;
    this.#logAccess(status, performance.now() - this.#start);
  }

  /** Writes this request's access log line, when sampled. */
  #logAccess(status: number, ms: number): void {
    const log = this.#ctx.accessLog as AccessLog;
    if (!log.sampled()) return;
    const path = this.path;
    const q = path.indexOf('?');
    const pool = this.pool;
    log.write({
      method: this.#req.method ?? '',
      path: q === -1 ? path : path.slice(0, q),
      status,
      pool: pool?.name ?? null,
      version: pool?.version ?? null,
      endpoint: this.endpoint?.url ?? null,
      durationMs: Math.round(ms * 1000) / 1000,
      bytes: this.#bytes,
      sticky: this.#how,
      rule: this.#rule,
      retry: this.#attempt !== 0,
    });
  }

  /** Answers the client with the proxy's error `code` and counts it under its status. */
  #sendError(res: ServerResponse, code: ErrorCode, message: string, close = false): void {
    const headers: string[] = [];
    this.decorate(headers);
    if (close && !this.#ctx.shuttingDown) headers.push('connection', 'close');
    this.#count(writeProxyError(res, code, message, headers));
  }

  /**
   * Records (and for HTTP, sends) a proxy-made error before forwarding; `close` ends the client
   * connection after the answer.
   */
  fail(code: ErrorCode, message: string, close = false): Routed {
    this.#finished = true;
    this.errorStatus = ERROR_CODES[code];
    this.errorCode = code;
    this.errorMessage = message;
    const res = this.#res;
    if (res !== null) {
      // The request body will never be read: let Node discard it so the socket can be reused.
      this.#req.resume();
      this.#sendError(res, code, message, close);
    }
    return Routed.Failed;
  }
}

function isEventStream(headers: string[] | null): boolean {
  if (headers === null) return false;
  for (let i = 0; i < headers.length; i += 2) {
    if ((headers[i] as string).toLowerCase() === 'content-type')
      return (headers[i + 1] as string).toLowerCase().startsWith('text/event-stream');
  }
  return false;
}

function lastListItem(list: string): string {
  const i = list.lastIndexOf(',');
  return (i === -1 ? list : list.slice(i + 1)).trim();
}
