import { Pool } from 'undici';
import { forwardableHeaderObject, forwardableRawHeaders, hasRequestBody } from './hop-by-hop.js';
import { serveAndReport, upstreamArgument } from './serve.js';

// undici Pool.stream: the response body is written straight into the ServerResponse.
const pool = new Pool(upstreamArgument().origin, { keepAliveTimeout: 60_000 });

await serveAndReport((req, res) => {
  pool
    .stream(
      {
        path: req.url ?? '/',
        method: req.method as 'GET',
        headers: forwardableRawHeaders(req.rawHeaders),
        body: hasRequestBody(req.headers) ? req : null,
      },
      ({ statusCode, headers }) => {
        res.writeHead(statusCode, forwardableHeaderObject(headers));
        return res;
      },
    )
    .catch(() => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end('{"error":{"code":"UPSTREAM_ERROR"}}');
      } else {
        res.destroy();
      }
    });
});
