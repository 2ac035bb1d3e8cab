/**
 * Client aborts and upstream resets (issue 5): when a client goes away mid-flight the upstream
 * request is aborted promptly and nothing leaks: after 10,000 aborted requests the upstream has
 * no open request, and heap, file descriptors and the proxy's in-flight count are back to
 * baseline. An upstream that resets mid-body gives the client an aborted response, and the proxy
 * keeps serving.
 */
import { request as httpRequest, createServer, type ClientRequest } from 'node:http';
import { readdirSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, test } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { makeTable, startProxy } from '../helpers/reference.js';
import { closeAfterEach } from '../helpers/closers.js';

const BLUE = '1111111';
const TOTAL = 10_000;
const BATCH = 200;

const closers = closeAfterEach();

/** V8's gc(), exposed at run time (vitest workers do not get --expose-gc). */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/**
 * An upstream that never finishes: /hold never answers, /drip sends headers and a chunk every
 * 50 ms, /reset sends headers and part of a body then resets the socket. Counts open requests.
 */
async function stuckUpstream(): Promise<{
  url: string;
  open: () => number;
  seen: () => number;
  connections: () => Promise<number>;
}> {
  let open = 0;
  let seen = 0;
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    open++;
    seen++;
    res.on('close', () => open--);
    req.resume();
    if (req.url === '/drip') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('x'.repeat(1024));
      const t = setInterval(() => res.write('x'.repeat(1024)), 50);
      res.on('close', () => clearInterval(t));
    } else if (req.url === '/reset') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100000' });
      res.write('x'.repeat(30_000), () => setTimeout(() => req.socket.resetAndDestroy(), 20));
    } else if (req.url === '/reset-chunked') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('x'.repeat(30_000), () => setTimeout(() => req.socket.resetAndDestroy(), 20));
    } else if (req.url === '/ok') {
      res.end('ok');
    }
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    open: () => open,
    seen: () => seen,
    connections: () =>
      new Promise((resolve, reject) =>
        server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
      ),
  };
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Sends `n` requests; resolves with them once each got its response head or was sent. */
function fire(port: number, paths: string[]): ClientRequest[] {
  return paths.map((path) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false });
    req.on('error', () => undefined); // we abort them ourselves
    req.on('response', (res) => res.resume());
    req.end();
    return req;
  });
}

describe('client aborts', () => {
  test('10,000 requests aborted mid-flight: upstream requests aborted, heap and sockets back to baseline', async () => {
    const gc = exposeGc();
    const up = await stuckUpstream();
    const p = await startProxy(
      { upstreamKeepAliveTimeout: 1_000 },
      makeTable({ blue: { version: BLUE, endpoints: [up.url], weight: 10000 } }),
    );
    closers.push(p.close);
    const paths = Array.from({ length: BATCH }, (_, i) => (i % 2 === 0 ? '/hold' : '/drip'));

    const batch = async (): Promise<void> => {
      const before = up.seen();
      const reqs = fire(p.port, paths);
      // Every request reached the upstream (half of them are streaming a body): now abort.
      await eventually(() => expect(up.seen() - before).toBe(BATCH), { timeoutMs: 10_000 });
      for (const r of reqs) r.destroy();
      await eventually(() => expect(up.open()).toBe(0), { timeoutMs: 10_000 });
    };

    const fdsBefore = openFds();
    await batch(); // warm-up: JIT, pools, lazily created state
    await eventually(() => expect(p.proxy.inFlight()).toBe(0));
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const started = performance.now();
    for (let done = BATCH; done < TOTAL + BATCH; done += BATCH) await batch();
    const tookMs = performance.now() - started;

    await eventually(() => expect(p.proxy.inFlight()).toBe(0));
    // undici opens a fresh connection after each aborted request (it reconnects for the aborted
    // head of its queue); those idle sockets are reaped after upstreamKeepAliveTimeout.
    const idleUpstream = await up.connections();
    await eventually(async () => expect(await up.connections()).toBe(0), { timeoutMs: 5_000 });
    await eventually(() => expect(openFds()).toBeLessThanOrEqual(fdsBefore + 2));
    gc();
    const heapAfter = process.memoryUsage().heapUsed;
    const growthMb = (heapAfter - heapBefore) / 1024 / 1024;
    console.log(
      `${TOTAL} aborted requests in ${Math.round(tookMs)} ms: upstream open 0, proxy in-flight 0, ` +
        `${idleUpstream} upstream connections right after the storm (then 0), ` +
        `fds ${fdsBefore} -> ${openFds()}, heap ${(heapBefore / 1048576).toFixed(1)} -> ` +
        `${(heapAfter / 1048576).toFixed(1)} MB (${growthMb >= 0 ? '+' : ''}${growthMb.toFixed(2)} MB)`,
    );
    // A leaked exchange (request, response, headers, undici handler) is several KB: 10,000 of
    // them would add tens of MB.
    expect(growthMb).toBeLessThan(4);
    // And the proxy still serves.
    expect((await fetch(`${p.url}/ok`)).status).toBe(200);
  });

  test('an upstream resetting mid-body: the client sees an aborted response, the proxy stays up', async () => {
    const up = await stuckUpstream();
    const p = await startProxy(
      {},
      makeTable({ blue: { version: BLUE, endpoints: [up.url], weight: 10000 } }),
    );
    closers.push(p.close);
    for (const path of ['/reset', '/reset-chunked']) {
      const outcome = await new Promise<{ status: number; bytes: number; how: string }>(
        (resolve) => {
          const req = httpRequest({ host: '127.0.0.1', port: p.port, path, agent: false });
          req.on('response', (res) => {
            let bytes = 0;
            res.on('data', (c: Buffer) => (bytes += c.length));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, how: 'end' }));
            res.on('aborted', () =>
              resolve({ status: res.statusCode ?? 0, bytes, how: 'aborted' }),
            );
            res.on('error', () => resolve({ status: res.statusCode ?? 0, bytes, how: 'aborted' }));
          });
          req.on('error', () => resolve({ status: 0, bytes: 0, how: 'error' }));
          req.end();
        },
      );
      expect(outcome.status).toBe(200);
      expect(outcome.how).toBe('aborted');
      expect(outcome.bytes).toBeLessThan(100_000);
    }
    const res = await fetch(`${p.url}/ok`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
    await eventually(() => expect(p.proxy.inFlight()).toBe(0));
  });
});
