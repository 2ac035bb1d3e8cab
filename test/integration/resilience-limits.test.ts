/**
 * Limits that protect the proxy (issue 5): slow-loris clients are cut at headersTimeout (and
 * slow bodies at requestTimeout), oversized heads get 431, the per-endpoint upstream connection
 * cap holds, slow clients and slow upstreams are handled with backpressure (memory stays flat),
 * and 1,000 idle keep-alive client connections cost a bounded amount of memory.
 */
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, test } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { readMetric } from '../helpers/metrics.js';
import { collectGarbage, spawnProxy } from '../helpers/proxy-process.js';
import { makeTable, startProxy, startReference } from '../helpers/reference.js';
import { closeAfterEach } from '../helpers/closers.js';

const BLUE = '1111111';
const MB = 1024 * 1024;

const closers = closeAfterEach();

function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

async function rawConnect(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  closers.push(() => {
    socket.destroy();
    return Promise.resolve();
  });
  await once(socket, 'connect');
  return socket;
}

/** Collects what the server sends until it closes the connection. */
function untilClosed(socket: Socket): Promise<{ data: string; at: number }> {
  let data = '';
  socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
  return new Promise((resolve) =>
    socket.once('close', () => resolve({ data, at: performance.now() })),
  );
}

/** A plain upstream on loopback; `handler` answers, connections are counted. */
async function upstream(
  handler: (req: IncomingMessage, res: import('node:http').ServerResponse) => void,
): Promise<{ url: string; open: () => number; maxOpen: () => number }> {
  let open = 0;
  let maxOpen = 0;
  const sockets = new Set<Socket>();
  const server = createServer(handler);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    open++;
    maxOpen = Math.max(maxOpen, open);
    s.on('close', () => {
      open--;
      sockets.delete(s);
    });
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
    maxOpen: () => maxOpen,
  };
}

describe('slow clients', () => {
  test('a slow-loris client (header bytes trickling in) is cut at headersTimeout with 408', async () => {
    const blue = await startReference({ pool: 'blue', version: BLUE });
    closers.push(blue.close);
    const p = await startProxy(
      { headersTimeout: 1_000, requestTimeout: 10_000 },
      makeTable({ blue: { version: BLUE, endpoints: [blue.url], weight: 10000 } }),
    );
    closers.push(p.close);
    const socket = await rawConnect(p.port);
    const closed = untilClosed(socket);
    const began = performance.now();
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
    let n = 0;
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write(`X-Slow-${n++}: y\r\n`);
    }, 100);
    closers.push(() => {
      clearInterval(drip);
      return Promise.resolve();
    });
    const { data, at } = await closed;
    clearInterval(drip);
    const heldMs = at - began;
    console.log(
      `slow-loris connection cut after ${Math.round(heldMs)} ms (headersTimeout 1000 ms)`,
    );
    expect(data).toMatch(/^HTTP\/1\.1 408 /);
    expect(heldMs).toBeGreaterThanOrEqual(1_000 - 20);
    // Checked every headersTimeout/4: fires well before Node's 30 s default checking interval.
    expect(heldMs).toBeLessThan(4_000);
    expect(blue.server.stats().requests).toBe(0);
  });

  test('a client trickling its body is cut at requestTimeout', async () => {
    const blue = await startReference({ pool: 'blue', version: BLUE });
    closers.push(blue.close);
    const p = await startProxy(
      { headersTimeout: 1_000, requestTimeout: 1_500 },
      makeTable({ blue: { version: BLUE, endpoints: [blue.url], weight: 10000 } }),
    );
    closers.push(p.close);
    const socket = await rawConnect(p.port);
    const closed = untilClosed(socket);
    const began = performance.now();
    socket.write('POST /upload-hash HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n');
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write('z');
    }, 100);
    closers.push(() => {
      clearInterval(drip);
      return Promise.resolve();
    });
    const { at } = await closed;
    clearInterval(drip);
    const heldMs = at - began;
    console.log(`slow body cut after ${Math.round(heldMs)} ms (requestTimeout 1500 ms)`);
    expect(heldMs).toBeGreaterThanOrEqual(1_500 - 20);
    expect(heldMs).toBeLessThan(5_000);
  });

  test('a request head over 16 KiB gets 431 and reaches no upstream', async () => {
    const blue = await startReference({ pool: 'blue', version: BLUE });
    closers.push(blue.close);
    const p = await startProxy(
      {},
      makeTable({ blue: { version: BLUE, endpoints: [blue.url], weight: 10000 } }),
    );
    closers.push(p.close);
    const socket = await rawConnect(p.port);
    const closed = untilClosed(socket);
    socket.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    const { data } = await closed;
    expect(data).toMatch(/^HTTP\/1\.1 431 /);
    expect(blue.server.stats().requests).toBe(0);
  });
});

