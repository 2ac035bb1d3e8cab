/**
 * Upstream keep-alive hygiene (issue 5): upstreams close idle sockets (many after 1 s); the
 * proxy must never fail a request because it reused a socket the upstream was closing. Clients
 * pause about 1 s (900-1100 ms) between requests, so the proxy's reuse of an upstream socket
 * lands right around the upstream's idle deadline; GET and POST must all succeed.
 */
import { createServer, type Server } from 'node:http';
import { describe, expect, test } from 'vitest';
import { startLoad, type LoadRequest } from '../helpers/keepalive-load.js';
import { readMetric } from '../helpers/metrics.js';
import { makeTable, startProxy, startReference } from '../helpers/reference.js';
import { closeAfterEach, listenOnLoopback } from '../helpers/closers.js';

const BLUE = '1111111';
const CLIENTS = 6;
const REQUESTS_PER_CLIENT = 12;

const closers = closeAfterEach();

const requests: LoadRequest[] = [
  { method: 'GET', path: '/get' },
  { method: 'POST', path: '/echo', body: '{"order":1}' },
];
const pause = (): number => 900 + Math.random() * 200;

/**
 * An upstream with a 1 s keep-alive that sends no `Keep-Alive: timeout` hint (setting the
 * Connection header ourselves stops Node from adding it), as many non-Node servers do.
 */
async function hintlessUpstream(): Promise<{ url: string; reused: () => number }> {
  let requestsSeen = 0;
  let connections = 0;
  const server: Server = createServer((req, res) => {
    requestsSeen++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.setHeader('connection', 'keep-alive');
      res.setHeader('content-type', 'application/json');
      res.end(body.length > 0 ? body : '{"ok":true}');
    });
  });
  server.keepAliveTimeout = 1_000;
  server.on('connection', () => connections++);
  const origin = await listenOnLoopback(server, closers);
  return {
    url: origin,
    reused: () => requestsSeen - connections,
  };
}

describe('upstream keep-alive races', () => {
  test('upstream with a 1 s keep-alive (Keep-Alive hint) and clients pausing ~1 s: zero failed GET and POST', async () => {
    const blue = await startReference({ pool: 'blue', version: BLUE, keepAliveTimeout: 1_000 });
    closers.push(blue.close);
    const p = await startProxy(
      { upstreamHeader: true },
      makeTable({ blue: { version: BLUE, endpoints: [blue.url], weight: 10000 } }),
    );
    closers.push(p.close);
    const load = startLoad({
      origin: p.url,
      clients: CLIENTS,
      requests,
      pauseMs: pause,
      maxRequestsPerClient: REQUESTS_PER_CLIENT,
    });
    const result = await load.finished;
    console.log(`1 s upstream keep-alive with hint: ${result.ok} ok, ${result.failed} failed`);
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(CLIENTS * REQUESTS_PER_CLIENT);
    expect(await readMetric(p.metrics, 'switchyard_retries_total')).toBe(0);
  });

  test('upstream with a 1 s keep-alive and no hint, upstreamKeepAliveTimeout 500 ms: zero failed GET and POST', async () => {
    const up = await hintlessUpstream();
    const p = await startProxy(
      { upstreamKeepAliveTimeout: 500 },
      makeTable({ blue: { version: BLUE, endpoints: [up.url], weight: 10000 } }),
    );
    closers.push(p.close);
    const load = startLoad({
      origin: p.url,
      clients: CLIENTS,
      requests,
      pauseMs: pause,
      maxRequestsPerClient: REQUESTS_PER_CLIENT,
    });
    const result = await load.finished;
    console.log(
      `1 s upstream keep-alive without hint: ${result.ok} ok, ${result.failed} failed, ${up.reused()} upstream socket reuses`,
    );
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(CLIENTS * REQUESTS_PER_CLIENT);
    expect(await readMetric(p.metrics, 'switchyard_retries_total')).toBe(0);
  });
});
