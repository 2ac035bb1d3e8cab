/**
 * The ControlStore contract, written once and run against every implementation (memory, Redis):
 * apply, compare-and-set, history (applied and rejected), rollback, seed, events, lifecycle.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { fail, isSwitchyardError } from '../../src/errors.js';
import type { ControlStore, SeedPools } from '../../src/control/control-store.js';
import { MemoryControlStore } from '../../src/control/memory-store.js';
import { RedisControlStore } from '../../src/control/redis-store.js';
import { createLogger } from '../../src/observability/logger.js';
import type { CommandMeta, RoutingTable } from '../../src/table/types.js';

/** A started store on a fresh, empty backend; close() releases it and its backend. */
export interface ContractWorld {
  readonly store: ControlStore;
  close(): Promise<void>;
}

/** Builds a fresh world per test. */
export type ContractFactory = () => Promise<ContractWorld>;

/** blue, green, canary; blue gets 100 % when seeded. */
export const SEED_POOLS: SeedPools = [
  { name: 'blue', version: '3f2c9e1', endpoints: ['http://127.0.0.1:3001'] },
  { name: 'green', version: '9ab14d0', endpoints: ['http://127.0.0.1:3002'] },
  { name: 'canary', version: '9ab14d0', endpoints: ['http://127.0.0.1:3003'] },
];

const ADMIN: CommandMeta = { actor: 'admin:test', source: 'admin' };

/** Resolves with the error code `promise` rejects with (fails if it resolves). */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (isSwitchyardError(err)) return err.code;
    throw err;
  }
  throw new Error('expected a rejection');
}

/** A factory of MemoryControlStores that follow their own revisions (one replica). */
export const memoryStoreFactory: ContractFactory = async () => {
  const store: MemoryControlStore = new MemoryControlStore({
    appliedRevision: () => store.current()?.revision ?? 0,
  });
  await store.start();
  return { store, close: () => store.close() };
};

/**
 * A factory of RedisControlStores on the server `url()` names (read when a test opens a store,
 * after beforeAll started it), each on a namespace of its own.
 */
export function redisStoreFactory(url: () => string): ContractFactory {
  let namespaces = 0;
  return async () => {
    namespaces += 1;
    const store: RedisControlStore = new RedisControlStore({
      url: url(),
      namespace: `contract-${namespaces}`,
      replicaId: `replica-${namespaces}`,
      appliedRevision: () => store.current()?.revision ?? 0,
      logger: createLogger({ level: 'silent' }),
    });
    await store.start();
    return { store, close: () => store.close() };
  };
}

