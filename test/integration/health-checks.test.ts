/**
 * Endpoint health (issue 5): active checks, passive ejection, NO_HEALTHY_UPSTREAM, the
 * POOL_UNHEALTHY switch guard and the retry budget, over real sockets.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { describe, expect, test } from 'vitest';
import { configFrom } from '../../src/config/load.js';
import { ProxyServer } from '../../src/data/proxy-server.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics, type Metrics } from '../../src/observability/metrics.js';
import { eventually } from '../helpers/eventually.js';
import { readMetric } from '../helpers/metrics.js';
import { makeTable } from '../helpers/reference.js';
import { createLogCollector } from '../helpers/log-collector.js';
import { startApp } from '../helpers/start-app.js';
import { closeAfterEach } from '../helpers/closers.js';

const BLUE = 'b10e000';
const GREEN = '9ee0000';

const closers = closeAfterEach();

/** A controllable upstream: /healthz answers 200 or 503, other paths `{name}` or 500. */
interface Upstream {
  readonly name: string;
  readonly url: string;
  /** /healthz answers 503 while false. */
  checkOk: boolean;
  /** Application paths answer 500 while false. */
  appOk: boolean;
  appRequests: number;
  checks: number;
  kill(): Promise<void>;
}

async function startUpstream(name: string): Promise<Upstream> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/healthz') {
      up.checks += 1;
      res.writeHead(up.checkOk ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(up.checkOk ? 'ok' : 'down');
      return;
    }
    up.appRequests += 1;
    const body = JSON.stringify({ name });
    res.writeHead(up.appOk ? 200 : 500, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  let killed = false;
  const kill = async (): Promise<void> => {
    if (killed) return;
    killed = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  };
  const up: Upstream = {
    name,
    url: `http://127.0.0.1:${port}`,
    checkOk: true,
    appOk: true,
    appRequests: 0,
    checks: 0,
    kill,
  };
  closers.push(kill);
  return up;
}

/** A loopback URL nothing listens on (connections are refused). */
async function deadUrl(): Promise<string> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

interface World {
  proxy: ProxyServer;
  metrics: Metrics;
  url: string;
  agent: Agent;
  logs: Array<Record<string, unknown>>;
}

/** A ProxyServer built from a full config (health keys included), logs captured. */
async function world(config: Record<string, unknown>): Promise<World> {
  const c = configFrom({ listen: '127.0.0.1:0', drainTimeout: 2_000, drainSpread: 0, ...config });
  const { stream, logs } = createLogCollector();
  const metrics = createMetrics({ defaultMetrics: false });
  const proxy = new ProxyServer(c, {
    logger: createLogger({ level: 'info', stream }),
    metrics,
  });
  await proxy.start();
  closers.push(() => proxy.close());
  const agent = new Agent();
  closers.push(() => agent.close());
  return { proxy, metrics, url: `http://127.0.0.1:${proxy.address().port}`, agent, logs };
}

async function get(w: World, path = '/'): Promise<{ status: number; body: string }> {
  const r = await request(`${w.url}${path}`, { dispatcher: w.agent });
  return { status: r.statusCode, body: await r.body.text() };
}

function healthLogs(w: { logs: Array<Record<string, unknown>> }, endpoint: string) {
  return w.logs.filter((l) => l.msg === 'endpoint health changed' && l.endpoint === endpoint);
}

