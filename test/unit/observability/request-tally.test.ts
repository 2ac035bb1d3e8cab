/** RequestTally: what the request path counts shows in the exposition exactly as prom-client would. */
import { describe, expect, test } from 'vitest';
import { createMetrics } from '../../../src/observability/metrics.js';

// Edges included: a value equal to a bound falls in that bucket; above the last only counts.
const DURATIONS = [0, 0.0004, 0.001, 0.0011, 0.003, 0.02, 0.5, 1, 9.9, 10, 12, 40];
const STATUSES = [200, 204, 301, 404, 499, 500, 503, 101, 99, 600];

async function exposition(
  feed: (m: ReturnType<typeof createMetrics>) => void,
  names: readonly string[],
): Promise<string> {
  const m = createMetrics({ defaultMetrics: false });
  feed(m);
  const parts = await Promise.all(names.map((n) => m.registry.getSingleMetricAsString(n)));
  return parts.join('\n');
}

describe('RequestTally', () => {
  const NAMES = ['switchyard_requests_total', 'switchyard_request_duration_seconds'];

  test('matches prom-client fed through inc() and observe(), across repeated scrapes', async () => {
    const viaPromClient = await exposition((m) => {
      for (const [i, d] of DURATIONS.entries()) {
        const status = STATUSES[i % STATUSES.length] as number;
        const c = (status / 100) | 0;
        if (c >= 1 && c <= 5) m.requests.inc({ pool: 'blue', version: 'v1', code_class: `${c}xx` });
        m.requestDuration.observe({ pool: 'blue' }, d);
      }
      m.requests.inc({ pool: 'green', version: 'v2', code_class: '2xx' }, 2);
      m.requests.inc({ pool: 'green', version: 'v3', code_class: '5xx' });
      m.requestDuration.observe({ pool: 'green' }, 0.002);
      m.requestDuration.observe({ pool: 'green' }, 0.003);
    }, NAMES);

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
    expect(parts.join('\n')).toBe(viaPromClient);
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
