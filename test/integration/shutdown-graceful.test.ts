/**
 * Graceful shutdown (SPEC §4, issue 5): /readyz 503 at once, serving on for shutdownDelay with
 * `Connection: close`, in-flight requests finished, keep-alive connections closed only when idle
 * (a request already on the wire is answered), WebSockets closed with 1001, SSE streams ended,
 * and a real process that gets SIGTERM under load fails no request and exits 0.
 */
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { describe, expect, test } from 'vitest';
import { WebSocket } from 'ws';
import { eventually } from '../helpers/eventually.js';
import { startLoad } from '../helpers/keepalive-load.js';
import { spawnProxy } from '../helpers/proxy-process.js';
import { makeTable, startProxy, startReference, type TestProxy } from '../helpers/reference.js';
import { startApp } from '../helpers/start-app.js';
import { closeAfterEach } from '../helpers/closers.js';

const BLUE = '1111111';

const closers = closeAfterEach();

async function proxyWorld(config: Record<string, unknown> = {}): Promise<TestProxy> {
  const blue = await startReference({ pool: 'blue', version: BLUE });
  closers.push(blue.close);
  const p = await startProxy(
    { drainTimeout: 5_000, ...config },
    makeTable({ blue: { version: BLUE, endpoints: [blue.url], weight: 10000 } }),
  );
  closers.push(p.close);
  return p;
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Reads HTTP/1.1 responses (Content-Length bodies) from a raw socket, in order. */
function responseReader(socket: Socket): () => Promise<RawResponse> {
  let buf = Buffer.alloc(0);
  let ended = false;
  const waiters: Array<() => void> = [];
  const wake = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  socket.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    wake();
  });
  socket.on('end', () => {
    ended = true;
    wake();
  });
  socket.on('close', () => {
    ended = true;
    wake();
  });
  return async () => {
    for (;;) {
      const headEnd = buf.indexOf('\r\n\r\n');
      if (headEnd >= 0) {
        const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
        const status = Number((lines[0] as string).split(' ')[1]);
        const headers: Record<string, string> = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        const len = Number(headers['content-length'] ?? 0);
        if (buf.length >= headEnd + 4 + len) {
          const body = buf.subarray(headEnd + 4, headEnd + 4 + len).toString();
          buf = buf.subarray(headEnd + 4 + len);
          return { status, headers, body };
        }
      }
      if (ended) throw new Error(`connection ended; ${buf.length} unparsed bytes`);
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
}

async function rawConnect(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  closers.push(() => {
    socket.destroy();
    return Promise.resolve();
  });
  await once(socket, 'connect');
  return socket;
}

describe('proxy close()', () => {
  test('a request sent on an idle keep-alive connection as close() begins is answered, with Connection: close', async () => {
    const p = await proxyWorld();
    const socket = await rawConnect(p.port);
    const next = responseReader(socket);
    socket.write('GET /one HTTP/1.1\r\nHost: x\r\n\r\n');
    const first = await next();
    expect(first.status).toBe(200);
    expect(first.headers.connection).toBe('keep-alive');

    // http.Server#close() would destroy this idle connection now and lose the request below.
    const closed = p.proxy.close();
    socket.write('GET /two HTTP/1.1\r\nHost: x\r\n\r\n');
    const second = await next();
    expect(second.status).toBe(200);
    expect(JSON.parse(second.body)).toMatchObject({ path: '/two' });
    expect(second.headers.connection).toBe('close');
    await once(socket, 'close');
    await closed;
  });

  test('an idle keep-alive connection is closed after a short grace; new connections are refused', async () => {
    const p = await proxyWorld();
    const socket = await rawConnect(p.port);
    const next = responseReader(socket);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await next()).status).toBe(200);
    const began = performance.now();
    const closed = p.proxy.close();
    await once(socket, 'end');
    const idleClosedMs = performance.now() - began;
    await closed;
    expect(idleClosedMs).toBeGreaterThanOrEqual(200);
    expect(idleClosedMs).toBeLessThan(3_000);
    const refused = connect({ host: '127.0.0.1', port: p.port });
    const [err] = (await once(refused, 'error')) as [Error & { code?: string }];
    expect(err.code).toBe('ECONNREFUSED');
  });

  test('in-flight requests finish with Connection: close; SSE streams end and WebSockets get 1001 at once', async () => {
    const p = await proxyWorld();
    const slow = fetch(`${p.url}/slow?ms=800`);
    const sseEnded = new Promise<string>((resolve, reject) => {
      const req = httpRequest(`${p.url}/stream?n=100000&intervalMs=50`, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve('end'));
        res.on('aborted', () => resolve('aborted'));
      });
      req.on('error', reject);
      req.end();
    });
    const ws = new WebSocket(`ws://127.0.0.1:${p.port}/ws`);
    await once(ws, 'message');
    const wsClosed = new Promise<number>((resolve) => ws.once('close', resolve));
    await eventually(() => expect(p.proxy.connections.size).toBe(1));

    const began = performance.now();
    const closed = p.proxy.close();
    expect(await wsClosed).toBe(1001);
    expect(await sseEnded).toBe('end');
    const res = await slow;
    expect(res.status).toBe(200);
    expect(res.headers.get('connection')).toBe('close');
    await closed;
    const tookMs = performance.now() - began;
    // Well before the 5 s drainTimeout: nothing waited for a deadline.
    expect(tookMs).toBeLessThan(4_000);
    console.log(
      `close() with a slow request, an SSE stream and a WebSocket took ${Math.round(tookMs)} ms`,
    );
  });
});

