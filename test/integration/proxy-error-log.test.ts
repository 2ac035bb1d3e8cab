/**
 * Upstream failures are logged once per burst (issue 3): twenty refused requests give one warn
 * line naming the pool and reason, not twenty; the metric still counts every one.
 */
import { createServer } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { findSamples, scrapeMetrics } from '../helpers/metrics.js';
import { startApp, type TestApp } from '../helpers/start-app.js';

let app: TestApp | undefined;
afterEach(async () => {
  await app?.close();
});

/** A loopback port with nothing listening (bound, read, released). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

it('logs a burst of upstream errors once, and counts each in metrics', async () => {
  const port = await deadPort();
  app = await startApp({
    healthCheckInterval: 0,
    ejectionThreshold: 0,
    pools: [{ name: 'blue', version: 'abcdef1', endpoints: [`http://127.0.0.1:${port}`] }],
  });
  for (let i = 0; i < 20; i += 1) {
    const res = await fetch(`${app.proxyUrl}/`);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('UPSTREAM_ERROR');
  }
  const lines = app.logs.filter((l) => l.msg === 'upstream errors');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({
    level: 40,
    pool: 'blue',
    reason: 'refused',
    suppressedBefore: 0,
  });
  const samples = await scrapeMetrics(app.adminUrl);
  const value = (name: string): number =>
    findSamples(samples, name, { pool: 'blue' }).reduce((n, s) => n + s.value, 0);
  // Every attempt is counted: the 20 requests plus the retries the retry budget allowed.
  const retries = value('switchyard_retries_total');
  expect(retries).toBeGreaterThan(0);
  expect(value('switchyard_upstream_errors_total')).toBe(20 + retries);
  expect(retries + value('switchyard_retries_denied_total')).toBe(20);
});
