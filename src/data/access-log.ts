/**
 * The access log (issue 15): one JSON line per proxied request, through its own pino instance
 * and an asynchronous destination (stdout or a file), apart from the app log. Off unless
 * `accessLog` is set; `accessLogSample` keeps a share of the lines. Writing never blocks the
 * request path: pino's SonicBoom buffers and writes in the background; close() flushes it.
 */
import { once } from 'node:events';
import { pino, type Logger } from 'pino';

/** Settings of the access log. */
export interface AccessLogOptions {
  /** `stdout`, or a file path (appended to, created when missing). */
  readonly destination: string;
  /** Share of requests written, 0..1 (1 = all). */
  readonly sample: number;
}

/** One access log line (the `time` field is added by pino, ISO-8601). */
export interface AccessLogEntry {
  readonly method: string;
  /** The request path without the query (queries often carry tokens). */
  readonly path: string;
  readonly status: number;
  /** Pool, version and endpoint that answered; null when the proxy answered by itself. */
  readonly pool: string | null;
  readonly version: string | null;
  readonly endpoint: string | null;
  /** Time from the request's start to the end of its answer, in ms (three decimals). */
  readonly durationMs: number;
  /** Response body bytes relayed to the client (proxy-made answers: 0). */
  readonly bytes: number;
  /**
   * How the pool was chosen: `cookie` (sticky cookie sent), `new-cookie` (none sent: a new id
   * was set), `header`, `client-address`, `rule`, `override`, or null when no pool was chosen.
   */
  readonly sticky: string | null;
  /** Name of the routing rule that chose the pool, or null. */
  readonly rule: string | null;
  /** True when the request was retried once (another endpoint or a fresh connection). */
  readonly retry: boolean;
}

type State = 'idle' | 'running' | 'closing' | 'closed';

/** The access log writer of one ProxyServer. */
export class AccessLog {
  readonly #options: AccessLogOptions;
  #destination: ReturnType<typeof pino.destination> | undefined;
  #logger: Logger | undefined;
  #state: State = 'idle';
  #closing: Promise<void> | undefined;

  constructor(options: AccessLogOptions) {
    if (!(options.sample >= 0 && options.sample <= 1)) {
      throw new RangeError(`accessLogSample: ${options.sample} must be 0..1`);
    }
    this.#options = options;
  }

  /** Opens the destination; rejects when the file cannot be opened. Throws if called twice. */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error('AccessLog.start() called twice');
    const toStdout = this.#options.destination === 'stdout';
    const destination = pino.destination({
      dest: toStdout ? 1 : this.#options.destination,
      sync: false,
      append: true,
    });
    this.#destination = destination;
    if (!toStdout) {
      const [outcome] = (await Promise.race([
        once(destination, 'ready').then(() => ['ready']),
        once(destination, 'error'),
      ])) as [unknown];
      if (outcome !== 'ready') {
        this.#state = 'closed';
        const reason = outcome instanceof Error ? outcome.message : String(outcome);
        throw new Error(`accessLog: cannot open ${this.#options.destination}: ${reason}`);
      }
    }
    this.#logger = pino(
      {
        base: null,
        // An access line has no level: every line is one request. pino writes `{`, the level,
        // then the timestamp text, which therefore starts without the usual comma; the test
        // (access-log.test.ts) parses every line, so a pino change here cannot go unnoticed.
        formatters: { level: () => ({}) },
        timestamp: () => `"time":"${new Date().toISOString()}"`,
      },
      destination,
    );
    this.#state = 'running';
  }

  /** True when this request's line should be written (sampling); false once closing. */
  sampled(): boolean {
    // hot path
    if (this.#state !== 'running') return false;
    const s = this.#options.sample;
    return s >= 1 || Math.random() < s;
  }

  /** Writes one line (call only after sampled() said yes). */
  write(entry: AccessLogEntry): void {
    this.#logger?.info(entry);
  }

  /** Flushes what is buffered and closes the file (stdout stays open). Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const destination = this.#destination;
    if (this.#state !== 'running' || destination === undefined) {
      this.#state = 'closed';
      return;
    }
    this.#state = 'closing';
    const closed = once(destination, 'close');
    destination.end();
    await closed;
    this.#state = 'closed';
  }
}
