/**
 * The "drained" signal (issue 13, SPEC §10): GET /v1/pools/{name}/drain turns true only once
 * every live replica routes nothing to the pool and has no request or long-lived connection to
 * it open; a dead replica does not block it; memory mode answers for the one process.
 */
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { spawnProxy } from '../helpers/proxy-process.js';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { startColours, type TestColours } from '../helpers/reference.js';
import { postJson, startApp, type TestApp } from '../helpers/start-app.js';

const closers = closeAfterEach();

interface DrainAnswer {
  pool: string;
  weight: number;
  drained: boolean;
  replicas: Array<{
    id: string;
    live: boolean;
    revision: number;
    weight: number | null;
    inFlight: number | null;
    longLived: number | null;
  }>;
}

async function drain(adminUrl: string, pool: string): Promise<DrainAnswer> {
  const res = await fetch(`${adminUrl}/v1/pools/${pool}/drain`);
  const body = (await res.json()) as DrainAnswer;
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body;
}

function replica(answer: DrainAnswer, id: string): DrainAnswer['replicas'][number] {
  const r = answer.replicas.find((x) => x.id === id);
  if (r === undefined) throw new Error(`replica ${id} missing: ${JSON.stringify(answer)}`);
  return r;
}

/** A slow request through `proxyUrl` (blue has all the traffic); resolves with its status. */
function slowRequest(proxyUrl: string, ms: number): Promise<number> {
  return fetch(`${proxyUrl}/slow?ms=${ms}`).then(async (res) => {
    await res.arrayBuffer();
    return res.status;
  });
}

/** An open WebSocket through `proxyUrl`, echo checked. */
async function openWebSocket(proxyUrl: string): Promise<WebSocket> {
  const ws = new WebSocket(`${proxyUrl.replace('http', 'ws')}/ws`);
  closers.push(() => ws.terminate());
  await once(ws, 'open');
  ws.send('ping');
  const [data] = (await once(ws, 'message')) as [Buffer];
  expect(data.toString()).toBe('ping');
  return ws;
}

async function closeWebSocket(ws: WebSocket): Promise<void> {
  const closed = once(ws, 'close');
  ws.close(1000);
  await closed;
}

/** Two apps on one Redis, blue at 100 %. */
async function redisWorld(): Promise<{
  a: TestApp;
  b: TestApp;
  colours: TestColours;
  redisUrl: string;
  redis: RedisServerHandle;
}> {
  const redis = await startRedisServer();
  closers.push(() => redis.close());
  const colours = await startColours(closers);
  const apps: TestApp[] = [];
  for (const id of ['drain-a', 'drain-b']) {
    const app = await startApp(
      { redis: redis.url, namespace: 'drain', pools: colours.pools },
      { replicaId: id },
    );
    closers.push(() => app.close());
    apps.push(app);
  }
  const [a, b] = apps as [TestApp, TestApp];
  // Both have reported once (heartbeat at start).
  await eventually(async () => {
    const answer = await drain(a.adminUrl, 'blue');
    expect(answer.replicas.map((r) => [r.id, r.live, r.weight])).toEqual([
      ['drain-a', true, 10_000],
      ['drain-b', true, 10_000],
    ]);
    expect(answer.drained).toBe(false);
  });
  return { a, b, colours, redisUrl: redis.url, redis };
}

/** Polls until `drained` is true; returns how long that took from `since` (ms). */
async function drainedWithin(adminUrl: string, since: number, label: string): Promise<number> {
  await eventually(async () => expect((await drain(adminUrl, 'blue')).drained).toBe(true), {
    timeoutMs: 15_000,
    intervalMs: 50,
  });
  const tookMs = Date.now() - since;
  console.log(`drain signal (${label}): drained ${tookMs} ms after the last connection ended`);
  // Replicas report every second; anything near that is the signal working, far above is a bug.
  expect(tookMs).toBeLessThan(8_000);
  return tookMs;
}

