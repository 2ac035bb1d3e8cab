import autocannon from 'autocannon';

/** One autocannon run, reduced to the figures the bench reports. */
export interface LoadResult {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Completed responses. */
  total: number;
  non2xx: number;
  /** Socket errors, timeouts included. */
  errors: number;
  timeouts: number;
  durationS: number;
}

/** Options for {@link runLoad}. */
export interface LoadOptions {
  url: string;
  connections: number;
  durationS: number;
  headers?: Record<string, string>;
  /** Replace `[<id>]` in headers with a fresh id per request (autocannon `idReplacement`). */
  idReplacement?: boolean;
  /** Per-connection customisation (e.g. a distinct sticky key per connection). */
  setupClient?: autocannon.Options['setupClient'];
  /** Called with each response's status and raw headers `[name, value, ...]` (e.g. to count pools). */
  onHeaders?: (statusCode: number, rawHeaders: readonly string[]) => void;
}

/** Response durations in ms, grown in chunks to avoid per-sample allocation. */
class LatencyRecorder {
  #values = new Float64Array(1 << 16);
  #count = 0;

  record(ms: number): void {
    if (this.#count === this.#values.length) {
      const bigger = new Float64Array(this.#values.length * 2);
      bigger.set(this.#values);
      this.#values = bigger;
    }
    this.#values[this.#count++] = ms;
  }

  percentile(p: number): number {
    if (this.#count === 0) return Number.NaN;
    const sorted = this.#values.subarray(0, this.#count).sort();
    const rank = Math.min(this.#count - 1, Math.max(0, Math.ceil((p / 100) * this.#count) - 1));
    return sorted[rank] ?? Number.NaN;
  }
}

interface ParserHeaders {
  statusCode: number;
  headers: string[];
}

/** Runs autocannon against `url` for `durationS` seconds. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const opts: autocannon.Options = {
    url: options.url,
    connections: options.connections,
    duration: options.durationS,
    ...(options.headers === undefined ? {} : { headers: options.headers }),
    ...(options.idReplacement === true ? { idReplacement: true } : {}),
  };
  const onHeaders = options.onHeaders;
  // autocannon's own latency histogram keeps whole milliseconds; sub-millisecond p50s matter
  // here (the target is "added p50 <= 1.5 ms"), so record every response's hrtime duration.
  const latencies = new LatencyRecorder();
  opts.setupClient = (client) => {
    options.setupClient?.(client);
    // Untyped in @types/autocannon: 'response' carries (statusCode, bytes, durationMs, rate).
    (client as unknown as NodeJS.EventEmitter).on(
      'response',
      (_status: number, _bytes: number, ms: number) => {
        latencies.record(ms);
      },
    );
    if (onHeaders !== undefined) {
      // Untyped in @types/autocannon: the client re-emits llhttp's headers-complete info.
      (client as unknown as NodeJS.EventEmitter).on('headers', (info: ParserHeaders) => {
        onHeaders(info.statusCode, info.headers);
      });
    }
  };
  const result = await autocannon(opts);
  return {
    requestsPerSec: result.requests.total / result.duration,
    p50Ms: latencies.percentile(50),
    p99Ms: latencies.percentile(99),
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    durationS: result.duration,
  };
}
