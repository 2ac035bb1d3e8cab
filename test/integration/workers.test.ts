/**
 * `--workers N` (issue 16, SPEC §13) on real processes: `switchyard proxy --workers 2` is a
 * primary and two workers sharing the proxy port. Which worker served is read from
 * `switchyard_worker_requests_total{worker}` (the primary's per-worker count of their reports).
 * Load comes from several keep-alive clients, one connection each, so the connections are spread
 * over the workers.
 */
import { once } from 'node:events';
import http from 'node:http';
import { describe, expect, test } from 'vitest';
import { WebSocket } from 'ws';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { startHaproxy } from '../helpers/haproxy.js';
import { startLoad } from '../helpers/keepalive-load.js';
import { readMetric } from '../helpers/metrics.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { spawnProxy, spawnReplicas, type ProxyProcess } from '../helpers/proxy-process.js';
import { COLOUR_VERSIONS, startColours, startReference } from '../helpers/reference.js';

const closers = closeAfterEach();

/** A `switchyard proxy --workers 2` over blue (100 %) and canary, no active health checks. */
async function startGroup(extra: readonly string[] = []): Promise<ProxyProcess> {
  const colours = await startColours(closers);
  const proc = await spawnProxy([
    '--workers',
    '2',
    '--pool',
    `blue=${COLOUR_VERSIONS.blue}@${colours.blue.url}`,
    '--pool',
    `canary=${COLOUR_VERSIONS.canary}@${colours.canary.url}`,
    '--health-check-interval',
    '0',
    '--shutdown-delay',
    '0',
    ...extra,
  ]);
  closers.push(() => proc.kill());
  return proc;
}

/** The pids of the workers that said they were ready, by slot (the latest per slot). */
function workerPids(proc: ProxyProcess): Map<number, number> {
  const pids = new Map<number, number>();
  for (const l of proc.logs)
    if (l.msg === 'worker ready') pids.set(l.worker as number, l.pid as number);
  return pids;
}

interface DrainAnswer {
  drained: boolean;
  replicas: Array<{ inFlight: number; longLived: number }>;
}

async function drainOf(adminUrl: string, pool: string): Promise<DrainAnswer> {
  return (await (await fetch(`${adminUrl}/v1/pools/${pool}/drain`)).json()) as DrainAnswer;
}

/** Opens a WebSocket and waits for the reference server's hello (which names the pool). */
async function openWs(url: string): Promise<{ pool: string; closed: Promise<number> }> {
  const ws = new WebSocket(url);
  closers.push(async () => {
    if (ws.readyState === WebSocket.CLOSED) return;
    ws.on('error', () => undefined);
    const gone = once(ws, 'close');
    ws.terminate();
    await gone;
  });
  const closed = new Promise<number>((resolve) =>
    ws.once('close', (code: number) => resolve(code)),
  );
  const hello = await new Promise<Buffer>((resolve, reject) => {
    ws.once('message', resolve);
    ws.once('error', reject);
  });
  return { pool: (JSON.parse(hello.toString()) as { pool: string }).pool, closed };
}

async function perWorker(adminUrl: string): Promise<[number, number]> {
  return [
    await readMetric(adminUrl, 'switchyard_worker_requests_total', { worker: '1' }),
    await readMetric(adminUrl, 'switchyard_worker_requests_total', { worker: '2' }),
  ];
}

