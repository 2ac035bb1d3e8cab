/**
 * Bounded steady load for cutover and shutdown tests: a few keep-alive clients, each one undici
 * Client (one connection, no automatic retries) looping requests until stopped. Every answer
 * other than 2xx and every transport error counts as a failure, with its detail kept.
 */
import { Client } from 'undici';

/** One request of the loop. */
export interface LoadRequest {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
}

/** Options of startLoad(). */
export interface LoadOptions {
  /** `http://host:port` to send to. */
  origin: string;
  /** Number of keep-alive clients (default 4). */
  clients?: number;
  /** Requests each client cycles through (default GET /). */
  requests?: readonly LoadRequest[];
  /** Pause between two requests of one client, in ms (default 0); a function varies it. */
  pauseMs?: number | (() => number);
  /** Stop each client after this many requests (default unlimited). */
  maxRequestsPerClient?: number;
}

/** What a load run saw. */
export interface LoadResult {
  ok: number;
  failed: number;
  failures: string[];
  /** Successful answers per `x-switchyard-upstream` pool (or `?`). */
  byPool: Record<string, number>;
  /** Answers that carried `Connection: close`. */
  connectionClose: number;
}

/** A running load. */
export interface RunningLoad {
  /** Stops sending new requests; resolves when every client has its last answer. */
  stop(): Promise<LoadResult>;
  /** Resolves when every client reached maxRequestsPerClient (or stop()). */
  finished: Promise<LoadResult>;
  /** Results so far. */
  readonly result: LoadResult;
}

/** Starts `clients` keep-alive loops against `origin`. */
export function startLoad(options: LoadOptions): RunningLoad {
  const result: LoadResult = { ok: 0, failed: 0, failures: [], byPool: {}, connectionClose: 0 };
  const requests = options.requests ?? [{ method: 'GET', path: '/' }];
  let stopped = false;
  const pause = (): number =>
    typeof options.pauseMs === 'function' ? options.pauseMs() : (options.pauseMs ?? 0);
  const loops: Promise<void>[] = [];
  for (let c = 0; c < (options.clients ?? 4); c++) {
    loops.push(
      (async () => {
        const client = new Client(options.origin, { pipelining: 1 });
        try {
          for (let i = 0; !stopped; i++) {
            if (options.maxRequestsPerClient !== undefined && i >= options.maxRequestsPerClient)
              break;
            const r = requests[i % requests.length] as LoadRequest;
            try {
              const res = await client.request({
                method: r.method,
                path: r.path,
                ...(r.body === undefined
                  ? {}
                  : { body: r.body, headers: { 'content-type': 'application/json' } }),
              });
              const text = await res.body.text();
              if (res.headers.connection === 'close') result.connectionClose++;
              if (res.statusCode >= 200 && res.statusCode < 300) {
                result.ok++;
                const up = res.headers['x-switchyard-upstream'];
                const pool = typeof up === 'string' ? (up.split('@')[0] as string) : '?';
                result.byPool[pool] = (result.byPool[pool] ?? 0) + 1;
              } else {
                result.failed++;
                result.failures.push(
                  `${r.method} ${r.path}: ${res.statusCode} ${text.slice(0, 200)}`,
                );
              }
            } catch (err) {
              result.failed++;
              const e = err as Error & { code?: string };
              result.failures.push(`${r.method} ${r.path}: ${e.code ?? ''} ${e.message}`);
            }
            const ms = pause();
            if (ms > 0 && !stopped) await new Promise((resolve) => setTimeout(resolve, ms));
          }
        } finally {
          await client.close().catch(() => undefined);
        }
      })(),
    );
  }
  const finished = Promise.all(loops).then(() => result);
  return {
    result,
    finished,
    async stop() {
      stopped = true;
      return finished;
    },
  };
}
