/**
 * A test client for the admin event stream (GET /v1/events): reads it with fetch() the way the
 * dashboard does, parses the frames, and lets a test wait for an event matching a predicate.
 */

/** One parsed server-sent event. */
export interface SseEvent {
  readonly event: string;
  readonly data: unknown;
  /** performance.now() when the frame was parsed. */
  readonly at: number;
}

/** An open stream. */
export interface SseClient {
  readonly status: number;
  readonly headers: Headers;
  /** Every event so far, oldest first. */
  readonly events: SseEvent[];
  /** The `retry:` value the server sent, if any. */
  retryMs(): number | null;
  /** Resolves when the stream has ended (server closed it). */
  readonly ended: Promise<void>;
  /** The first event (from index `from` on) named `event` for which `match` holds. */
  next(
    event: string,
    match?: (data: unknown) => boolean,
    options?: { from?: number; timeoutMs?: number },
  ): Promise<SseEvent>;
  close(): void;
}

/** Opens `url` (the /v1/events URL) with optional bearer `token`. */
export async function openEvents(url: string, token?: string): Promise<SseClient> {
  const abort = new AbortController();
  const res = await fetch(url, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    signal: abort.signal,
  });
  const events: SseEvent[] = [];
  let retry: number | null = null;
  const waiters = new Set<() => void>();
  const notify = (): void => {
    for (const w of waiters) w();
  };
  let ended = false;
  const done = (async () => {
    if (res.body === null) return;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const { value, done: finished } = await reader.read();
        if (finished) break;
        buffer += value;
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let name = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'event') name = value;
            else if (field === 'data') data.push(value);
            else if (field === 'retry') retry = Number(value);
          }
          if (data.length > 0) {
            events.push({ event: name, data: JSON.parse(data.join('\n')), at: performance.now() });
            notify();
          }
        }
      }
    } catch {
      // aborted by close(), or the connection was cut
    } finally {
      ended = true;
      notify();
    }
  })();
  return {
    status: res.status,
    headers: res.headers,
    events,
    retryMs: () => retry,
    ended: done,
    next(event, match = () => true, options = {}) {
      const from = options.from ?? 0;
      const timeoutMs = options.timeoutMs ?? 10_000;
      return new Promise<SseEvent>((resolve, reject) => {
        const check = (): void => {
          const found = events.slice(from).find((e) => e.event === event && match(e.data));
          if (found !== undefined) {
            finish();
            resolve(found);
          } else if (ended) {
            finish();
            reject(new Error(`event stream ended before a matching "${event}" event`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`no matching "${event}" event within ${timeoutMs} ms`));
        }, timeoutMs);
        const finish = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    close: () => abort.abort(),
  };
}