describe('active health checks', () => {
  test('an endpoint failing its check gets no traffic, then is re-admitted when it recovers', async () => {
    const a = await startUpstream('a');
    const b = await startUpstream('b');
    const w = await world({
      healthCheckInterval: '50ms',
      healthCheckTimeout: '1s',
      healthyThreshold: 2,
      unhealthyThreshold: 2,
      ejectionThreshold: 0,
    });
    w.proxy.applyTable(
      makeTable({ blue: { version: BLUE, endpoints: [a.url, b.url], weight: 10_000 } }),
    );
    expect(w.proxy.poolHealth('blue')).toEqual({ healthy: 2, total: 2 });
    await eventually(() => expect(b.checks).toBeGreaterThanOrEqual(1));

    b.checkOk = false;
    await eventually(() => expect(w.proxy.poolHealth('blue')).toEqual({ healthy: 1, total: 2 }));
    expect(
      await readMetric(
        w.metrics,
        'switchyard_healthy_endpoints',
        { pool: 'blue' },
        { required: true },
      ),
    ).toBe(1);
    const before = b.appRequests;
    for (let i = 0; i < 20; i++) {
      const r = await get(w);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toEqual({ name: 'a' });
    }
    expect(b.appRequests).toBe(before);
    expect(healthLogs(w, b.url)).toEqual([
      expect.objectContaining({
        pool: 'blue',
        healthy: false,
        reason: 'check-failed',
        cause: 'status 503',
      }),
    ]);

    b.checkOk = true;
    await eventually(() => expect(w.proxy.poolHealth('blue')).toEqual({ healthy: 2, total: 2 }));
    expect(
      await readMetric(
        w.metrics,
        'switchyard_healthy_endpoints',
        { pool: 'blue' },
        { required: true },
      ),
    ).toBe(2);
    for (let i = 0; i < 20; i++) expect((await get(w)).status).toBe(200);
    expect(b.appRequests).toBeGreaterThan(before);
    expect(healthLogs(w, b.url).map((l) => [l.healthy, l.reason])).toEqual([
      [false, 'check-failed'],
      [true, 'check-passed'],
    ]);
  });

  test('a pool with no healthy endpoint answers 503 NO_HEALTHY_UPSTREAM; weight-0 pools are checked too', async () => {
    const a = await startUpstream('a');
    const dead = await deadUrl();
    const w = await world({
      healthCheckInterval: '50ms',
      healthCheckTimeout: '1s',
      unhealthyThreshold: 2,
    });
    w.proxy.applyTable(
      makeTable({
        blue: { version: BLUE, endpoints: [a.url], weight: 10_000 },
        green: { version: GREEN, endpoints: [dead], weight: 0 },
      }),
    );
    await eventually(() => expect(w.proxy.poolHealth('green')).toEqual({ healthy: 0, total: 1 }));
    expect(
      await readMetric(
        w.metrics,
        'switchyard_healthy_endpoints',
        { pool: 'green' },
        { required: true },
      ),
    ).toBe(0);
    expect(healthLogs(w, dead)).toEqual([
      expect.objectContaining({ pool: 'green', healthy: false, cause: 'ECONNREFUSED' }),
    ]);

    a.checkOk = false;
    await eventually(() => expect(w.proxy.poolHealth('blue').healthy).toBe(0));
    const r = await request(`${w.url}/`, { dispatcher: w.agent });
    expect(r.statusCode).toBe(503);
    expect(r.headers['content-type']).toBe('application/json');
    expect(await r.body.json()).toEqual({
      error: { code: 'NO_HEALTHY_UPSTREAM', message: 'pool has no healthy endpoint' },
    });
    expect(a.appRequests).toBe(0);
  });
});

