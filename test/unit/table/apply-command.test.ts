import { describe, expect, it } from 'vitest';
import { applyCommand, createSeedTable } from '../../../src/table/apply-command.js';
import type { Command, HistoryEntry, RoutingTable } from '../../../src/table/types.js';
import { expectError } from './expect-error.js';
import { appliedEntry, META, makeTable, SHA_BLUE, SHA_GREEN } from './make-table.js';

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
        rules: [],
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

describe('pools named constructor and prototype (valid under SPEC §2, not Object.prototype)', () => {
  const sha = (c: string) => c.repeat(7);

  /** Applies commands in order, keeping the audit log so rollback works as in a store. */
  function run(start: RoutingTable, commands: Command[]): RoutingTable[] {
    let table = start;
    const history: HistoryEntry[] = [appliedEntry(start, null, { op: 'seed' })];
    return commands.map((command) => {
      const result = applyCommand(table, command, META, history);
      history.unshift(appliedEntry(result.table, table, command, result.undoes));
      table = result.table;
      return table;
    });
  }

  function expectExactWeights(table: RoutingTable, weights: Record<string, number>): void {
    expect(table.weights).toEqual(weights);
    expect(Object.keys(table.weights)).toEqual(Object.keys(table.pools));
    for (const value of Object.values(table.weights)) expect(typeof value).toBe('number');
  }

  it('set-pool, canary, weights, switch, rollback and remove-pool work by those names', () => {
    const seed = createSeedTable(
      [
        { name: 'blue', version: SHA_BLUE, endpoints: ['http://b'] },
        { name: 'prototype', version: sha('b'), endpoints: ['http://p'] },
      ],
      META,
    );
    const [added, canary, weights, switched, rolledBack, back, removedC, removedP] = run(seed, [
      { op: 'set-pool', pool: 'constructor', version: sha('c'), endpoints: ['http://c'] },
      { op: 'canary', pool: 'constructor', basisPoints: 500 },
      // constructor is not named: it gets 0, never a value found on Object.prototype
      { op: 'weights', weights: { blue: 4000, prototype: 6000 } },
      { op: 'switch', to: 'constructor' },
      { op: 'rollback' },
      { op: 'switch', to: 'blue' },
      { op: 'remove-pool', pool: 'constructor' },
      { op: 'remove-pool', pool: 'prototype' },
    ]);
    expect(added?.pools.constructor).toEqual({ version: sha('c'), endpoints: ['http://c'] });
    expectExactWeights(added as RoutingTable, { blue: 10000, prototype: 0, constructor: 0 });
    expectExactWeights(canary as RoutingTable, { blue: 9500, prototype: 0, constructor: 500 });
    expectExactWeights(weights as RoutingTable, { blue: 4000, prototype: 6000, constructor: 0 });
    expectExactWeights(switched as RoutingTable, { blue: 0, prototype: 0, constructor: 10000 });
    expectExactWeights(rolledBack as RoutingTable, { blue: 4000, prototype: 6000, constructor: 0 });
    expectExactWeights(back as RoutingTable, { blue: 10000, prototype: 0, constructor: 0 });
    expectExactWeights(removedC as RoutingTable, { blue: 10000, prototype: 0 });
    expectExactWeights(removedP as RoutingTable, { blue: 10000 });
    expect(Object.keys(removedP?.pools ?? {})).toEqual(['blue']);
  });

  it('POOL_LIVE guards a live pool named constructor like any other', () => {
    const seed = createSeedTable(
      [{ name: 'constructor', version: sha('c'), endpoints: ['http://c'] }],
      META,
    );
    expectError(
      () =>
        apply(seed, {
          op: 'set-pool',
          pool: 'constructor',
          version: sha('d'),
          endpoints: ['http://c'],
        }),
      'POOL_LIVE',
      /^pools\.constructor: cannot change the version of a pool with weight 10000/,
    );
    expectError(
      () => apply(seed, { op: 'remove-pool', pool: 'constructor' }),
      'POOL_LIVE',
      /^pools\.constructor: cannot remove a pool with weight 10000/,
    );
  });

  it('a missing pool named constructor is UNKNOWN_POOL for every op, never a false hit', () => {
    const table = makeTable();
    const cases: Array<[Command, string]> = [
      [{ op: 'switch', to: 'constructor' }, 'to: unknown pool "constructor"'],
      [{ op: 'remove-pool', pool: 'constructor' }, 'pool: unknown pool "constructor"'],
      [{ op: 'canary', pool: 'constructor', basisPoints: 500 }, 'pool: unknown pool "constructor"'],
      [
        { op: 'weights', weights: { constructor: 10000 } },
        'weights.constructor: unknown pool "constructor"',
      ],
      [{ op: 'switch', to: 'prototype' }, 'to: unknown pool "prototype"'],
    ];
    for (const [command, message] of cases) {
      expectError(() => apply(table, command), 'UNKNOWN_POOL', message);
      expectError(() => apply(null, command), 'UNKNOWN_POOL', message);
    }
  });

  it('Object.prototype member names that are not pool names fail validation, not a lookup', () => {
    for (const name of ['toString', 'hasOwnProperty', 'valueOf', '__proto__']) {
      expectError(
        () => apply(makeTable(), { op: 'switch', to: name }),
        'VALIDATION_FAILED',
        /^to: must match/,
      );
      expectError(
        () => apply(makeTable(), { op: 'remove-pool', pool: name }),
        'VALIDATION_FAILED',
        /^pool: must match/,
      );
    }
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
      rules: [],
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
