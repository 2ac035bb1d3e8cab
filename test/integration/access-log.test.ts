/**
 * The access log (issue 15): off by default; with `accessLog` one JSON line per request through
 * its own pino destination (a file, or stdout next to the app log), flushed on close; sampled
 * with `accessLogSample`.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { WebSocket } from 'ws';
import { closeAfterEach, listenOnLoopback } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { spawnProxy } from '../helpers/proxy-process.js';
import { startColours } from '../helpers/reference.js';
import { startApp } from '../helpers/start-app.js';

const closers = closeAfterEach();

async function tempFile(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-access-'));
  closers.push(() => rm(dir, { recursive: true, force: true }));
  return join(dir, name);
}

async function readLines(path: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(path, 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('access log', () => {
  test('one JSON line per request with the fields, written to a file and flushed on close', async () => {
    const path = await tempFile('access.log');
    const { pools } = await startColours(closers);
    const t = await startApp({ pools, accessLog: path, healthCheckInterval: 0 });
    let closed = false;
    closers.push(() => (closed ? undefined : t.close()));
    const rules = await fetch(`${t.adminUrl}/v1/rules`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        rules: [{ name: 'beta', match: [{ header: 'x-beta', present: true }], pool: 'canary' }],
      }),
    });
    expect(rules.status).toBe(200);

    const get = async (path: string, headers: Record<string, string> = {}): Promise<string> => {
      const res = await fetch(`${t.proxyUrl}${path}`, { headers });
      return res.text();
    };
    const first = await get('/first?token=secret');
    await get('/second', { cookie: 'sy_id=abc' });
    await get('/beta', { 'x-beta': '1' });
    const post = await fetch(`${t.proxyUrl}/upload`, { method: 'POST', body: 'hello' });
    expect(post.status).toBe(200);
    await post.text();
    await t.close();
    closed = true;

    const lines = await readLines(path);
    expect(lines).toHaveLength(4);
    const [a, b, c, d] = lines as [
      Record<string, unknown>,
      Record<string, unknown>,
      Record<string, unknown>,
      Record<string, unknown>,
    ];
    expect(Object.keys(a).sort()).toEqual(
      [
        'time',
        'method',
        'path',
        'status',
        'pool',
        'version',
        'endpoint',
        'durationMs',
        'bytes',
        'sticky',
        'rule',
        'retry',
      ].sort(),
    );
    expect(a).toMatchObject({
      method: 'GET',
      path: '/first',
      status: 200,
      pool: 'blue',
      version: '1111111',
      endpoint: pools[0]?.endpoints[0],
      bytes: Buffer.byteLength(first),
      sticky: 'new-cookie',
      rule: null,
      retry: false,
    });
    expect(Number.isNaN(Date.parse(a.time as string))).toBe(false);
    expect(a.durationMs).toBeGreaterThan(0);
    expect(b).toMatchObject({ path: '/second', sticky: 'cookie', pool: 'blue' });
    expect(c).toMatchObject({ path: '/beta', sticky: 'rule', rule: 'beta', pool: 'canary' });
    expect(d).toMatchObject({ method: 'POST', path: '/upload', status: 200 });
    // Queries are left out (they often carry tokens).
    expect(JSON.stringify(lines)).not.toContain('secret');
  });

  test('sampling keeps roughly that share of the lines', async () => {
    const path = await tempFile('sampled.log');
    const { pools } = await startColours(closers);
    const t = await startApp({ pools, accessLog: path, accessLogSample: 0.1 });
    let closed = false;
    closers.push(() => (closed ? undefined : t.close()));
    const n = 400;
    for (let i = 0; i < n; i++) {
      const res = await fetch(`${t.proxyUrl}/s/${i}`);
      await res.arrayBuffer();
    }
    await t.close();
    closed = true;
    const lines = await readLines(path);
    // Expected 40; binomial sd ~6: 15..80 fails only when sampling is broken.
    expect(lines.length).toBeGreaterThanOrEqual(15);
    expect(lines.length).toBeLessThanOrEqual(80);
  });

  test('off by default: no access lines; a file that cannot be opened stops start-up', async () => {
    const { pools } = await startColours(closers);
    const t = await startApp({ pools });
    closers.push(() => t.close());
    await (await fetch(`${t.proxyUrl}/x`)).text();
    expect(t.logs.some((l) => l.method !== undefined)).toBe(false);

    const dir = await tempFile('no-such-dir');
    await expect(startApp({ pools, accessLog: join(dir, 'access.log') })).rejects.toThrow(
      /accessLog: cannot open .*access\.log/,
    );
  });

  test('--access-log stdout writes the lines beside the app log (real binary)', async () => {
    const { pools } = await startColours(closers);
    const blue = pools[0] as { version: string; endpoints: string[] };
    const proc = await spawnProxy([
      '--pool',
      `blue=${blue.version}@${blue.endpoints[0]}`,
      '--access-log',
      'stdout',
    ]);
    closers.push(() => proc.kill());
    await (await fetch(`${proc.proxyUrl}/hello?x=1`)).text();
    await eventually(
      () => {
        const line = proc.logs.find((l) => l.path === '/hello');
        expect(line).toMatchObject({ method: 'GET', status: 200, pool: 'blue' });
        expect(line?.msg).toBeUndefined();
        expect(line?.level).toBeUndefined();
      },
      { timeoutMs: 10_000 },
    );
  });
  test('a WebSocket gets one line when it ends (101, its whole duration), refusals theirs', async () => {
    const path = await tempFile('ws-access.log');
    const { pools } = await startColours(closers);
    // An upstream that refuses every upgrade with 403, as the `green` pool.
    const refusing = http.createServer((_req, res) => res.writeHead(404).end());
    refusing.on('upgrade', (_req, socket: Socket) => {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno');
    });
    const refusingUrl = await listenOnLoopback(refusing, closers);
    const withRefusing = pools.map((p) =>
      p.name === 'green' ? { ...p, endpoints: [refusingUrl] } : p,
    );
    const t = await startApp({ pools: withRefusing, accessLog: path, healthCheckInterval: 0 });
    let closed = false;
    closers.push(() => (closed ? undefined : t.close()));
    const wsUrl = t.proxyUrl.replace('http:', 'ws:');

    // Relayed: open, two echoes, held ~300 ms, closed by the client.
    const ws = new WebSocket(`${wsUrl}/chat?token=secret`);
    const messages: string[] = [];
    ws.on('message', (data: Buffer) => messages.push(data.toString('utf8')));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.send('one');
    ws.send('two');
    await eventually(() => expect(messages).toHaveLength(3)); // hello + two echoes
    await new Promise((resolve) => setTimeout(resolve, 300));
    const wsClosed = new Promise((resolve) => ws.once('close', resolve));
    ws.close(1000);
    await wsClosed;

    // Refused by the upstream: a rule sends /green to the refusing pool.
    const rules = await fetch(`${t.adminUrl}/v1/rules`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        rules: [{ name: 'to-green', match: [{ path: true, prefix: '/green' }], pool: 'green' }],
      }),
    });
    expect(rules.status).toBe(200);
    const refused = new WebSocket(`${wsUrl}/green/chat`);
    const status = await new Promise<number>((resolve) => {
      refused.once('unexpected-response', (_req, res: http.IncomingMessage) => {
        resolve(res.statusCode ?? 0);
        res.resume();
      });
      refused.once('error', () => resolve(-1));
    });
    expect(status).toBe(403);
    refused.terminate();

    // Not a valid handshake: answered 400 by the proxy itself.
    const bad = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${t.proxyUrl}/bad`, {
        headers: { connection: 'upgrade', upgrade: 'websocket', 'sec-websocket-version': '13' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('upgrade', () => reject(new Error('upgraded')));
      req.on('error', reject);
      req.end();
    });
    expect(bad).toBe(400);

    await eventually(async () => expect(await readLines(path)).toHaveLength(3));
    await t.close();
    closed = true;
    const [relayed, byUpstream, byProxy] = await readLines(path);
    expect(relayed).toMatchObject({
      method: 'GET',
      path: '/chat',
      status: 101,
      pool: 'blue',
      version: '1111111',
      endpoint: pools[0]?.endpoints[0],
      rule: null,
      retry: false,
    });
    expect(relayed?.durationMs as number).toBeGreaterThanOrEqual(300);
    // The 101 head and three messages at least.
    expect(relayed?.bytes as number).toBeGreaterThan(100);
    expect(byUpstream).toMatchObject({
      path: '/green/chat',
      status: 403,
      pool: 'green',
      rule: 'to-green',
    });
    expect(byProxy).toMatchObject({ path: '/bad', status: 400, pool: null, endpoint: null });
  });
});
