/**
 * The audit side of the ControlStore contract, run against the memory and the Redis store:
 * bounded, serialisable, redacted history entries (issue 10 items 4 and 5), no-op changes that
 * make no revision (issue 11), and the actor a caller names. Plus the same through commands
 * written into Redis by hand.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fail } from '../../src/errors.js';
import type { ControlStore } from '../../src/control/control-store.js';
import { RedisControlStore } from '../../src/control/redis-store.js';
import { createLogger } from '../../src/observability/logger.js';
import type { CommandMeta, HistoryEntry } from '../../src/table/types.js';
import { eventually } from '../helpers/eventually.js';
import { redisCli, startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import {
  codeOf,
  redisStoreFactory,
  SEED_POOLS,
  type ContractFactory,
  type ContractWorld,
  memoryStoreFactory,
} from './control-store-contract.js';

const ADMIN: CommandMeta = { actor: 'admin', source: 'admin' };
const SEED: CommandMeta = { actor: 'config', source: 'seed' };
/** A summary is a few KiB: 4 KiB of budget plus markers and the last value that crossed it. */
const MAX_SUMMARY_JSON = 6 * 1024;
const SECRET = 's3cret-pw';

/** `depth` arrays inside each other (JSON.stringify of it overflows the stack). */
function nested(depth: number): unknown {
  return JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`) as unknown;
}

function auditContract(name: string, factory: ContractFactory): void {
  describe(`ControlStore audit contract: ${name}`, () => {
    const worlds: ContractWorld[] = [];
    afterEach(async () => {
      await Promise.all(worlds.splice(0).map((w) => w.close()));
    });
    const open = async (): Promise<ControlStore> => {
      const world = await factory();
      worlds.push(world);
      await world.store.seed(SEED_POOLS, SEED);
      return world.store;
    };

    it('issue 10 item 4: a 100k-deep rejected command leaves history serialisable', async () => {
      const store = await open();
      const input = { op: 'weights', weights: nested(100_000) };
      expect(await codeOf(store.apply(input, ADMIN))).toBe('VALIDATION_FAILED');
      const history = await store.history(10);
      const json = JSON.stringify(history);
      expect(history[0]).toMatchObject({ result: 'rejected', command: { op: 'weights' } });
      expect(JSON.stringify(history[0]?.command).length).toBeLessThan(MAX_SUMMARY_JSON);
      expect(json.length).toBeLessThan(4 * MAX_SUMMARY_JSON);
    });

    it('issue 10 item 4: a 1 MiB rejected command is kept as a summary of a few KiB', async () => {
      const store = await open();
      const endpoints = Array.from({ length: 40_000 }, (_, i) => `http://127.0.0.1:${i}`);
      const input = { op: 'set-pool', pool: 'green', version: 'abcdef1', endpoints };
      expect(JSON.stringify(input).length).toBeGreaterThan(900_000);
      expect(await codeOf(store.apply(input, ADMIN))).toBe('VALIDATION_FAILED');
      const [entry] = await store.history(1);
      const command = entry?.command as { op: string; pool: string; endpoints: unknown[] };
      expect(command).toMatchObject({ op: 'set-pool', pool: 'green', version: 'abcdef1' });
      expect(command.endpoints.slice(0, 2)).toEqual(['http://127.0.0.1:0', 'http://127.0.0.1:1']);
      expect(command.endpoints.at(-1)).toMatch(/^… \d+ more$/);
      expect(JSON.stringify(command).length).toBeLessThan(MAX_SUMMARY_JSON);
      // Long strings are cut, small ordinary commands are kept as they are.
      await codeOf(store.apply({ op: 'switch', to: 'x'.repeat(100_000) }, ADMIN));
      const [long] = await store.history(1);
      expect((long?.command as { to: string }).to).toMatch(/^x{256}…$/);
      const small = { op: 'weights', weights: { blue: 5000, green: 4000 } };
      await codeOf(store.apply(small, ADMIN));
      expect((await store.history(1))[0]?.command).toEqual(small);
    });

    it('issue 10 item 5: secrets never reach history, applied or rejected', async () => {
      const store = await open();
      const withUserinfo = {
        op: 'set-pool',
        pool: 'green',
        version: '9ab14d0',
        endpoints: [`http://ops:${SECRET}@127.0.0.1:3002`],
      };
      expect(await codeOf(store.apply(withUserinfo, ADMIN))).toBe('VALIDATION_FAILED');
      // An unparsable URL is echoed in the message: without its password.
      const unparsable = { ...withUserinfo, endpoints: [`http://ops:${SECRET}@127.0.0.1:99999`] };
      expect(await codeOf(store.apply(unparsable, ADMIN))).toBe('VALIDATION_FAILED');
      const secretFields = {
        op: 'switch',
        to: 'green',
        token: SECRET,
        headers: { Authorization: `Bearer ${SECRET}`, 'x-note': `Basic ${SECRET}` },
        password: SECRET,
        note: `redis://:${SECRET}@10.0.0.1:6379/0`,
        cut: `${'y'.repeat(240)} http://admin:${SECRET}@host`,
      };
      expect(await codeOf(store.apply(secretFields, ADMIN))).toBe('VALIDATION_FAILED');
      await store.recordRejection(
        { op: 'switch', to: 'green', apiKey: SECRET },
        { actor: 'admin', source: 'admin' },
        fail('POOL_UNHEALTHY', `to: see http://u:${SECRET}@127.0.0.1:1`),
      );
      await store.apply({ op: 'canary', percent: 5 }, ADMIN);
      const history = await store.history(10);
      expect(history.filter((e) => e.result === 'rejected')).toHaveLength(4);
      const json = JSON.stringify(history);
      expect(json).not.toContain(SECRET);
      expect(json).not.toContain(SECRET.slice(0, 4));
      const rejected = history.filter((e) => e.result === 'rejected').reverse();
      expect(rejected[0]?.command).toMatchObject({ endpoints: ['http://***@127.0.0.1:3002'] });
      expect(rejected[1]?.reason?.message).toContain('http://***@127.0.0.1:99999');
      expect(rejected[2]?.command).toMatchObject({
        token: '[redacted]',
        password: '[redacted]',
        headers: { Authorization: '[redacted]', 'x-note': 'Basic ***' },
        note: 'redis://***@10.0.0.1:6379/0',
        // Cut inside the authority: the rest of it goes too.
        cut: `${'y'.repeat(240)} http://…`,
      });
      expect(rejected[3]?.command).toMatchObject({ apiKey: '[redacted]' });
      expect(rejected[3]?.reason?.message).toBe('to: see http://***@127.0.0.1:1');
    });

    it('issue 11: a change that changes nothing makes no revision and no history entry', async () => {
      const store = await open();
      const r2 = await store.change({ op: 'canary', percent: 5 }, ADMIN);
      expect(r2).toMatchObject({ changed: true, table: { revision: 2 } });
      const noops: unknown[] = [
        { op: 'canary', percent: 5 },
        { op: 'canary', basisPoints: 500, pool: 'canary' },
        { op: 'weights', weights: { blue: 9500, canary: 500 } },
        { op: 'weights', percent: { blue: 95, green: 0, canary: 5 } },
        { ...SEED_POOLS[1], op: 'set-pool', pool: 'green', name: undefined },
      ].map((c) => JSON.parse(JSON.stringify(c)) as unknown);
      for (const command of noops) {
        const result = await store.change(command, ADMIN);
        expect(result.changed, JSON.stringify(command)).toBe(false);
        expect(result.table).toEqual(r2.table);
      }
      // apply() answers the current table too.
      expect(await store.apply({ op: 'canary', percent: 5 }, ADMIN)).toEqual(r2.table);
      expect(store.current()).toEqual(r2.table);
      expect(store.status().newestRevision).toBe(2);
      const history = await store.history(50);
      expect(history.map((e) => e.revision)).toEqual([2, 1]);
      // A stale expectRevision is still a conflict, even for a no-op.
      expect(
        await codeOf(store.change({ op: 'canary', percent: 5, expectRevision: 1 }, ADMIN)),
      ).toBe('REVISION_CONFLICT');
      // Different endpoints for the same version are a change.
      const scaled = await store.change(
        {
          op: 'set-pool',
          pool: 'green',
          version: '9ab14d0',
          endpoints: ['http://127.0.0.1:3002', 'http://127.0.0.1:3012'],
        },
        ADMIN,
      );
      expect(scaled).toMatchObject({ changed: true, table: { revision: 3 } });
      const switched = await store.change({ op: 'switch', to: 'blue' }, ADMIN);
      expect(switched).toMatchObject({ changed: true, table: { revision: 4 } });
      expect(await store.change({ op: 'switch', to: 'blue' }, ADMIN)).toMatchObject({
        changed: false,
        table: { revision: 4 },
      });
    });

    it('issue 11: rollback after a no-op undoes the most recent real change', async () => {
      const store = await open();
      const r1 = store.current();
      await store.apply({ op: 'canary', percent: 5 }, ADMIN);
      const again = await store.change({ op: 'canary', percent: 5 }, ADMIN);
      expect(again.changed).toBe(false);
      const r3 = await store.change({ op: 'rollback' }, ADMIN);
      expect(r3).toMatchObject({ changed: true, table: { revision: 3 } });
      expect(r3.table.weights).toEqual(r1?.weights);
      expect((await store.history(1))[0]).toMatchObject({ revision: 3, undoes: 2 });
      expect(await codeOf(store.apply({ op: 'rollback' }, ADMIN))).toBe('NOTHING_TO_UNDO');
    });

    it('issue 11: a command actor is validated and recorded as <source>:<name>', async () => {
      const store = await open();
      const table = await store.apply({ op: 'canary', percent: 1, actor: 'alice@laptop' }, ADMIN);
      expect(table.updatedBy).toBe('admin:alice@laptop');
      expect((await store.history(1))[0]).toMatchObject({
        actor: 'admin:alice@laptop',
        source: 'admin',
      });
      for (const actor of ['bad\nactor', 'x'.repeat(65), '']) {
        expect(await codeOf(store.apply({ op: 'canary', percent: 2, actor }, ADMIN))).toBe(
          'VALIDATION_FAILED',
        );
        const [entry] = await store.history(1);
        // The refused name is not taken as the actor.
        expect(entry).toMatchObject({ result: 'rejected', actor: 'admin' });
        expect(entry?.reason?.message).toMatch(/^actor: /);
      }
    });
  });
}

