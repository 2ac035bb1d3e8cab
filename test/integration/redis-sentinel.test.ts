/**
 * Redis Sentinel failover with real processes: 1 master, 1 replica, 1 sentinel (quorum 1).
 * Replicas connect through `redis+sentinel://`; after the master dies, Sentinel promotes the
 * replica and both proxy replicas follow it and accept changes again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CommandMeta } from '../../src/table/types.js';
import { eventually } from '../helpers/eventually.js';
import { redisCli, startRedisServer, startSentinel } from '../helpers/redis-server.js';
import { SEED_POOLS } from './control-store-contract.js';
import { startReplica, type TestReplica } from './redis-world.js';

const ADMIN: CommandMeta = { actor: 'admin:test', source: 'admin' };
const opened: Array<{ close(): Promise<unknown> }> = [];

afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});

describe('redis sentinel', () => {
  it('follows a failover to the promoted replica', { timeout: 60_000 }, async () => {
    const master = await startRedisServer();
    opened.push(master);
    const replica = await startRedisServer({
      args: ['--replicaof', '127.0.0.1', String(master.port)],
    });
    opened.push(replica);
    await eventually(
      async () =>
        expect(await redisCli(replica.port, ['INFO', 'replication'])).toMatch(
          /master_link_status:up/,
        ),
      { timeoutMs: 10_000 },
    );
    const sentinel = await startSentinel({ masterPort: master.port, downAfterMs: 1000 });
    opened.push(sentinel);
    await eventually(
      async () =>
        expect(await redisCli(sentinel.port, ['SENTINEL', 'replicas', 'mymaster'])).toContain(
          String(replica.port),
        ),
      { timeoutMs: 15_000, intervalMs: 200 },
    );

    const url = `redis+sentinel://127.0.0.1:${sentinel.port}/mymaster`;
    const replicas: TestReplica[] = [];
    for (const id of ['s1', 's2']) {
      const r = await startReplica(url, 'sentinel', id, { commandTimeoutMs: 1000 });
      opened.push(r);
      replicas.push(r);
    }
    await replicas[0]!.store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
    await replicas[0]!.store.apply({ op: 'canary', percent: 10 }, ADMIN);
    // Make sure the replica has the write before the master dies (async replication).
    expect(Number(await redisCli(master.port, ['WAIT', '1', '2000']))).toBe(1);

    const killedAt = performance.now();
    await master.kill('SIGKILL');
    const table = await eventually(
      async () => replicas[1]!.store.apply({ op: 'switch', to: 'green' }, ADMIN),
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    console.log(
      `sentinel failover: first accepted change ${(performance.now() - killedAt).toFixed(0)} ms after the master was killed`,
    );
    expect(table.revision).toBe(3);
    await eventually(() => {
      for (const r of replicas) expect(r.feed.appliedRevision()).toBe(3);
    });
    const promoted = JSON.parse(
      await redisCli(replica.port, ['GET', 'switchyard:{sentinel}:state']),
    ) as {
      revision: number;
    };
    expect(promoted.revision).toBe(3);
  });
});
