/**
 * Data plane forwarding (SPEC §3): streamed bodies, SSE, hop-by-hop and X-Forwarded-* headers,
 * Expect: 100-continue, request validation, proxy-made errors and the retry rule.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, createServer, type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { Agent, request } from 'undici';
import { eventually } from '../helpers/eventually.js';
import { findSamples, readMetric, scrapeMetrics } from '../helpers/metrics.js';
import {
  makeTable,
  startProxy,
  startReference,
  type TestProxy,
  type TestReference,
} from '../helpers/reference.js';
import { closeAfterEach } from '../helpers/closers.js';

const BLUE = '1111111';

const closers = closeAfterEach();

async function world(
  config: Record<string, unknown> = {},
  endpoints?: (blue: TestReference) => string[],
): Promise<{ blue: TestReference; p: TestProxy; agent: Agent }> {
  const blue = await startReference({ pool: 'blue', version: BLUE });
  closers.push(blue.close);
  const p = await startProxy(config);
  closers.push(p.close);
  p.proxy.applyTable(
    makeTable({
      blue: { version: BLUE, endpoints: endpoints ? endpoints(blue) : [blue.url], weight: 10000 },
    }),
  );
  const agent = new Agent({ connections: 4 });
  closers.push(() => agent.close());
  return { blue, p, agent };
}

/** A loopback URL where nothing listens (bound, then closed). */
async function deadUrl(): Promise<string> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** Sends raw bytes and reads until the server closes; returns status, headers and body. */
async function rawExchange(
  port: number,
  text: string,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(text);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await once(socket, 'close');
  const all = Buffer.concat(chunks).toString('latin1');
  const split = all.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = all.slice(0, split).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(statusLine?.split(' ')[1]), headers, body: all.slice(split + 4) };
}

async function getJson(
  agent: Agent,
  url: string,
  headers: Record<string, string> = {},
): Promise<{
  status: number;
  json: Record<string, unknown> & { headers: Record<string, string> };
}> {
  const r = await request(url, { dispatcher: agent, headers });
  return {
    status: r.statusCode,
    json: (await r.body.json()) as Record<string, unknown> & { headers: Record<string, string> },
  };
}

