/**
 * Metric series of versions and pools that left the table go once drained (issue 10): 400
 * deploys of a new SHA took /metrics from 86 to 530 series. Real app, real HTTP: deploys go
 * through the admin API, requests through the proxy, series are read from GET /metrics.
 *
 * drainTimeout is a minute here, so a series that goes went because nothing was left on it,
 * not because its deadline passed.
 */
import { describe, expect, it } from 'vitest';
import { closeAfterEach } from '../helpers/closers.js';
import { Agent, request } from 'undici';
import { eventually } from '../helpers/eventually.js';
import { findSamples, hasMetric, scrapeMetrics, type MetricSample } from '../helpers/metrics.js';
import { startReference } from '../helpers/reference.js';
import { startApp, type TestApp } from '../helpers/start-app.js';

const closers = closeAfterEach();

/** A 7-hex-digit SHA per deploy. */
function sha(i: number): string {
  return i.toString(16).padStart(7, '0');
}

interface World {
  t: TestApp;
  agent: Agent;
  urls: { blue: string; green: string };
}

async function world(drainTimeout = 60_000): Promise<World> {
  const blue = await startReference({ pool: 'blue', version: sha(0) });
  closers.push(blue.close);
  const green = await startReference({ pool: 'green', version: sha(0) });
  closers.push(green.close);
  const t = await startApp({
    drainTimeout,
    drainSpread: 0,
    pools: [
      { name: 'blue', version: sha(1), endpoints: [blue.url] },
      { name: 'green', version: sha(2), endpoints: [green.url] },
    ],
  });
  closers.push(() => t.close());
  const agent = new Agent({ connections: 2 });
  closers.push(() => agent.close());
  return { t, agent, urls: { blue: blue.url, green: green.url } };
}

