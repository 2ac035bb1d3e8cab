/**
 * A real load balancer in front (issue 5 acceptance): HAProxy on loopback health-checks each
 * replica's admin /readyz (inter 200ms, fall 1, rise 1) over two `switchyard proxy` processes.
 * One replica gets SIGTERM during keep-alive load: its /readyz turns 503 at once, HAProxy stops
 * sending it new requests within a check, the replica finishes what it has during shutdownDelay
 * and exits 0, and no request through HAProxy fails. HAProxy retries only connection failures
 * (nothing was sent), so a lost request would show.
 */
import { describe, expect, test } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { startHaproxy } from '../helpers/haproxy.js';
import { startLoad } from '../helpers/keepalive-load.js';
import { readMetric } from '../helpers/metrics.js';
import { spawnReplicas, type ProxyProcess } from '../helpers/proxy-process.js';
import { startReference } from '../helpers/reference.js';
import { closeAfterEach } from '../helpers/closers.js';

const BLUE = '1111111';

const closers = closeAfterEach();

describe('HAProxy in front of two replicas', () => {
  test('SIGTERM to one replica during keep-alive load: zero failed requests, the replica exits 0', async () => {
    const blue = await startReference({ pool: 'blue', version: BLUE });
    closers.push(blue.close);
    const replicas = await spawnReplicas(
      2,
      [
        '--pool',
        `blue=${BLUE}@${blue.url}`,
        '--shutdown-delay',
        '1s',
        '--shutdown-timeout',
        '10s',
        '--health-check-interval',
        '0',
      ],
      closers,
    );
    const [r1, r2] = replicas as [ProxyProcess, ProxyProcess];
    const lb = await startHaproxy(replicas, closers);

    const load = startLoad({
      origin: lb,
      clients: 4,
      requests: [
        { method: 'GET', path: '/' },
        { method: 'POST', path: '/echo', body: '{"order":1}' },
      ],
    });
    const began = performance.now();
    // Both replicas serve before the restart.
    await eventually(
      async () => {
        expect(await readMetric(r1.adminUrl, 'switchyard_requests_total')).toBeGreaterThan(20);
        expect(await readMetric(r2.adminUrl, 'switchyard_requests_total')).toBeGreaterThan(20);
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, 1_500 - (performance.now() - began))),
    );
    const okBefore = load.result.ok;
    const signalledAt = performance.now();
    r1.child.kill('SIGTERM');
    const { code } = await r1.exited;
    const shutdownMs = performance.now() - signalledAt;
    // Keep the load going on the survivor a little longer (about 4 s in all).
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(500, 4_000 - (performance.now() - began))),
    );
    const result = await load.stop();
    console.log(
      `HAProxy rolling restart: ${result.ok} ok (${okBefore} before SIGTERM), ${result.failed} failed; ` +
        `replica exited ${code} ${Math.round(shutdownMs)} ms after SIGTERM (shutdownDelay 1000 ms)`,
    );
    expect(result.failures).toEqual([]);
    expect(code).toBe(0);
    expect(result.ok).toBeGreaterThan(okBefore);
    expect(r1.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['shutdown started', 'bye']));
  });
});