describe('proxy forwarding', () => {
  test('streams a 32 MB upload intact', async () => {
    const { p, agent } = await world();
    const hash = createHash('sha256');
    const chunk = randomBytes(64 * 1024);
    const total = 32 * 1024 * 1024;
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= total) {
          this.push(null);
          return;
        }
        hash.update(chunk);
        sent += chunk.length;
        this.push(chunk);
      },
    });
    const r = await request(`${p.url}/upload-hash`, {
      dispatcher: agent,
      method: 'POST',
      body,
      headers: { 'content-length': String(total) },
    });
    expect(r.statusCode).toBe(200);
    const answer = (await r.body.json()) as { sha256: string; bytes: number };
    expect(answer.bytes).toBe(total);
    expect(answer.sha256).toBe(hash.digest('hex'));
  });

  test('streams a chunked upload and echoes the body back', async () => {
    const { p, agent } = await world();
    const parts = ['alpha-', 'beta-', 'gamma'];
    const r = await request(`${p.url}/echo`, {
      dispatcher: agent,
      method: 'POST',
      body: Readable.from(parts.map((s) => Buffer.from(s))),
    });
    expect(r.statusCode).toBe(200);
    expect(await r.body.text()).toBe(parts.join(''));
  });

  test('does not buffer an SSE stream', async () => {
    const { p, agent } = await world();
    const started = Date.now();
    const r = await request(`${p.url}/stream?n=4&intervalMs=400`, { dispatcher: agent });
    expect(r.headers['content-type']).toBe('text/event-stream');
    const events: Array<{ at: number; text: string }> = [];
    for await (const c of r.body)
      events.push({ at: Date.now() - started, text: (c as Buffer).toString() });
    const ended = Date.now() - started;
    expect(events[0]?.text).toContain('data: {"i":0');
    // the first event arrived long before the stream ended (1.2 s of intervals)
    expect(events[0]?.at).toBeLessThan(ended - 800);
    expect(events.map((e) => e.text).join('')).toContain('data: {"i":3');
  });

  test('cancels the upstream request when the client goes away', async () => {
    const { blue, p } = await world();
    const req = httpRequest(`${p.url}/stream?n=1000&intervalMs=20`);
    req.on('error', () => undefined);
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    await once(res, 'data');
    // The upstream stream is open (proved, not assumed), so its closing below is the proxy's doing.
    expect(blue.server.stats().openStreams).toBe(1);
    req.destroy();
    await eventually(() => expect(blue.server.stats().openStreams).toBe(0));
  });

  test('strips hop-by-hop request headers, including those named in Connection', async () => {
    const { p } = await world();
    const res = await rawExchange(
      p.port,
      'GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close, x-secret\r\nx-secret: 1\r\n' +
        'Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n' +
        'Proxy-Connection: keep-alive\r\nx-kept: yes\r\n\r\n',
    );
    expect(res.status).toBe(200);
    const seen = (JSON.parse(res.body) as { headers: Record<string, string> }).headers;
    expect(seen['x-kept']).toBe('yes');
    for (const h of ['x-secret', 'keep-alive', 'te', 'proxy-authorization', 'proxy-connection']) {
      expect(seen[h]).toBeUndefined();
    }
    expect(seen.host).toBe('example.test');
  });

  test('answers CONNECT with 405 JSON and closes (no tunnel through a reverse proxy)', async () => {
    const { p, blue } = await world();
    const target = new URL(blue.url).host;
    const res = await rawExchange(p.port, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    expect(res.status).toBe(405);
    expect(res.headers.connection).toBe('close');
    expect(JSON.parse(res.body)).toEqual({
      error: { code: 'METHOD_NOT_ALLOWED', message: expect.stringContaining('CONNECT') as string },
    });
  });

  test('CONNECT then a reset, or then more bytes: no crash, no socket left behind', async () => {
    const { p, agent } = await world();
    // A reset while the 405 is written used to be an unhandled socket error (process crash).
    for (let i = 0; i < 300; i++) {
      const s = connect(p.port, '127.0.0.1');
      await once(s, 'connect');
      s.on('error', () => undefined);
      s.write('CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n');
      s.resetAndDestroy();
    }
    // A client that keeps the connection and sends more: the proxy closes its side after the 405
    // (it used to keep the half-open socket until close() gave up).
    const chatty = connect(p.port, '127.0.0.1');
    await once(chatty, 'connect');
    chatty.on('error', () => undefined);
    chatty.on('data', () => undefined);
    chatty.write('CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\nmore');
    await once(chatty, 'close');
    const res = await request(`${p.url}/`, { dispatcher: agent });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    const started = performance.now();
    await p.close();
    // Nothing in flight: close returns at once (drainTimeout here is 2 s).
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  test('strips hop-by-hop response headers, including those named in Connection', async () => {
    const { p, agent } = await world();
    const r = await request(`${p.url}/hop-headers`, { dispatcher: agent });
    await r.body.text();
    expect(r.headers['x-upstream-secret']).toBeUndefined();
    expect(r.headers['keep-alive']).not.toBe('timeout=5');
    expect(r.headers['x-reference-pool']).toBe('blue');
  });

  test('replaces X-Forwarded-* from an untrusted peer', async () => {
    const { p, agent } = await world();
    const { json } = await getJson(agent, `${p.url}/`, {
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'evil.test',
    });
    expect(json.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(json.headers['x-forwarded-proto']).toBe('http');
    expect(json.headers['x-forwarded-host']).toBe(`127.0.0.1:${p.port}`);
  });

  test('keeps and appends X-Forwarded-* from a trusted proxy', async () => {
    const { p, agent } = await world({ trustedProxies: ['127.0.0.1'] });
    const { json } = await getJson(agent, `${p.url}/`, {
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'shop.test',
    });
    expect(json.headers['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    expect(json.headers['x-forwarded-proto']).toBe('https');
    expect(json.headers['x-forwarded-host']).toBe('shop.test');
  });

  test('rejects a duplicate Host header with 400', async () => {
    const { blue, p } = await world();
    const res = await rawExchange(
      p.port,
      'GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n',
    );
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toEqual({
      error: { code: 'BAD_REQUEST', message: 'more than one Host header' },
    });
    expect(blue.server.stats().requests).toBe(0);
  });

  test('rejects an absolute-form target for another host, and never routes by it', async () => {
    const { blue, p } = await world();
    const res = await rawExchange(
      p.port,
      'GET http://169.254.169.254/latest HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n',
    );
    expect(res.status).toBe(400);
    expect(blue.server.stats().requests).toBe(0);
    const same = await rawExchange(
      p.port,
      'GET http://a.test/x?y=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n',
    );
    expect(same.status).toBe(200);
    expect((JSON.parse(same.body) as { path: string }).path).toBe('/x');
  });

  test('honours Expect: 100-continue uploads', async () => {
    const { p } = await world();
    const payload = randomBytes(200_000);
    const result = await new Promise<{ status: number; body: string; continued: boolean }>(
      (resolve, reject) => {
        let continued = false;
        const req = httpRequest(`${p.url}/upload-hash`, {
          method: 'PUT',
          headers: { expect: '100-continue', 'content-length': payload.length },
        });
        req.on('continue', () => {
          continued = true;
          req.end(payload);
        });
        req.on('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString(),
              continued,
            }),
          );
        });
        req.on('error', reject);
        req.flushHeaders();
      },
    );
    expect(result.continued).toBe(true);
    expect(result.status).toBe(200);
    const answer = JSON.parse(result.body) as { sha256: string; bytes: number };
    expect(answer.bytes).toBe(payload.length);
    expect(answer.sha256).toBe(createHash('sha256').update(payload).digest('hex'));
  });

  test('answers 504 UPSTREAM_TIMEOUT when the upstream is too slow', async () => {
    const { p, agent } = await world({ upstreamTimeout: 300 });
    const r = await request(`${p.url}/slow?ms=3000`, { dispatcher: agent });
    expect(r.statusCode).toBe(504);
    expect(await r.body.json()).toEqual({
      error: { code: 'UPSTREAM_TIMEOUT', message: expect.any(String) as string },
    });
    expect(
      await readMetric(p.metrics, 'switchyard_upstream_errors_total', { reason: 'timeout' }),
    ).toBe(1);
  });

  test('relays upstream error statuses unchanged', async () => {
    const { p, agent } = await world();
    const r = await request(`${p.url}/status/503`, { dispatcher: agent });
    await r.body.text();
    expect(r.statusCode).toBe(503);
    expect(r.headers['x-reference-pool']).toBe('blue');
  });
});

