/** Data plane routing (SPEC §3): weights, stickiness, override, snapshot swap, cookie. */
import { describe, expect, test } from 'vitest';
import { Agent, request } from 'undici';
import { createPoolPicker } from '../../src/table/sticky-hash.js';
import { eventually } from '../helpers/eventually.js';
import { readMetric } from '../helpers/metrics.js';
import {
  makeTable,
  startProxy,
  COLOUR_VERSIONS,
  startColours,
  type TestProxy,
  type TestReference,
} from '../helpers/reference.js';
import { closeAfterEach } from '../helpers/closers.js';

const { blue: BLUE, green: GREEN, canary: CANARY } = COLOUR_VERSIONS;
const TOKEN = 'override-token-0123456789';

const closers = closeAfterEach();

async function world(config: Record<string, unknown> = {}): Promise<{
  blue: TestReference;
  green: TestReference;
  canary: TestReference;
  p: TestProxy;
  agent: Agent;
}> {
  const { blue, green, canary } = await startColours(closers);
  const p = await startProxy(config);
  closers.push(p.close);
  const agent = new Agent({ connections: 4 });
  closers.push(() => agent.close());
  return { blue, green, canary, p, agent };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: { pool: string; version: string; path: string; headers: Record<string, string> };
}

async function get(
  agent: Agent,
  url: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const r = await request(url, { dispatcher: agent, headers });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, json: JSON.parse(text) as Answer['json'] };
}