describe('upstream limits and backpressure', () => {
  test('upstreamConnections caps concurrent connections per endpoint; queued requests still complete', async () => {
    const up = await upstream((req, res) => {
      req.resume();
      setTimeout(() => res.end('ok'), 100);
    });
    const p = await startProxy(
      { upstreamConnections: 3 },
      makeTable({ blue: { version: BLUE, endpoints: [up.url], weight: 10000 } }),
    );
    closers.push(p.close);
    const statuses = await Promise.all(
      Array.from({ length: 24 }, async () => (await fetch(`${p.url}/x`)).status),
    );
    expect(statuses).toEqual(Array.from({ length: 24 }, () => 200));
    expect(up.maxOpen()).toBe(3);
  });

  test('a client that stops reading a 64 MB download: the upstream is paused, proxy memory stays flat', async () => {
    const gc = exposeGc();
    const TOTAL = 64 * MB;
    let written = 0;
    const up = await upstream((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': TOTAL });
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = (): void => {
        while (written < TOTAL) {
          written += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const p = await startProxy(
      {},
      makeTable({ blue: { version: BLUE, endpoints: [up.url], weight: 10000 } }),
    );
    closers.push(p.close);
    gc();
    const before = process.memoryUsage();
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(`${p.url}/big`, { agent: false }, resolve);
      req.on('error', reject);
      req.end();
    });
    res.pause();
    closers.push(() => {
      res.destroy();
      return Promise.resolve();
    });
    // Wait until the upstream is stalled: no progress over 300 ms.
    let last = -1;
    await eventually(
      () => {
        const now = written;
        const stalled = now === last;
        last = now;
        expect(stalled).toBe(true);
      },
      { timeoutMs: 15_000, intervalMs: 300 },
    );
    gc();
    const after = process.memoryUsage();
    const growth =
      (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / MB;
    console.log(
      `stalled download: upstream wrote ${(written / MB).toFixed(1)} of 64 MB (the rest waits in ` +
        `kernel socket buffers), proxy+client memory ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MB`,
    );
    expect(written).toBeLessThan(TOTAL);
    expect(growth).toBeLessThan(8);
    // Reading again resumes the upstream; every byte arrives.
    let got = 0;
    res.on('data', (c: Buffer) => (got += c.length));
    res.resume();
    await once(res, 'end');
    expect(got).toBe(TOTAL);
  });

  test('an upstream that reads a 64 MB upload slowly: the client is paused, proxy memory stays flat', async () => {
    const gc = exposeGc();
    const TOTAL = 64 * MB;
    let received = 0;
    let upstreamReq: IncomingMessage | undefined;
    const up = await upstream((req, res) => {
      upstreamReq = req;
      req.pause(); // a slow upstream: reads nothing until told
      req.on('data', (c: Buffer) => (received += c.length));
      req.on('end', () => res.end(String(received)));
    });
    const p = await startProxy(
      {},
      makeTable({ blue: { version: BLUE, endpoints: [up.url], weight: 10000 } }),
    );
    closers.push(p.close);
    let produced = 0;
    const chunk = Buffer.alloc(64 * 1024, 9);
    const body = new Readable({
      read() {
        if (produced >= TOTAL) {
          this.push(null);
          return;
        }
        produced += chunk.length;
        this.push(chunk);
      },
    });
    gc();
    const before = process.memoryUsage();
    const answer = new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        `${p.url}/upload`,
        { method: 'POST', agent: false, headers: { 'content-length': TOTAL } },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
      body.pipe(req);
      closers.push(() => {
        req.destroy();
        return Promise.resolve();
      });
    });
    let last = -1;
    await eventually(
      () => {
        const now = produced;
        const stalled = now === last && upstreamReq !== undefined;
        last = now;
        expect(stalled).toBe(true);
      },
      { timeoutMs: 15_000, intervalMs: 300 },
    );
    gc();
    const after = process.memoryUsage();
    const growth =
      (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / MB;
    console.log(
      `stalled upload: client produced ${(produced / MB).toFixed(1)} of 64 MB, ` +
        `proxy+client memory ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MB`,
    );
    expect(produced).toBeLessThan(TOTAL);
    expect(growth).toBeLessThan(8);
    (upstreamReq as IncomingMessage).resume();
    expect(await answer).toBe(String(TOTAL));
  });
});

describe('idle keep-alive clients', () => {
  test('1,000 idle keep-alive client connections keep under 10 KiB each on the proxy heap', async () => {
    const blue = await startReference({ pool: 'blue', version: BLUE });
    closers.push(blue.close);
    // Both readings follow a full collection (through the inspector), so the heap moves by what
    // the connections keep alive, not by when V8 last collected. RSS is printed but not asserted:
    // it moves with the allocator and the machine (-14 to +25 MB for the same run), which makes
    // it a bench figure, not a test bound. The young generation is capped for the same reason.
    const proc = await spawnProxy(
      ['--pool', `blue=${BLUE}@${blue.url}`, '--health-check-interval', '0'],
      ['--inspect=127.0.0.1:0', '--max-semi-space-size=1'],
    );
    closers.push(() => proc.kill());
    const port = Number(new URL(proc.proxyUrl).port);
    const oneRequest = async (socket: Socket): Promise<void> => {
      const got = new Promise<void>((resolve) => {
        let buf = '';
        const onData = (c: Buffer): void => {
          buf += c.toString('latin1');
          const head = buf.indexOf('\r\n\r\n');
          if (head < 0) return;
          const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, head))?.[1] ?? 0);
          if (buf.length >= head + 4 + len) {
            socket.off('data', onData);
            resolve();
          }
        };
        socket.on('data', onData);
      });
      socket.write('GET / HTTP/1.1\r\nHost: x\r\nCookie: sy_id=abc\r\n\r\n');
      await got;
    };
    // Warm up (JIT, pools, metrics), then measure.
    for (let i = 0; i < 50; i++) {
      const s = await rawConnect(port);
      await oneRequest(s);
      s.destroy();
    }
    await eventually(async () =>
      expect(
        await readMetric(proc.adminUrl, 'process_open_fds', {}, { required: true }),
      ).toBeLessThan(40),
    );
    await collectGarbage(proc);
    const rssBefore = await readMetric(
      proc.adminUrl,
      'process_resident_memory_bytes',
      {},
      { required: true },
    );
    const heapBefore = await readMetric(
      proc.adminUrl,
      'nodejs_heap_size_used_bytes',
      {},
      { required: true },
    );
    const externalBefore = await readMetric(
      proc.adminUrl,
      'nodejs_external_memory_bytes',
      {},
      { required: true },
    );
    const fdsBefore = await readMetric(proc.adminUrl, 'process_open_fds', {}, { required: true });
    const sockets: Socket[] = [];
    for (let i = 0; i < 1_000; i += 100) {
      const batch = await Promise.all(Array.from({ length: 100 }, () => rawConnect(port)));
      await Promise.all(batch.map(oneRequest));
      sockets.push(...batch);
    }
    await eventually(async () =>
      expect(
        await readMetric(proc.adminUrl, 'process_open_fds', {}, { required: true }),
      ).toBeGreaterThanOrEqual(fdsBefore + 1_000),
    );
    await collectGarbage(proc);
    const rssAfter = await readMetric(
      proc.adminUrl,
      'process_resident_memory_bytes',
      {},
      { required: true },
    );
    const heapAfter = await readMetric(
      proc.adminUrl,
      'nodejs_heap_size_used_bytes',
      {},
      { required: true },
    );
    const externalAfter = await readMetric(
      proc.adminUrl,
      'nodejs_external_memory_bytes',
      {},
      { required: true },
    );
    const externalMb = (externalAfter - externalBefore) / MB;
    const rssMb = (rssAfter - rssBefore) / MB;
    const heapMb = (heapAfter - heapBefore) / MB;
    console.log(
      `1,000 idle keep-alive connections: RSS +${rssMb.toFixed(1)} MB ` +
        `(${((rssAfter - rssBefore) / 1000 / 1024).toFixed(1)} KiB each), heap +${heapMb.toFixed(1)} MB, ` +
        `external +${externalMb.toFixed(1)} MB`,
    );
    // Buffers held outside the V8 heap (socket and parser memory) must not grow per connection.
    expect(externalMb).toBeLessThan(10);
    // What the connections keep alive on the heap after a full collection: about 4 KiB each.
    expect(heapMb).toBeLessThan(10);
    expect(sockets.every((s) => !s.destroyed)).toBe(true);
  });
});
