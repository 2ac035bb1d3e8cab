import { describe, expect, it } from 'vitest';
import { closest, editDistance } from '../../../src/cli/suggest.js';

describe('editDistance (optimal string alignment)', () => {
  it('counts a swap of two neighbours as one edit', () => {
    expect(editDistance('stauts', 'status')).toBe(1);
    expect(editDistance('toekn', 'token')).toBe(1);
  });

  it('counts insertions, deletions and substitutions', () => {
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('swich', 'switch')).toBe(1);
    expect(editDistance('canary', 'canary')).toBe(0);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });
});

describe('closest', () => {
  const commands = ['status', 'canary', 'switch', 'rollback', 'replicas', 'remove-pool'];

  it('finds a typo within one edit (short words) or two (longer ones)', () => {
    expect(closest('stauts', commands)).toBe('status');
    expect(closest('rollbak', commands)).toBe('rollback');
    expect(closest('Switch', commands)).toBe('switch');
    expect(closest('canray', commands)).toBe('canary');
  });

  it('takes a prefix of a single command', () => {
    expect(closest('repl', commands)).toBe('replicas');
    expect(closest('re', commands)).toBeUndefined();
  });

  it('suggests nothing for a word far from every candidate', () => {
    expect(closest('frobnicate', commands)).toBeUndefined();
    expect(closest('ls', commands)).toBeUndefined();
  });
});
