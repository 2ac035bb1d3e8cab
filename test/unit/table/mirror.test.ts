/**
 * Traffic mirroring in the table (SPEC §12): validation, apply, no-op, stored tables, rollback.
 */
import { describe, expect, test } from 'vitest';
import { applyCommand } from '../../../src/table/apply-command.js';
import { parseCommandInput, parseTable } from '../../../src/table/validate.js';
import { expectError } from './expect-error.js';
import { appliedEntry, makeTable, META } from './make-table.js';

describe('mirror commands', () => {
  test('percent becomes basis points; methods default to GET and HEAD and are uppercased', () => {
    expect(parseCommandInput({ op: 'mirror', pool: 'canary', percent: 12.5 }).command).toEqual({
      op: 'mirror',
      pool: 'canary',
      basisPoints: 1250,
      methods: ['GET', 'HEAD'],
    });
    expect(
      parseCommandInput({
        op: 'mirror',
        pool: 'canary',
        basisPoints: 1,
        methods: ['post', 'Get'],
        match: [{ header: 'X-A', value: '1' }],
      }).command,
    ).toEqual({
      op: 'mirror',
      pool: 'canary',
      basisPoints: 1,
      methods: ['POST', 'GET'],
      match: [{ header: 'x-a', value: '1' }],
    });
    expect(parseCommandInput({ op: 'mirror', pool: null }).command).toEqual({
      op: 'mirror',
      pool: null,
    });
  });

  test('refuses 0 %, fields beside pool null, and unknown methods', () => {
    expectError(
      () => parseCommandInput({ op: 'mirror', pool: 'canary', percent: 0 }),
      'VALIDATION_FAILED',
      /^percent: must be more than 0/,
    );
    expectError(
      () => parseCommandInput({ op: 'mirror', pool: null, percent: 5 }),
      'VALIDATION_FAILED',
      /^percent: pool null ends the mirror/,
    );
    expectError(
      () => parseCommandInput({ op: 'mirror', pool: 'canary', percent: 5, methods: ['TRACE'] }),
      'VALIDATION_FAILED',
      /^methods\[0\]: "TRACE" is not one of/,
    );
    expectError(
      () => parseCommandInput({ op: 'mirror', pool: 7, percent: 5 }),
      'VALIDATION_FAILED',
      /^pool: must be a pool name, or null/,
    );
  });

  test('apply: unknown pool 404, a new revision, the same mirror makes none, null ends it', () => {
    const table = makeTable();
    expectError(
      () =>
        applyCommand(
          table,
          { op: 'mirror', pool: 'purple', basisPoints: 10, methods: ['GET'] },
          META,
          [],
        ),
      'UNKNOWN_POOL',
      'pool: unknown pool "purple"',
    );
    const on = applyCommand(
      table,
      { op: 'mirror', pool: 'canary', basisPoints: 1000, methods: ['GET'] },
      META,
      [],
    );
    expect(on.changed).toBe(true);
    expect(on.table.mirror).toEqual({ pool: 'canary', basisPoints: 1000, methods: ['GET'] });
    expect(Object.isFrozen(on.table.mirror)).toBe(true);
    const same = applyCommand(
      on.table,
      { op: 'mirror', pool: 'canary', basisPoints: 1000, methods: ['GET'] },
      META,
      [],
    );
    expect(same.changed).toBe(false);
    expectError(
      () => applyCommand(on.table, { op: 'remove-pool', pool: 'canary' }, META, []),
      'POOL_LIVE',
      /traffic is mirrored to it/,
    );
    const off = applyCommand(on.table, { op: 'mirror', pool: null }, META, []);
    expect(off.changed).toBe(true);
    expect(off.table.mirror).toBeUndefined();
    expect(applyCommand(off.table, { op: 'mirror', pool: null }, META, []).changed).toBe(false);
  });

  test('rollback restores the mirror of the table before the undone change', () => {
    const r1 = makeTable();
    const cmd = { op: 'mirror', pool: 'canary', basisPoints: 500, methods: ['GET'] } as const;
    const r2 = applyCommand(r1, cmd, META, []).table;
    const r3 = applyCommand(r2, { op: 'mirror', pool: null }, META, []).table;
    const back = applyCommand(r3, { op: 'rollback' }, META, [
      appliedEntry(r3, r2, { op: 'mirror', pool: null }),
      appliedEntry(r2, r1, cmd),
    ]);
    expect(back.table.mirror).toEqual(r2.mirror);
    expect(back.table.revision).toBe(4);
  });

  test('a stored table: its mirror is validated and must name one of its pools', () => {
    const json = JSON.parse(JSON.stringify(makeTable())) as Record<string, unknown>;
    const good = parseTable({
      ...json,
      mirror: { pool: 'green', basisPoints: 10, methods: ['GET'] },
    });
    expect(good.mirror).toEqual({ pool: 'green', basisPoints: 10, methods: ['GET'] });
    expectError(
      () => parseTable({ ...json, mirror: { pool: 'purple', basisPoints: 10, methods: ['GET'] } }),
      'VALIDATION_FAILED',
      /^mirror\.pool: no such pool/,
    );
    expectError(
      () => parseTable({ ...json, mirror: { pool: 'green', basisPoints: 0, methods: ['GET'] } }),
      'VALIDATION_FAILED',
      /^mirror\.basisPoints/,
    );
    expect(parseTable(json).mirror).toBeUndefined();
  });
});
