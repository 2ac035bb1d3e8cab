/**
 * Redis failures (issue 4): a paused server (SIGSTOP), a stopped one, a restart without
 * persistence, hand-written invalid state, and booting from the state file. Each test owns its
 * redis-server, since it breaks it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitForReplicas } from '../../src/admin/wait-for-replicas.js';
import { readStateFile } from '../../src/control/state-file.js';
import type { CommandMeta } from '../../src/table/types.js';
import { eventually } from '../helpers/eventually.js';
import { redisCli, startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { codeOf, SEED_POOLS } from './control-store-contract.js';
import { readMetric } from '../helpers/metrics.js';
import { startReplica, type TestReplica } from './redis-world.js';

const ADMIN: CommandMeta = { actor: 'admin:test', source: 'admin' };
const opened: Array<{ close(): Promise<unknown> }> = [];

afterEach(async () => {
  // Replicas first, then servers (reverse order of creation).
  for (const o of opened.splice(0).reverse()) await o.close();
});

async function server(): Promise<RedisServerHandle> {
  const redis = await startRedisServer();
  opened.push(redis);
  return redis;
}

async function replicas(
  redis: RedisServerHandle,
  ids: string[],
  ns = 'outage',
): Promise<TestReplica[]> {
  const out: TestReplica[] = [];
  for (const id of ids) {
    const r = await startReplica(redis.url, ns, id, { commandTimeoutMs: 1000 });
    opened.push(r);
    out.push(r);
  }
  return out;
}

async function converged(list: TestReplica[], revision: number, timeoutMs = 5000): Promise<void> {
  await eventually(
    () => {
      for (const r of list) expect(r.feed.appliedRevision()).toBe(revision);
    },
    { timeoutMs },
  );
}

describe('redis outages', () => {
  it('SIGSTOP: replicas keep the table, writes fail fast with 503, everything resyncs after SIGCONT', async () => {
    const redis = await server();
    const [a, b] = await replicas(redis, ['a', 'b']);
    await a!.store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
    await a!.store.apply({ op: 'canary', percent: 5 }, ADMIN);
    await converged([a!, b!], 2);

    redis.pause();
    let resumed = false;
    try {
      const started = performance.now();
      const code = await codeOf(a!.store.apply({ op: 'switch', to: 'green' }, ADMIN));
      const elapsedMs = performance.now() - started;
      console.log(`write during SIGSTOP rejected with ${code} after ${elapsedMs.toFixed(0)} ms`);
      expect(code).toBe('STORE_UNAVAILABLE');
      expect(elapsedMs).toBeLessThan(2500);
      expect(a!.store.current()?.revision).toBe(2);
      expect(b!.store.current()?.revision).toBe(2);
      await eventually(() => expect(b!.store.status().up).toBe(false), { timeoutMs: 4000 });
      expect(await readMetric(b!.metrics, 'switchyard_control_store_up')).toBe(0);
      expect(
        b!.logs.some(
          (l) => l['msg'] === 'control store unreachable: routing with the last good table',
        ),
      ).toBe(true);
      redis.resume();
      resumed = true;
    } finally {
      if (!resumed) redis.resume();
    }

    await eventually(() => expect(a!.store.status().up).toBe(true), { timeoutMs: 4000 });
    // The write refused during the pause was not replayed.
    expect(
      (await redisCli(redis.port, ['GET', 'switchyard:{outage}:state'])).includes('"revision":2'),
    ).toBe(true);
    const next = await b!.store.apply({ op: 'switch', to: 'green' }, ADMIN);
    expect(next.revision).toBe(3);
    await converged([a!, b!], 3);
  });

  it('redis stopped, then restarted empty: 503 while down, re-seeded from the last good table', async () => {
    const redis = await server();
    const [a, b] = await replicas(redis, ['a', 'b']);
    await a!.store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
    await a!.store.apply({ op: 'canary', percent: 20 }, ADMIN);
    await converged([a!, b!], 2);

    await redis.stop();
    const started = performance.now();
    expect(await codeOf(b!.store.apply({ op: 'switch', to: 'green' }, ADMIN))).toBe(
      'STORE_UNAVAILABLE',
    );
    expect(performance.now() - started).toBeLessThan(1500);
    await eventually(() => expect(a!.store.status().up).toBe(false));
    expect(a!.store.current()?.weights['canary']).toBe(2000);

    await redis.restart();
    await eventually(
      async () => {
        const raw = await redisCli(redis.port, ['GET', 'switchyard:{outage}:state']);
        expect(JSON.parse(raw)).toMatchObject({ revision: 2, weights: { canary: 2000 } });
      },
      { timeoutMs: 8000 },
    );
    // The other replica may have re-seeded before this one's writer reconnected.
    await eventually(() => expect(a!.store.status().up).toBe(true), { timeoutMs: 8000 });
    const history = await a!.store.history(10);
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({
      source: 'seed',
      result: 'applied',
      revision: 2,
      command: { op: 'reseed' },
    });

    const next = await a!.store.apply({ op: 'switch', to: 'green' }, ADMIN);
    expect(next.revision).toBe(3);
    await converged([a!, b!], 3);
    expect(
      await readMetric(a!.metrics, 'switchyard_control_store_reconnects_total'),
    ).toBeGreaterThan(0);
  });

  it('a change that finds redis emptied re-seeds first: the history shows the seed, then it', async () => {
    const redis = await server();
    const [a] = await replicas(redis, ['a']);
    await a!.store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
    await a!.store.apply({ op: 'canary', percent: 20 }, ADMIN);
    await redisCli(redis.port, ['FLUSHALL']);
    // At once, before the read path notices: the write is what finds Redis empty.
    const next = await a!.store.apply({ op: 'switch', to: 'green' }, ADMIN);
    expect(next.revision).toBe(3);
    const history = await a!.store.history(10);
    expect(history.map((e) => [e.revision, e.source, (e.command as { op: string }).op])).toEqual([
      [3, 'admin', 'switch'],
      [2, 'seed', 'reseed'],
    ]);
  });

  it('a hand-written invalid state is ignored and reported once; the last good table stays', async () => {
    const redis = await server();
    const [a, b] = await replicas(redis, ['a', 'b']);
    await a!.store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
    await a!.store.apply({ op: 'canary', percent: 5 }, ADMIN);
    await converged([a!, b!], 2);
    const key = 'switchyard:{outage}:state';
    const invalid = [
      '{"revision":99,"pools":{"blue":{"version":"3f2c9e1","endpoints":["http://127.0.0.1:1"]}},"weights":{"blue":1e309},"updatedAt":"x","updatedBy":"x"}',
      'not json at all',
      '{"revision":100,"pools":{"__proto__":{"version":"3f2c9e1","endpoints":["http://127.0.0.1:1"]}},"weights":{},"updatedAt":"x","updatedBy":"x"}',
      '{"revision":101,"pools":{"blue":{"version":"latest","endpoints":["http://127.0.0.1:1"]}},"weights":{"blue":10000},"updatedAt":"x","updatedBy":"x"}',
    ];
    for (const value of invalid) {
      await redisCli(redis.port, ['SET', key, value]);
      await redisCli(redis.port, ['PUBLISH', 'switchyard:{outage}:events', '999']);
      await eventually(() => {
        for (const r of [a!, b!]) {
          expect(
            r.logs.filter(
              (l) => l['msg'] === 'invalid table in redis ignored: keeping the last good table',
            ),
          ).toHaveLength(invalid.indexOf(value) + 1);
        }
      });
    }
    // A 10 MB value and a key of the wrong type are refused without reading them whole.
    await redisCli(redis.port, [
      'EVAL',
      `redis.call('SET', KEYS[1], string.rep('x', 10485760))`,
      '1',
      key,
    ]);
    await eventually(() => {
      expect(
        b!.logs.filter(
          (l) => l['msg'] === 'invalid table in redis ignored: keeping the last good table',
        ),
      ).toHaveLength(5);
    });
    await redisCli(redis.port, ['DEL', key]);
    await redisCli(redis.port, ['HSET', key, 'revision', '5']);
    await eventually(() => {
      expect(
        b!.logs.filter(
          (l) => l['msg'] === 'invalid table in redis ignored: keeping the last good table',
        ),
      ).toHaveLength(6);
    });
    for (const r of [a!, b!]) {
      expect(r.feed.appliedRevision()).toBe(2);
      expect(r.store.current()?.weights['canary']).toBe(500);
      expect(
        await readMetric(r.metrics, 'switchyard_commands_rejected_total', { source: 'state' }),
      ).toBe(6);
    }
    // The next change builds on the last good table and replaces the garbage.
    const next = await b!.store.apply({ op: 'canary', percent: 10 }, ADMIN);
    expect(next.revision).toBe(3);
    await converged([a!, b!], 3);
  });

  it('a replica registry key of the wrong type is replaced by the next heartbeat; the store stays up', async () => {
    const redis = await server();
    const [a, b] = await replicas(redis, ['a', 'b']);
    await a!.store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
    const key = 'switchyard:{outage}:replicas';
    await eventually(async () => expect(await a!.store.replicas()).toHaveLength(2));
    await redisCli(redis.port, ['SET', key, 'written by hand']);
    // Listing never fails on it (no 503, no "store down"), and the heartbeats rebuild the registry.
    await eventually(async () => {
      expect((await a!.store.replicas()).map((r) => r.id).sort()).toEqual(['a', 'b']);
      expect(await redisCli(redis.port, ['TYPE', key])).toBe('hash');
    });
    expect(a!.store.status().up).toBe(true);
    expect(b!.store.status().up).toBe(true);
    const replaced = [...a!.logs, ...b!.logs].filter(
      (l) => l['level'] === 40 && l['replacedType'] === 'string',
    );
    expect(replaced.length).toBeGreaterThanOrEqual(1);
  });

  it('?wait=all does not take an empty replica registry (flushed) for "every replica applied"', async () => {
    const redis = await server();
    // Heartbeats only on start and on each applied revision: the registry stays empty once deleted.
    const r = await startReplica(redis.url, 'outage', 'r', {
      commandTimeoutMs: 1000,
      heartbeatIntervalMs: 60_000,
    });
    opened.push(r);
    const table = await r.store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
    await eventually(async () => expect(await r.store.replicas()).toHaveLength(1));
    await redisCli(redis.port, ['DEL', 'switchyard:{outage}:replicas']);
    const waited = waitForReplicas(r.store, table.revision, 300, new AbortController().signal);
    await expect(waited).rejects.toMatchObject({
      code: 'REPLICAS_LAGGING',
      details: { replicasUnknown: true },
    });
  });

  it('boots from the state file when redis is unreachable at start, then re-seeds redis from it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'switchyard-state-'));
    opened.push({ close: () => rm(dir, { recursive: true, force: true }) });
    const stateFile = join(dir, 'state.json');
    const redis = await server();
    const first = await startReplica(redis.url, 'boot', 'first', { stateFile });
    await first.store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
    await first.store.apply({ op: 'canary', percent: 30 }, ADMIN);
    await eventually(async () => expect((await readStateFile(stateFile))?.revision).toBe(2));
    await first.close();
    await redis.stop();

    const started = performance.now();
    const booted = await startReplica(redis.url, 'boot', 'booted', {
      stateFile,
      startTimeoutMs: 500,
    });
    opened.push(booted);
    const startMs = performance.now() - started;
    console.log(
      `start with redis unreachable: booted from the state file in ${startMs.toFixed(0)} ms`,
    );
    expect(startMs).toBeLessThan(2000);
    expect(booted.feed.current()).toMatchObject({ revision: 2, weights: { canary: 3000 } });
    expect(booted.store.status().up).toBe(false);
    expect(await codeOf(booted.store.apply({ op: 'switch', to: 'green' }, ADMIN))).toBe(
      'STORE_UNAVAILABLE',
    );

    await redis.restart();
    await eventually(
      async () => {
        const raw = await redisCli(redis.port, ['GET', 'switchyard:{boot}:state']);
        expect(JSON.parse(raw)).toMatchObject({ revision: 2, weights: { canary: 3000 } });
      },
      { timeoutMs: 8000 },
    );
    expect((await booted.store.apply({ op: 'switch', to: 'green' }, ADMIN)).revision).toBe(3);
  });

  it('start with redis unreachable and no state file resolves with no table', async () => {
    const redis = await server();
    await redis.stop();
    const started = performance.now();
    const lonely = await startReplica(redis.url, 'lonely', 'x', { startTimeoutMs: 300 });
    opened.push(lonely);
    expect(performance.now() - started).toBeLessThan(1500);
    expect(lonely.store.current()).toBeNull();
    expect(lonely.store.status().up).toBe(false);
    // Said at warn level with the reason, not only in debug lines.
    expect(lonely.logs).toContainEqual(
      expect.objectContaining({
        level: 40,
        msg: 'control store unreachable at start: retrying in the background',
        lastError: expect.stringContaining('ECONNREFUSED') as string,
      }),
    );
    await redis.restart();
    await eventually(() => expect(lonely.store.status().up).toBe(true), { timeoutMs: 8000 });
    const seeded = await lonely.store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
    expect(seeded.revision).toBe(1);
  });

  it('close() is bounded while redis is paused', async () => {
    const redis = await server();
    const [a] = await replicas(redis, ['a']);
    await a!.store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
    redis.pause();
    try {
      const started = performance.now();
      await a!.close();
      expect(performance.now() - started).toBeLessThan(2500);
    } finally {
      redis.resume();
    }
  });
});