describe('--workers 2', () => {
  test('both workers serve; /v1/traffic, /metrics and /v1/replicas speak for the group', async () => {
    const proc = await startGroup();
    expect(workerPids(proc).size).toBe(2);
    const started = proc.logs.find((l) => l.msg === 'switchyard started');
    expect(started?.workers).toBe(2);

    const load = startLoad({ origin: proc.proxyUrl, clients: 6, maxRequestsPerClient: 30 });
    const result = await load.finished;
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(180);

    // Reports reach the primary four times a second.
    await eventually(
      async () => {
        const [w1, w2] = await perWorker(proc.adminUrl);
        expect(w1).toBeGreaterThan(0);
        expect(w2).toBeGreaterThan(0);
        expect(w1 + w2).toBe(180);
        expect(await readMetric(proc.adminUrl, 'switchyard_requests_total')).toBe(180);
        expect(
          await readMetric(proc.adminUrl, 'switchyard_request_duration_seconds_count', {
            pool: 'blue',
          }),
        ).toBe(180);
        const traffic = (await (await fetch(`${proc.adminUrl}/v1/traffic`)).json()) as {
          total: number;
          pools: Record<string, { requests: number }>;
        };
        expect(traffic.total).toBe(180);
        expect(traffic.pools.blue?.requests).toBe(180);
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    expect(await readMetric(proc.adminUrl, 'switchyard_workers_serving')).toBe(2);
    expect(await readMetric(proc.adminUrl, 'switchyard_routing_revision')).toBe(1);
    // Process metrics cover the group: the primary's CPU alone would be far less.
    expect(
      await readMetric(proc.adminUrl, 'process_cpu_seconds_total', {}, { required: true }),
    ).toBeGreaterThan(0);

    const replicas = (await (await fetch(`${proc.adminUrl}/v1/replicas`)).json()) as {
      replicas: Array<{ id: string; revision: number }>;
    };
    expect(replicas.replicas).toHaveLength(1);
    expect(replicas.replicas[0]?.revision).toBe(1);
  });

  test('sticky routing does not depend on the worker: a key lands on one pool whichever serves it', async () => {
    const proc = await startGroup();
    const res = await fetch(`${proc.adminUrl}/v1/canary?wait=all`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ percent: 50 }),
    });
    expect(res.status).toBe(200);
    // Each request on a connection of its own: the primary deals connections round robin, so
    // every key is served by both workers.
    const pools = new Map<string, Set<string>>();
    for (let i = 0; i < 20; i++) {
      const key = `user-${i}`;
      for (let j = 0; j < 4; j++) {
        const upstream = await new Promise<string>((resolve, reject) => {
          const req = http.get(
            `${proc.proxyUrl}/`,
            { agent: false, headers: { cookie: `sy_id=${key}` } },
            (answer) => {
              answer.resume();
              answer.on('end', () => resolve(String(answer.headers['x-switchyard-upstream'])));
            },
          );
          req.on('error', reject);
        });
        pools.set(key, (pools.get(key) ?? new Set()).add(upstream.split('@')[0]!));
      }
    }
    for (const [key, seen] of pools) expect([...seen], key).toHaveLength(1);
    // Both pools got keys at 50 %, and both workers served.
    expect(new Set([...pools.values()].map((s) => [...s][0]))).toEqual(new Set(['blue', 'canary']));
    await eventually(async () => {
      const [w1, w2] = await perWorker(proc.adminUrl);
      expect(w1).toBeGreaterThan(0);
      expect(w2).toBeGreaterThan(0);
    });
  });

  test('a change is answered only once both workers route by it', async () => {
    const proc = await startGroup();
    const switchTo = (to: string): Promise<Response> =>
      fetch(`${proc.adminUrl}/v1/switch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ to }),
      });
    // A worker that cannot apply (stopped) holds the answer back until it has.
    const stopped = workerPids(proc).get(2) as number;
    process.kill(stopped, 'SIGSTOP');
    let answered = false;
    const pending = switchTo('canary');
    void pending.then(() => (answered = true));
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(answered).toBe(false);
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
    const first = await pending;
    expect(first.status).toBe(200);
    expect(((await first.json()) as { revision: number }).revision).toBe(2);

    for (const [i, to] of ['blue', 'canary', 'blue'].entries()) {
      const res = await switchTo(to);
      expect(res.status).toBe(200);
      const revision = ((await res.json()) as { revision: number }).revision;
      expect(revision).toBe(3 + i);
      const before = await perWorker(proc.adminUrl);
      // At once, on fresh connections spread over both workers: every answer is the new split.
      const load = startLoad({ origin: proc.proxyUrl, clients: 6, maxRequestsPerClient: 5 });
      const result = await load.finished;
      expect(result.failures).toEqual([]);
      expect(result.byPool).toEqual({ [to]: 30 });
      await eventually(
        async () => {
          const after = await perWorker(proc.adminUrl);
          expect(after[0] + after[1] - before[0] - before[1]).toBe(30);
          // Both workers took part in this batch.
          expect(after[0]).toBeGreaterThan(before[0]);
          expect(after[1]).toBeGreaterThan(before[1]);
        },
        { timeoutMs: 10_000, intervalMs: 100 },
      );
      const state = (await (await fetch(`${proc.adminUrl}/v1/state`)).json()) as {
        appliedRevision: number;
      };
      expect(state.appliedRevision).toBe(revision);
    }
    const applied = proc.logs.filter((l) => l.msg === 'table applied' && l.revision === 5);
    // The primary's health view and both workers.
    expect(applied.map((l) => l.worker ?? 'primary').sort()).toEqual([1, 2, 'primary']);
  });

  test('WebSockets on both workers drain as in one process: counted in the drain report, 1012 after drainTimeout, then drained', async () => {
    const drainMs = 1_000;
    const spreadMs = 500;
    const proc = await startGroup([
      '--drain-timeout',
      `${drainMs}ms`,
      '--drain-spread',
      `${spreadMs}ms`,
    ]);
    const wsUrl = proc.proxyUrl.replace('http:', 'ws:');
    // Four connections, dealt round robin: two on each worker.
    const sockets = [];
    for (let i = 0; i < 4; i++) sockets.push(await openWs(`${wsUrl}/live`));
    expect(sockets.map((s) => s.pool)).toEqual(['blue', 'blue', 'blue', 'blue']);
    await eventually(
      async () => expect((await drainOf(proc.adminUrl, 'blue')).replicas[0]?.longLived).toBe(4),
      { timeoutMs: 5_000, intervalMs: 50 },
    );
    const switchedAt = performance.now();
    const res = await fetch(`${proc.adminUrl}/v1/switch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'canary' }),
    });
    expect(res.status).toBe(200);
    expect((await drainOf(proc.adminUrl, 'blue')).drained).toBe(false);
    const codes = await Promise.all(sockets.map((s) => s.closed));
    const afterMs = performance.now() - switchedAt;
    expect(codes).toEqual([1012, 1012, 1012, 1012]);
    expect(afterMs).toBeGreaterThanOrEqual(drainMs - 50);
    expect(afterMs).toBeLessThan(drainMs + spreadMs + 3_000);
    await eventually(
      async () => expect((await drainOf(proc.adminUrl, 'blue')).drained).toBe(true),
      {
        timeoutMs: 5_000,
        intervalMs: 50,
      },
    );
    expect((await openWs(`${wsUrl}/live`)).pool).toBe('canary');
    const finished = proc.logs.filter((l) => l.msg === 'drain finished' && l.worker !== undefined);
    expect(new Set(finished.map((l) => l.worker))).toEqual(new Set([1, 2]));
  });

  test('SIGTERM with WebSockets on both workers: every one is closed 1001 as by one process, exit 0', async () => {
    const proc = await startGroup(['--drain-timeout', '5s']);
    const wsUrl = proc.proxyUrl.replace('http:', 'ws:');
    // Four connections, dealt round robin: two on each worker.
    const sockets = [];
    for (let i = 0; i < 4; i++) sockets.push(await openWs(`${wsUrl}/live`));
    await eventually(
      async () => expect((await drainOf(proc.adminUrl, 'blue')).replicas[0]?.longLived).toBe(4),
      { timeoutMs: 5_000, intervalMs: 50 },
    );
    const sentAt = performance.now();
    proc.child.kill('SIGTERM');
    const codes = await Promise.all(sockets.map((s) => s.closed));
    expect(codes).toEqual([1001, 1001, 1001, 1001]);
    const { code } = await proc.exited;
    expect(code).toBe(0);
    // Closed by the shutdown itself, not by the drainTimeout deadline cutting them.
    expect(performance.now() - sentAt).toBeLessThan(5_000);
    const stopped = proc.logs.filter((l) => l.msg === 'proxy closed' && l.worker !== undefined);
    expect(new Set(stopped.map((l) => l.worker))).toEqual(new Set([1, 2]));
  });

  test("a rollout judges the workers' counts: a canary answering 20 % 500s is aborted", async () => {
    const blue = await startReference({ pool: 'blue', version: COLOUR_VERSIONS.blue });
    closers.push(blue.close);
    const canary = await startReference({
      pool: 'canary',
      version: COLOUR_VERSIONS.canary,
      errorRate: 0.2,
    });
    closers.push(canary.close);
    const proc = await spawnProxy([
      '--workers',
      '2',
      '--pool',
      `blue=${COLOUR_VERSIONS.blue}@${blue.url}`,
      '--pool',
      `canary=${COLOUR_VERSIONS.canary}@${canary.url}`,
      '--health-check-interval',
      '0',
      '--ejection-threshold',
      '0',
      '--shutdown-delay',
      '0',
    ]);
    closers.push(() => proc.kill());
    const load = startLoad({ origin: proc.proxyUrl, clients: 4, pauseMs: 20 });
    closers.push(() => load.stop());
    const res = await fetch(`${proc.adminUrl}/v1/rollouts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        pool: 'canary',
        steps: [{ weight: 20 }, { pause: '1m' }, { weight: 100 }],
      }),
    });
    expect(res.status).toBe(201);
    const rollout = await eventually(
      async () => {
        const r = (await (await fetch(`${proc.adminUrl}/v1/rollouts/current`)).json()) as {
          phase: string;
          decisions: Array<{ action: string; reason: string }>;
        };
        expect(r.phase).toBe('aborted');
        return r;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    const abort = rollout.decisions.find((d) => d.action === 'abort');
    expect(abort?.reason).toMatch(/^canary 5xx [1-9][\d,]*\/[\d,]+ /);
    // Both workers served: the judged counts are the sum of their reports.
    const [w1, w2] = await perWorker(proc.adminUrl);
    expect(w1).toBeGreaterThan(0);
    expect(w2).toBeGreaterThan(0);
  });

  test('with Redis: the group is one replica; a Redis command and ?wait=all reach both workers', async () => {
    const redis = await startRedisServer();
    closers.push(() => redis.close());
    const colours = await startColours(closers);
    const pools = [
      '--pool',
      `blue=${COLOUR_VERSIONS.blue}@${colours.blue.url}`,
      '--pool',
      `canary=${COLOUR_VERSIONS.canary}@${colours.canary.url}`,
    ];
    const common = ['--redis', redis.url, '--health-check-interval', '0', '--shutdown-delay', '0'];
    const group = await spawnProxy(['--workers', '2', ...pools, ...common]);
    closers.push(() => group.kill());
    const single = await spawnProxy([...pools, ...common]);
    closers.push(() => single.kill());
    await eventually(
      async () => {
        const body = (await (await fetch(`${group.adminUrl}/v1/replicas`)).json()) as {
          replicas: Array<{ live: boolean; revision: number }>;
        };
        expect(body.replicas).toHaveLength(2);
        for (const r of body.replicas) expect(r).toMatchObject({ live: true, revision: 1 });
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    // A change through the single replica, waited for on every replica: the group answers for
    // its workers' lowest revision.
    const res = await fetch(`${single.adminUrl}/v1/switch?wait=all&timeout=10s`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'canary' }),
    });
    expect(res.status).toBe(200);
    const load = startLoad({ origin: group.proxyUrl, clients: 6, maxRequestsPerClient: 5 });
    expect((await load.finished).byPool).toEqual({ canary: 30 });
    // A command written straight into Redis is applied by the group, by both workers.
    await redis.cli([
      'XADD',
      'switchyard:{default}:commands',
      '*',
      'cmd',
      '{"op":"switch","to":"blue"}',
    ]);
    await eventually(
      async () => {
        const state = (await (await fetch(`${group.adminUrl}/v1/state`)).json()) as {
          appliedRevision: number;
        };
        expect(state.appliedRevision).toBe(3);
      },
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    const after = startLoad({ origin: group.proxyUrl, clients: 6, maxRequestsPerClient: 5 });
    expect((await after.finished).byPool).toEqual({ blue: 30 });
    const applied = group.logs.filter((l) => l.msg === 'table applied' && l.revision === 3);
    expect(applied.map((l) => l.worker ?? 'primary').sort()).toEqual([1, 2, 'primary']);
  });

  test('SIGKILL of a worker under load: only requests on it fail, the group keeps serving, the worker comes back', async () => {
    const proc = await startGroup();
    const clients = 6;
    const load = startLoad({ origin: proc.proxyUrl, clients });
    await eventually(
      async () => {
        const [w1, w2] = await perWorker(proc.adminUrl);
        expect(w1).toBeGreaterThan(20);
        expect(w2).toBeGreaterThan(20);
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    const victim = workerPids(proc).get(1) as number;
    process.kill(victim, 'SIGKILL');
    const failedAtKill = load.result.failed;
    const okAtKill = load.result.ok;
    // Readiness holds: the other worker serves.
    for (let i = 0; i < 5; i++) {
      expect((await fetch(`${proc.adminUrl}/readyz`)).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await eventually(
      async () => {
        expect(workerPids(proc).get(1)).not.toBe(victim);
        expect(await readMetric(proc.adminUrl, 'switchyard_workers_serving')).toBe(2);
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    const result = await load.stop();
    console.log(
      `worker SIGKILL under load: ${result.ok} ok (${okAtKill} before), ${result.failed} failed (${failedAtKill} before)`,
    );
    expect(failedAtKill).toBe(0);
    // At most the one request each client had on the killed worker's connections.
    expect(result.failed).toBeLessThanOrEqual(clients);
    for (const f of result.failures) expect(f).not.toMatch(/: [2-5]\d\d /);
    expect(result.ok).toBeGreaterThan(okAtKill + 50);
    expect(await readMetric(proc.adminUrl, 'switchyard_worker_restarts_total')).toBe(1);
    const died = proc.logs.find((l) => l.msg === 'worker died');
    expect(died).toMatchObject({ worker: 1, pid: victim, signal: 'SIGKILL', level: 50 });
  });

  test('SIGTERM under keep-alive load behind HAProxy loses nothing; primary and workers exit 0', async () => {
    const colours = await startColours(closers);
    const replicas = await spawnReplicas(
      2,
      [
        '--workers',
        '2',
        '--pool',
        `blue=${COLOUR_VERSIONS.blue}@${colours.blue.url}`,
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
      clients: 6,
      requests: [
        { method: 'GET', path: '/' },
        { method: 'POST', path: '/echo', body: '{"order":1}' },
      ],
    });
    await eventually(
      async () => {
        const [a1, a2] = await perWorker(r1.adminUrl);
        expect(a1).toBeGreaterThan(10);
        expect(a2).toBeGreaterThan(10);
        expect(await readMetric(r2.adminUrl, 'switchyard_requests_total')).toBeGreaterThan(20);
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    const okBefore = load.result.ok;
    const pids = [...workerPids(r1).values()];
    const signalledAt = performance.now();
    r1.child.kill('SIGTERM');
    const { code } = await r1.exited;
    const shutdownMs = performance.now() - signalledAt;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const result = await load.stop();
    console.log(
      `HAProxy, SIGTERM to a 2-worker replica: ${result.ok} ok (${okBefore} before), ${result.failed} failed; exited ${code} after ${Math.round(shutdownMs)} ms`,
    );
    expect(result.failures).toEqual([]);
    expect(code).toBe(0);
    expect(result.ok).toBeGreaterThan(okBefore);
    // The workers are gone too.
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
    const closed = r1.logs.filter((l) => l.msg === 'proxy closed' && l.worker !== undefined);
    expect(closed.map((l) => l.worker).sort()).toEqual([1, 2]);
  });
});