auditContract('memory', memoryStoreFactory);

let redis: RedisServerHandle;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.close();
});

auditContract(
  'redis',
  redisStoreFactory(() => redis.url),
);

describe('commands written into Redis by hand', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((c) => c()));
  });
  let namespaces = 0;

  async function world(): Promise<{
    store: RedisControlStore;
    xadd: (cmd: string) => Promise<string>;
    cursor: () => Promise<string>;
  }> {
    namespaces += 1;
    const namespace = `audit-commands-${namespaces}`;
    const store: RedisControlStore = new RedisControlStore({
      url: redis.url,
      namespace,
      replicaId: `replica-${namespaces}`,
      appliedRevision: () => store.current()?.revision ?? 0,
      logger: createLogger({ level: 'silent' }),
      commandBlockMs: 100,
    });
    await store.start();
    closers.push(() => store.close());
    await store.seed(SEED_POOLS, SEED);
    return {
      store,
      xadd: (cmd) =>
        redisCli(redis.port, ['XADD', `switchyard:{${namespace}}:commands`, '*', 'cmd', cmd]),
      cursor: () => redisCli(redis.port, ['GET', `switchyard:{${namespace}}:commands-cursor`]),
    };
  }

  const redisEntries = (history: HistoryEntry[]): HistoryEntry[] =>
    history.filter((e) => e.source === 'redis');

  it('issue 11: a no-op command moves the cursor, makes no revision, and later ones apply', async () => {
    const { store, xadd, cursor } = await world();
    await xadd('{"op":"canary","percent":5}');
    await eventually(() => expect(store.current()?.revision).toBe(2));
    const noop = await xadd('{"op":"canary","basisPoints":500}');
    await eventually(async () => expect(await cursor()).toBe(noop));
    expect(store.current()?.revision).toBe(2);
    await xadd('{"op":"canary","percent":10}');
    await eventually(() => expect(store.current()?.revision).toBe(3));
    const history = redisEntries(await store.history(50));
    expect(history.map((e) => [e.revision, e.result])).toEqual([
      [3, 'applied'],
      [2, 'applied'],
    ]);
  });

  it('issue 11: a command actor is recorded as redis:<name>; a bad one is refused', async () => {
    const { store, xadd, cursor } = await world();
    await xadd('{"op":"switch","to":"green","actor":"deploy-bot"}');
    await eventually(() => expect(store.current()?.revision).toBe(2));
    expect(store.current()?.updatedBy).toBe('redis:deploy-bot');
    const bad = await xadd('{"op":"switch","to":"blue","actor":"evil\\u001b[2J"}');
    await eventually(async () => expect(await cursor()).toBe(bad));
    const [entry] = redisEntries(await store.history(1));
    expect(entry).toMatchObject({
      result: 'rejected',
      actor: 'redis',
      reason: { code: 'VALIDATION_FAILED' },
    });
    expect(entry?.reason?.message).toMatch(/^actor: must be printable ASCII/);
    expect(store.current()?.revision).toBe(2);
  });

  it('issue 10 item 5: a password in an unparsable or oversized command is redacted', async () => {
    const { store, xadd, cursor } = await world();
    await xadd(`{"op":"set-pool","pool":"green","endpoints":["http://ops:${SECRET}@h:1"]`);
    const big = JSON.stringify({
      op: 'set-pool',
      pool: 'green',
      endpoints: [`http://ops:${SECRET}@h:1`],
      pad: 'z'.repeat(70 * 1024),
    });
    const last = await xadd(big);
    await eventually(async () => expect(await cursor()).toBe(last));
    const history = redisEntries(await store.history(10));
    expect(history.map((e) => e.reason?.code)).toEqual(['BODY_TOO_LARGE', 'INVALID_JSON']);
    const json = JSON.stringify(history);
    expect(json).not.toContain(SECRET);
    expect(json).toContain('http://***@h:1');
  });
});
