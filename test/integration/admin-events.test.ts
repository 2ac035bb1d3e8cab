/**
 * GET /v1/events (issue 14): the server-sent event stream of the admin API, through the real app
 * with real sockets. A change made through the API arrives as an event within 100 ms; snapshots
 * carry live numbers; a client that stops reading is dropped instead of growing memory.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { readMetric } from '../helpers/metrics.js';
import { openEvents, type SseClient } from '../helpers/sse.js';
import { postJson, startColourApp, startRedisPair, type TestApp } from '../helpers/start-app.js';
import { startColours } from '../helpers/reference.js';
import { startApp } from '../helpers/start-app.js';

const closers = closeAfterEach();

async function events(t: TestApp, token?: string): Promise<SseClient> {
  const client = await openEvents(`${t.adminUrl}/v1/events`, token);
  closers.push(() => client.close());
  return client;
}

interface TableData {
  table: { revision: number; weights: Record<string, number> };
  appliedRevision: number;
}

describe('GET /v1/events', () => {
  it('sends a table change made through the API within 100 ms of the answer', async () => {
    const t = await startColourApp(closers);
    const sse = await events(t);
    expect(sse.status).toBe(200);
    expect(sse.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(sse.headers.get('cache-control')).toBe('no-store');
    const first = await sse.next('table');
    expect((first.data as TableData).table.revision).toBe(1);

    for (const percent of [10, 25, 0]) {
      const from = sse.events.length;
      const answer = await postJson(`${t.adminUrl}/v1/canary`, { percent });
      const answeredAt = performance.now();
      expect(answer.status).toBe(200);
      const revision = answer.body.revision as number;
      const event = await sse.next('table', (d) => (d as TableData).table.revision === revision, {
        from,
        timeoutMs: 5000,
      });
      // Written from the store's change event, before the API answers: it cannot lag behind.
      expect(event.at - answeredAt).toBeLessThan(100);
      const data = event.data as TableData;
      expect(data.table.weights.canary).toBe(percent * 100);
      expect(data.appliedRevision).toBe(revision);
    }
  });

  it('starts with one of each event, asks for a retry delay, and its snapshots move with traffic', async () => {
    const t = await startColourApp(closers);
    const sse = await events(t);
    for (const name of ['table', 'traffic', 'health', 'replicas', 'rollout']) {
      await sse.next(name);
    }
    expect(sse.retryMs()).toBe(2000);
    const health = (await sse.next('health')).data as {
      pools: Record<
        string,
        { healthy: number; total: number; endpoints: unknown[]; drain: unknown }
      >;
    };
    expect(Object.keys(health.pools)).toEqual(['blue', 'green', 'canary']);
    expect(health.pools.blue).toMatchObject({ total: 1, drain: null });
    // Idle pools carry their drain state.
    expect(health.pools.green?.drain).toEqual({ drained: true, inFlight: 0, longLived: 0 });
    const rollout = (await sse.next('rollout')).data;
    expect(rollout).toEqual({ rollout: null });
    const replicas = (await sse.next('replicas')).data as { replicas: Array<{ id: string }> };
    expect(replicas.replicas.map((r) => r.id)).toEqual([t.app.replicaId]);

    const agent = new Agent({ connections: 2 });
    closers.push(() => agent.close());
    for (let i = 0; i < 30; i++) {
      const res = await request(`${t.proxyUrl}/hello`, { dispatcher: agent });
      await res.body.dump();
    }
    const traffic = await sse.next(
      'traffic',
      (d) =>
        ((d as { pools: Record<string, { requests: number }> }).pools.blue?.requests ?? 0) >= 30,
    );
    const data = traffic.data as {
      pools: Record<string, { requests: number; weight: number }>;
      rates: Record<
        string,
        { requestsPerSecond: number; errorRatio: number | null; p99Ms: number | null }
      >;
    };
    expect(data.pools.blue).toMatchObject({ requests: 30, weight: 10000 });
    expect(data.pools.green).toMatchObject({ requests: 0, weight: 0 });
    // The rates cover the last seconds: wait for a snapshot whose window holds the requests.
    const rated = await sse.next('traffic', (d) => {
      const r = (d as typeof data).rates.blue;
      return r !== undefined && r.requestsPerSecond > 0;
    });
    const blue = (rated.data as typeof data).rates.blue;
    expect(blue?.errorRatio).toBe(0);
    expect(blue?.p99Ms).toBeGreaterThan(0);
  });

  it('needs the token like every read, refuses other sites, and counts its clients', async () => {
    const { pools } = await startColours(closers);
    const t = await startApp({ pools, adminToken: 'sekrit-token-0123456789' });
    closers.push(() => t.close());
    const anonymous = await fetch(`${t.adminUrl}/v1/events`);
    expect(anonymous.status).toBe(401);
    await anonymous.body?.cancel();
    const crossSite = await fetch(`${t.adminUrl}/v1/events`, {
      headers: { authorization: 'Bearer sekrit-token-0123456789', 'sec-fetch-site': 'cross-site' },
    });
    expect(crossSite.status).toBe(403);
    await crossSite.body?.cancel();

    const a = await events(t, 'sekrit-token-0123456789');
    const b = await events(t, 'sekrit-token-0123456789');
    expect([a.status, b.status]).toEqual([200, 200]);
    await a.next('table');
    await b.next('table');
    const clients = (): Promise<number> =>
      readMetric(t.app.metrics, 'switchyard_admin_event_clients');
    expect(await clients()).toBe(2);
    a.close();
    await eventually(async () => expect(await clients()).toBe(1));
    b.close();
    await eventually(async () => expect(await clients()).toBe(0));
  });

  it('sends heartbeat comments while nothing changes', async () => {
    const { pools } = await startColours(closers);
    const t = await startApp({ pools }, { adminEvents: { heartbeatMs: 100, snapshotMs: 60_000 } });
    closers.push(() => t.close());
    const abort = new AbortController();
    closers.push(() => abort.abort());
    const res = await fetch(`${t.adminUrl}/v1/events`, { signal: abort.signal });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!text.includes(': heartbeat\n\n')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    expect(text.startsWith('retry: 2000\n\nevent: table\n')).toBe(true);
    expect(text).toContain(': heartbeat\n\n');
  });

  it('ends every stream when the admin API closes, without waiting for the grace period', async () => {
    const t = await startColourApp(closers);
    const sse = await events(t);
    await sse.next('table');
    const started = performance.now();
    await t.close();
    await sse.ended;
    // The close grace (2 s) cuts connections that do not finish; streams must end before it.
    expect(performance.now() - started).toBeLessThan(1900);
  });

  it('with Redis: a change made on one replica reaches the stream of another, which lists both', async () => {
    const { a, b } = await startRedisPair(closers, 'sse');
    const sse = await events(b);
    await sse.next('table');
    await sse.next(
      'replicas',
      (d) => (d as { replicas: Array<{ id: string }> }).replicas.length === 2,
      { timeoutMs: 15_000 },
    );
    const from = sse.events.length;
    const answer = await postJson(`${a.adminUrl}/v1/canary`, { percent: 20 });
    const answeredAt = performance.now();
    expect(answer.status).toBe(200);
    const revision = answer.body.revision as number;
    const event = await sse.next('table', (d) => (d as TableData).table.revision === revision, {
      from,
    });
    // Through Redis (pub/sub to the other replica): well within a second even on a busy machine.
    expect(event.at - answeredAt).toBeLessThan(1000);
    // B's replica list follows both replicas applying it.
    await sse.next(
      'replicas',
      (d) =>
        (d as { replicas: Array<{ revision: number }> }).replicas.every(
          (r) => r.revision === revision,
        ),
      { from, timeoutMs: 15_000 },
    );
  });

  it('with Redis: the rates are the whole fleet’s, from every replica’s counters', async () => {
    const { redis, a, b } = await startRedisPair(closers, 'fleet');
    // Requests through A only; B's stream shows them in the fleet's rates, not in its own.
    const agent = new Agent({ connections: 2 });
    closers.push(() => agent.close());
    let stop = false;
    const load = (async () => {
      while (!stop) {
        const res = await request(`${a.proxyUrl}/hello`, { dispatcher: agent });
        await res.body.dump();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    closers.push(async () => {
      stop = true;
      await load;
    });
    const sse = await events(b);
    type Rates = Record<string, { requestsPerSecond: number; errorRatio: number | null }>;
    type Traffic = { rates: Rates; fleet: { rates: Rates; replicas: number } | null };
    const event = await sse.next(
      'traffic',
      (d) => ((d as Traffic).fleet?.rates.blue?.requestsPerSecond ?? 0) > 5,
      { timeoutMs: 20_000 },
    );
    const data = event.data as Traffic;
    expect(data.fleet?.replicas).toBe(1);
    expect(data.fleet?.rates.blue?.errorRatio).toBe(0);
    expect(data.rates.blue?.requestsPerSecond ?? 0).toBe(0);
    // Redis paused: no fleet figures rather than stale ones; the local ones go on.
    redis.pause();
    closers.push(() => redis.resume());
    const from = sse.events.length;
    await sse.next('traffic', (d) => (d as Traffic).fleet === null, { from, timeoutMs: 20_000 });
  });

  it('refuses a stream past maxClients with 503 TOO_MANY_EVENT_CLIENTS, and takes one again after', async () => {
    const { pools } = await startColours(closers);
    const t = await startApp({ pools }, { adminEvents: { maxClients: 2 } });
    closers.push(() => t.close());
    const one = await events(t);
    const two = await events(t);
    await one.next('table');
    await two.next('table');
    const refused = await fetch(`${t.adminUrl}/v1/events`);
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(
      'TOO_MANY_EVENT_CLIENTS',
    );
    expect(await readMetric(t.app.metrics, 'switchyard_admin_event_clients')).toBe(2);
    one.close();
    await eventually(async () =>
      expect(await readMetric(t.app.metrics, 'switchyard_admin_event_clients')).toBe(1),
    );
    const three = await events(t);
    await three.next('table');
  });

  it('drops a client that stops reading instead of buffering for it without bound', async () => {
    const { blue } = await startColours(closers);
    const capBytes = 64 * 1024;
    // Snapshots every few ms and 40 pools make the stream fast enough to fill the ~4 MB a
    // loopback socket absorbs within seconds.
    const pools = Array.from({ length: 40 }, (_, i) => ({
      name: `pool-${String(i).padStart(2, '0')}-${'x'.repeat(20)}`,
      version: `${String(i).padStart(7, 'a')}`,
      endpoints: [blue.url],
    }));
    const t = await startApp(
      { pools },
      { adminEvents: { maxBufferedBytes: capBytes, snapshotMs: 2 } },
    );
    closers.push(() => t.close());
    const fast = await events(t);
    await fast.next('table');

    // The slow client: sends its request, then never reads.
    const { port } = t.app.admin.address();
    const slow = connect(port, '127.0.0.1');
    closers.push(() => slow.destroy());
    await new Promise<void>((resolve) => slow.once('connect', resolve));
    slow.pause();
    slow.write(`GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    await eventually(async () =>
      expect(await readMetric(t.app.metrics, 'switchyard_admin_event_clients')).toBe(2),
    );

    await eventually(
      async () =>
        expect(
          await readMetric(t.app.metrics, 'switchyard_admin_event_clients_dropped_total'),
        ).toBe(1),
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const dropped = t.logs.find((l) => l.msg === 'event client too slow: dropped');
    // Never more than the cap plus one event was held for it.
    expect(dropped?.bufferedBytes).toBeGreaterThan(capBytes);
    expect(dropped?.bufferedBytes).toBeLessThan(capBytes + 64 * 1024);
    expect(await readMetric(t.app.metrics, 'switchyard_admin_event_clients')).toBe(1);

    // The reader that keeps up is still served.
    const from = fast.events.length;
    await fast.next('traffic', () => true, { from });
    // And the slow one, once it reads again, finds its stream ended.
    const closed = new Promise<void>((resolve) => slow.once('close', () => resolve()));
    slow.on('data', () => undefined);
    slow.resume();
    await closed;
  });
});
