/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument -- JSON answers are inspected as untyped data */
/**
 * Admin API through real HTTP (SPEC §5): every route, every error code, auth rules, rollback
 * walk, history with rejections, wait=all. The data plane is a small ProxyView object here: these
 * tests are about the admin API's routing and the store; traffic and metrics go through the real
 * proxy in admin-traffic-metrics.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { AdminServer } from '../../src/admin/admin-server.js';
import type { ProxyView } from '../../src/admin/proxy-view.js';
import { MemoryControlStore } from '../../src/control/memory-store.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import type { RoutingTable } from '../../src/table/types.js';
import { Readable } from 'node:stream';
import { createLogCollector } from '../helpers/log-collector.js';
import { closeAfterEach } from '../helpers/closers.js';

const TOKEN = 'test-admin-token-0123456789';
const BLUE = 'aaaaaaa';
const GREEN = 'bbbbbbb';
const CANARY = 'ccccccc';

interface World {
  url: string;
  store: MemoryControlStore;
  admin: AdminServer;
  logs: Array<Record<string, unknown>>;
  health: Map<string, { healthy: number; total: number }>;
  ready: { value: boolean };
}

const closers = closeAfterEach();

async function startWorld(
  options: {
    token?: string;
    metricsAuth?: boolean;
    seed?: boolean;
    appliedRevision?: () => number;
    proxy?: Partial<ProxyView>;
  } = {},
): Promise<World> {
  const { stream, logs } = createLogCollector();
  const logger = createLogger({ level: 'info', stream });
  const health = new Map<string, { healthy: number; total: number }>();
  const ready = { value: true };
  const holder: { store?: MemoryControlStore } = {};
  const appliedRevision = options.appliedRevision ?? (() => holder.store?.current()?.revision ?? 0);
  const metrics = createMetrics({ defaultMetrics: false });
  const store = new MemoryControlStore({ appliedRevision, replicaId: 'replica-a', metrics });
  holder.store = store;
  await store.start();
  closers.push(() => store.close());
  if (options.seed !== false) {
    await store.seed(
      [
        { name: 'blue', version: BLUE, endpoints: ['http://127.0.0.1:1'] },
        { name: 'green', version: GREEN, endpoints: ['http://127.0.0.1:2'] },
        { name: 'canary', version: CANARY, endpoints: ['http://127.0.0.1:3'] },
      ],
      { actor: 'config', source: 'seed' },
    );
  }
  const proxy: ProxyView = {
    appliedRevision,
    trafficSnapshot: () => ({}),
    poolHealth: (pool) => health.get(pool) ?? { healthy: 1, total: 1 },
    settledPoolHealth: (pool) =>
      Promise.resolve({ ...(health.get(pool) ?? { healthy: 1, total: 1 }), unchecked: 0 }),
    // No test endpoint uses this port (the loop guard compares endpoints with it).
    address: () => ({ host: '127.0.0.1', port: 9 }),
    ...options.proxy,
  };
  const admin = new AdminServer(
    {
      adminListen: { host: '127.0.0.1', port: 0 },
      adminToken: options.token,
      metricsAuth: options.metricsAuth ?? false,
      buildSha: 'abc1234',
    },
    {
      logger,
      metrics,
      store,
      proxy,
      isReady: () => ready.value,
    },
  );
  await admin.start();
  closers.push(() => admin.close());
  return { url: `http://127.0.0.1:${admin.address().port}`, store, admin, logs, health, ready };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON answers under test
}

async function call(
  world: World,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await request(`${world.url}${path}`, {
    method: method as 'GET',
    // Every change carries the JSON content type, a bodyless one too (issue 10).
    headers: {
      ...(method === 'GET' ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  const type = String(res.headers['content-type'] ?? '');
  return {
    status: res.statusCode,
    headers: res.headers,
    body: type.includes('json') ? (JSON.parse(text) as unknown) : text,
  };
}

function expectError(answer: Answer, status: number, code: string, field?: string): void {
  expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code });
  expect(typeof answer.body.error.message).toBe('string');
  if (field !== undefined) expect(answer.body.error.message).toContain(field);
}

describe('admin API: reads', () => {
  it('GET /v1/state answers the table, the applied revision, the store status and the build', async () => {
    const world = await startWorld();
    const answer = await call(world, 'GET', '/v1/state');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^application\/json/);
    expect(answer.body).toEqual({
      table: world.store.current(),
      appliedRevision: 1,
      store: { kind: 'memory', up: true, newestRevision: 1 },
      build: 'abc1234',
      health: {
        blue: { healthy: 1, total: 1 },
        green: { healthy: 1, total: 1 },
        canary: { healthy: 1, total: 1 },
      },
    });
    expect(answer.body.table.weights).toEqual({ blue: 10000, green: 0, canary: 0 });
  });

  it('GET /healthz answers ok with the build; /readyz follows readiness and table presence', async () => {
    const world = await startWorld({ token: TOKEN });
    expect(await call(world, 'GET', '/healthz')).toMatchObject({
      status: 200,
      body: { status: 'ok', build: 'abc1234' },
    });
    expect(await call(world, 'GET', '/readyz')).toMatchObject({
      status: 200,
      body: { status: 'ready' },
    });
    world.ready.value = false;
    expect(await call(world, 'GET', '/readyz')).toMatchObject({
      status: 503,
      body: { status: 'not-ready' },
    });

    const empty = await startWorld({ seed: false });
    expect((await call(empty, 'GET', '/readyz')).status).toBe(503);
    expect((await call(empty, 'GET', '/v1/state')).body.table).toBeNull();
  });

  it('GET /v1/replicas lists this replica with its applied revision', async () => {
    const world = await startWorld();
    const answer = await call(world, 'GET', '/v1/replicas');
    expect(answer.status).toBe(200);
    expect(answer.body.replicas).toEqual([
      { id: 'replica-a', revision: 1, heartbeatAt: expect.any(String) as string, live: true },
    ]);
  });

  it('GET /metrics answers Prometheus text', async () => {
    const world = await startWorld();
    const answer = await call(world, 'GET', '/metrics');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^text\/plain/);
    expect(answer.body).toContain('# TYPE switchyard_requests_total counter');
  });

  it('GET /v1/traffic with no traffic reports every pool at zero, not skewed', async () => {
    const world = await startWorld();
    const answer = await call(world, 'GET', '/v1/traffic');
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ windowMs: 60_000, total: 0, revision: 1 });
    expect(answer.body.pools.blue).toEqual({
      requests: 0,
      observedShare: 0,
      weight: 10000,
      configuredShare: 1,
      interval: null,
      skewed: false,
    });
  });
});

describe('admin API: auth', () => {
  it('needs the bearer token on every /v1 call when one is configured', async () => {
    const world = await startWorld({ token: TOKEN });
    const paths: Array<[string, string]> = [
      ['GET', '/v1/state'],
      ['GET', '/v1/history'],
      ['GET', '/v1/replicas'],
      ['GET', '/v1/traffic'],
      ['GET', '/v1/openapi.json'],
      ['PUT', '/v1/weights'],
      ['PUT', '/v1/pools/green'],
      ['DELETE', '/v1/pools/green'],
      ['POST', '/v1/canary'],
      ['POST', '/v1/switch'],
      ['POST', '/v1/rollback'],
    ];
    for (const [method, path] of paths) {
      const none = await call(world, method, path);
      expectError(none, 401, 'UNAUTHORIZED');
      expect(none.headers['www-authenticate']).toBe('Bearer');
    }
    expectError(
      await call(world, 'GET', '/v1/state', undefined, { authorization: 'Bearer x' }),
      401,
      'UNAUTHORIZED',
    );
    expectError(
      await call(world, 'GET', '/v1/state', undefined, { authorization: `Bearer ${TOKEN}x` }),
      401,
      'UNAUTHORIZED',
    );
    expectError(
      await call(world, 'GET', '/v1/state', undefined, { authorization: TOKEN }),
      401,
      'UNAUTHORIZED',
    );
    expectError(
      await call(world, 'GET', '/v1/state', undefined, { authorization: `Basic ${TOKEN}` }),
      401,
      'UNAUTHORIZED',
    );
    const ok = await call(world, 'GET', '/v1/state', undefined, {
      authorization: `Bearer ${TOKEN}`,
    });
    expect(ok.status).toBe(200);
    // A refused change changed nothing.
    expect(world.store.current()?.revision).toBe(1);
    // /healthz, /readyz and (by default) /metrics need no token.
    expect((await call(world, 'GET', '/healthz')).status).toBe(200);
    expect((await call(world, 'GET', '/readyz')).status).toBe(200);
    expect((await call(world, 'GET', '/metrics')).status).toBe(200);
  });

  it('with metricsAuth, /metrics needs the token too', async () => {
    const world = await startWorld({ token: TOKEN, metricsAuth: true });
    expectError(await call(world, 'GET', '/metrics'), 401, 'UNAUTHORIZED');
    const ok = await call(world, 'GET', '/metrics', undefined, {
      authorization: `Bearer ${TOKEN}`,
    });
    expect(ok.status).toBe(200);
  });

  it('refuses to start on a non-loopback address without a token, before binding', async () => {
    const { stream } = createLogCollector();
    const store = new MemoryControlStore({ appliedRevision: () => 0 });
    const deps = {
      logger: createLogger({ level: 'silent', stream }),
      metrics: createMetrics({ defaultMetrics: false }),
      store,
      proxy: {
        appliedRevision: () => 0,
        trafficSnapshot: () => ({}),
        poolHealth: () => ({ healthy: 0, total: 0 }),
        settledPoolHealth: () => Promise.resolve({ healthy: 0, total: 0, unchecked: 0 }),
        address: () => ({ host: '127.0.0.1', port: 9 }),
      },
      isReady: () => true,
    };
    for (const host of ['0.0.0.0', '::', '192.0.2.10', 'example.com']) {
      const admin = new AdminServer(
        {
          adminListen: { host, port: 0 },
          adminToken: undefined,
          metricsAuth: false,
          buildSha: 'dev',
        },
        deps,
      );
      await expect(admin.start()).rejects.toThrow(/without a token.*SWITCHYARD_ADMIN_TOKEN/);
      await admin.close();
    }
    for (const host of ['127.0.0.1', 'localhost', '::1']) {
      const admin = new AdminServer(
        {
          adminListen: { host, port: 0 },
          adminToken: undefined,
          metricsAuth: false,
          buildSha: 'dev',
        },
        deps,
      );
      try {
        await admin.start();
      } catch (err) {
        // ::1 may be missing on an IPv4-only host: that is a bind error, not the refusal.
        expect((err as Error).message).not.toMatch(/without a token/);
      }
      await admin.close();
    }
  });
});

describe('admin API: changes', () => {
  it('PUT /v1/pools/{name} creates and updates pools; DELETE removes an idle one', async () => {
    const world = await startWorld();
    const created = await call(world, 'PUT', '/v1/pools/staging', {
      version: 'ddddddd',
      endpoints: ['http://127.0.0.1:4/'],
    });
    expect(created.status).toBe(200);
    expect(created.body.revision).toBe(2);
    expect(created.body.pools.staging).toEqual({
      version: 'ddddddd',
      endpoints: ['http://127.0.0.1:4'],
    });
    expect(created.body.weights.staging).toBe(0);
    expect(created.body.updatedBy).toBe('admin');

    const updated = await call(world, 'PUT', '/v1/pools/green', {
      version: 'eeeeeee',
      endpoints: ['http://127.0.0.1:5'],
    });
    expect(updated.body).toMatchObject({ revision: 3, pools: { green: { version: 'eeeeeee' } } });

    const removed = await call(world, 'DELETE', '/v1/pools/staging');
    expect(removed.status).toBe(200);
    expect(removed.body.revision).toBe(4);
    expect(Object.keys(removed.body.pools)).toEqual(['blue', 'green', 'canary']);
  });

  it('refuses bad pool changes with the right codes and changes nothing', async () => {
    const world = await startWorld();
    expectError(
      await call(world, 'PUT', '/v1/pools/green', {
        version: 'latest',
        endpoints: ['http://127.0.0.1:5'],
      }),
      400,
      'MUTABLE_VERSION',
      'version',
    );
    // Uppercase hex is rejected like any other version SPEC §2 refuses, with a precise message.
    expectError(
      await call(world, 'PUT', '/v1/pools/green', {
        version: 'ABCDEF1',
        endpoints: ['http://127.0.0.1:5'],
      }),
      400,
      'MUTABLE_VERSION',
      'version: "ABCDEF1" must be lowercase',
    );
    expectError(
      await call(world, 'PUT', '/v1/pools/blue', {
        version: 'fffffff',
        endpoints: ['http://127.0.0.1:1'],
      }),
      409,
      'POOL_LIVE',
      'blue',
    );
    expectError(
      await call(world, 'PUT', '/v1/pools/green', {
        version: GREEN,
        endpoints: ['ftp://127.0.0.1:5'],
      }),
      400,
      'VALIDATION_FAILED',
      'endpoints[0]',
    );
    expectError(
      await call(world, 'PUT', '/v1/pools/green', { version: GREEN, endpoints: [] }),
      400,
      'VALIDATION_FAILED',
      'endpoints',
    );
    expectError(
      await call(world, 'PUT', '/v1/pools/green', {
        version: GREEN,
        endpoints: ['http://127.0.0.1:5'],
        colour: 'x',
      }),
      400,
      'VALIDATION_FAILED',
      'colour',
    );
    expectError(
      await call(world, 'PUT', '/v1/pools/Bad_Name', {
        version: GREEN,
        endpoints: ['http://127.0.0.1:5'],
      }),
      400,
      'VALIDATION_FAILED',
      'pool',
    );
    expectError(await call(world, 'DELETE', '/v1/pools/blue'), 409, 'POOL_LIVE', 'blue');
    expectError(await call(world, 'DELETE', '/v1/pools/nope'), 404, 'UNKNOWN_POOL', 'nope');
    expect(world.store.current()?.revision).toBe(1);
  });

  it('PUT /v1/weights accepts basis points or percent; pools not named get 0', async () => {
    const world = await startWorld();
    const bp = await call(world, 'PUT', '/v1/weights', { weights: { blue: 9000, canary: 1000 } });
    expect(bp.status).toBe(200);
    expect(bp.body).toMatchObject({ revision: 2, weights: { blue: 9000, green: 0, canary: 1000 } });
    const pct = await call(world, 'PUT', '/v1/weights', { percent: { blue: 12.34, green: 87.66 } });
    expect(pct.body).toMatchObject({
      revision: 3,
      weights: { blue: 1234, green: 8766, canary: 0 },
    });
  });

  it('refuses bad weights naming the field, and a rejected change changes nothing', async () => {
    const world = await startWorld();
    const cases: Array<[unknown, number, string, string]> = [
      [{ weights: { blue: 9000, canary: 999 } }, 400, 'VALIDATION_FAILED', 'weights'],
      [{ weights: { blue: 10001, canary: -1 } }, 400, 'VALIDATION_FAILED', 'weights.blue'],
      [{ weights: { blue: 9999.5, canary: 0.5 } }, 400, 'VALIDATION_FAILED', 'weights.blue'],
      [{ weights: { blue: 'NaN', canary: 0 } }, 400, 'VALIDATION_FAILED', 'weights.blue'],
      // JSON.parse reads 1e309 as Infinity.
      ['{"weights":{"blue":1e309}}', 400, 'VALIDATION_FAILED', 'weights.blue'],
      [{ percent: { blue: 99.999, canary: 0.001 } }, 400, 'VALIDATION_FAILED', 'percent.blue'],
      [{ percent: { blue: 101, canary: -1 } }, 400, 'VALIDATION_FAILED', 'percent.blue'],
      [{ weights: { blue: 5000 }, percent: { canary: 50 } }, 400, 'VALIDATION_FAILED', 'weights'],
      [{}, 400, 'VALIDATION_FAILED', 'weights'],
      [{ weights: { blue: 5000, nope: 5000 } }, 404, 'UNKNOWN_POOL', 'nope'],
      [{ weights: { blue: 10000 }, expectRevision: 7 }, 409, 'REVISION_CONFLICT', 'expectRevision'],
      [
        { weights: { blue: 10000 }, expectRevision: 'one' },
        400,
        'VALIDATION_FAILED',
        'expectRevision',
      ],
    ];
    for (const [body, status, code, field] of cases) {
      // 1e309 cannot be written by JSON.stringify: send the raw text.
      const raw = JSON.stringify(body).includes('null') ? '{"weights":{"blue":1e309}}' : body;
      const answer = await call(world, 'PUT', '/v1/weights', raw, {
        'content-type': 'application/json',
      });
      expect({ body, status: answer.status, code: answer.body.error?.code }).toEqual({
        body,
        status,
        code,
      });
      expect(answer.body.error.message).toContain(field);
    }
    expect(world.store.current()?.revision).toBe(1);
    expect(world.store.current()?.weights).toEqual({ blue: 10000, green: 0, canary: 0 });
    const ok = await call(world, 'PUT', '/v1/weights', {
      weights: { green: 10000 },
      expectRevision: 1,
    });
    expect(ok.body.revision).toBe(2);
  });

  it('POST /v1/canary sets one pool and splits the rest in the current ratio', async () => {
    const world = await startWorld();
    await call(world, 'PUT', '/v1/weights', { weights: { blue: 6000, green: 4000 } });
    const five = await call(world, 'POST', '/v1/canary', { percent: 5 });
    expect(five.status).toBe(200);
    expect(five.body.weights).toEqual({ blue: 5700, green: 3800, canary: 500 });
    const bp = await call(world, 'POST', '/v1/canary', { basisPoints: 1, pool: 'green' });
    expect(bp.body.weights.green).toBe(1);
    expectError(
      await call(world, 'POST', '/v1/canary', { percent: 5, pool: 'nope' }),
      404,
      'UNKNOWN_POOL',
      'nope',
    );
    expectError(
      await call(world, 'POST', '/v1/canary', { percent: 100.5 }),
      400,
      'VALIDATION_FAILED',
      'percent',
    );
    expectError(await call(world, 'POST', '/v1/canary', {}), 400, 'VALIDATION_FAILED', 'percent');
    await call(world, 'POST', '/v1/switch', { to: 'canary' });
    expectError(
      await call(world, 'POST', '/v1/canary', { percent: 5 }),
      409,
      'NO_STABLE_POOL',
      'canary',
    );
  });

  it('POST /v1/switch moves all traffic; refuses a pool without healthy endpoints unless forced', async () => {
    const world = await startWorld();
    const switched = await call(world, 'POST', '/v1/switch', { to: 'green' });
    expect(switched.body).toMatchObject({
      revision: 2,
      weights: { blue: 0, green: 10000, canary: 0 },
    });

    world.health.set('blue', { healthy: 0, total: 2 });
    const refused = await call(world, 'POST', '/v1/switch', { to: 'blue' });
    expectError(refused, 409, 'POOL_UNHEALTHY', 'blue');
    expect(world.store.current()?.revision).toBe(2);
    expectError(
      await call(world, 'POST', '/v1/switch', { to: 'blue', force: 'yes' }),
      400,
      'VALIDATION_FAILED',
      'force',
    );
    const forced = await call(world, 'POST', '/v1/switch', { to: 'blue', force: true });
    expect(forced.body).toMatchObject({ revision: 3, weights: { blue: 10000 } });
    // Both refusals are in the audit log (SPEC §6: applied or rejected with reason) and counted.
    const history = (await call(world, 'GET', '/v1/history?limit=3')).body.history as unknown[];
    expect(history.slice(1)).toMatchObject([
      {
        result: 'rejected',
        reason: { code: 'VALIDATION_FAILED' },
        command: { op: 'switch', to: 'blue', force: 'yes' },
      },
      {
        result: 'rejected',
        previousRevision: 2,
        source: 'admin',
        reason: { code: 'POOL_UNHEALTHY', message: expect.stringContaining('blue') as string },
        command: { op: 'switch', to: 'blue' },
      },
    ]);
    const metrics = await call(world, 'GET', '/metrics');
    expect(metrics.body).toContain('switchyard_commands_rejected_total{source="admin"} 2');
    // A bad query is a 400 before any guard runs: nothing recorded.
    const historyLength = async (): Promise<number> =>
      ((await call(world, 'GET', '/v1/history?limit=100')).body.history as unknown[]).length;
    const before = await historyLength();
    world.health.set('green', { healthy: 0, total: 1 });
    expectError(
      await call(world, 'POST', '/v1/switch?wait=soon', { to: 'green' }),
      400,
      'VALIDATION_FAILED',
      'wait',
    );
    expect(await historyLength()).toBe(before);

    expectError(
      await call(world, 'POST', '/v1/switch', { to: 'nope' }),
      404,
      'UNKNOWN_POOL',
      'nope',
    );
    expectError(await call(world, 'POST', '/v1/switch', {}), 400, 'VALIDATION_FAILED', 'to');
  });

  it('pools named constructor and prototype work; Object.prototype names are never found', async () => {
    const world = await startWorld();
    // What the real proxy answers for a pool it does not route to: a false hit on
    // `pools.toString` used to turn the answer into 409 POOL_UNHEALTHY.
    world.health.set('toString', { healthy: 0, total: 0 });
    expectError(
      await call(world, 'POST', '/v1/switch', { to: 'constructor' }),
      404,
      'UNKNOWN_POOL',
      'constructor',
    );
    for (const name of ['constructor', 'prototype']) {
      const put = await call(world, 'PUT', `/v1/pools/${name}`, {
        version: 'ddddddd',
        endpoints: ['http://127.0.0.1:4'],
      });
      expect(put.status).toBe(200);
      expect(put.body.weights[name]).toBe(0);
    }
    const switched = await call(world, 'POST', '/v1/switch', { to: 'constructor' });
    expect(switched.status).toBe(200);
    expect(switched.body).toMatchObject({
      revision: 4,
      weights: { blue: 0, green: 0, canary: 0, constructor: 10000, prototype: 0 },
    });
    // toString is not a valid pool name (SPEC §2): refused by validation, not found by lookup.
    expectError(
      await call(world, 'POST', '/v1/switch', { to: 'toString' }),
      400,
      'VALIDATION_FAILED',
      'to',
    );
    const traffic = await call(world, 'GET', '/v1/traffic');
    expect(traffic.body).toMatchObject({ total: 0, revision: 4 });
    expect(traffic.body.pools.constructor).toMatchObject({ requests: 0, weight: 10000 });
    expect(traffic.body.pools.prototype).toMatchObject({ requests: 0, weight: 0 });
    expect(world.store.current()?.revision).toBe(4);
  });

  it('POST /v1/rollback walks back through every change, never forward, then NOTHING_TO_UNDO', async () => {
    const world = await startWorld();
    const seed = world.store.current() as RoutingTable;
    const afterPool = (
      await call(world, 'PUT', '/v1/pools/green', {
        version: 'eeeeeee',
        endpoints: ['http://127.0.0.1:6'],
      })
    ).body as RoutingTable; // r2
    const afterCanary = (await call(world, 'POST', '/v1/canary', { percent: 10 }))
      .body as RoutingTable; // r3
    const afterSwitch = (await call(world, 'POST', '/v1/switch', { to: 'green' }))
      .body as RoutingTable; // r4
    expect(afterSwitch.revision).toBe(4);

    const r5 = (await call(world, 'POST', '/v1/rollback')).body as RoutingTable;
    expect(r5).toMatchObject({
      revision: 5,
      weights: afterCanary.weights,
      pools: afterCanary.pools,
    });
    const r6 = (await call(world, 'POST', '/v1/rollback', {})).body as RoutingTable;
    expect(r6).toMatchObject({ revision: 6, weights: afterPool.weights, pools: afterPool.pools });
    const r7 = (await call(world, 'POST', '/v1/rollback')).body as RoutingTable;
    expect(r7).toMatchObject({ revision: 7, weights: seed.weights, pools: seed.pools });
    expectError(await call(world, 'POST', '/v1/rollback'), 409, 'NOTHING_TO_UNDO', 'rollback');
    expect(world.store.current()?.revision).toBe(7);

    const history = (await call(world, 'GET', '/v1/history?limit=3')).body.history as Array<
      Record<string, unknown>
    >;
    expect(history.map((e) => [e.revision, e.result, e.undoes])).toEqual([
      [null, 'rejected', undefined],
      [7, 'applied', 2],
      [6, 'applied', 3],
    ]);
  });

  it('records applied and rejected commands in history with actor and source, and logs them', async () => {
    const world = await startWorld();
    await call(
      world,
      'POST',
      '/v1/canary',
      { percent: 5, actor: 'someone-else' },
      { 'x-switchyard-source': 'cli' },
    );
    await call(world, 'PUT', '/v1/weights', { weights: { blue: 1 } });
    const answer = await call(world, 'GET', '/v1/history');
    expect(answer.status).toBe(200);
    const [rejected, applied, seeded] = answer.body.history as Array<Record<string, unknown>>;
    expect(rejected).toMatchObject({
      revision: null,
      previousRevision: 2,
      actor: 'admin',
      source: 'admin',
      result: 'rejected',
      command: { op: 'weights', weights: { blue: 1 } },
      reason: { code: 'VALIDATION_FAILED', message: expect.stringContaining('weights') as string },
    });
    expect(applied).toMatchObject({
      revision: 2,
      previousRevision: 1,
      actor: 'cli',
      source: 'cli',
      result: 'applied',
      command: { op: 'canary', basisPoints: 500, pool: 'canary' },
    });
    expect(seeded).toMatchObject({ revision: 1, source: 'seed' });
    expect(rejected).not.toHaveProperty('before');
    expect(world.store.current()?.updatedBy).toBe('cli');

    const changed = world.logs.filter((l) => l.msg === 'table changed');
    expect(changed).toEqual([
      expect.objectContaining({
        level: 30,
        revision: 2,
        previousRevision: 1,
        actor: 'cli',
        weights: { blue: 9500, green: 0, canary: 500 },
      }),
    ]);
    const rejectedLogs = world.logs.filter((l) => l.msg === 'command rejected');
    expect(rejectedLogs).toEqual([
      expect.objectContaining({ level: 40, code: 'VALIDATION_FAILED', actor: 'admin' }),
    ]);

    expect((await call(world, 'GET', '/v1/history?limit=1')).body.history).toHaveLength(1);
    expectError(await call(world, 'GET', '/v1/history?limit=0'), 400, 'VALIDATION_FAILED', 'limit');
    expectError(
      await call(world, 'GET', '/v1/history?limit=abc'),
      400,
      'VALIDATION_FAILED',
      'limit',
    );
  });

  it('?wait=all answers once every live replica applied the revision, else 504 REPLICAS_LAGGING', async () => {
    const world = await startWorld();
    const waited = await call(world, 'POST', '/v1/canary?wait=all&timeout=2s', { percent: 5 });
    expect(waited).toMatchObject({ status: 200, body: { revision: 2 } });

    const stuck = await startWorld({ appliedRevision: () => 1 });
    const started = Date.now();
    const lagging = await call(stuck, 'POST', '/v1/canary?wait=all&timeout=200ms', { percent: 5 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expectError(lagging, 504, 'REPLICAS_LAGGING', 'revision 2');
    expect(lagging.body.error.lagging).toEqual(['replica-a']);
    // The change itself was stored.
    expect(stuck.store.current()?.revision).toBe(2);

    expectError(
      await call(world, 'POST', '/v1/canary?wait=some', { percent: 5 }),
      400,
      'VALIDATION_FAILED',
      'wait',
    );
    expectError(
      await call(world, 'POST', '/v1/canary?wait=all&timeout=soon', { percent: 5 }),
      400,
      'VALIDATION_FAILED',
      'timeout',
    );
    expect(world.store.current()?.revision).toBe(2);
  });
});

describe('admin API: protocol errors', () => {
  it('answers 400 INVALID_JSON, 415, 413, 404 and 405 without changing anything', async () => {
    const world = await startWorld();
    expectError(
      await call(world, 'PUT', '/v1/weights', '{"weights":', {
        'content-type': 'application/json',
      }),
      400,
      'INVALID_JSON',
      'body',
    );
    expectError(
      await call(world, 'PUT', '/v1/weights', '[1,2]', { 'content-type': 'application/json' }),
      400,
      'VALIDATION_FAILED',
      'body',
    );
    expectError(
      await call(world, 'PUT', '/v1/weights', 'weights=1', { 'content-type': 'text/plain' }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    expectError(
      await call(world, 'POST', '/v1/rollback', undefined, {
        'content-type': 'application/x-www-form-urlencoded',
      }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    const big = JSON.stringify({ weights: { blue: 10000 }, pad: 'x'.repeat(1024 * 1024) });
    expectError(
      await call(world, 'PUT', '/v1/weights', big, { 'content-type': 'application/json' }),
      413,
      'BODY_TOO_LARGE',
    );
    expectError(await call(world, 'GET', '/v1/nope'), 404, 'NOT_FOUND');
    expectError(await call(world, 'GET', '/'), 404, 'NOT_FOUND');
    const wrongMethod = await call(world, 'GET', '/v1/weights');
    expectError(wrongMethod, 405, 'METHOD_NOT_ALLOWED');
    expect(wrongMethod.headers.allow).toBe('PUT');
    expect((await call(world, 'POST', '/v1/pools/blue')).headers.allow).toBe('PUT, DELETE');
    expect(world.store.current()?.revision).toBe(1);
  });

  it('stops reading a chunked body at 1 MiB and answers 413', async () => {
    const world = await startWorld();
    function* chunks(): Generator<Buffer> {
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      // 4 MiB of whitespace, sent without a content-length.
      for (let i = 0; i < 64; i++) yield chunk;
    }
    const res = await request(`${world.url}/v1/weights`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: Readable.from(chunks()),
    });
    expect(res.statusCode).toBe(413);
    expect(res.headers.connection).toBe('close');
    expect(((await res.body.json()) as Answer['body']).error.code).toBe('BODY_TOO_LARGE');
    expect(world.store.current()?.revision).toBe(1);
    expect((await call(world, 'GET', '/healthz')).status).toBe(200);
  });

  it('turns unexpected errors into 500 INTERNAL and logs them', async () => {
    const world = await startWorld({
      proxy: {
        trafficSnapshot: () => {
          throw new Error('boom');
        },
      },
    });
    expectError(await call(world, 'GET', '/v1/traffic'), 500, 'INTERNAL');
    expect(world.logs.find((l) => l.msg === 'admin request failed')).toMatchObject({
      level: 50,
      err: { message: 'boom' },
    });
  });

  it('close() is idempotent and refuses new connections', async () => {
    const world = await startWorld();
    await Promise.all([world.admin.close(), world.admin.close()]);
    await expect(call(world, 'GET', '/healthz')).rejects.toThrow();
  });
});

describe('admin API: OpenAPI document', () => {
  it('lists exactly the routes the server answers, with auth and bodies', async () => {
    const world = await startWorld({ token: TOKEN });
    const answer = await call(world, 'GET', '/v1/openapi.json', undefined, {
      authorization: `Bearer ${TOKEN}`,
    });
    expect(answer.status).toBe(200);
    const doc = answer.body as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          { security: unknown[]; requestBody?: unknown; responses: Record<string, unknown> }
        >
      >;
    };
    expect(doc.openapi).toBe('3.1.0');
    const documented = Object.entries(doc.paths)
      .flatMap(([path, item]) =>
        Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
      )
      .sort();
    const served = world.admin
      .routes()
      .map((r) => `${r.method} ${r.path}`)
      .sort();
    expect(documented).toEqual(served);
    // Every SPEC §5 endpoint is served.
    expect(served).toEqual(
      [
        'GET /v1/state',
        'PUT /v1/pools/{name}',
        'DELETE /v1/pools/{name}',
        'PUT /v1/weights',
        'POST /v1/canary',
        'POST /v1/switch',
        'POST /v1/rollback',
        'PUT /v1/rules',
        'PUT /v1/mirror',
        'DELETE /v1/mirror',
        'GET /v1/history',
        'GET /v1/replicas',
        'GET /v1/traffic',
        'GET /v1/pools/{name}/drain',
        'GET /v1/openapi.json',
        'GET /healthz',
        'GET /readyz',
        'GET /metrics',
        // SPEC §9 (issue 12)
        'POST /v1/rollouts',
        'GET /v1/rollouts',
        'GET /v1/rollouts/current',
        'POST /v1/rollouts/current/promote',
        'POST /v1/rollouts/current/pause',
        'POST /v1/rollouts/current/resume',
        'POST /v1/rollouts/current/abort',
        // SPEC §11 (issue 14)
        'GET /v1/events',
        'GET /ui',
        'GET /ui/app.js',
        'GET /ui/app.css',
      ].sort(),
    );
    // And each documented route really answers (not 404/405) on this server.
    for (const route of world.admin.routes()) {
      // The event stream never ends: probed with HEAD (admin-events.test.ts reads it).
      if (route.path === '/v1/events') {
        const head = await call(world, 'HEAD', route.path, undefined, {
          authorization: `Bearer ${TOKEN}`,
        });
        expect(head.status).toBe(200);
        expect(head.headers['content-type']).toBe('text/event-stream; charset=utf-8');
        continue;
      }
      const path = route.path.replace('{name}', 'green');
      const probe = await call(world, route.method, path);
      // A rollout route answers 404 NO_ROLLOUT before any rollout ran: the route exists.
      const code = (probe.body as { error?: { code?: string } } | null)?.error?.code;
      if (code !== 'NO_ROLLOUT') expect(probe.status, `${route.method} ${path}`).not.toBe(404);
      expect(probe.status).not.toBe(405);
    }
    expect(doc.paths['/v1/weights']?.put?.requestBody).toBeDefined();
    expect(doc.paths['/healthz']?.get?.security).toEqual([]);
    expect(doc.paths['/v1/state']?.get?.security).toEqual([{ bearer: [] }]);
    expect(doc.paths['/v1/switch']?.post?.responses).toHaveProperty('409');
    // Reads from the control store answer 503 while it is unreachable (Redis down).
    expect(doc.paths['/v1/history']?.get?.responses).toHaveProperty('503');
    expect(doc.paths['/v1/replicas']?.get?.responses).toHaveProperty('503');
  });

  it('request schemas accept what the store accepts', async () => {
    const world = await startWorld();
    const examples: Array<[string, string, Record<string, unknown>]> = [
      ['PUT', '/v1/pools/staging', { version: 'ddddddd', endpoints: ['http://127.0.0.1:7'] }],
      ['PUT', '/v1/weights', { weights: { blue: 9000, canary: 1000 }, expectRevision: 2 }],
      ['PUT', '/v1/weights', { percent: { blue: 95.5, canary: 4.5 } }],
      ['POST', '/v1/canary', { percent: 5 }],
      ['POST', '/v1/canary', { basisPoints: 250, pool: 'canary' }],
      ['POST', '/v1/switch', { to: 'green', force: false }],
      ['POST', '/v1/rollback', {}],
      ['DELETE', '/v1/pools/staging', {}],
    ];
    for (const [method, path, body] of examples) {
      const route = world.admin
        .routes()
        .find((r) => r.method === method && path.startsWith(r.path.replace('{name}', '')));
      expect(route?.body?.safeParse(body).success, `${method} ${path} schema`).toBe(true);
      const answer = await call(world, method, path, body);
      expect([method, path, answer.status]).toEqual([method, path, 200]);
    }
    // And reject what the store rejects.
    const weights = world.admin.routes().find((r) => r.path === '/v1/weights')?.body;
    expect(weights?.safeParse({ weights: { blue: 1.5 } }).success).toBe(false);
    expect(weights?.safeParse({ percent: { blue: 1.234 } }).success).toBe(false);
    expect(weights?.safeParse({ weights: { Blue: 10000 } }).success).toBe(false);
  });
});
