/**
 * Issue 10 (hardening), upgraded connections: no raw tunnel for any Upgrade (item 1), the same
 * request hygiene as every request, handshake timeouts, error answers from the catalogue, and
 * WebSocket relays to https (wss) upstreams (item 9).
 */
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { describe, expect, test } from 'vitest';
import { closeAfterEach } from '../helpers/closers.js';
import { WebSocket, WebSocketServer } from 'ws';
import { eventually } from '../helpers/eventually.js';
import { spawnProxy } from '../helpers/proxy-process.js';
import { makeTable, startProxy, startReference, type TestProxy } from '../helpers/reference.js';
import { createTestCertificates } from '../helpers/tls-certs.js';

const BLUE = '1111111';
const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

const closers = closeAfterEach();

async function listening(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  );
  return (server.address() as AddressInfo).port;
}

/**
 * A raw upstream that records every byte it receives and answers each request head it sees with
 * a keep-alive `200 ok`, so anything a tunnel carried would show up in `received()`.
 */
async function recordingUpstream(): Promise<{
  url: string;
  received: () => string;
  heads: () => number;
}> {
  let received = '';
  let heads = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    let pending = '';
    socket.on('data', (c: Buffer) => {
      received += c.toString('latin1');
      pending += c.toString('latin1');
      let end: number;
      while ((end = pending.indexOf('\r\n\r\n')) >= 0) {
        pending = pending.slice(end + 4);
        heads++;
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
      }
    });
  });
  const port = await listening(server);
  closers.push(async () => {
    for (const s of sockets) s.destroy();
    await Promise.resolve();
  });
  return { url: `http://127.0.0.1:${port}`, received: () => received, heads: () => heads };
}

/** An upstream that accepts connections and never answers. */
async function silentUpstream(): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  const port = await listening(server);
  closers.push(async () => {
    for (const s of sockets) s.destroy();
    await Promise.resolve();
  });
  return `http://127.0.0.1:${port}`;
}

async function proxyTo(endpoint: string, config: Record<string, unknown> = {}): Promise<TestProxy> {
  const p = await startProxy(config);
  closers.push(p.close);
  p.proxy.applyTable(makeTable({ blue: { version: BLUE, endpoints: [endpoint], weight: 10000 } }));
  return p;
}

interface RawClient {
  socket: Socket;
  text: () => string;
  closed: () => boolean;
}

async function rawClient(port: number): Promise<RawClient> {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  let closed = false;
  socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
  socket.on('error', () => undefined); // a write after the proxy closed: what the test checks
  socket.on('close', () => (closed = true));
  closers.push(async () => {
    socket.destroy();
    await Promise.resolve();
  });
  await once(socket, 'connect');
  return { socket, text: () => text, closed: () => closed };
}

function statusOf(text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0);
}

function bodyOf(text: string): string {
  return text.slice(text.indexOf('\r\n\r\n') + 4);
}

function errorCodeOf(text: string): string {
  return (JSON.parse(bodyOf(text)) as { error: { code: string } }).error.code;
}

const UPGRADE_FOO =
  'GET /first HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n';
const SMUGGLED =
  'GET /second HTTP/1.1\r\nHost: app.test\r\nHost: evil.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n';