describe('proxy routing', () => {
  test('answers 503 NO_HEALTHY_UPSTREAM before the first table', async () => {
    const { p, agent } = await world();
    const r = await request(`${p.url}/`, { dispatcher: agent });
    expect(r.statusCode).toBe(503);
    expect(r.headers['content-type']).toBe('application/json');
    expect(await r.body.json()).toEqual({
      error: { code: 'NO_HEALTHY_UPSTREAM', message: expect.any(String) as string },
    });
    expect(p.proxy.appliedRevision()).toBe(0);
  });

  test('routes every key to the pool the weighted picker names (header sticky key)', async () => {
    const { blue, green, canary, p, agent } = await world({ stickyKey: 'header:x-user' });
    const weights = { blue: 6000, green: 3000, canary: 1000 };
    p.proxy.applyTable(
      makeTable({
        blue: { version: BLUE, endpoints: [blue.url], weight: weights.blue },
        green: { version: GREEN, endpoints: [green.url], weight: weights.green },
        canary: { version: CANARY, endpoints: [canary.url], weight: weights.canary },
      }),
    );
    const pick = createPoolPicker(weights);
    const seen: Record<string, number> = { blue: 0, green: 0, canary: 0 };
    for (let i = 0; i < 300; i++) {
      const key = `user-${i}`;
      const a = await get(agent, `${p.url}/`, { 'x-user': key });
      const expected = pick(key) as string;
      expect(a.status).toBe(200);
      expect(a.json.pool).toBe(expected);
      expect(a.headers['x-switchyard-upstream']).toBe(`${expected}@${a.json.version}`);
      expect(a.headers['set-cookie']).toBeUndefined();
      seen[expected] = (seen[expected] ?? 0) + 1;
    }
    // every pool got traffic, and the traffic window counted each request
    expect(seen.blue).toBeGreaterThan(0);
    expect(seen.green).toBeGreaterThan(0);
    expect(seen.canary).toBeGreaterThan(0);
    expect(p.proxy.trafficSnapshot(60_000)).toEqual(seen);
    expect(
      await readMetric(p.metrics, 'switchyard_requests_total', { pool: 'blue', code_class: '2xx' }),
    ).toBe(seen.blue);
    expect(p.proxy.poolHealth('blue')).toEqual({ healthy: 1, total: 1 });
  });

  test('sets the sy_id cookie with Path=/; HttpOnly; SameSite=Lax and honours it', async () => {
    const { blue, green, p, agent } = await world();
    p.proxy.applyTable(
      makeTable({
        blue: { version: BLUE, endpoints: [blue.url], weight: 5000 },
        green: { version: GREEN, endpoints: [green.url], weight: 5000 },
      }),
    );
    const first = await get(agent, `${p.url}/`);
    const setCookie = first.headers['set-cookie'] as string;
    expect(setCookie).toMatch(/^sy_id=[A-Za-z0-9_-]{8,}; Path=\/; HttpOnly; SameSite=Lax$/);
    const id = /^sy_id=([^;]+)/.exec(setCookie)?.[1] as string;
    const pool = createPoolPicker({ blue: 5000, green: 5000 })(id);
    expect(first.json.pool).toBe(pool);
    for (let i = 0; i < 20; i++) {
      const a = await get(agent, `${p.url}/`, { cookie: `theme=dark; sy_id=${id}` });
      expect(a.json.pool).toBe(pool);
      expect(a.headers['set-cookie']).toBeUndefined();
      // the cookie reaches the upstream unchanged
      expect(a.json.headers.cookie).toBe(`theme=dark; sy_id=${id}`);
    }
  });

  test('override header is honoured only with the right token, and never forwarded', async () => {
    const { blue, green, p, agent } = await world({
      overrideToken: TOKEN,
      stickyKey: 'header:x-user',
    });
    p.proxy.applyTable(
      makeTable({
        blue: { version: BLUE, endpoints: [blue.url], weight: 10000 },
        green: { version: GREEN, endpoints: [green.url], weight: 0 },
      }),
    );
    const ok = await get(agent, `${p.url}/`, {
      'x-switchyard-pool': 'green',
      'x-switchyard-token': TOKEN,
    });
    expect(ok.json.pool).toBe('green');
    expect(ok.json.headers['x-switchyard-pool']).toBeUndefined();
    expect(ok.json.headers['x-switchyard-token']).toBeUndefined();

    const wrong = await get(agent, `${p.url}/`, {
      'x-switchyard-pool': 'green',
      'x-switchyard-token': 'nope',
    });
    expect(wrong.json.pool).toBe('blue');
    expect(wrong.json.headers['x-switchyard-pool']).toBeUndefined();
    expect(wrong.json.headers['x-switchyard-token']).toBeUndefined();

    const none = await get(agent, `${p.url}/`, { 'x-switchyard-pool': 'green' });
    expect(none.json.pool).toBe('blue');
  });

  test('override header is ignored when no override token is configured', async () => {
    const { blue, green, p, agent } = await world();
    p.proxy.applyTable(
      makeTable({
        blue: { version: BLUE, endpoints: [blue.url], weight: 10000 },
        green: { version: GREEN, endpoints: [green.url], weight: 0 },
      }),
    );
    const a = await get(agent, `${p.url}/`, {
      'x-switchyard-pool': 'green',
      'x-switchyard-token': TOKEN,
    });
    expect(a.json.pool).toBe('blue');
    expect(a.json.headers['x-switchyard-token']).toBeUndefined();
  });

  test('a switch takes effect on the next request while a slow request on the old pool completes', async () => {
    const { blue, green, p, agent } = await world();
    p.proxy.applyTable(
      makeTable({
        blue: { version: BLUE, endpoints: [blue.url], weight: 10000 },
        green: { version: GREEN, endpoints: [green.url], weight: 0 },
      }),
    );
    const slow = get(agent, `${p.url}/slow?ms=600`);
    await eventually(() => expect(blue.server.stats().requests).toBe(1));
    p.proxy.applyTable(
      makeTable(
        {
          blue: { version: BLUE, endpoints: [blue.url], weight: 0 },
          green: { version: GREEN, endpoints: [green.url], weight: 10000 },
        },
        2,
      ),
    );
    expect(p.proxy.appliedRevision()).toBe(2);
    const next = await get(agent, `${p.url}/`);
    expect(next.json.pool).toBe('green');
    const old = await slow;
    expect(old.status).toBe(200);
    expect(old.json.pool).toBe('blue');
    expect(await readMetric(p.metrics, 'switchyard_routing_revision')).toBe(2);
    expect(
      await readMetric(p.metrics, 'switchyard_pool_weight_basis_points', { pool: 'green' }),
    ).toBe(10000);
  });

  test('a slow request to an endpoint removed from the table still completes', async () => {
    const { blue, green, p, agent } = await world();
    p.proxy.applyTable(
      makeTable({ blue: { version: BLUE, endpoints: [blue.url], weight: 10000 } }),
    );
    const slow = get(agent, `${p.url}/slow?ms=600`);
    await eventually(() => expect(blue.server.stats().requests).toBe(1));
    p.proxy.applyTable(
      makeTable({ green: { version: GREEN, endpoints: [green.url], weight: 10000 } }, 2),
    );
    expect((await get(agent, `${p.url}/`)).json.pool).toBe('green');
    const old = await slow;
    expect(old.status).toBe(200);
    expect(old.json.pool).toBe('blue');
  });

  test('balances requests across the endpoints of a pool', async () => {
    const { blue, green, p, agent } = await world();
    // two endpoints in one pool (the green server stands in for a second blue replica)
    p.proxy.applyTable(
      makeTable({ blue: { version: BLUE, endpoints: [blue.url, green.url], weight: 10000 } }),
    );
    for (let i = 0; i < 10; i++) await get(agent, `${p.url}/`);
    expect(blue.server.stats().requests).toBe(5);
    expect(green.server.stats().requests).toBe(5);
    expect(p.proxy.poolHealth('blue')).toEqual({ healthy: 2, total: 2 });
  });

  test('x-switchyard-upstream can be turned off', async () => {
    const { blue, p, agent } = await world({ upstreamHeader: false });
    p.proxy.applyTable(
      makeTable({ blue: { version: BLUE, endpoints: [blue.url], weight: 10000 } }),
    );
    const a = await get(agent, `${p.url}/`);
    expect(a.status).toBe(200);
    expect(a.headers['x-switchyard-upstream']).toBeUndefined();
  });

  test('after beginShutdown responses carry Connection: close', async () => {
    const { blue, p, agent } = await world();
    p.proxy.applyTable(
      makeTable({ blue: { version: BLUE, endpoints: [blue.url], weight: 10000 } }),
    );
    p.proxy.beginShutdown();
    const a = await get(agent, `${p.url}/`);
    expect(a.status).toBe(200);
    expect(a.headers.connection).toBe('close');
  });

  test('close() lets an in-flight request finish, and is idempotent', async () => {
    const { blue, p, agent } = await world();
    p.proxy.applyTable(
      makeTable({ blue: { version: BLUE, endpoints: [blue.url], weight: 10000 } }),
    );
    const slow = get(agent, `${p.url}/slow?ms=400`);
    await eventually(() => expect(blue.server.stats().requests).toBe(1));
    const started = Date.now();
    const closing = p.proxy.close();
    expect(p.proxy.close()).toBe(closing);
    const answer = await slow;
    await closing;
    expect(answer.status).toBe(200);
    expect(answer.headers.connection).toBe('close');
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
