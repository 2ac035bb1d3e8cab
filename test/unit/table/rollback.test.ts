import { describe, expect, it } from 'vitest';
import { applyCommand } from '../../../src/table/apply-command.js';
import { planRollback } from '../../../src/table/rollback.js';
import type { Command, HistoryEntry, RoutingTable } from '../../../src/table/types.js';
import { expectError } from './expect-error.js';
import { appliedEntry, META, SHA_BLUE, SHA_CANARY } from './make-table.js';

/** A tiny in-test store: applies commands and records the audit log newest first. */
function createLog() {
  let table: RoutingTable | null = null;
  const history: HistoryEntry[] = [];
  return {
    history,
    get table() {
      return table;
    },
    run(command: Command): { table: RoutingTable; undoes?: number } {
      const before = table;
      const result = applyCommand(before, command, META, history);
      history.unshift(appliedEntry(result.table, before, command, result.undoes));
      table = result.table;
      return result;
    },
    reject(command: Command): void {
      history.unshift({
        id: String(history.length + 1),
        revision: null,
        previousRevision: table?.revision ?? 0,
        time: 'T',
        actor: 'test',
        source: 'redis',
        command,
        result: 'rejected',
        reason: { code: 'VALIDATION_FAILED', message: 'x' },
      });
    },
  };
}

const canary = (basisPoints: number): Command => ({ op: 'canary', pool: 'canary', basisPoints });
const rollback: Command = { op: 'rollback' };

/** r1 seed (blue), r2 add canary, r3 canary 5 %, r4 canary 50 %. */
function seeded() {
  const log = createLog();
  log.run({ op: 'set-pool', pool: 'blue', version: SHA_BLUE, endpoints: ['http://b:1'] });
  log.run({ op: 'set-pool', pool: 'canary', version: SHA_CANARY, endpoints: ['http://c:1'] });
  log.run(canary(500));
  log.run(canary(5000));
  return log;
}

describe('rollback', () => {
  it('walks back one change per rollback, never forward, until NOTHING_TO_UNDO', () => {
    const log = seeded();
    const tables = log.history.map((e) => e.revision);
    expect(tables).toEqual([4, 3, 2, 1]);

    let result = log.run(rollback);
    expect(result.undoes).toBe(4);
    expect(result.table.revision).toBe(5);
    expect(result.table.weights).toEqual({ blue: 9500, canary: 500 });

    result = log.run(rollback);
    expect(result.undoes).toBe(3);
    expect(result.table.weights).toEqual({ blue: 10000, canary: 0 });

    result = log.run(rollback);
    expect(result.undoes).toBe(2);
    expect(result.table.pools).toEqual({ blue: { version: SHA_BLUE, endpoints: ['http://b:1'] } });
    expect(result.table.weights).toEqual({ blue: 10000 });
    expect(result.table.revision).toBe(7);

    // r1 created the table: there is nothing before it
    expectError(() => log.run(rollback), 'NOTHING_TO_UNDO', /^rollback: nothing left to undo/);
  });

  it('after a rollback, a new change is the next thing undone, then the walk continues', () => {
    const log = seeded();
    expect(log.run(rollback).undoes).toBe(4); // r5 = table of r3 (5 %)
    log.run(canary(1000)); // r6
    const undo6 = log.run(rollback); // r7 = table of r5
    expect(undo6.undoes).toBe(6);
    expect(undo6.table.weights).toEqual({ blue: 9500, canary: 500 });
    const undo3 = log.run(rollback); // r8: r4 and r6 are spent, so r3 is next
    expect(undo3.undoes).toBe(3);
    expect(undo3.table.weights).toEqual({ blue: 10000, canary: 0 });
  });

  it('ignores rejected entries and does not depend on history order', () => {
    const log = seeded();
    log.reject(canary(20000));
    const plan = planRollback([...log.history].reverse());
    expect(plan.undoes).toBe(4);
    expect(plan.table.weights).toEqual({ blue: 9500, canary: 500 });
  });

  it('treats an applied rollback command without `undoes` as a rollback, never a target', () => {
    const log = seeded();
    const last = log.history[0] as HistoryEntry;
    const odd: HistoryEntry = { ...last, id: 'x', revision: 5, command: { op: 'rollback' } };
    expect(planRollback([odd, ...log.history]).undoes).toBe(4);
  });

  it('restores the table as a new validated, frozen revision stamped now', () => {
    const log = seeded();
    const { table } = log.run(rollback);
    expect(table.updatedAt).toBe(META.now);
    expect(Object.isFrozen(table.weights)).toBe(true);
  });

  it('NOTHING_TO_UNDO for an empty log, a log of rollbacks only, or a missing before', () => {
    expectError(() => planRollback([]), 'NOTHING_TO_UNDO', 'rollback: nothing left to undo');
    const log = createLog();
    log.run({ op: 'set-pool', pool: 'blue', version: SHA_BLUE, endpoints: ['http://b:1'] });
    expectError(
      () => log.run(rollback),
      'NOTHING_TO_UNDO',
      'rollback: nothing left to undo (revision 1 has no earlier table)',
    );
    const entry = { ...(log.history[0] as HistoryEntry), revision: 2, before: undefined };
    expectError(() => planRollback([entry]), 'NOTHING_TO_UNDO', /revision 2 has no earlier table/);
  });

  it('rejects a corrupt `before` table from the log with VALIDATION_FAILED', () => {
    const log = seeded();
    const head = log.history[0] as HistoryEntry;
    const corrupt = { ...head, before: { ...head.before, weights: { blue: 1 } } as RoutingTable };
    expectError(
      () => applyCommand(log.table, rollback, META, [corrupt]),
      'VALIDATION_FAILED',
      /^weights\./,
    );
  });
});
