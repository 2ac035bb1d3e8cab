/**
 * Draining on cutover (SPEC §4, issue 5): a switch or weight change fails no request; WebSockets
 * and streams on the old pool stay open for drainTimeout, are then closed one by one within
 * drainSpread (WebSockets with 1012) and reconnect to the new pool; a rollback before the
 * deadline cancels the drain; endpoints removed from the table are drained the same way.
 */
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { describe, expect, test } from 'vitest';
import { WebSocket } from 'ws';
import { eventually } from '../helpers/eventually.js';
import { startLoad } from '../helpers/keepalive-load.js';
import { readMetric } from '../helpers/metrics.js';
import {
  COLOUR_VERSIONS,
  startColours,
  startReference,
  type TestReference,
} from '../helpers/reference.js';
import { startApp, type TestApp } from '../helpers/start-app.js';
import { closeAfterEach } from '../helpers/closers.js';

const { blue: BLUE } = COLOUR_VERSIONS;
const ADMIN = { actor: 'test', source: 'admin' as const };
const DRAIN_MS = 1_000;
const SPREAD_MS = 500;
/** Timer lateness tolerated on a shared, loaded machine (upper bounds only). */
const SLACK_MS = 1_500;

const closers = closeAfterEach();

interface World {
  blue: TestReference;
  green: TestReference;
  canary: TestReference;
  t: TestApp;
  wsUrl: string;
}

async function world(config: Record<string, unknown> = {}): Promise<World> {
  const { blue, green, canary, pools } = await startColours(closers);
  const t = await startApp({
    pools,
    drainTimeout: DRAIN_MS,
    drainSpread: SPREAD_MS,
    healthCheckInterval: 0,
    ...config,
  });
  closers.push(() => t.close());
  return { blue, green, canary, t, wsUrl: t.proxyUrl.replace('http:', 'ws:') };
}

interface OpenWs {
  ws: WebSocket;
  /** Pool named in the upstream's hello message. */
  pool: string;
  closed: Promise<{ code: number; at: number }>;
}

async function openWs(url: string): Promise<OpenWs> {
  const ws = new WebSocket(url);
  closers.push(async () => {
    if (ws.readyState === WebSocket.CLOSED) return;
    ws.on('error', () => undefined);
    const gone = once(ws, 'close');
    ws.terminate();
    await gone;
  });
  const closed = new Promise<{ code: number; at: number }>((resolve) =>
    ws.once('close', (code: number) => resolve({ code, at: performance.now() })),
  );
  const hello = new Promise<Buffer>((resolve, reject) => {
    ws.once('message', resolve);
    ws.once('error', reject);
  });
  const first = JSON.parse((await hello).toString()) as { pool: string };
  return { ws, pool: first.pool, closed };
}

/** A GET whose response is read as it streams; resolves with how it ended. */
function streamGet(
  url: string,
): Promise<{ res: IncomingMessage; ended: Promise<{ how: 'end' | 'aborted'; at: number }> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      const ended = new Promise<{ how: 'end' | 'aborted'; at: number }>((done) => {
        res.on('end', () => done({ how: 'end', at: performance.now() }));
        res.on('aborted', () => done({ how: 'aborted', at: performance.now() }));
        res.on('error', () => done({ how: 'aborted', at: performance.now() }));
      });
      res.resume();
      resolve({ res, ended });
    });
    req.on('error', reject);
    req.end();
    closers.push(() => {
      req.destroy();
      return Promise.resolve();
    });
  });
}

