#!/usr/bin/env node
// A tiny release-webhook receiver for Switchyard rollouts (docs/releasing.md): a `pre-rollout`
// (or `pre-step`) gate that smoke-tests the new version through the proxy before any user
// traffic moves to it. It sends each SMOKE_PATHS request with the override headers
// (x-switchyard-pool: <target pool>, x-switchyard-token), so only the smoke test reaches the
// target, and answers 204 when every one passed, 502 (with the reason) when one failed; the
// rollout aborts on anything but a 2xx. Other events are acknowledged (204) and logged.
//
// Every call is checked against SWITCHYARD_WEBHOOK_SECRET (X-Switchyard-Signature:
// sha256=<hex HMAC-SHA256 of the body>); a wrong or missing signature is 401.
//
// Environment:
//   SWITCHYARD_WEBHOOK_SECRET  required: the proxy's secret
//   SMOKE_PROXY_URL            required: the Switchyard proxy, e.g. http://switchyard:8080
//   SWITCHYARD_OVERRIDE_TOKEN  required: the proxy's override token (enables the override header)
//   SMOKE_PATHS                paths to GET, space-separated (default "/")
//   SMOKE_TIMEOUT              per request, milliseconds (default 3000: under the hook's 5s)
//   HOST, PORT                 where to listen (default 127.0.0.1:8787; PORT=0 picks one)
//
// No dependencies: `node smoke-gate.mjs` with Node 20 or later.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

const MAX_BODY_BYTES = 1 << 20;

const env = process.env;
for (const name of ['SWITCHYARD_WEBHOOK_SECRET', 'SMOKE_PROXY_URL', 'SWITCHYARD_OVERRIDE_TOKEN']) {
  if (!env[name]) {
    process.stderr.write(`smoke-gate: ${name} must be set\n`);
    process.exit(2);
  }
}
const secret = env.SWITCHYARD_WEBHOOK_SECRET;
const proxyUrl = env.SMOKE_PROXY_URL.replace(/\/+$/, '');
const overrideToken = env.SWITCHYARD_OVERRIDE_TOKEN;
const paths = (env.SMOKE_PATHS ?? '/').split(/\s+/).filter(Boolean);
const timeoutMs = Number(env.SMOKE_TIMEOUT ?? 3000);

const log = (fields) =>
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`);

/** True when `header` is sha256=<hex HMAC of body>, compared in constant time. */
function signatureValid(header, body) {
  if (typeof header !== 'string') return false;
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
  const given = Buffer.from(header);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** GETs every smoke path on `pool` through the proxy; null when all passed, else the reason. */
async function smokeTest(pool, version) {
  for (const path of paths) {
    let res;
    try {
      res = await fetch(`${proxyUrl}${path}`, {
        headers: { 'x-switchyard-pool': pool, 'x-switchyard-token': overrideToken },
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.arrayBuffer();
    } catch (err) {
      return `GET ${path}: ${err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : err.message}`;
    }
    if (res.status < 200 || res.status >= 300) return `GET ${path}: ${res.status}`;
    // With upstreamHeader on (the default) the proxy says who answered: make sure the override
    // took effect, or the test would have passed on the old version.
    const upstream = res.headers.get('x-switchyard-upstream');
    if (upstream !== null && !upstream.startsWith(`${pool}@`)) {
      return `GET ${path}: answered by ${upstream}, not ${pool}@${version} (is the override token right?)`;
    }
  }
  return null;
}

async function handle(req, res) {
  if (req.method !== 'POST') return res.writeHead(405, { allow: 'POST' }).end();
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return res.writeHead(413).end();
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks);
  if (!signatureValid(req.headers['x-switchyard-signature'], body)) {
    log({ msg: 'refused: bad signature' });
    return res.writeHead(401).end('bad signature\n');
  }
  const { event, rollout } = JSON.parse(body.toString('utf8'));
  if (event !== 'pre-rollout' && event !== 'pre-step') {
    log({ msg: 'event', event, rollout: rollout?.id, phase: rollout?.phase });
    return res.writeHead(204).end();
  }
  const problem = await smokeTest(rollout.pool, rollout.version);
  log({
    msg: problem === null ? 'smoke test passed' : 'smoke test failed',
    event,
    pool: rollout.pool,
    problem,
  });
  if (problem === null) return res.writeHead(204).end();
  return res.writeHead(502, { 'content-type': 'text/plain' }).end(`${problem}\n`);
}

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    log({ msg: 'failed', err: err.message });
    if (!res.headersSent) res.writeHead(400);
    res.end();
  });
});
server.listen(Number(env.PORT ?? 8787), env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address();
  log({
    msg: 'listening',
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
  });
});
for (const signal of ['SIGTERM', 'SIGINT'])
  process.on(signal, () => server.close(() => process.exit(0)));
