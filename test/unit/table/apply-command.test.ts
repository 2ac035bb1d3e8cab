import { describe, expect, it } from 'vitest';
import { applyCommand, createSeedTable } from '../../../src/table/apply-command.js';
import type { Command, RoutingTable } from '../../../src/table/types.js';
import { expectError } from './expect-error.js';
import { META, makeTable, SHA_BLUE, SHA_GREEN } from './make-table.js';

const apply = (current: RoutingTable | null, command: Command) =>
  applyCommand(current, command, META, []).table;

function expectDeepFrozen(table: RoutingTable): void {
  expect(Object.isFrozen(table)).toBe(true);
  expect(Object.isFrozen(table.pools)).toBe(true);
  expect(Object.isFrozen(table.weights)).toBe(true);
  for (const spec of Object.values(table.pools)) {
    expect(Object.isFrozen(spec)).toBe(true);
    expect(Object.isFrozen(spec.endpoints)).toBe(true);
  }
}

describe('applyCommand', () => {
  it('stamps revision + 1, time and actor, and deep-freezes the result', () => {
    const next = apply(makeTable({ revision: 41 }), { op: 'switch', to: 'green' });
    expect(next).toMatchObject({
      revision: 42,
      updatedAt: META.now,
      updatedBy: 'test',
      weights: { blue: 0, green: 10000, canary: 0 },
    });
    expectDeepFrozen(next);
  });

  it('never mutates its input and shares no mutable state with it (snapshot swap safety)', () => {
    const endpoints = ['http://10.0.0.99:1'];
    const current = makeTable();
    const snapshot = JSON.stringify(current);
    const next = apply(current, { op: 'set-pool', pool: 'green', version: SHA_GREEN, endpoints });
    endpoints.push('http://evil:1');
    expect(JSON.stringify(current)).toBe(snapshot);
    expect(next.pools.green?.endpoints).toEqual(['http://10.0.0.99:1']);
    expect(next.pools.blue).not.toBe(current.pools.blue);
    expectDeepFrozen(next);
    // frozen for real: writes throw in strict-mode ESM
    expect(() => {
      (next.weights as Record<string, number>).blue = 0;
    }).toThrow(TypeError);
  });

  it('defaults updatedAt to now', () => {
    const before = Date.now();
    const { table } = applyCommand(makeTable(), { op: 'rollback' }, { actor: 'a', source: 'cli' }, [
      {
        id: '1',
        revision: 1,
        previousRevision: 0,
        time: '',
        actor: 'a',
        source: 'cli',
        command: {},
        result: 'applied',
        before: makeTable({ weights: { blue: 0, green: 10000, canary: 0 } }),
      },
    ]);
    expect(Date.parse(table.updatedAt)).toBeGreaterThanOrEqual(before);
  });

  describe('set-pool', () => {
    it('creates the first pool with all the traffic when there is no table', () => {
      const table = apply(null, {
        op: 'set-pool',
        pool: 'blue',
        version: SHA_BLUE,
        endpoints: ['http://a:1'],
      });
      expect(table).toEqual({
        revision: 1,
        pools: { blue: { version: SHA_BLUE, endpoints: ['http://a:1'] } },
        weights: { blue: 10000 },
        updatedAt: META.now,
        updatedBy: 'test',
      });
    });

    it('adds a new pool at weight 0 and lets a live pool change endpoints only', () => {
      const added = apply(makeTable(), {
        op: 'set-pool',
        pool: 'red',
        version: SHA_GREEN,
        endpoints: ['http://r:1'],
      });
      expect(added.weights).toEqual({ blue: 10000, green: 0, canary: 0, red: 0 });
      const scaled = apply(added, {
        op: 'set-pool',
        pool: 'blue',
        version: SHA_BLUE,
        endpoints: ['http://b:1', 'http://b:2'],
      });
      expect(scaled.pools.blue).toEqual({
        version: SHA_BLUE,
        endpoints: ['http://b:1', 'http://b:2'],
      });
    });

    it('lets an idle pool change version', () => {
      const table = apply(makeTable(), {
        op: 'set-pool',
        pool: 'green',
        version: 'abcdef0',
        endpoints: ['http://g:1'],
      });
      expect(table.pools.green).toEqual({ version: 'abcdef0', endpoints: ['http://g:1'] });
    });

    it('POOL_LIVE when a pool with traffic changes version', () => {
      expectError(
        () =>
          apply(makeTable(), {
            op: 'set-pool',
            pool: 'blue',
            version: 'abcdef0',
            endpoints: ['http://b:1'],
          }),
        'POOL_LIVE',
        /^pools\.blue: cannot change the version of a pool with weight 10000/,
      );
    });

    it('re-validates hand-built commands (MUTABLE_VERSION, VALIDATION_FAILED)', () => {
      expectError(
        () =>
          apply(makeTable(), {
            op: 'set-pool',
            pool: 'green',
            version: 'latest',
            endpoints: ['http://g'],
          }),
        'MUTABLE_VERSION',
        /^version: "latest" is not an immutable identifier/,
      );
      expectError(
        () =>
          apply(makeTable(), {
            op: 'set-pool',
            pool: 'green',
            version: SHA_GREEN,
            endpoints: ['http://g/x'],
          }),
        'VALIDATION_FAILED',
        /^endpoints\[0\]: must not have a path/,
      );
      expectError(
        () => apply(makeTable(), { op: 'weights', weights: { blue: 5000 } }),
        'VALIDATION_FAILED',
        'weights: must sum to 10000 (got 5000)',
      );
    });
  });

  describe('remove-pool', () => {
    it('removes an idle pool', () => {
      const table = apply(makeTable(), { op: 'remove-pool', pool: 'green' });
      expect(Object.keys(table.pools)).toEqual(['blue', 'canary']);
      expect(table.weights).toEqual({ blue: 10000, canary: 0 });
    });
    it('POOL_LIVE for a pool with traffic (including the last pool)', () => {
      expectError(
        () => apply(makeTable(), { op: 'remove-pool', pool: 'blue' }),
        'POOL_LIVE',
        /^pools\.blue: cannot remove/,
      );
      const single = createSeedTable(
        [{ name: 'blue', version: SHA_BLUE, endpoints: ['http://b'] }],
        META,
      );
      expectError(
        () => apply(single, { op: 'remove-pool', pool: 'blue' }),
        'POOL_LIVE',
        /^pools\.blue:/,
      );
    });
    it('UNKNOWN_POOL', () => {
      expectError(
        () => apply(makeTable(), { op: 'remove-pool', pool: 'red' }),
        'UNKNOWN_POOL',
        'pool: unknown pool "red"',
      );
      expectError(
        () => apply(null, { op: 'remove-pool', pool: 'red' }),
        'UNKNOWN_POOL',
        'pool: unknown pool "red"',
      );
    });
  });

  describe('weights', () => {
    it('sets named pools; unnamed pools get 0', () => {
      const current = makeTable({ weights: { blue: 5000, green: 5000, canary: 0 } });
      const table = apply(current, { op: 'weights', weights: { canary: 1000, blue: 9000 } });
      expect(table.weights).toEqual({ blue: 9000, green: 0, canary: 1000 });
      expect(Object.keys(table.weights)).toEqual(['blue', 'green', 'canary']);
    });
    it('UNKNOWN_POOL naming the pool', () => {
      expectError(
        () => apply(makeTable(), { op: 'weights', weights: { blue: 9000, red: 1000 } }),
        'UNKNOWN_POOL',
        'weights.red: unknown pool "red"',
      );
    });
  });

  describe('canary', () => {
    it('gives the canary its share and keeps the ratio of the rest', () => {
      const current = makeTable({ weights: { blue: 7500, green: 2500, canary: 0 } });
      const table = apply(current, { op: 'canary', pool: 'canary', basisPoints: 1000 });
      expect(table.weights).toEqual({ blue: 6750, green: 2250, canary: 1000 });
    });
    it('NO_STABLE_POOL and UNKNOWN_POOL', () => {
      const allCanary = makeTable({ weights: { blue: 0, green: 0, canary: 10000 } });
      expectError(
        () => apply(allCanary, { op: 'canary', pool: 'canary', basisPoints: 500 }),
        'NO_STABLE_POOL',
        /^pool:/,
      );
      expectError(
        () => apply(makeTable(), { op: 'canary', pool: 'red', basisPoints: 500 }),
        'UNKNOWN_POOL',
        'pool: unknown pool "red"',
      );
      expectError(
        () => apply(null, { op: 'canary', pool: 'canary', basisPoints: 500 }),
        'UNKNOWN_POOL',
        /^pool:/,
      );
    });
  });

  describe('switch', () => {
    it('UNKNOWN_POOL', () => {
      expectError(
        () => apply(makeTable(), { op: 'switch', to: 'red' }),
        'UNKNOWN_POOL',
        'to: unknown pool "red"',
      );
    });
  });

  describe('expectRevision', () => {
    it('applies when it matches (0 for no table)', () => {
      expect(
        applyCommand(
          makeTable({ revision: 5 }),
          { op: 'switch', to: 'green' },
          { ...META, expectRevision: 5 },
          [],
        ).table.revision,
      ).toBe(6);
      const first = applyCommand(
        null,
        { op: 'set-pool', pool: 'blue', version: SHA_BLUE, endpoints: ['http://b'] },
        { ...META, expectRevision: 0 },
        [],
      );
      expect(first.table.revision).toBe(1);
    });
    it('REVISION_CONFLICT naming both revisions', () => {
      expectError(
        () =>
          applyCommand(
            makeTable({ revision: 5 }),
            { op: 'switch', to: 'green' },
            { ...META, expectRevision: 4 },
            [],
          ),
        'REVISION_CONFLICT',
        'expectRevision: expected revision 4 but the table is at revision 5',
      );
      expectError(
        () => applyCommand(null, { op: 'rollback' }, { ...META, expectRevision: 1 }, []),
        'REVISION_CONFLICT',
        'expectRevision: expected revision 1 but the table is at revision 0',
      );
    });
  });
});

