/**
 * Traffic mirroring (SPEC §12): a share of the requests is copied to the mirror pool,
 * fire-and-forget. The copy leaves after the real request has been dispatched, and nothing on
 * the client's path waits for it: its answer is read and discarded, counted apart from real
 * traffic (switchyard_mirror_* metrics, never the pool tallies, traffic window or the rollout
 * judge's outcomes), and it never touches the endpoint's health, outstanding count or drain
 * list. At most `concurrency` copies are in flight; beyond that a copy is dropped and counted.
 */
import type { Dispatcher } from 'undici';
import type { Counter, Histogram } from 'prom-client';
import type { Metrics } from '../observability/metrics.js';
import { compileMatches, type RuleRequest } from '../table/rule-match.js';
import { TOTAL_BASIS_POINTS, type TrafficMirror } from '../table/types.js';
import type { CompiledPool } from './router.js';
import type { UpstreamPool } from './upstream-pool.js';

/** Header every mirrored request carries, so the mirror target can tell copies apart. */
export const MIRROR_HEADER = 'x-switchyard-mirror';

/** Why a copy was not sent (`reason` label of switchyard_mirror_dropped_total). */
export type MirrorDropReason = 'queue_full' | 'body_too_large' | 'no_endpoint';

/** The mirror of one compiled snapshot. */
export interface CompiledMirror {
  readonly pool: CompiledPool;
  readonly basisPoints: number;
  readonly methods: readonly string[];
  /** The mirror's `match`, or null when it copies every request of its methods. */
  readonly test: ((req: RuleRequest) => boolean) | null;
  /**
   * Share accumulator: each eligible request adds basisPoints, and one is copied each time it
   * passes 10000, so the copied share is exact (not random) and a 100 % mirror copies all.
   */
  acc: number;
  /** Round-robin position over the mirror pool's endpoints. */
  rr: number;
}

/** Compiles the table's mirror against its compiled pools; null when there is none. */
export function compileMirror(
  mirror: TrafficMirror | undefined,
  pools: ReadonlyMap<string, CompiledPool>,
): CompiledMirror | null {
  if (mirror === undefined) return null;
  const pool = pools.get(mirror.pool);
  // Validation keeps the mirror's pool in the table; were it gone, nothing would be copied.
  if (pool === undefined) return null;
  return {
    pool,
    basisPoints: mirror.basisPoints,
    methods: mirror.methods,
    test: mirror.match === undefined ? null : compileMatches(mirror.match, 'mirror.match'),
    acc: 0,
    rr: 0,
  };
}

/** Limits of the mirror sender. */
export interface MirrorOptions {
  /** Copies in flight at most; more are dropped (`queue_full`). */
  readonly concurrency: number;
  /** Largest request body copied; a larger or unsized body is not mirrored (`body_too_large`). */
  readonly maxBodyBytes: number;
  /** A copy still running after this many ms is aborted (outcome `timeout`). */
  readonly timeoutMs: number;
}

/** What a request does about the mirror (ProxyExchange.route). */
export const enum MirrorChoice {
  /** Not copied. */
  None = 0,
  /** Copied; it has no body. */
  Copy = 1,
  /** Copied once its (small, sized) body has been read into memory. */
  CopyWithBody = 2,
}

/** Sends mirrored requests and counts them. One per ProxyServer. */
export class MirrorSender {
  readonly #options: MirrorOptions;
  readonly #requests: Counter<'pool' | 'outcome'>;
  readonly #duration: Histogram<'pool'>;
  readonly #metrics: Metrics;
  readonly #dropped: Readonly<Record<MirrorDropReason, { inc(): void }>>;
  #inFlight = 0;
  #closed = false;

