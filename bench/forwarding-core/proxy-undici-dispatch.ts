import type { IncomingMessage, ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import {
  forwardableRawBufferHeaders,
  forwardableRawHeaders,
  hasRequestBody,
} from './hop-by-hop.js';
import { serveAndReport, upstreamArgument } from './serve.js';

// undici Pool.dispatch with a hand-written handler on the raw (legacy) callbacks: no promise,
// no intermediate stream, raw header buffers (the v7 controller API wraps these and parses
// headers into an object first; see proxy-undici-dispatch-v7.ts).
const pool = new Pool(upstreamArgument().origin, { keepAliveTimeout: 60_000 });

class ForwardHandler implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #done = false;

  constructor(res: ServerResponse) {
    this.#res = res;
    res.once('close', () => {
      if (!this.#done) this.#abort?.(new Error('client closed'));
    });
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
  }

  onHeaders(statusCode: number, headers: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true;
    this.#resume = resume;
    this.#res.writeHead(statusCode, forwardableRawBufferHeaders(headers));
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#res.write(chunk)) return true;
    this.#res.once('drain', () => this.#resume?.());
    return false;
  }

  onComplete(): void {
    this.#done = true;
    this.#res.end();
  }

  onError(): void {
    this.#done = true;
    if (this.#res.headersSent) {
      this.#res.destroy();
      return;
    }
    this.#res.writeHead(502, { 'content-type': 'application/json' });
    this.#res.end('{"error":{"code":"UPSTREAM_ERROR"}}');
  }
}

await serveAndReport((req: IncomingMessage, res: ServerResponse) => {
  pool.dispatch(
    {
      path: req.url ?? '/',
      method: req.method as 'GET',
      headers: forwardableRawHeaders(req.rawHeaders),
      body: hasRequestBody(req.headers) ? req : null,
    },
    new ForwardHandler(res),
  );
});
