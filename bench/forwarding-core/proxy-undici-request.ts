import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';
import { forwardableHeaderObject, forwardableRawHeaders, hasRequestBody } from './hop-by-hop.js';
import { serveAndReport, upstreamArgument } from './serve.js';

// undici Pool.request + stream.pipeline: the high-level promise API.
const pool = new Pool(upstreamArgument().origin, { keepAliveTimeout: 60_000 });

await serveAndReport((req, res) => {
  void (async () => {
    try {
      const upstream = await pool.request({
        path: req.url ?? '/',
        method: req.method as 'GET',
        headers: forwardableRawHeaders(req.rawHeaders),
        body: hasRequestBody(req.headers) ? req : null,
      });
      res.writeHead(upstream.statusCode, forwardableHeaderObject(upstream.headers));
      await pipeline(upstream.body, res);
    } catch {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end('{"error":{"code":"UPSTREAM_ERROR"}}');
      } else {
        res.destroy();
      }
    }
  })();
});