describe('drain signal, two replicas on one Redis', () => {
  it('stays false while a slow request (A) or a WebSocket (B) is open, true after the last ends', async () => {
    const { a, b } = await redisWorld();
    const ws = await openWebSocket(b.proxyUrl);
    const slow = slowRequest(a.proxyUrl, 3_000);
    await eventually(async () => {
      const answer = await drain(a.adminUrl, 'blue');
      expect(replica(answer, 'drain-a').inFlight).toBe(1);
      expect(replica(answer, 'drain-b').longLived).toBe(1);
    });
    expect((await postJson(`${a.adminUrl}/v1/switch?wait=all`, { to: 'green' })).status).toBe(200);
    // Both replicas routed the switch and reported it; the open connections keep it false.
    await eventually(async () => {
      const answer = await drain(b.adminUrl, 'blue');
      expect(answer.weight).toBe(0);
      expect(answer.replicas.map((r) => r.weight)).toEqual([0, 0]);
      expect(replica(answer, 'drain-a').inFlight).toBe(1);
      expect(answer.drained).toBe(false);
    });
    expect(await slow).toBe(200);
    // The slow request is over; the WebSocket on B still holds the pool.
    await eventually(async () => {
      const answer = await drain(a.adminUrl, 'blue');
      expect(replica(answer, 'drain-a').inFlight).toBe(0);
      expect(replica(answer, 'drain-b').longLived).toBe(1);
      expect(answer.drained).toBe(false);
    });
    expect(ws.readyState).toBe(WebSocket.OPEN);
    await closeWebSocket(ws);
    await drainedWithin(a.adminUrl, Date.now(), 'websocket on B last');
    // The new pool carries the traffic: never drained.
    expect((await drain(a.adminUrl, 'green')).drained).toBe(false);
  });

  it('a slow request on B ending last turns it true', async () => {
    const { a, b } = await redisWorld();
    const ws = await openWebSocket(a.proxyUrl);
    const slow = slowRequest(b.proxyUrl, 4_000);
    await eventually(async () => {
      const answer = await drain(a.adminUrl, 'blue');
      expect(replica(answer, 'drain-b').inFlight).toBe(1);
      expect(replica(answer, 'drain-a').longLived).toBe(1);
    });
    expect((await postJson(`${a.adminUrl}/v1/switch?wait=all`, { to: 'green' })).status).toBe(200);
    await closeWebSocket(ws);
    await eventually(async () => {
      const answer = await drain(a.adminUrl, 'blue');
      expect(replica(answer, 'drain-a').longLived).toBe(0);
      expect(replica(answer, 'drain-b').inFlight).toBe(1);
      expect(answer.drained).toBe(false);
    });
    expect(await slow).toBe(200);
    await drainedWithin(b.adminUrl, Date.now(), 'slow request on B last');
  });

  it('a dead replica (no heartbeat for 5 s) does not block it', async () => {
    const { a, colours, redisUrl } = await redisWorld();
    const proc = await spawnProxy([
      '--redis',
      redisUrl,
      '--namespace',
      'drain',
      ...colours.pools.map((p) => `--pool=${p.name}=${p.version}@${p.endpoints[0]}`),
    ]);
    closers.push(() => proc.kill()); // SIGKILL ends a stopped process too
    const stranger = await eventually(async () => {
      const other = (await drain(a.adminUrl, 'blue')).replicas.find(
        (r) => !r.id.startsWith('drain-') && r.live,
      );
      expect(other).toBeDefined();
      return other!.id;
    });
    // Its last report, before it stops, says blue has all its traffic.
    proc.child.kill('SIGSTOP');
    expect((await postJson(`${a.adminUrl}/v1/switch`, { to: 'green' })).status).toBe(200);
    const switchedAt = Date.now();
    // While its heartbeat is fresh the stopped replica counts, with the weight of ITS table: a
    // lagging replica keeps the pool from being drained.
    const lagging = await drain(a.adminUrl, 'blue');
    const stale = replica(lagging, stranger);
    if (stale.live) {
      expect(stale.weight).toBe(10_000);
      expect(lagging.drained).toBe(false);
    }
    const answer = await eventually(
      async () => {
        const body = await drain(a.adminUrl, 'blue');
        expect(body.drained).toBe(true);
        return body;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    const waitedMs = Date.now() - switchedAt;
    console.log(`drain signal: dead replica stopped blocking after ${waitedMs} ms`);
    expect(replica(answer, stranger)).toMatchObject({ live: false, weight: 10_000 });
    expect(replica(answer, 'drain-a')).toMatchObject({ live: true, weight: 0, inFlight: 0 });
  });
});

describe('drain signal, Redis keys', () => {
  it('the drain hash expires and loses the field of a replica that left', async () => {
    const { a, b, redis } = await redisWorld();
    const key = 'switchyard:{drain}:drain';
    expect((await redis.cli(['HKEYS', key])).split('\n').filter(Boolean).sort()).toEqual([
      'drain-a',
      'drain-b',
    ]);
    const ttlMs = Number((await redis.cli(['PTTL', key])).trim());
    expect(ttlMs).toBeGreaterThan(0);
    expect(ttlMs).toBeLessThanOrEqual(60 * 60 * 1000);
    await b.close();
    await eventually(async () =>
      expect((await redis.cli(['HKEYS', key])).split('\n').filter(Boolean)).toEqual(['drain-a']),
    );
    expect((await drain(a.adminUrl, 'blue')).replicas.map((r) => r.id)).toEqual(['drain-a']);
  });
});

describe('drain signal, memory mode', () => {
  it('counts an SSE stream as long-lived until the client leaves', async () => {
    const colours = await startColours(closers);
    const app = await startApp({ pools: colours.pools }, { replicaId: 'solo' });
    closers.push(() => app.close());
    const abort = new AbortController();
    closers.push(() => abort.abort());
    const res = await fetch(`${app.proxyUrl}/stream?n=1000&intervalMs=100`, {
      signal: abort.signal,
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    await reader.read(); // the first event arrived: the stream is under way
    expect((await drain(app.adminUrl, 'blue')).replicas[0]).toMatchObject({
      inFlight: 0,
      longLived: 1,
    });
    expect((await postJson(`${app.adminUrl}/v1/switch`, { to: 'green' })).status).toBe(200);
    expect((await drain(app.adminUrl, 'blue')).drained).toBe(false);
    abort.abort();
    await reader.read().catch(() => undefined);
    await eventually(async () => expect((await drain(app.adminUrl, 'blue')).drained).toBe(true));
  });

  it('counts per pool when two pools share an endpoint URL', async () => {
    const colours = await startColours(closers);
    const shared = colours.blue.url;
    const app = await startApp(
      {
        pools: [
          { name: 'blue', version: '1111111', endpoints: [shared] },
          { name: 'green', version: '2222222', endpoints: [shared] },
        ],
      },
      { replicaId: 'solo' },
    );
    closers.push(() => app.close());
    const slow = slowRequest(app.proxyUrl, 1_500);
    await eventually(async () =>
      expect((await drain(app.adminUrl, 'blue')).replicas[0]?.inFlight).toBe(1),
    );
    expect((await postJson(`${app.adminUrl}/v1/switch`, { to: 'green' })).status).toBe(200);
    // A request to green on the same endpoint is green's, not blue's.
    const greenSlow = slowRequest(app.proxyUrl, 3_000);
    await eventually(async () =>
      expect((await drain(app.adminUrl, 'green')).replicas[0]?.inFlight).toBe(1),
    );
    const during = await drain(app.adminUrl, 'blue');
    expect(during.replicas[0]).toMatchObject({ weight: 0, inFlight: 1 });
    expect(during.drained).toBe(false);
    expect(await slow).toBe(200);
    await eventually(async () => expect((await drain(app.adminUrl, 'blue')).drained).toBe(true));
    // green's request is still running on the shared endpoint.
    expect((await drain(app.adminUrl, 'green')).replicas[0]?.inFlight).toBe(1);
    expect(await greenSlow).toBe(200);
  });

  it('answers for the one process; a removed pool stays answerable; an unknown one is 404', async () => {
    const colours = await startColours(closers);
    const app = await startApp({ pools: colours.pools }, { replicaId: 'solo' });
    closers.push(() => app.close());
    const before = await drain(app.adminUrl, 'blue');
    expect(before).toMatchObject({ pool: 'blue', weight: 10_000, drained: false });
    expect(before.replicas).toEqual([
      { id: 'solo', live: true, revision: 1, weight: 10_000, inFlight: 0, longLived: 0 },
    ]);
    // A pool at weight 0 with nothing open is drained from the start.
    expect((await drain(app.adminUrl, 'canary')).drained).toBe(true);

    const slow = slowRequest(app.proxyUrl, 1_500);
    await eventually(async () =>
      expect((await drain(app.adminUrl, 'blue')).replicas[0]?.inFlight).toBe(1),
    );
    expect((await postJson(`${app.adminUrl}/v1/switch`, { to: 'green' })).status).toBe(200);
    const during = await drain(app.adminUrl, 'blue');
    expect(during).toMatchObject({ weight: 0, drained: false });
    expect(during.replicas[0]).toMatchObject({ weight: 0, inFlight: 1 });
    expect(await slow).toBe(200);
    // Memory mode reads the counts now: no heartbeat delay.
    await eventually(async () => expect((await drain(app.adminUrl, 'blue')).drained).toBe(true));

    const removed = await fetch(`${app.adminUrl}/v1/pools/blue`, {
      method: 'DELETE',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(removed.status).toBe(200);
    await removed.arrayBuffer();
    const gone = await drain(app.adminUrl, 'blue');
    expect(gone).toMatchObject({ pool: 'blue', weight: 0, drained: true });

    const unknown = await fetch(`${app.adminUrl}/v1/pools/nosuch/drain`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('UNKNOWN_POOL');
  });
});
