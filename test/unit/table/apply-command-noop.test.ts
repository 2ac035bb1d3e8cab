/** Issue 11: a command that changes nothing makes no revision (applyCommand says `changed`). */
import { describe, expect, it } from 'vitest';
import { applyCommand } from '../../../src/table/apply-command.js';
import type { Command, RoutingTable } from '../../../src/table/types.js';
import { appliedEntry, META, makeTable, SHA_BLUE, SHA_GREEN } from './make-table.js';

const CANARY_5 = makeTable({ weights: { blue: 9500, green: 0, canary: 500 } });

function changed(current: RoutingTable, command: Command): boolean {
  const result = applyCommand(current, command, META, []);
  if (!result.changed) expect(result.table).toBe(current);
  return result.changed;
}

describe('applyCommand: no-op changes (issue 11)', () => {
  it.each<[string, RoutingTable, Command]>([
    ['canary at its share', CANARY_5, { op: 'canary', basisPoints: 500, pool: 'canary' }],
    ['switch to the pool that has 100 %', makeTable(), { op: 'switch', to: 'blue' }],
    [
      'weights equal to the current ones',
      CANARY_5,
      { op: 'weights', weights: { blue: 9500, canary: 500 } },
    ],
    [
      'the same set-pool',
      makeTable(),
      { op: 'set-pool', pool: 'green', version: SHA_GREEN, endpoints: ['http://10.0.0.21:3000'] },
    ],
    [
      'the same endpoints of a live pool',
      makeTable(),
      { op: 'set-pool', pool: 'blue', version: SHA_BLUE, endpoints: ['http://10.0.0.11:3000/'] },
    ],
  ])('%s: changed false, the current table', (_name, current, command) => {
    expect(changed(current, command)).toBe(false);
  });

  it.each<[string, RoutingTable, Command]>([
    ['canary share moves', CANARY_5, { op: 'canary', basisPoints: 600, pool: 'canary' }],
    ['switch to another pool', makeTable(), { op: 'switch', to: 'green' }],
    [
      'an endpoint added',
      makeTable(),
      {
        op: 'set-pool',
        pool: 'green',
        version: SHA_GREEN,
        endpoints: ['http://10.0.0.21:3000', 'http://10.0.0.22:3000'],
      },
    ],
    [
      'endpoints reordered',
      makeTable({
        pools: {
          ...makeTable().pools,
          green: {
            version: SHA_GREEN,
            endpoints: ['http://10.0.0.21:3000', 'http://10.0.0.22:3000'],
          },
        },
      }),
      {
        op: 'set-pool',
        pool: 'green',
        version: SHA_GREEN,
        endpoints: ['http://10.0.0.22:3000', 'http://10.0.0.21:3000'],
      },
    ],
    [
      'a new version of an idle pool',
      makeTable(),
      { op: 'set-pool', pool: 'green', version: 'abcdef1', endpoints: ['http://10.0.0.21:3000'] },
    ],
    [
      'a new pool',
      makeTable(),
      { op: 'set-pool', pool: 'extra', version: 'abcdef1', endpoints: ['http://10.0.0.41:3000'] },
    ],
    ['a pool removed', makeTable(), { op: 'remove-pool', pool: 'green' }],
  ])('%s: changed true, revision + 1', (_name, current, command) => {
    const result = applyCommand(current, command, META, []);
    expect(result.changed).toBe(true);
    expect(result.table.revision).toBe(current.revision + 1);
  });

  it('a rollback is a change even when it restores an equal table', () => {
    const current = makeTable({ revision: 2 });
    const history = [
      appliedEntry(current, makeTable(), { op: 'canary', basisPoints: 0, pool: 'canary' }),
    ];
    const result = applyCommand(current, { op: 'rollback' }, META, history);
    expect(result).toMatchObject({ changed: true, undoes: 2, table: { revision: 3 } });
  });
});