describe('issue 10 item 1: no tunnel for an Upgrade the upstream did not accept', () => {
  test('Upgrade: foo answered 200: the next request on the connection never reaches the upstream raw', async () => {
    const up = await recordingUpstream();
    const p = await proxyTo(up.url);
    const c = await rawClient(p.port);
    c.socket.write(UPGRADE_FOO);
    await eventually(() => expect(bodyOf(c.text())).toBe('ok'));
    expect(statusOf(c.text())).toBe(200);
    expect(c.text().toLowerCase()).toContain('connection: close');
    c.socket.write(SMUGGLED);
    // Either the proxy closed the connection, or (the bug) the upstream got the second head.
    await eventually(() => expect(c.closed() || up.heads() > 1).toBe(true), { timeoutMs: 10_000 });
    expect(up.heads()).toBe(1);
    const seen = up.received().toLowerCase();
    expect(seen).not.toContain('/second');
    expect(seen).not.toContain('6.6.6.6');
    expect(seen).not.toContain('upgrade');
    expect(seen).toContain('host: app.test');
    expect(seen).toContain('x-forwarded-for: 127.0.0.1');
    expect(c.closed()).toBe(true);
  });

  test('a request pipelined behind an Upgrade: foo is dropped with the connection', async () => {
    const up = await recordingUpstream();
    const p = await proxyTo(up.url);
    const c = await rawClient(p.port);
    c.socket.write(UPGRADE_FOO + SMUGGLED);
    await eventually(() => expect(c.closed() || up.heads() > 1).toBe(true), { timeoutMs: 10_000 });
    expect(statusOf(c.text())).toBe(200);
    expect(up.heads()).toBe(1);
    expect(up.received()).not.toContain('/second');
  });

  test('Upgrade: h2c is forwarded as a plain request, even to an upstream that would switch', async () => {
    // The reference server answers 101 to any Upgrade it receives.
    const blue = await startReference({ pool: 'blue', version: BLUE });
    closers.push(blue.close);
    const p = await proxyTo(blue.url);
    const c = await rawClient(p.port);
    c.socket.write(
      'GET /h2c HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\n' +
        'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n',
    );
    await eventually(() => expect(c.closed()).toBe(true), { timeoutMs: 10_000 });
    expect(statusOf(c.text())).toBe(200);
    expect(c.text().toLowerCase()).toContain('x-switchyard-upstream: blue@1111111');
    expect(c.text().toLowerCase()).toContain('connection: close');
    expect(p.proxy.connections.size).toBe(0);
  });

  test('an Upgrade request with a body is refused with 400 BAD_REQUEST', async () => {
    const up = await recordingUpstream();
    const p = await proxyTo(up.url);
    const c = await rawClient(p.port);
    c.socket.write(
      'POST / HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: foo\r\n' +
        'Content-Length: 4\r\n\r\nbody',
    );
    await eventually(() => expect(c.closed()).toBe(true), { timeoutMs: 10_000 });
    expect(statusOf(c.text())).toBe(400);
    expect(errorCodeOf(c.text())).toBe('BAD_REQUEST');
    expect(up.heads()).toBe(0);
  });

  test('a WebSocket upstream answering 200 has its answer relayed, then the connection closes', async () => {
    let requests = 0;
    const server = createHttpServer((_req, res) => {
      requests++;
      res.end('plain');
    });
    const port = await listening(server);
    const p = await proxyTo(`http://127.0.0.1:${port}`);
    const c = await rawClient(p.port);
    c.socket.write(
      'GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        `Sec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await eventually(() => expect(bodyOf(c.text())).toContain('plain'));
    expect(statusOf(c.text())).toBe(200);
    c.socket.write(SMUGGLED);
    await eventually(() => expect(c.closed() || requests > 1).toBe(true), { timeoutMs: 10_000 });
    expect(requests).toBe(1);
  });

  test('a WebSocket carries the client Host and the proxy X-Forwarded-* rules, not forged ones', async () => {
    const server = createHttpServer();
    const wss = new WebSocketServer({ server });
    const seen: Array<IncomingMessage['headers']> = [];
    wss.on('connection', (ws, req) => {
      seen.push(req.headers);
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
    const port = await listening(server);
    closers.push(async () => {
      for (const ws of wss.clients) ws.terminate();
      await Promise.resolve();
    });
    const p = await proxyTo(`http://127.0.0.1:${port}`, { overrideToken: 'secret-token-1234' });
    const ws = new WebSocket(`ws://127.0.0.1:${p.port}/chat`, {
      headers: {
        host: 'app.test',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-host': 'evil.test',
        'x-switchyard-pool': 'blue',
        'x-switchyard-token': 'wrong',
      },
    });
    closers.push(async () => {
      ws.terminate();
      await Promise.resolve();
    });
    await once(ws, 'open');
    const echo = once(ws, 'message');
    ws.send('hi');
    expect(String((await echo)[0])).toBe('hi');
    expect(seen).toHaveLength(1);
    const h = seen[0] as IncomingMessage['headers'];
    expect(h.host).toBe('app.test');
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-host']).toBe('app.test');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-switchyard-token']).toBeUndefined();
    expect(h['x-switchyard-pool']).toBeUndefined();
  });
});

describe('issue 10 item 1: handshakes respect the upstream timeout', () => {
  test('an upstream that never answers an Upgrade: foo is cut with 504', async () => {
    const p = await proxyTo(await silentUpstream(), {
      upstreamTimeout: '300ms',
      connectTimeout: '300ms',
    });
    const c = await rawClient(p.port);
    c.socket.write(UPGRADE_FOO);
    await eventually(() => expect(c.closed()).toBe(true), { timeoutMs: 10_000 });
    expect(statusOf(c.text())).toBe(504);
    expect(errorCodeOf(c.text())).toBe('UPSTREAM_TIMEOUT');
  });

  test('an upstream that never answers a WebSocket handshake is cut with 504 UPSTREAM_TIMEOUT', async () => {
    const p = await proxyTo(await silentUpstream(), {
      upstreamTimeout: '300ms',
      connectTimeout: '300ms',
    });
    const c = await rawClient(p.port);
    c.socket.write(
      'GET / HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        `Sec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await eventually(() => expect(c.closed()).toBe(true), { timeoutMs: 10_000 });
    expect(statusOf(c.text())).toBe(504);
    expect(errorCodeOf(c.text())).toBe('UPSTREAM_TIMEOUT');
    const errors = await p.metrics.upstreamErrors.get();
    expect(
      errors.values.find((v) => v.labels.pool === 'blue' && v.labels.reason === 'timeout')?.value,
    ).toBe(1);
  });
});

describe('issue 10: upgrade error answers come from the catalogue', () => {
  test('a WebSocket handshake with POST is answered 400 BAD_REQUEST before any upstream work', async () => {
    const up = await recordingUpstream();
    const p = await proxyTo(up.url);
    const c = await rawClient(p.port);
    c.socket.write(
      'POST / HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        `Sec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await eventually(() => expect(c.closed()).toBe(true), { timeoutMs: 10_000 });
    expect(statusOf(c.text())).toBe(400);
    expect(errorCodeOf(c.text())).toBe('BAD_REQUEST');
    expect(up.heads()).toBe(0);
  });

  test('a WebSocket refused by routing is answered and counted under its real status', async () => {
    const p = await startProxy();
    closers.push(p.close);
    const c = await rawClient(p.port);
    c.socket.write(
      'GET / HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        `Sec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await eventually(() => expect(c.closed()).toBe(true), { timeoutMs: 10_000 });
    expect(statusOf(c.text())).toBe(503);
    expect(errorCodeOf(c.text())).toBe('NO_HEALTHY_UPSTREAM');
    const requests = await p.metrics.requests.get();
    expect(requests.values.find((v) => v.labels.code_class === '5xx')?.value).toBe(1);
  });

  test('a refused WebSocket upstream is answered 502 UPSTREAM_ERROR as JSON', async () => {
    const srv = createServer();
    const port = await listening(srv);
    await new Promise<void>((resolve) => srv.close(() => resolve()));
    const p = await proxyTo(`http://127.0.0.1:${port}`);
    const c = await rawClient(p.port);
    c.socket.write(
      'GET / HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        `Sec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await eventually(() => expect(c.closed()).toBe(true), { timeoutMs: 10_000 });
    expect(statusOf(c.text())).toBe(502);
    expect(c.text().toLowerCase()).toContain('content-type: application/json');
    expect(errorCodeOf(c.text())).toBe('UPSTREAM_ERROR');
  });
});

describe('issue 10 item 9: WebSocket relays to https upstreams use TLS', () => {
  test('relays a WebSocket to a wss upstream with SNI, the client Host and a private CA', async () => {
    const certs = await createTestCertificates();
    closers.push(() => certs.close());
    const [cert, key] = await Promise.all([readFile(certs.certFile), readFile(certs.keyFile)]);
    const server = createHttpsServer({ cert, key }, (_req, res) => res.end('tls-plain'));
    const wss = new WebSocketServer({ server });
    const seen: Array<{ servername: unknown; host: string | undefined }> = [];
    wss.on('connection', (ws, req) => {
      seen.push({ servername: (req.socket as TLSSocket).servername, host: req.headers.host });
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
    closers.push(async () => {
      for (const ws of wss.clients) ws.terminate();
      await Promise.resolve();
    });
    const port = await listening(server);
    // NODE_EXTRA_CA_CERTS is read once at process start: the CA is trusted by a spawned proxy,
    // the same way for undici (plain https forwarding) and the WebSocket relay.
    const proc = await spawnProxy(
      ['--pool', `blue=${BLUE}@https://localhost:${port}`, '--health-check-interval', '0'],
      [],
      { env: { NODE_EXTRA_CA_CERTS: certs.caFile } },
    );
    closers.push(() => proc.kill());
    const proxyPort = new URL(proc.proxyUrl).port;
    const ws = new WebSocket(`ws://127.0.0.1:${proxyPort}/secure`, {
      headers: { host: 'app.test' },
    });
    closers.push(async () => {
      ws.terminate();
      await Promise.resolve();
    });
    ws.on('error', () => undefined);
    const opened = await Promise.race([
      once(ws, 'open').then(() => true),
      once(ws, 'unexpected-response').then(() => false),
    ]);
    expect(opened).toBe(true);
    const echo = once(ws, 'message');
    ws.send('over tls');
    expect(String((await echo)[0])).toBe('over tls');
    expect(seen).toEqual([{ servername: 'localhost', host: 'app.test' }]);

    // Any other Upgrade goes the plain https way (undici), Upgrade stripped. The TLS server name
    // is the endpoint's, never the client's Host (undici's default would check the certificate
    // against app.test and fail with 502).
    const c = await rawClient(Number(proxyPort));
    c.socket.write(
      'GET / HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n',
    );
    await eventually(() => expect(c.closed()).toBe(true), { timeoutMs: 10_000 });
    expect(statusOf(c.text())).toBe(200);
    expect(bodyOf(c.text())).toContain('tls-plain');
  });

  test('a wss upstream whose certificate is not trusted is answered 502 UPSTREAM_ERROR', async () => {
    const certs = await createTestCertificates();
    closers.push(() => certs.close());
    const [cert, key] = await Promise.all([readFile(certs.certFile), readFile(certs.keyFile)]);
    const server = createHttpsServer({ cert, key });
    const wss = new WebSocketServer({ server });
    let connections = 0;
    wss.on('connection', () => connections++);
    const port = await listening(server);
    // In this process the test CA is unknown: the TLS handshake must fail, never fall back.
    const p = await proxyTo(`https://localhost:${port}`);
    const c = await rawClient(p.port);
    c.socket.write(
      'GET / HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        `Sec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await eventually(() => expect(c.closed()).toBe(true), { timeoutMs: 10_000 });
    expect(statusOf(c.text())).toBe(502);
    expect(errorCodeOf(c.text())).toBe('UPSTREAM_ERROR');
    expect(connections).toBe(0);
  });
});