async function admin(w: World, method: 'PUT' | 'POST' | 'DELETE', path: string, body: unknown) {
  const res = await request(`${w.t.adminUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.body.text();
  expect(res.statusCode, text).toBe(200);
}

async function get(w: World, path: string): Promise<string> {
  const res = await request(`${w.t.proxyUrl}${path}`, { dispatcher: w.agent });
  expect(res.statusCode).toBe(200);
  return ((await res.body.json()) as { pool: string }).pool;
}

/** Deploys version `sha(i)` into the idle pool and switches all traffic to it. */
async function deployAndSwitch(w: World, i: number): Promise<'blue' | 'green'> {
  const pool = i % 2 === 1 ? 'green' : 'blue'; // blue is live at the start
  await admin(w, 'PUT', `/v1/pools/${pool}`, { version: sha(i), endpoints: [w.urls[pool]] });
  await admin(w, 'POST', '/v1/switch', { to: pool });
  return pool;
}

function switchyardSeries(samples: readonly MetricSample[]): string[] {
  return samples
    .filter((s) => s.name.startsWith('switchyard_'))
    .map((s) => `${s.name}${JSON.stringify(s.labels)}`)
    .sort();
}

describe('issue 10: series of versions and pools that left the table', () => {
  it('stay bounded over 30 deploys with a switch each: only versions in the table keep series', async () => {
    const w = await world();
    // Deploys 3 and 4 give both pools a new version with traffic: the steady state.
    for (let i = 3; i <= 4; i++) {
      await deployAndSwitch(w, i);
      for (let k = 0; k < 3; k++) await get(w, '/hello');
    }
    const steady = switchyardSeries(await scrapeMetrics(w.t.adminUrl));
    for (let i = 5; i <= 34; i++) {
      const pool = await deployAndSwitch(w, i);
      for (let k = 0; k < 3; k++) expect(await get(w, '/hello')).toBe(pool);
    }
    // Green runs sha(33), blue sha(34): the same series as in the steady state, with their
    // versions, and no series of the 30 versions deployed and replaced in between.
    const expected = steady
      .join('\n')
      .replaceAll(`"version":"${sha(3)}"`, `"version":"${sha(33)}"`)
      .replaceAll(`"version":"${sha(4)}"`, `"version":"${sha(34)}"`)
      .split('\n')
      .sort();
    await eventually(async () => {
      expect(switchyardSeries(await scrapeMetrics(w.t.adminUrl))).toEqual(expected);
    });
    const samples = await scrapeMetrics(w.t.adminUrl);
    expect(findSamples(samples, 'switchyard_requests_total').map((s) => s.labels)).toEqual(
      expect.arrayContaining([
        { pool: 'green', version: sha(33), code_class: '2xx' },
        { pool: 'blue', version: sha(34), code_class: '2xx' },
      ]),
    );
    // Per-pool series keep counting across versions: 3 requests per deploy, 32 deploys.
    expect(
      findSamples(samples, 'switchyard_request_duration_seconds_count').reduce(
        (n, s) => n + s.value,
        0,
      ),
    ).toBe(32 * 3);
  });

  it("keep a version's series while a slow request on it is in flight, then drop them", async () => {
    const w = await world();
    await get(w, '/hello'); // blue@sha(1) answers one quick request
    const slow = request(`${w.t.proxyUrl}/slow?ms=4000`, { dispatcher: w.agent });
    const v1 = { pool: 'blue', version: sha(1) };
    // Routed (to blue, the only pool with weight) before anything changes.
    await eventually(() => expect(w.t.app.proxy.inFlight()).toBe(1));
    // The slow request is on blue when blue's version is replaced.
    await admin(w, 'POST', '/v1/switch', { to: 'green' });
    await admin(w, 'PUT', '/v1/pools/blue', { version: sha(3), endpoints: [w.urls.blue] });
    // Applying the table checked at once what still runs on blue@sha(1): the slow request.
    expect(await hasMetric(w.t.adminUrl, 'switchyard_requests_total', v1)).toBe(true);
    const res = await slow;
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { pool: string }).pool).toBe('blue');
    await eventually(async () =>
      expect(await hasMetric(w.t.adminUrl, 'switchyard_requests_total', v1)).toBe(false),
    );
    // The pool stays in the table: its own series stay.
    expect(
      await hasMetric(w.t.adminUrl, 'switchyard_request_duration_seconds_count', { pool: 'blue' }),
    ).toBe(true);
  });

  it('drop them at drainTimeout + drainSpread at the latest, even with a request still running', async () => {
    const w = await world(300);
    await get(w, '/hello');
    const slow = request(`${w.t.proxyUrl}/slow?ms=5000`, { dispatcher: w.agent });
    const v1 = { pool: 'blue', version: sha(1) };
    // Routed (to blue, the only pool with weight) before anything changes.
    await eventually(() => expect(w.t.app.proxy.inFlight()).toBe(1));
    await admin(w, 'POST', '/v1/switch', { to: 'green' });
    await admin(w, 'PUT', '/v1/pools/blue', { version: sha(3), endpoints: [w.urls.blue] });
    await eventually(async () =>
      expect(await hasMetric(w.t.adminUrl, 'switchyard_requests_total', v1)).toBe(false),
    );
    // The series went while the request was still running; the request itself is unharmed.
    expect(w.t.app.proxy.inFlight()).toBe(1);
    const res = await slow;
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { pool: string }).pool).toBe('blue');
    // Its late count is not written back.
    expect(await hasMetric(w.t.adminUrl, 'switchyard_requests_total', v1)).toBe(false);
  });

  it('drop every series of a removed pool once it has drained, and keep weight-0 pools', async () => {
    const w = await world();
    await get(w, '/hello'); // blue
    await admin(w, 'POST', '/v1/switch', { to: 'green' });
    await get(w, '/hello'); // green
    // Green live, blue at weight 0: both keep their series.
    let samples = await scrapeMetrics(w.t.adminUrl);
    for (const pool of ['blue', 'green'])
      expect(findSamples(samples, 'switchyard_request_duration_seconds_count', { pool })).toEqual([
        expect.objectContaining({ value: 1 }),
      ]);
    await admin(w, 'DELETE', '/v1/pools/blue', {});
    await eventually(async () => {
      samples = await scrapeMetrics(w.t.adminUrl);
      expect(samples.filter((s) => s.labels.pool === 'blue')).toEqual([]);
    });
    expect(findSamples(samples, 'switchyard_requests_total', { pool: 'green' })).toHaveLength(1);
  });
});