/** Registers the contract tests for one implementation. */
export function controlStoreContract(name: string, factory: ContractFactory): void {
  describe(`ControlStore contract: ${name}`, () => {
    const worlds: ContractWorld[] = [];
    afterEach(async () => {
      await Promise.all(worlds.splice(0).map((w) => w.close()));
    });
    const open = async (): Promise<ControlStore> => {
      const world = await factory();
      worlds.push(world);
      return world.store;
    };

    it('starts empty and reports itself up', async () => {
      const store = await open();
      expect(store.current()).toBeNull();
      expect(await store.history(10)).toEqual([]);
      expect(store.status()).toMatchObject({ up: true, newestRevision: 0 });
    });

    it('start() twice throws', async () => {
      const store = await open();
      await expect(store.start()).rejects.toThrow();
    });

    it('seed writes revision 1 once and never overwrites', async () => {
      const store = await open();
      const seeded = await store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
      expect(seeded.revision).toBe(1);
      expect(seeded.weights).toEqual({ blue: 10000, green: 0, canary: 0 });
      expect(store.current()).toEqual(seeded);
      const again = await store.seed([SEED_POOLS[1]!], { actor: 'config', source: 'seed' });
      expect(again).toEqual(seeded);
      const history = await store.history(10);
      expect(history).toHaveLength(1);
      expect(history[0]).toMatchObject({
        revision: 1,
        previousRevision: 0,
        source: 'seed',
        result: 'applied',
        actor: 'config',
      });
    });

    it('apply bumps the revision by 1, emits table, and records history', async () => {
      const store = await open();
      await store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
      const seen: RoutingTable[] = [];
      store.on('table', (t) => seen.push(t));
      const next = await store.apply({ op: 'canary', percent: 10 }, ADMIN);
      expect(next.revision).toBe(2);
      expect(next.weights).toEqual({ blue: 9000, green: 0, canary: 1000 });
      expect(next.updatedBy).toBe('admin:test');
      expect(store.current()).toEqual(next);
      expect(seen.map((t) => t.revision)).toEqual([2]);
      expect(store.status().newestRevision).toBe(2);
      const [entry] = await store.history(1);
      expect(entry).toMatchObject({
        revision: 2,
        previousRevision: 1,
        actor: 'admin:test',
        source: 'admin',
        result: 'applied',
        command: { op: 'canary', basisPoints: 1000, pool: 'canary' },
      });
      expect(entry?.before?.revision).toBe(1);
    });

    it('an actor in the command wins over the caller, prefixed with the source', async () => {
      const store = await open();
      await store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
      const next = await store.apply({ op: 'switch', to: 'green', actor: 'alice' }, ADMIN);
      expect(next.updatedBy).toBe('admin:alice');
      expect((await store.history(1))[0]).toMatchObject({ actor: 'admin:alice' });
    });

    it('rejects invalid input, records it, and changes nothing', async () => {
      const store = await open();
      const seeded = await store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
      const bad = { op: 'weights', weights: { blue: 5000, green: 4000 } };
      expect(await codeOf(store.apply(bad, ADMIN))).toBe('VALIDATION_FAILED');
      expect(await codeOf(store.apply({ op: 'nope' }, ADMIN))).toBe('VALIDATION_FAILED');
      expect(await codeOf(store.apply('garbage', ADMIN))).toBe('VALIDATION_FAILED');
      expect(await codeOf(store.apply({ op: 'switch', to: 'purple' }, ADMIN))).toBe('UNKNOWN_POOL');
      expect(
        await codeOf(
          store.apply(
            { op: 'set-pool', pool: 'green', version: 'latest', endpoints: ['http://127.0.0.1:1'] },
            ADMIN,
          ),
        ),
      ).toBe('MUTABLE_VERSION');
      expect(store.current()).toEqual(seeded);
      const history = await store.history(10);
      expect(history).toHaveLength(6);
      expect(history[0]).toMatchObject({
        result: 'rejected',
        revision: null,
        previousRevision: 1,
        reason: { code: 'MUTABLE_VERSION' },
      });
      expect(history[4]).toMatchObject({ result: 'rejected', command: bad });
      expect(history[4]?.reason?.message).toMatch(/weights/);
    });

    it('recordRejection writes a refusal made before apply() to history, changing nothing', async () => {
      const store = await open();
      const seeded = await store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
      const command = { op: 'switch', to: 'green' };
      await store.recordRejection(
        command,
        { actor: 'cli', source: 'cli', now: '2026-12-01T00:00:00.000Z' },
        fail('POOL_UNHEALTHY', 'to: pool "green" has no healthy endpoint (0 of 1)'),
      );
      expect(store.current()).toEqual(seeded);
      const [entry] = await store.history(1);
      expect(entry).toMatchObject({
        result: 'rejected',
        revision: null,
        previousRevision: 1,
        actor: 'cli',
        source: 'cli',
        time: '2026-12-01T00:00:00.000Z',
        command,
        reason: { code: 'POOL_UNHEALTHY', message: expect.stringContaining('green') as string },
      });
    });

    it('guards: a live pool cannot change version', async () => {
      const store = await open();
      await store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
      const input = {
        op: 'set-pool',
        pool: 'blue',
        version: 'abcdef1',
        endpoints: ['http://127.0.0.1:3001'],
      };
      expect(await codeOf(store.apply(input, ADMIN))).toBe('POOL_LIVE');
      expect(store.current()?.revision).toBe(1);
      const idle = {
        op: 'set-pool',
        pool: 'green',
        version: 'abcdef1',
        endpoints: ['http://127.0.0.1:4001'],
      };
      expect((await store.apply(idle, ADMIN)).pools['green']?.version).toBe('abcdef1');
    });

    it('expectRevision: stale is REVISION_CONFLICT (recorded), current is applied', async () => {
      const store = await open();
      await store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
      expect(
        await codeOf(store.apply({ op: 'switch', to: 'green' }, { ...ADMIN, expectRevision: 7 })),
      ).toBe('REVISION_CONFLICT');
      expect(
        await codeOf(store.apply({ op: 'switch', to: 'green', expectRevision: 0 }, ADMIN)),
      ).toBe('REVISION_CONFLICT');
      expect((await store.history(1))[0]).toMatchObject({
        result: 'rejected',
        reason: { code: 'REVISION_CONFLICT' },
      });
      const next = await store.apply({ op: 'switch', to: 'green', expectRevision: 1 }, ADMIN);
      expect(next.revision).toBe(2);
      expect(next.weights['green']).toBe(10000);
    });

    it('rollback walks back through history and never forward', async () => {
      const store = await open();
      const r1 = await store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
      const r2 = await store.apply({ op: 'canary', percent: 5 }, ADMIN);
      await store.apply({ op: 'canary', percent: 50 }, ADMIN);
      const r4 = await store.apply({ op: 'rollback' }, ADMIN);
      expect(r4.revision).toBe(4);
      expect(r4.weights).toEqual(r2.weights);
      expect((await store.history(1))[0]).toMatchObject({ revision: 4, undoes: 3 });
      const r5 = await store.apply({ op: 'rollback' }, ADMIN);
      expect(r5.revision).toBe(5);
      expect(r5.weights).toEqual(r1.weights);
      expect(await codeOf(store.apply({ op: 'rollback' }, ADMIN))).toBe('NOTHING_TO_UNDO');
      expect(store.current()?.revision).toBe(5);
    });

    it('history is newest first and honours the limit', async () => {
      const store = await open();
      await store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
      for (const percent of [1, 2, 3, 4]) await store.apply({ op: 'canary', percent }, ADMIN);
      const history = await store.history(3);
      expect(history.map((e) => e.revision)).toEqual([5, 4, 3]);
      expect(new Set(history.map((e) => e.id)).size).toBe(3);
      expect(await store.history(0)).toEqual([]);
    });

    it('stamps meta.now on the table and the entry', async () => {
      const store = await open();
      await store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
      const now = '2026-11-26T12:00:00.000Z';
      const next = await store.apply({ op: 'canary', basisPoints: 250 }, { ...ADMIN, now });
      expect(next.updatedAt).toBe(now);
      expect((await store.history(1))[0]?.time).toBe(now);
    });

    it('lists this replica in replicas()', async () => {
      const store = await open();
      await store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
      const replicas = await store.replicas();
      expect(replicas.length).toBeGreaterThanOrEqual(1);
      expect(replicas[0]).toMatchObject({ live: true });
      expect(Number.isNaN(Date.parse(replicas[0]!.heartbeatAt))).toBe(false);
    });

    it('close is idempotent and later changes fail with CLOSED', async () => {
      const store = await open();
      await store.seed(SEED_POOLS, { actor: 'config', source: 'seed' });
      await Promise.all([store.close(), store.close()]);
      await store.close();
      expect(await codeOf(store.apply({ op: 'switch', to: 'green' }, ADMIN))).toBe('CLOSED');
      expect(store.current()?.revision).toBe(1);
    });
  });
}
