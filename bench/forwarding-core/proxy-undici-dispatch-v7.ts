import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { forwardableHeaderObject, forwardableRawHeaders, hasRequestBody } from './hop-by-hop.js';
import { serveAndReport, upstreamArgument } from './serve.js';

// undici Pool.dispatch with a hand-written handler on the undici 7 controller API
// (onRequestStart/onResponseStart/... with controller.pause()/resume()).
const pool = new Pool(upstreamArgument().origin, { keepAliveTimeout: 60_000 });

class ForwardHandler implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse;
  #controller: Dispatcher.DispatchController | undefined;
  #done = false;

  constructor(res: ServerResponse) {
    this.#res = res;
    res.once('close', () => {
      if (!this.#done) this.#controller?.abort(new Error('client closed'));
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200) return;
    this.#res.writeHead(statusCode, forwardableHeaderObject(headers));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#res.write(chunk)) return;
    controller.pause();
    this.#res.once('drain', () => controller.resume());
  }

  onResponseEnd(): void {
    this.#done = true;
    this.#res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, _error: Error): void {
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