  constructor(options: MirrorOptions, metrics: Metrics) {
    this.#options = options;
    this.#metrics = metrics;
    this.#requests = metrics.mirrorRequests;
    this.#duration = metrics.mirrorDuration;
    this.#dropped = {
      queue_full: metrics.mirrorDropped.labels('queue_full'),
      body_too_large: metrics.mirrorDropped.labels('body_too_large'),
      no_endpoint: metrics.mirrorDropped.labels('no_endpoint'),
    };
  }

  /** Copies in flight now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Decides whether a request routed to `primary` is copied: its method is mirrored, it is not
   * already going to the mirror pool, the mirror's match holds, its turn in the share has come,
   * and its body (if any) is sized and small enough. `view` builds the rule view when needed.
   */
  choose(
    m: CompiledMirror,
    method: string,
    primary: CompiledPool,
    view: () => RuleRequest,
    hasBody: boolean,
    chunked: boolean,
    contentLength: string | undefined,
  ): MirrorChoice {
    if (!m.methods.includes(method) || primary === m.pool) return MirrorChoice.None;
    if (m.test !== null && !m.test(view())) return MirrorChoice.None;
    const acc = m.acc + m.basisPoints;
    if (acc < TOTAL_BASIS_POINTS) {
      m.acc = acc;
      return MirrorChoice.None;
    }
    m.acc = acc - TOTAL_BASIS_POINTS;
    if (!hasBody) return MirrorChoice.Copy;
    if (chunked || !(Number(contentLength) <= this.#options.maxBodyBytes)) {
      this.#dropped.body_too_large.inc();
      return MirrorChoice.None;
    }
    return MirrorChoice.CopyWithBody;
  }

  /**
   * Sends one copy: `headers` is the forwarded header list (copied here, with the mirror header
   * added), `body` the held body or null. Never throws, never waits.
   */
  send(
    m: CompiledMirror,
    method: string,
    path: string,
    headers: readonly string[],
    body: Buffer | null,
  ): void {
    if (this.#closed) return;
    if (this.#inFlight >= this.#options.concurrency) {
      this.#dropped.queue_full.inc();
      return;
    }
    const endpoint = pickMirrorEndpoint(m);
    if (endpoint === undefined) {
      this.#dropped.no_endpoint.inc();
      return;
    }
    const copy = headers.slice();
    copy.push(MIRROR_HEADER, '1');
    this.#inFlight++;
    this.#metrics.mirrorInFlight.set(this.#inFlight);
    const request = new MirrorRequest(this, m.pool.name, this.#options.timeoutMs);
    // `servername` is read by undici's core but missing from its DispatchOptions type.
    const opts: Dispatcher.DispatchOptions & { servername: string | undefined } = {
      origin: endpoint.origin,
      path,
      method: method,
      headers: copy,
      body,
      servername: endpoint.servername,
    };
    try {
      endpoint.dispatch(opts, request);
    } catch {
      // A closed pool (the proxy is closing): counted as an error like any failed copy.
      request.onError();
    }
  }

  /** Counts a finished copy (MirrorRequest calls it once). */
  finished(pool: string, outcome: string, seconds: number): void {
    this.#inFlight--;
    this.#metrics.mirrorInFlight.set(this.#inFlight);
    this.#requests.inc({ pool, outcome });
    this.#duration.observe({ pool }, seconds);
  }

  /** No copy is sent after this; copies in flight end with their endpoints' pools. */
  close(): void {
    this.#closed = true;
  }
}

/** The next healthy endpoint of the mirror pool, round robin; undefined when none. */
function pickMirrorEndpoint(m: CompiledMirror): UpstreamPool | undefined {
  const eps = m.pool.endpoints;
  const n = eps.length;
  for (let k = 0; k < n; k++) {
    const i = (m.rr + k) % n;
    const e = eps[i] as UpstreamPool;
    if (e.healthy && !e.retired && !e.ownListener) {
      m.rr = i + 1 >= n ? 0 : i + 1;
      return e;
    }
  }
  return undefined;
}

/** One mirrored request: an undici handler that discards the answer and counts its outcome. */
class MirrorRequest implements Dispatcher.DispatchHandler {
  readonly #sender: MirrorSender;
  readonly #pool: string;
  readonly #start = performance.now();
  readonly #timer: NodeJS.Timeout;
  #abort: ((err?: Error) => void) | null = null;
  #status = 0;
  #timedOut = false;
  #done = false;

  constructor(sender: MirrorSender, pool: string, timeoutMs: number) {
    this.#sender = sender;
    this.#pool = pool;
    this.#timer = setTimeout(this.#onTimeout, timeoutMs);
    this.#timer.unref();
  }

  #onTimeout = (): void => {
    this.#timedOut = true;
    const abort = this.#abort;
    if (abort !== null) abort(new Error('mirrored request timed out'));
  };

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#timedOut) abort(new Error('mirrored request timed out'));
  }

  onHeaders(statusCode: number): boolean {
    if (statusCode >= 200) this.#status = statusCode;
    return true;
  }

  onData(): boolean {
    return true;
  }

  onComplete(): void {
    const c = (this.#status / 100) | 0;
    this.#finish(c >= 1 && c <= 5 ? `${c}xx` : 'error');
  }

  onError(): void {
    this.#finish(this.#timedOut ? 'timeout' : 'error');
  }

  #finish(outcome: string): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#timer);
    this.#sender.finished(this.#pool, outcome, (performance.now() - this.#start) / 1000);
  }
}