describe('createSeedTable', () => {
  it('builds revision 1 with the first pool at 100 %', () => {
    const table = createSeedTable(
      [
        { name: 'blue', version: SHA_BLUE, endpoints: ['http://b:1/'] },
        { name: 'green', version: SHA_GREEN, endpoints: ['http://g:1'] },
      ],
      { actor: 'seed', now: 'T' },
    );
    expect(table).toEqual({
      revision: 1,
      pools: {
        blue: { version: SHA_BLUE, endpoints: ['http://b:1'] },
        green: { version: SHA_GREEN, endpoints: ['http://g:1'] },
      },
      weights: { blue: 10000, green: 0 },
      updatedAt: 'T',
      updatedBy: 'seed',
    });
    expectDeepFrozen(table);
  });
  it('validates pools', () => {
    expectError(
      () => createSeedTable([], META),
      'VALIDATION_FAILED',
      'pools: at least one pool is required',
    );
    expectError(
      () => createSeedTable([{ name: 'Blue', version: SHA_BLUE, endpoints: ['http://b'] }], META),
      'VALIDATION_FAILED',
      'pools[0].name: not a valid pool name',
    );
    expectError(
      () =>
        createSeedTable(
          [
            { name: 'blue', version: SHA_BLUE, endpoints: ['http://b'] },
            { name: 'blue', version: SHA_BLUE, endpoints: ['http://c'] },
          ],
          META,
        ),
      'VALIDATION_FAILED',
      'pools.blue: named twice',
    );
    expectError(
      () => createSeedTable([{ name: 'blue', version: 'ABCDEF1', endpoints: ['http://b'] }], META),
      'MUTABLE_VERSION',
      'pools.blue.version: "ABCDEF1" must be lowercase',
    );
    expectError(
      () => createSeedTable([{ name: 'blue', version: 'stable', endpoints: ['http://b'] }], META),
      'MUTABLE_VERSION',
      /^pools\.blue\.version: "stable" is not an immutable identifier/,
    );
  });
});