describe('drain on cutover', () => {
  test('a WebSocket on the old pool stays open for drainTimeout, gets 1012 within the spread, and reconnects to the new pool', async () => {
    const { t, wsUrl } = await world();
    const old = await openWs(`${wsUrl}/live`);
    expect(old.pool).toBe('blue');

    const switchedAt = performance.now();
    await t.app.store.apply({ op: 'switch', to: 'green' }, ADMIN);
    await eventually(async () =>
      expect(
        await readMetric(t.app.metrics, 'switchyard_draining_connections', { pool: 'blue' }),
      ).toBe(1),
    );
    const { code, at } = await old.closed;
    const afterMs = at - switchedAt;
    expect(code).toBe(1012);
    expect(afterMs).toBeGreaterThanOrEqual(DRAIN_MS - 20);
    expect(afterMs).toBeLessThan(DRAIN_MS + SPREAD_MS + SLACK_MS);

    const again = await openWs(`${wsUrl}/live`);
    expect(again.pool).toBe('green');
    expect(
      await readMetric(t.app.metrics, 'switchyard_drained_connections_total', {
        pool: 'blue',
        outcome: 'closed',
      }),
    ).toBe(1);
    await eventually(async () =>
      expect(
        await readMetric(t.app.metrics, 'switchyard_draining_connections', { pool: 'blue' }),
      ).toBe(0),
    );
    const messages = t.logs.map((l) => l.msg);
    expect(messages).toContain('drain started');
    expect(messages).toContain('drain finished');
    console.log(
      `websocket closed 1012 after ${Math.round(afterMs)} ms (drainTimeout ${DRAIN_MS}, spread ${SPREAD_MS})`,
    );
  });

  test('closing moments are spread over drainSpread, each after drainTimeout', async () => {
    const { t, wsUrl } = await world({ drainSpread: 1_000 });
    const conns = await Promise.all(Array.from({ length: 8 }, () => openWs(`${wsUrl}/spread`)));
    const switchedAt = performance.now();
    await t.app.store.apply({ op: 'switch', to: 'green' }, ADMIN);
    const closes = await Promise.all(conns.map((c) => c.closed));
    const offsets = closes.map((c) => c.at - switchedAt).sort((a, b) => a - b);
    for (const c of closes) expect(c.code).toBe(1012);
    expect(offsets[0]).toBeGreaterThanOrEqual(DRAIN_MS - 20);
    expect(offsets.at(-1)).toBeLessThan(DRAIN_MS + 1_000 + SLACK_MS);
    // Eight uniform draws over 1 s are not all within 50 ms of each other (p ≈ 1e-8).
    expect((offsets.at(-1) as number) - (offsets[0] as number)).toBeGreaterThan(50);
    console.log(`8 websockets closed at +${offsets.map((o) => Math.round(o)).join(', +')} ms`);
  });

  test('a rollback before the deadline cancels the drain: the WebSocket stays open', async () => {
    const { t, wsUrl } = await world();
    const conn = await openWs(`${wsUrl}/stay`);
    await t.app.store.apply({ op: 'switch', to: 'green' }, ADMIN);
    await eventually(() => expect(t.app.proxy.drainingEndpoints()).toBe(1));
    await t.app.store.apply({ op: 'switch', to: 'blue' }, ADMIN);
    expect(t.app.proxy.drainingEndpoints()).toBe(0);
    expect(
      await readMetric(t.app.metrics, 'switchyard_draining_connections', { pool: 'blue' }),
    ).toBe(0);
    // Proving that nothing happens needs the whole window to pass.
    const outcome = await Promise.race([
      conn.closed.then(() => 'closed'),
      new Promise((resolve) => setTimeout(() => resolve('open'), DRAIN_MS + SPREAD_MS + 300)),
    ]);
    expect(outcome).toBe('open');
    const echoed = new Promise<Buffer>((resolve) => conn.ws.once('message', resolve));
    conn.ws.send('still here');
    expect((await echoed).toString()).toBe('still here');
    expect(t.logs.map((l) => l.msg)).toContain('drain cancelled');
  });

  test('an SSE stream on the old pool ends cleanly after drainTimeout; a slow request completes', async () => {
    const { t, blue } = await world();
    const sse = await streamGet(`${t.proxyUrl}/stream?n=100000&intervalMs=50`);
    expect(sse.res.headers['x-switchyard-upstream']).toBe(`blue@${BLUE}`);
    const slow = fetch(`${t.proxyUrl}/slow?ms=1200`);
    await eventually(() => expect(blue.server.stats().openStreams).toBe(1));
    await eventually(() => expect(blue.server.stats().requests).toBe(2)); // the slow one too
    const switchedAt = performance.now();
    await t.app.store.apply({ op: 'switch', to: 'green' }, ADMIN);

    const slowRes = await slow;
    expect(slowRes.status).toBe(200);
    expect(((await slowRes.json()) as { pool: string }).pool).toBe('blue');
    const { how, at } = await sse.ended;
    expect(how).toBe('end');
    expect(at - switchedAt).toBeGreaterThanOrEqual(DRAIN_MS - 20);
    expect(at - switchedAt).toBeLessThan(DRAIN_MS + SPREAD_MS + SLACK_MS);
    // The upstream stream was cancelled too.
    await eventually(() => expect(blue.server.stats().openStreams).toBe(0));
    expect(
      await readMetric(t.app.metrics, 'switchyard_drained_connections_total', {
        pool: 'blue',
        outcome: 'closed',
      }),
    ).toBe(1);
    expect(
      await readMetric(t.app.metrics, 'switchyard_drained_connections_total', {
        pool: 'blue',
        outcome: 'completed',
      }),
    ).toBe(1);
  });

  test('an endpoint removed from the table: in-flight request completes, WebSocket gets 1012 at the deadline', async () => {
    const { t, wsUrl } = await world();
    const blue2 = await startReference({ pool: 'blue', version: BLUE });
    closers.push(blue2.close);
    const conn = await openWs(`${wsUrl}/moved`);
    const slow = fetch(`${t.proxyUrl}/slow?ms=600`);
    await eventually(() => expect(t.app.proxy.poolHealth('blue').total).toBe(1));
    const changedAt = performance.now();
    await t.app.store.apply(
      { op: 'set-pool', pool: 'blue', version: BLUE, endpoints: [blue2.url] },
      ADMIN,
    );
    expect((await slow).status).toBe(200);
    const { code, at } = await conn.closed;
    expect(code).toBe(1012);
    expect(at - changedAt).toBeGreaterThanOrEqual(DRAIN_MS - 20);
    expect(at - changedAt).toBeLessThan(DRAIN_MS + SPREAD_MS + SLACK_MS);
    const started = t.logs.find((l) => l.msg === 'drain started');
    expect(started).toMatchObject({ reason: 'removed' });
  });

  test('≥ 10 switches and canary changes under keep-alive load: zero failed requests, slow requests complete', async () => {
    const { t } = await world();
    const load = startLoad({
      origin: t.proxyUrl,
      clients: 4,
      requests: [
        { method: 'GET', path: '/' },
        { method: 'POST', path: '/echo', body: '{"order":1}' },
        { method: 'GET', path: '/bytes?n=20000' },
      ],
    });
    const changes: Array<Record<string, unknown>> = [
      { op: 'canary', percent: 10 },
      { op: 'canary', percent: 50 },
      { op: 'switch', to: 'green' },
      { op: 'canary', percent: 5 },
      { op: 'weights', percent: { blue: 50, green: 50 } },
      { op: 'switch', to: 'blue' },
      { op: 'canary', percent: 25 },
      { op: 'switch', to: 'canary' },
      { op: 'switch', to: 'green' },
      { op: 'weights', percent: { blue: 30, green: 30, canary: 40 } },
      { op: 'switch', to: 'blue' },
      { op: 'switch', to: 'green' },
    ];
    const slow: Array<Promise<Response>> = [];
    // Each change lands while load is flowing and a slow request is in flight on the old table:
    // pace by the load's progress, not by sleeps (a busy runner may serve far fewer per 250 ms).
    const progressed = async (): Promise<void> => {
      const before = load.result.ok;
      await eventually(() => expect(load.result.ok).toBeGreaterThan(before + 10), {
        timeoutMs: 5_000,
      });
    };
    for (const change of changes) {
      slow.push(fetch(`${t.proxyUrl}/slow?ms=700`));
      await progressed();
      await t.app.store.apply(change, ADMIN);
    }
    await progressed();
    const result = await load.stop();
    const slowStatuses = await Promise.all(slow.map(async (p) => (await p).status));
    console.log(
      `cutover under load: ${result.ok} ok, ${result.failed} failed, by pool ${JSON.stringify(result.byPool)}, ${changes.length} changes`,
    );
    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(100);
    expect(slowStatuses).toEqual(changes.map(() => 200));
    expect(Object.keys(result.byPool).sort()).toEqual(['blue', 'canary', 'green']);
  });
});
