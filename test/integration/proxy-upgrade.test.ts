/** WebSocket relay through the proxy, and other Upgrade requests (SPEC §3, issue 10). */
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { connect, createServer, type AddressInfo } from 'node:net';
import { describe, expect, test } from 'vitest';
import { WebSocket } from 'ws';
import { eventually } from '../helpers/eventually.js';
import { readMetric } from '../helpers/metrics.js';
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

async function world(endpoint?: string): Promise<{ blue: TestReference; p: TestProxy }> {
  const blue = await startReference({ pool: 'blue', version: BLUE });
  closers.push(blue.close);
  const p = await startProxy();
  closers.push(p.close);
  p.proxy.applyTable(
    makeTable({ blue: { version: BLUE, endpoints: [endpoint ?? blue.url], weight: 10000 } }),
  );
  return { blue, p };
}

function openClient(
  url: string,
  protocols: string[] = [],
  headers: Record<string, string> = {},
): WebSocket {
  const ws = new WebSocket(url, protocols, { headers });
  closers.push(async () => {
    if (ws.readyState === WebSocket.CLOSED) return;
    ws.on('error', () => undefined); // terminating a handshake in progress reports an error
    const closed = new Promise((resolve) => ws.once('close', resolve));
    ws.terminate();
    await closed;
  });
  return ws;
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data: Buffer, isBinary: boolean) => resolve({ data, isBinary }));
    ws.once('error', reject);
  });
}

describe('proxy upgrades', () => {
  test('relays a WebSocket echo, with the upstream subprotocol, cookies and proxy headers', async () => {
    const { p } = await world();
    const ws = openClient(`ws://127.0.0.1:${p.port}/chat?room=1`, ['chat.v2', 'chat.v1'], {
      cookie: 'sy_id=abc',
    });
    const upgrade = new Promise<IncomingMessage>((resolve) => ws.once('upgrade', resolve));
    const hello = nextMessage(ws);
    await once(ws, 'open');
    const res = await upgrade;
    expect(res.headers['x-switchyard-upstream']).toBe(`blue@${BLUE}`);
    expect(res.headers['set-cookie']).toBeUndefined(); // the client already had a sticky id
    expect(ws.protocol).toBe('chat.v2');
    const first = JSON.parse((await hello).data.toString()) as Record<string, unknown>;
    expect(first).toMatchObject({
      pool: 'blue',
      version: BLUE,
      protocol: 'chat.v2',
      path: '/chat?room=1',
    });

    const text = nextMessage(ws);
    ws.send('hello');
    expect((await text).data.toString()).toBe('hello');
    const bin = nextMessage(ws);
    ws.send(Buffer.from([1, 2, 3]));
    const got = await bin;
    expect(got.isBinary).toBe(true);
    expect([...got.data]).toEqual([1, 2, 3]);

    expect(p.proxy.connections.size).toBe(1);
    expect(await readMetric(p.metrics, 'switchyard_upgraded_connections', { pool: 'blue' })).toBe(
      1,
    );
    ws.close(1000, 'bye');
    const [code] = (await once(ws, 'close')) as [number];
    expect(code).toBe(1000);
    await eventually(() => expect(p.proxy.connections.size).toBe(0));
  });

  test('sets the sticky cookie on the 101 answer when the client has none', async () => {
    const { p } = await world();
    const ws = openClient(`ws://127.0.0.1:${p.port}/`);
    const [res] = (await once(ws, 'upgrade')) as [IncomingMessage];
    expect(res.headers['set-cookie']?.[0]).toMatch(
      /^sy_id=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/,
    );
  });

  test('the tracker closes relayed WebSockets with the requested code', async () => {
    const { blue, p } = await world();
    const ws = openClient(`ws://127.0.0.1:${p.port}/`);
    await once(ws, 'open');
    expect(p.proxy.connections.forEndpoint(blue.url)).toHaveLength(1);
    const closed = once(ws, 'close');
    expect(p.proxy.connections.closeEndpoint(blue.url, 1012)).toBe(1);
    const [code] = (await closed) as [number];
    expect(code).toBe(1012);
    await eventually(() => expect(p.proxy.connections.size).toBe(0));
  });

  test('answers 502 JSON when the upstream refuses the WebSocket connection', async () => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const { port } = srv.address() as AddressInfo;
    await new Promise<void>((resolve) => srv.close(() => resolve()));
    const { p } = await world(`http://127.0.0.1:${port}`);
    const ws = openClient(`ws://127.0.0.1:${p.port}/`);
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage];
    expect(res.statusCode).toBe(502);
    res.resume();
  });

  test('forwards other Upgrade protocols as plain requests, then closes (issue 10)', async () => {
    const { p } = await world();
    const socket = connect(p.port, '127.0.0.1');
    closers.push(async () => {
      socket.destroy();
      await Promise.resolve();
    });
    await once(socket, 'connect');
    let received = '';
    let closed = false;
    socket.on('data', (c: Buffer) => {
      received += c.toString('latin1');
    });
    socket.on('close', () => (closed = true));
    socket.write(
      'GET /tunnel HTTP/1.1\r\nHost: t.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n',
    );
    // The reference server would switch to a raw echo if the Upgrade reached it.
    await eventually(() => expect(closed).toBe(true));
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
    expect(received.toLowerCase()).toContain('connection: close');
    expect(p.proxy.connections.size).toBe(0);
  });
});
