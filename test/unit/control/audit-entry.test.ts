/** Issue 10 items 4 and 5: the command in an audit entry is a bounded, redacted summary. */
import { describe, expect, it } from 'vitest';
import { fail } from '../../../src/errors.js';
import { rejectedEntry, summariseCommand } from '../../../src/control/audit-entry.js';

const json = (value: unknown): string => JSON.stringify(value);

describe('summariseCommand', () => {
  it('keeps small ordinary commands as they are', () => {
    const command = {
      op: 'set-pool',
      pool: 'green',
      version: 'abcdef1',
      endpoints: ['http://h:1'],
    };
    expect(summariseCommand(command)).toEqual(command);
    expect(summariseCommand('garbage')).toBe('garbage');
    expect(summariseCommand(null)).toBeNull();
  });

  it('cuts depth, items, keys and total size, marking what was left out', () => {
    const deep = JSON.parse(`${'['.repeat(50)}1${']'.repeat(50)}`) as unknown;
    expect(json(summariseCommand(deep))).toBe(`${'['.repeat(8)}"…"${']'.repeat(8)}`);
    const items = summariseCommand(Array.from({ length: 100 }, (_, i) => i)) as unknown[];
    expect(items).toHaveLength(65);
    expect(items.at(-1)).toBe('… 36 more');
    const keys = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, i]));
    expect((summariseCommand(keys) as Record<string, unknown>)['…']).toBe('36 more');
    const wide = Array.from({ length: 60 }, () => 'x'.repeat(1000));
    expect(json(summariseCommand(wide)).length).toBeLessThan(6 * 1024);
  });

  it('is always JSON-serialisable: cycles, bigint, functions, non-finite numbers', () => {
    const cycle: Record<string, unknown> = { op: 'switch' };
    cycle['self'] = cycle;
    const summary = summariseCommand({
      cycle,
      big: 10n ** 30n,
      fn: () => 1,
      nan: Number.NaN,
      list: [undefined, () => 1],
    });
    expect(() => json(summary)).not.toThrow();
    expect(summary).toMatchObject({ big: '1'.padEnd(31, '0'), nan: null, list: [null, null] });
    expect(summary).not.toHaveProperty('fn');
  });

  it('keeps a __proto__ key as data', () => {
    const input = JSON.parse('{"__proto__":{"polluted":true},"op":"x"}') as unknown;
    const summary = summariseCommand(input) as Record<string, unknown>;
    expect(Object.getPrototypeOf(summary)).toBe(Object.prototype);
    expect(Object.hasOwn(summary, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('redacts secret-looking keys, URL userinfo and HTTP credentials', () => {
    expect(
      summariseCommand({
        Password: 'a',
        api_key: 'b',
        clientSecret: { nested: 'c' },
        authorization: 'd',
        sessionToken: 'e',
        url: 'https://u:p@h/x',
        header: 'Bearer abc',
      }),
    ).toEqual({
      Password: '[redacted]',
      api_key: '[redacted]',
      clientSecret: '[redacted]',
      authorization: '[redacted]',
      sessionToken: '[redacted]',
      url: 'https://***@h/x',
      header: 'Bearer ***',
    });
  });
});

describe('rejectedEntry', () => {
  it('redacts and bounds the reason message', () => {
    const error = fail('VALIDATION_FAILED', `x: http://u:pw@h ${'y'.repeat(5000)}`);
    const entry = rejectedEntry({}, { actor: 'a', source: 'admin' }, 1, 't', error);
    expect(entry.reason?.message.startsWith('x: http://***@h ')).toBe(true);
    expect(entry.reason?.message.length).toBeLessThanOrEqual(1025);
  });
});
