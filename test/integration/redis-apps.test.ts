/**
 * Whole apps following one Redis (issue 4 acceptance): a change made on one replica with
 * `?wait=all` answers once every replica applied it and every proxy routes by it; a stopped
 * replica (SIGSTOP: heartbeat still fresh, nothing applied) makes `?wait=all` time out with 504
 * REPLICAS_LAGGING naming it.
 */
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { spawnProxy } from '../helpers/proxy-process.js';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { startReference } from '../helpers/reference.js';
import { startApp, type TestApp } from '../helpers/start-app.js';
import { closeAfterEach } from '../helpers/closers.js';

const closers = closeAfterEach();

interface Answer {
  revision?: number;
  error?: { code: string; message: string; lagging?: string[]; replicasUnknown?: boolean };
}

async function post(url: string, body: unknown): Promise<{ status: number; body: Answer }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Answer };
}

async function replicaIds(adminUrl: string): Promise<Array<{ id: string; live: boolean }>> {
  const body = (await (await fetch(`${adminUrl}/v1/replicas`)).json()) as {
    replicas: Array<{ id: string; live: boolean }>;
  };
  return body.replicas;
}

async function world(): Promise<{
  apps: TestApp[];
  redis: RedisServerHandle;
  redisUrl: string;
  pools: string[];
}> {
  const redis = await startRedisServer();
  closers.push(() => redis.close());
  const blue = await startReference({ pool: 'blue', version: 'b1b1b1b' });
  const green = await startReference({ pool: 'green', version: 'a2a2a2a' });
  closers.push(
    () => blue.close(),
    () => green.close(),
  );
  const pools = [`blue=b1b1b1b@${blue.url}`, `green=a2a2a2a@${green.url}`];
  const apps: TestApp[] = [];
  for (let i = 0; i < 3; i += 1) {
    const app = await startApp(
      {
        redis: redis.url,
        namespace: 'apps',
        pools: [
          { name: 'blue', version: 'b1b1b1b', endpoints: [blue.url] },
          { name: 'green', version: 'a2a2a2a', endpoints: [green.url] },
        ],
      },
      { replicaId: `app-${i}` },
    );
    closers.push(() => app.close());
    apps.push(app);
  }
  return { apps, redis, redisUrl: redis.url, pools };
}

/**
 * Starts one more replica as a real process, waits until the others list it as live, then
 * SIGSTOPs it: its heartbeat stays fresh for a while but it applies nothing. Resolves with its id.
 */
async function stoppedReplica(a: TestApp, redisUrl: string, pools: string[]): Promise<string> {
  const proc = await spawnProxy([
    '--redis',
    redisUrl,
    '--namespace',
    'apps',
    ...pools.flatMap((p) => ['--pool', p]),
  ]);
  closers.push(() => proc.kill()); // SIGKILL ends a stopped process too
  const known = new Set(['app-0', 'app-1', 'app-2']);
  const stranger = await eventually(
    async () => {
      const other = (await replicaIds(a.adminUrl)).find((r) => !known.has(r.id) && r.live);
      expect(other).toBeDefined();
      return other!.id;
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  );
  proc.child.kill('SIGSTOP');
  return stranger;
}

describe('replicas behind one Redis', () => {
  it('?wait=all answers after every replica applied the change, and every proxy routes by it', async () => {
    const { apps } = await world();
    const [a, b, c] = apps as [TestApp, TestApp, TestApp];
    const res = await post(`${b.adminUrl}/v1/switch?wait=all&timeout=5s`, { to: 'green' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const revision = res.body.revision ?? Infinity;
    for (const app of [a, b, c]) {
      // Applied before the answer: no polling needed.
      expect(app.app.feed.appliedRevision()).toBeGreaterThanOrEqual(revision);
      const r = await fetch(`${app.proxyUrl}/`);
      expect(r.headers.get('x-switchyard-upstream')).toBe('green@a2a2a2a');
      await r.arrayBuffer();
    }
    const replicas = await replicaIds(a.adminUrl);
    expect(replicas.map((r) => r.id).sort()).toEqual(['app-0', 'app-1', 'app-2']);
  });

  it('?wait=all times out with 504 REPLICAS_LAGGING naming a stopped replica', async () => {
    const { apps, redisUrl, pools } = await world();
    const a = apps[0] as TestApp;
    const stranger = await stoppedReplica(a, redisUrl, pools);
    const started = Date.now();
    const res = await post(`${a.adminUrl}/v1/canary?wait=all&timeout=1s`, {
      percent: 10,
      pool: 'green',
    });
    const tookMs = Date.now() - started;
    expect(res.status).toBe(504);
    expect(res.body.error?.code).toBe('REPLICAS_LAGGING');
    expect(res.body.error?.lagging).toEqual([stranger]);
    expect(tookMs).toBeGreaterThanOrEqual(900);
    // The change itself is stored and applied by the running replicas.
    for (const app of apps) {
      await eventually(() => expect(app.app.feed.current()?.weights.green).toBe(1000));
    }
  });

  it('?wait=all when Redis stops answering after the change was stored: 504, never 503', async () => {
    // A 503 says "refused, nothing applied": an operator would retry and apply the change twice.
    const { apps, redis, redisUrl, pools } = await world();
    const a = apps[0] as TestApp;
    await stoppedReplica(a, redisUrl, pools);
    const answer = post(`${a.adminUrl}/v1/canary?wait=all&timeout=2s`, {
      percent: 20,
      pool: 'green',
    });
    // Stored and applied by the running replicas, then Redis freezes while the wait polls.
    await eventually(() => expect(a.app.feed.current()?.weights.green).toBe(2000));
    redis.pause();
    const pausedAt = Date.now();
    let res;
    try {
      res = await answer;
    } finally {
      redis.resume();
    }
    // The deadline holds even though each replica-list read now hangs until its command timeout.
    expect(Date.now() - pausedAt).toBeLessThan(2_900);
    expect(res.status, JSON.stringify(res.body)).toBe(504);
    expect(res.body.error?.code).toBe('REPLICAS_LAGGING');
    expect(res.body.error?.message).toMatch(/was stored/);
    expect(res.body.error?.replicasUnknown).toBe(true);
  });
});