describe('proxy retries', () => {
  test('retries a refused connection once, then answers 502 UPSTREAM_ERROR', async () => {
    const dead = await deadUrl();
    const { p, agent } = await world({}, () => [dead]);
    const r = await request(`${p.url}/`, { dispatcher: agent });
    expect(r.statusCode).toBe(502);
    expect(r.headers['content-type']).toBe('application/json');
    expect(await r.body.json()).toEqual({
      error: { code: 'UPSTREAM_ERROR', message: expect.any(String) as string },
    });
    const samples = await scrapeMetrics(p.metrics);
    const value = (name: string, labels: Record<string, string>): number[] =>
      findSamples(samples, name, labels).map((s) => s.value);
    expect(value('switchyard_retries_total', { pool: 'blue' })).toEqual([1]);
    expect(value('switchyard_upstream_errors_total', { pool: 'blue', reason: 'refused' })).toEqual([
      2,
    ]);
    expect(value('switchyard_requests_total', { pool: 'blue', code_class: '5xx' })).toEqual([1]);
  });

  test('a refused request succeeds on the other endpoint of the pool (GET and POST)', async () => {
    const dead = await deadUrl();
    const { p, agent } = await world({}, (blue) => [dead, blue.url]);
    for (let i = 0; i < 6; i++) {
      const r = await request(`${p.url}/`, {
        dispatcher: agent,
        method: i % 2 === 0 ? 'GET' : 'POST',
        body: i % 2 === 0 ? null : 'x',
      });
      expect(r.statusCode).toBe(200);
      expect(((await r.body.json()) as { pool: string }).pool).toBe('blue');
    }
    expect(
      await readMetric(p.metrics, 'switchyard_retries_total', { pool: 'blue' }),
    ).toBeGreaterThanOrEqual(1);
  });

  test.each([
    ['GET', null],
    ['PUT', 'small body held in memory'],
  ] as const)(
    'retries an idempotent %s whose connection was reset before any response byte',
    async (method, payload) => {
      // An upstream that resets the first connection right after reading a request, then behaves.
      const blue = await startReference({ pool: 'blue', version: BLUE });
      closers.push(blue.close);
      let resets = 0;
      // After the reset it relays the proxy's bytes as sent, so the answer proves what the retry
      // carried (the held PUT body must arrive whole, not empty).
      const flaky = createServer((client) => {
        client.once('data', (first: Buffer) => {
          if (resets === 0) {
            resets += 1;
            client.resetAndDestroy();
            return;
          }
          const { port } = new URL(blue.url);
          const up = connect(Number(port), '127.0.0.1');
          up.on('error', () => client.destroy());
          client.on('error', () => up.destroy());
          up.write(first);
          client.pipe(up);
          up.pipe(client);
        });
        client.on('error', () => undefined);
      });
      flaky.listen(0, '127.0.0.1');
      await once(flaky, 'listening');
      closers.push(() => new Promise<void>((resolve) => flaky.close(() => resolve())));
      const p = await startProxy();
      closers.push(p.close);
      const port = (flaky.address() as AddressInfo).port;
      p.proxy.applyTable(
        makeTable({
          blue: { version: BLUE, endpoints: [`http://127.0.0.1:${port}`], weight: 10000 },
        }),
      );
      const agent = new Agent();
      closers.push(() => agent.close());
      const r = await request(`${p.url}/upload-hash`, { dispatcher: agent, method, body: payload });
      expect(r.statusCode).toBe(200);
      const sent = Buffer.from(payload ?? '');
      expect(await r.body.json()).toEqual({
        pool: 'blue',
        bytes: sent.length,
        sha256: createHash('sha256').update(sent).digest('hex'),
      });
      expect(resets).toBe(1);
      expect(
        await readMetric(p.metrics, 'switchyard_upstream_errors_total', { reason: 'reset' }),
      ).toBe(1);
    },
  );

  test('never sends a non-idempotent request twice after a reset', async () => {
    let requests = 0;
    const resetting = createServer((client) => {
      client.once('data', () => {
        requests += 1;
        client.resetAndDestroy();
      });
      client.on('error', () => undefined);
    });
    resetting.listen(0, '127.0.0.1');
    await once(resetting, 'listening');
    closers.push(() => new Promise<void>((resolve) => resetting.close(() => resolve())));
    const p = await startProxy();
    closers.push(p.close);
    const port = (resetting.address() as AddressInfo).port;
    p.proxy.applyTable(
      makeTable({
        blue: { version: BLUE, endpoints: [`http://127.0.0.1:${port}`], weight: 10000 },
      }),
    );
    const agent = new Agent();
    closers.push(() => agent.close());
    const r = await request(`${p.url}/`, { dispatcher: agent, method: 'POST', body: 'once' });
    expect(r.statusCode).toBe(502);
    await r.body.text();
    expect(requests).toBe(1);
  });
});
