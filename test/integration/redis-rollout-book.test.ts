/**
 * The rollout book in Redis (SPEC §9 "Many replicas") against a real redis-server: the driver
 * lease, compare-and-set of the current rollout, the capped list of past rollouts, per-replica
 * counts, and keys written by hand that must not crash a replica.
 */
import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../../src/rollout/latency-histogram.js';
import type { RolloutBook, StoredRollout } from '../../src/rollout/rollout-book.js';
import type { RolloutRecord } from '../../src/rollout/rollout-record.js';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { startRedisCluster } from '../helpers/redis-cluster.js';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { startReplica } from './redis-world.js';

const closers = closeAfterEach();

async function books(): Promise<{ redis: RedisServerHandle; one: RolloutBook; two: RolloutBook }> {
  const redis = await startRedisServer();
  closers.push(() => redis.close());
  const a = await startReplica(redis.url, 'book', 'replica-a');
  closers.push(() => a.close());
  const b = await startReplica(redis.url, 'book', 'replica-b');
  closers.push(() => b.close());
  return { redis, one: a.store.rolloutBook(), two: b.store.rolloutBook() };
}

function record(id: string): RolloutRecord {
  return {
    id,
    pool: 'canary',
    baseline: 'blue',
    version: null,
    strategy: 'steps',
    phase: 'progressing',
    step: 0,
    steps: [{ basisPoints: 10_000 }],
    targetWeightBp: 0,
    startedAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    driver: 'replica-a',
    analysis: {} as RolloutRecord['analysis'],
    judgement: null,
    decisions: [],
    webhooks: [],
    drainedAt: null,
  };
}

function stored(id: string): StoredRollout {
  return {
    record: record(id),
    engine: {
      pendingRevision: null,
      stepStartedAtMs: null,
      period: null,
      earlierTargetRequests: 0,
      beforeSwitch: null,
      approved: false,
    },
  };
}

describe('redis rollout book', () => {
  it('one lease holder at a time; another takes it once it expires', async () => {
    const { one, two } = await books();
    expect(await one.lease('replica-a', 600)).toEqual({
      held: true,
      expiresInMs: 600,
      holder: 'replica-a',
    });
    const refused = await two.lease('replica-b', 600);
    expect(refused).toMatchObject({ held: false, holder: 'replica-a' });
    expect(refused.expiresInMs).toBeGreaterThan(0);
    expect(refused.expiresInMs).toBeLessThanOrEqual(600);
    expect((await one.lease('replica-a', 600)).held).toBe(true); // renewal
    await eventually(async () => expect((await two.lease('replica-b', 600)).held).toBe(true), {
      timeoutMs: 5000,
      intervalMs: 50,
    });
    expect((await one.lease('replica-a', 600)).held).toBe(false);
    await two.release('replica-b');
    expect((await one.lease('replica-a', 600)).held).toBe(true);
  });

  it('writes with compare-and-set; archives replaced rollouts, keeping the last 19', async () => {
    const { one, two } = await books();
    const empty = await one.read();
    expect(empty.current).toBeNull();
    expect(await one.write(stored('r-1'), empty.token, null)).toBe(true);
    // A write based on the old token loses.
    expect(await two.write(stored('r-x'), empty.token, null)).toBe(false);
    const seen = await two.read();
    expect(seen.current?.record.id).toBe('r-1');
    let token = seen.token;
    let previous = seen.current!.record;
    for (let i = 2; i <= 25; i += 1) {
      expect(await two.write(stored(`r-${i}`), token, previous)).toBe(true);
      const now = await one.read();
      token = now.token;
      previous = now.current!.record;
    }
    const past = await one.past(50);
    expect(past).toHaveLength(19);
    expect(past[0]!.id).toBe('r-24');
    expect(past.at(-1)!.id).toBe('r-6');
  });

  it("keeps every replica's last counts under an expiry; skips unreadable fields", async () => {
    const { redis, one, two } = await books();
    const latency = new LatencyHistogram();
    latency.observe(12);
    await one.publishCounts('replica-a', new Map([['blue', { requests: 5, errors: 1, latency }]]));
    await two.publishCounts('replica-b', new Map([['blue', { requests: 7, errors: 0, latency }]]));
    await redis.cli(['HSET', 'switchyard:{book}:rollout-counts', 'junk', 'not json']);
    const all = await one.replicaCounts();
    expect([...all.keys()].sort()).toEqual(['replica-a', 'replica-b']);
    expect(all.get('replica-b')!.get('blue')).toMatchObject({ requests: 7, errors: 0 });
    expect(all.get('replica-a')!.get('blue')!.latency.total).toBe(1);
    const ttl = Number(await redis.cli(['PTTL', 'switchyard:{book}:rollout-counts']));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60 * 60 * 1000);
  });

  it('keys of the wrong type or garbage written by hand read as nothing and are replaced', async () => {
    const { redis, one } = await books();
    await redis.cli(['SET', 'switchyard:{book}:rollout', '{"not":"a rollout"']);
    await redis.cli(['HSET', 'switchyard:{book}:rollouts', 'a', 'b']);
    await redis.cli(['LPUSH', 'switchyard:{book}:rollout-lease', 'x']);
    const read = await one.read();
    expect(read.current).toBeNull();
    expect(await one.past(5)).toEqual([]);
    expect((await one.lease('replica-a', 1000)).held).toBe(true);
    expect(await one.write(stored('r-1'), read.token, record('r-0'))).toBe(true);
    expect((await one.read()).current?.record.id).toBe('r-1');
    expect((await one.past(5)).map((r) => r.id)).toEqual(['r-0']);
  });

  it('works in a Redis Cluster: every key and script stays in the namespace slot', async () => {
    const cluster = await startRedisCluster({ masters: 3 });
    closers.push(() => cluster.close());
    const a = await startReplica(cluster.url, 'book', 'replica-a');
    closers.push(() => a.close());
    const book = a.store.rolloutBook();
    expect((await book.lease('replica-a', 1000)).held).toBe(true);
    const empty = await book.read();
    expect(await book.write(stored('r-1'), empty.token, null)).toBe(true);
    const one = await book.read();
    expect(await book.write(stored('r-2'), one.token, one.current!.record)).toBe(true);
    expect((await book.read()).current?.record.id).toBe('r-2');
    expect((await book.past(5)).map((r) => r.id)).toEqual(['r-1']);
    await book.publishCounts('replica-a', new Map());
    expect([...(await book.replicaCounts()).keys()]).toEqual(['replica-a']);
  });
});