describe('app shutdown()', () => {
  test('/readyz turns 503 at once; requests during shutdownDelay are served with Connection: close', async () => {
    const blue = await startReference({ pool: 'blue', version: BLUE });
    closers.push(blue.close);
    const t = await startApp({
      pools: [{ name: 'blue', version: BLUE, endpoints: [blue.url] }],
      shutdownDelay: 800,
      healthCheckInterval: 0,
    });
    closers.push(() => t.close());
    expect((await fetch(`${t.adminUrl}/readyz`)).status).toBe(200);
    const slow = fetch(`${t.proxyUrl}/slow?ms=1200`);
    await eventually(() => expect(blue.server.stats().requests).toBe(1));
    const began = performance.now();
    const done = t.app.shutdown();
    expect((await fetch(`${t.adminUrl}/readyz`)).status).toBe(503);
    const during = await fetch(`${t.proxyUrl}/during`);
    expect(during.status).toBe(200);
    expect(during.headers.get('connection')).toBe('close');
    // A WebSocket opened during the delay still upgrades (no `Connection: close` on the 101),
    // and is closed with 1001 when the proxy closes.
    const ws = new WebSocket(`${t.proxyUrl.replace('http:', 'ws:')}/late`);
    const wsClosed = new Promise<number>((resolve) => ws.once('close', resolve));
    expect(JSON.parse(String((await once(ws, 'message'))[0]))).toMatchObject({ pool: 'blue' });
    expect((await slow).status).toBe(200);
    await done;
    const tookMs = performance.now() - began;
    expect(await wsClosed).toBe(1001);
    expect(tookMs).toBeGreaterThanOrEqual(800 - 20);
    console.log(
      `app.shutdown() with shutdownDelay 800 ms and a 1.2 s request took ${Math.round(tookMs)} ms`,
    );
  });
});

describe('SIGTERM on a proxy process', () => {
  test('under keep-alive load: no failed request, in-flight work finishes, exit 0', async () => {
    const blue = await startReference({ pool: 'blue', version: BLUE });
    closers.push(blue.close);
    const proc = await spawnProxy([
      '--pool',
      `blue=${BLUE}@${blue.url}`,
      // Room for a busy 2-core runner: the readiness poll and the extra requests below must all
      // happen inside the delay, or the load would meet closed listeners (a test artefact).
      '--shutdown-delay',
      '3s',
      '--drain-timeout',
      '10s',
      '--shutdown-timeout',
      '15s',
      '--health-check-interval',
      '0',
    ]);
    closers.push(() => proc.kill());
    const load = startLoad({
      origin: proc.proxyUrl,
      clients: 4,
      requests: [
        { method: 'GET', path: '/' },
        { method: 'POST', path: '/echo', body: '{"order":1}' },
      ],
    });
    await eventually(() => expect(load.result.ok).toBeGreaterThan(200), { timeoutMs: 10_000 });
    const slow = fetch(`${proc.proxyUrl}/slow?ms=1500`);
    const ws = new WebSocket(`${proc.proxyUrl.replace('http:', 'ws:')}/ws`);
    await once(ws, 'message');
    const wsClosed = new Promise<number>((resolve) => ws.once('close', resolve));
    await eventually(() => expect(blue.server.stats().requests).toBeGreaterThan(load.result.ok));

    const signalledAt = performance.now();
    proc.child.kill('SIGTERM');
    // Like a load balancer: keep sending until /readyz says 503, then a little longer (it
    // needs a check or two to notice), and stop well within shutdownDelay.
    await eventually(
      async () => expect((await fetch(`${proc.adminUrl}/readyz`)).status).toBe(503),
      { timeoutMs: 5_000, intervalMs: 50 },
    );
    // Still served after /readyz turned 503: wait for more answers rather than a fixed sleep.
    const okAtNotReady = load.result.ok;
    await eventually(() => expect(load.result.ok).toBeGreaterThan(okAtNotReady + 20), {
      timeoutMs: 2_000,
    });
    const result = await load.stop();
    const slowRes = await slow;
    const { code } = await proc.exited;
    const tookMs = performance.now() - signalledAt;
    console.log(
      `SIGTERM under load: ${result.ok} ok (${result.ok - okAtNotReady} after /readyz 503), ` +
        `${result.failed} failed, ${result.connectionClose} answers with Connection: close; ` +
        `exit ${code} after ${Math.round(tookMs)} ms (shutdownDelay 3000 ms, a 1.5 s request in flight)`,
    );
    expect(result.failures).toEqual([]);
    expect(result.connectionClose).toBeGreaterThan(0);
    expect(slowRes.status).toBe(200);
    expect(await wsClosed).toBe(1001);
    expect(code).toBe(0);
    expect(tookMs).toBeGreaterThanOrEqual(3_000 - 50);
    expect(proc.logs.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['shutdown started', 'bye']),
    );
  });
});
