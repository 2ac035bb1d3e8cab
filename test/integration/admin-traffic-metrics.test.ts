/**
 * Metrics and the observed-vs-configured split through the real app (store + ProxyServer + admin
 * API): requests sent through the proxy show up per pool in /metrics and /v1/traffic.
 */
import { describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { findSamples, parseMetrics } from '../helpers/metrics.js';
import { startReference } from '../helpers/reference.js';
import { startApp, type TestApp } from '../helpers/start-app.js';
import { closeAfterEach } from '../helpers/closers.js';

const BLUE = '1111111';
const GREEN = '2222222';

const closers = closeAfterEach();

async function world(): Promise<{ t: TestApp; agent: Agent }> {
  const blue = await startReference({ pool: 'blue', version: BLUE });
  closers.push(blue.close);
  const green = await startReference({ pool: 'green', version: GREEN });
  closers.push(green.close);
  const t = await startApp({
    pools: [
      { name: 'blue', version: BLUE, endpoints: [blue.url] },
      { name: 'green', version: GREEN, endpoints: [green.url] },
    ],
  });
  closers.push(() => t.close());
  const agent = new Agent({ connections: 4 });
  closers.push(() => agent.close());
  return { t, agent };
}

/** Sends `count` GETs through the proxy and returns how many each pool answered. */
async function send(t: TestApp, agent: Agent, count: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const res = await request(`${t.proxyUrl}/hello`, { dispatcher: agent });
    expect(res.statusCode).toBe(200);
    const body = (await res.body.json()) as { pool: string };
    seen[body.pool] = (seen[body.pool] ?? 0) + 1;
  }
  return seen;
}

async function admin(
  t: TestApp,
  method: 'GET' | 'PUT' | 'POST',
  path: string,
  body?: unknown,
): Promise<unknown> {
  const res = await request(`${t.adminUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
  });
  expect(res.statusCode).toBe(200);
  const type = String(res.headers['content-type']);
  return type.includes('json') ? res.body.json() : res.body.text();
}

describe('metrics and traffic through the real proxy', () => {
  it('/metrics counts requests per pool and version exactly, with weights and revision', async () => {
    const { t, agent } = await world();
    expect(await send(t, agent, 30)).toEqual({ blue: 30 });
    await admin(t, 'PUT', '/v1/weights', { percent: { green: 100 } });
    expect(await send(t, agent, 20)).toEqual({ green: 20 });

    const samples = parseMetrics((await admin(t, 'GET', '/metrics')) as string);
    /** The value of the one sample named `name` with exactly these labels, or undefined. */
    const sample = (name: string, labels: Record<string, string>): number | undefined => {
      const hits = findSamples(samples, name, labels).filter(
        (s) => Object.keys(s.labels).length === Object.keys(labels).length,
      );
      expect(hits.length).toBeLessThanOrEqual(1);
      return hits[0]?.value;
    };
    expect(
      sample('switchyard_requests_total', { pool: 'blue', version: BLUE, code_class: '2xx' }),
    ).toBe(30);
    expect(
      sample('switchyard_requests_total', {
        pool: 'green',
        version: GREEN,
        code_class: '2xx',
      }),
    ).toBe(20);
    expect(sample('switchyard_request_duration_seconds_count', { pool: 'blue' })).toBe(30);
    expect(sample('switchyard_request_duration_seconds_count', { pool: 'green' })).toBe(20);
    expect(sample('switchyard_pool_weight_basis_points', { pool: 'blue' })).toBe(0);
    expect(sample('switchyard_pool_weight_basis_points', { pool: 'green' })).toBe(10000);
    expect(sample('switchyard_routing_revision', {})).toBe(2);
  });

  it('/v1/traffic reports observed shares beside weights and flags a split outside the interval', async () => {
    const { t, agent } = await world();
    await send(t, agent, 100);
    const even = (await admin(t, 'GET', '/v1/traffic')) as {
      total: number;
      pools: Record<
        string,
        {
          requests: number;
          observedShare: number;
          weight: number;
          skewed: boolean;
          interval: { low: number; high: number };
        }
      >;
    };
    expect(even.total).toBe(100);
    expect(even.pools.blue).toMatchObject({
      requests: 100,
      observedShare: 1,
      weight: 10000,
      skewed: false,
    });
    expect(even.pools.blue?.interval.high).toBe(1);
    expect(even.pools.blue?.interval.low).toBeGreaterThan(0.95);
    expect(even.pools.green).toMatchObject({
      requests: 0,
      observedShare: 0,
      weight: 0,
      skewed: false,
    });

    // Everything to green now: in the window, blue's earlier 100 requests make the split differ
    // from the configured 0/100 far beyond the interval.
    await admin(t, 'POST', '/v1/switch', { to: 'green' });
    await send(t, agent, 50);
    const skewed = (await admin(t, 'GET', '/v1/traffic')) as typeof even;
    expect(skewed.total).toBe(150);
    expect(skewed.pools.green).toMatchObject({ requests: 50, weight: 10000, skewed: true });
    expect(skewed.pools.blue).toMatchObject({ requests: 100, weight: 0, skewed: true });
    expect(skewed.pools.green?.observedShare).toBeCloseTo(1 / 3, 10);
  });
});
