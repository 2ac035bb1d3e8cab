/** RequestTally: what the request path counts shows in the exposition exactly as prom-client would. */
import { describe, expect, test } from 'vitest';
import { Counter, Histogram, Registry } from 'prom-client';
import { createMetrics } from '../../../src/observability/metrics.js';

// Edges included: a value equal to a bound falls in that bucket; above the last only counts.
const DURATIONS = [0, 0.0004, 0.001, 0.0011, 0.003, 0.02, 0.5, 1, 9.9, 10, 12, 40];
const STATUSES = [200, 204, 301, 404, 499, 500, 503, 101, 99, 600];

/** The two request metrics as plain prom-client objects, fed through inc() and observe(). */
async function viaPromClient(
  feed: (requests: Counter<'pool' | 'version' | 'code_class'>, duration: Histogram<'pool'>) => void,
): Promise<string> {
  const ours = createMetrics({ defaultMetrics: false });
  const registry = new Registry();
  const requests = new Counter({
    name: 'switchyard_requests_total',
    help: (await ours.requests.get()).help,
    labelNames: ['pool', 'version', 'code_class'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'switchyard_request_duration_seconds',
    help: ours.requestDuration.help,
    labelNames: ['pool'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  feed(requests, duration);
  return registry.metrics();
}

function sortedLines(text: string): string[] {
  return text.split('\n').sort();
}

describe('RequestTally', () => {
  const NAMES = ['switchyard_requests_total', 'switchyard_request_duration_seconds'];

  test('matches prom-client fed through inc() and observe(), across repeated scrapes', async () => {
    const expected = await viaPromClient((requests, duration) => {
      for (const [i, d] of DURATIONS.entries()) {
        const status = STATUSES[i % STATUSES.length] as number;
        const c = (status / 100) | 0;
        if (c >= 1 && c <= 5) requests.inc({ pool: 'blue', version: 'v1', code_class: `${c}xx` });
        duration.observe({ pool: 'blue' }, d);
      }
      requests.inc({ pool: 'green', version: 'v2', code_class: '2xx' }, 2);
      requests.inc({ pool: 'green', version: 'v3', code_class: '5xx' });
      duration.observe({ pool: 'green' }, 0.002);
      duration.observe({ pool: 'green' }, 0.003);
    });

    const m = createMetrics({ defaultMetrics: false });
    const blue = m.requestTally('blue', 'v1');
    expect(m.requestTally('blue', 'v1')).toBe(blue);
    const half = DURATIONS.length / 2;
    for (const [i, d] of DURATIONS.entries()) {
      if (i === half) await m.registry.metrics(); // a scrape in between: deltas, not doubles
      blue.record(STATUSES[i % STATUSES.length] as number, d);
    }
    m.requestTally('green', 'v2').record(200, 0.002);
    m.requestTally('green', 'v2').count(204);
    m.requestTally('green', 'v3').record(502, 0.003);
    await m.registry.metrics();
    const parts = await Promise.all(NAMES.map((n) => m.registry.getSingleMetricAsString(n)));
    // Same lines; the order of series within a metric is free in the exposition format.
    expect(sortedLines(`${parts.join('\n\n')}\n`)).toEqual(sortedLines(expected));
  });

  test('metric.get() sees what was counted (no scrape needed)', async () => {
    const m = createMetrics({ defaultMetrics: false });
    m.requestTally('blue', 'v1').record(200, 0.01);
    const requests = await m.requests.get();
    expect(requests.values).toEqual([
      { labels: { pool: 'blue', version: 'v1', code_class: '2xx' }, value: 1 },
    ]);
    const duration = await m.requestDuration.get();
    expect(duration.values.find((v) => v.metricName?.endsWith('_count'))?.value).toBe(1);
  });

  test('a pool with nothing counted has no series', async () => {
    const m = createMetrics({ defaultMetrics: false });
    m.requestTally('blue', 'v1');
    expect((await m.requests.get()).values).toEqual([]);
    expect((await m.requestDuration.get()).values).toEqual([]);
  });
});

describe('dropping series (issue 10)', () => {
  test('a dropped version loses its series; a late count into its tally is not written back', async () => {
    const m = createMetrics({ defaultMetrics: false });
    const v1 = m.requestTally('blue', 'v1');
    v1.record(200, 0.01);
    m.requestTally('blue', 'v2').record(200, 0.01);
    m.dropVersion(v1);
    v1.record(200, 0.01); // a request that ended after the drop
    expect((await m.requests.get()).values.map((v) => v.labels.version)).toEqual(['v2']);
    // The pool's own series keep everything counted.
    const duration = await m.requestDuration.get();
    expect(duration.values.find((v) => v.metricName.endsWith('_count'))?.value).toBe(3);
    // The pair starts again from zero if it comes back.
    const again = m.requestTally('blue', 'v1');
    expect(again).not.toBe(v1);
    m.dropVersion(v1); // the old tally: does not drop its successor
    again.record(500, 0.01);
    expect((await m.requests.get()).values).toContainEqual({
      labels: { pool: 'blue', version: 'v1', code_class: '5xx' },
      value: 1,
    });
  });

  test('a dropped pool loses every series, the connection gauges only when asked', async () => {
    const m = createMetrics({ defaultMetrics: false });
    m.requestTally('blue', 'v1').record(200, 0.01);
    m.poolTally('blue').retries.inc();
    m.poolTally('blue').errors.reset.inc();
    m.poolWeight.set({ pool: 'blue' }, 0);
    m.upgradedConnections.labels('blue').inc();
    m.requestTally('green', 'v2').record(200, 0.01);
    m.dropPool('blue', { keepConnectionSeries: true });
    const blue = async (): Promise<string[]> =>
      (await m.registry.getMetricsAsJSON())
        .filter((x) => x.values.some((v) => v.labels.pool === 'blue'))
        .map((x) => x.name);
    expect(await blue()).toEqual(['switchyard_upgraded_connections']);
    m.dropPool('blue');
    expect(await blue()).toEqual([]);
    expect((await m.requests.get()).values).toHaveLength(1);
  });
});