describe('passive ejection', () => {
  test('one of two endpoints killed under GET load: zero failed requests, the dead one is ejected', async () => {
    const a = await startUpstream('a');
    const b = await startUpstream('b');
    const w = await world({ healthCheckInterval: 0 });
    w.proxy.applyTable(
      makeTable({ blue: { version: BLUE, endpoints: [a.url, b.url], weight: 10_000 } }),
    );
    let sent = 0;
    const failures: string[] = [];
    const killAt = 150;
    const total = 600;
    const client = async (): Promise<void> => {
      while (sent < total) {
        sent += 1;
        if (sent === killAt) void b.kill();
        try {
          const r = await get(w);
          if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    await Promise.all([client(), client(), client(), client()]);
    expect(failures).toEqual([]);
    expect(b.appRequests).toBeGreaterThan(0);
    expect(w.proxy.poolHealth('blue')).toEqual({ healthy: 1, total: 2 });
    expect(healthLogs(w, b.url)).toEqual([
      expect.objectContaining({
        pool: 'blue',
        healthy: false,
        reason: 'ejected',
        ejectionMs: 10_000,
      }),
    ]);
    expect(
      await readMetric(w.metrics, 'switchyard_retries_total', { pool: 'blue' }),
    ).toBeGreaterThanOrEqual(1);
  });

  test('consecutive 5xx eject an endpoint for ejectionDuration, doubled on repeat; then it is re-admitted', async () => {
    const a = await startUpstream('a');
    const b = await startUpstream('b');
    const w = await world({
      healthCheckInterval: 0,
      ejectionThreshold: 3,
      ejectionDuration: '1s',
      maxEjectionDuration: '10s',
    });
    w.proxy.applyTable(
      makeTable({ blue: { version: BLUE, endpoints: [a.url, b.url], weight: 10_000 } }),
    );
    b.appOk = false;
    for (let round = 1; round <= 2; round++) {
      await eventually(
        async () => {
          await get(w);
          expect(w.proxy.poolHealth('blue').healthy).toBe(1);
        },
        { timeoutMs: 5_000, intervalMs: 0 },
      );
      const seen = b.appRequests;
      for (let i = 0; i < 10; i++) expect((await get(w)).status).toBe(200);
      expect(b.appRequests).toBe(seen);
      await eventually(() => expect(w.proxy.poolHealth('blue').healthy).toBe(2));
    }
    expect(healthLogs(w, b.url).map((l) => [l.healthy, l.reason, l.ejectionMs])).toEqual([
      [false, 'ejected', 1_000],
      [true, 'ejection-ended', undefined],
      [false, 'ejected', 2_000],
      [true, 'ejection-ended', undefined],
    ]);
    b.appOk = true;
    await eventually(async () => {
      await get(w);
      expect(b.appRequests).toBeGreaterThan(0);
    });
  });

  test('never ejects the last healthy endpoint of a pool: requests keep being tried', async () => {
    const a = await startUpstream('a');
    a.appOk = false;
    const w = await world({ healthCheckInterval: 0, ejectionThreshold: 2 });
    w.proxy.applyTable(makeTable({ blue: { version: BLUE, endpoints: [a.url], weight: 10_000 } }));
    for (let i = 0; i < 5; i++) expect((await get(w)).status).toBe(500);
    a.appOk = true;
    expect((await get(w)).status).toBe(200);
    expect(w.proxy.poolHealth('blue')).toEqual({ healthy: 1, total: 1 });
    expect(healthLogs(w, a.url)).toEqual([]);
  });
});

describe('retry budget', () => {
  test('caps retries against a dead pool', async () => {
    // Accepts and resets every connection: each GET fails before any response byte and is
    // retryable, so every upstream attempt is one connection counted here.
    let connections = 0;
    const resetting = createTcpServer((socket) => {
      connections += 1;
      socket.on('error', () => undefined);
      socket.resetAndDestroy();
    });
    resetting.listen(0, '127.0.0.1');
    await once(resetting, 'listening');
    closers.push(
      () =>
        new Promise<void>((resolve) => {
          resetting.close(() => resolve());
        }),
    );
    const url = `http://127.0.0.1:${(resetting.address() as AddressInfo).port}`;
    const w = await world({ healthCheckInterval: 0, retryBudgetPercent: 20, retryBudgetMin: 1 });
    w.proxy.applyTable(makeTable({ blue: { version: BLUE, endpoints: [url], weight: 10_000 } }));
    const total = 100;
    let sent = 0;
    const statuses: number[] = [];
    const client = async (): Promise<void> => {
      while (sent < total) {
        sent += 1;
        statuses.push((await get(w)).status);
      }
    };
    await Promise.all(Array.from({ length: 10 }, client));
    expect(statuses).toEqual(Array.from({ length: total }, () => 502));
    const retries = await readMetric(w.metrics, 'switchyard_retries_total', { pool: 'blue' });
    const denied = await readMetric(w.metrics, 'switchyard_retries_denied_total', { pool: 'blue' });
    expect(retries + denied).toBe(total);
    // Unbounded, every request would be retried (200 attempts); the budget allows about 20 %.
    expect(retries).toBeLessThanOrEqual(total / 2);
    expect(retries).toBeGreaterThanOrEqual(1);
    await eventually(() => expect(connections).toBe(total + retries));
  });
});

describe('POST /v1/switch health guard', () => {
  test('refuses a pool whose endpoints are all down with 409 POOL_UNHEALTHY unless force: true', async () => {
    const a = await startUpstream('a');
    const deadA = await deadUrl();
    const deadB = await deadUrl();
    const t = await startApp({
      pools: [
        { name: 'blue', version: BLUE, endpoints: [a.url] },
        { name: 'green', version: GREEN, endpoints: [deadA, deadB] },
      ],
      healthCheckInterval: '50ms',
      healthCheckTimeout: '1s',
      unhealthyThreshold: 2,
    });
    closers.push(() => t.close());
    await eventually(() =>
      expect(t.app.proxy.poolHealth('green')).toEqual({ healthy: 0, total: 2 }),
    );
    const agent = new Agent();
    closers.push(() => agent.close());
    const post = async (body: unknown): Promise<{ status: number; json: unknown }> => {
      const r = await request(`${t.adminUrl}/v1/switch`, {
        dispatcher: agent,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: r.statusCode, json: await r.body.json() };
    };
    const refused = await post({ to: 'green' });
    expect(refused).toEqual({
      status: 409,
      json: {
        error: {
          code: 'POOL_UNHEALTHY',
          message: expect.stringContaining('0 of 2') as string,
        },
      },
    });
    expect(t.app.store.current()?.weights).toEqual({ blue: 10_000, green: 0 });

    const forced = await post({ to: 'green', force: true });
    expect(forced.status).toBe(200);
    expect(forced.json).toMatchObject({ weights: { blue: 0, green: 10_000 } });
    await eventually(async () => {
      const r = await request(`${t.proxyUrl}/`, { dispatcher: agent });
      expect(r.statusCode).toBe(503);
      expect(await r.body.json()).toMatchObject({ error: { code: 'NO_HEALTHY_UPSTREAM' } });
    });
    const metrics = await request(`${t.adminUrl}/metrics`, { dispatcher: agent });
    const text = await metrics.body.text();
    expect(text).toContain('switchyard_healthy_endpoints{pool="green"} 0');
    expect(text).toContain('switchyard_healthy_endpoints{pool="blue"} 1');
  });
});
