import { describe, expect, it } from 'vitest';
import {
  isImmutableVersion,
  normaliseEndpoint,
  parseCommandInput,
  parseTable,
  POOL_NAME_PATTERN,
} from '../../../src/table/validate.js';
import { expectError } from './expect-error.js';
import { makeTable } from './make-table.js';

const SHA = '3f2c9e1';
const DIGEST = `sha256:${'ab'.repeat(32)}`;
const setPool = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  op: 'set-pool',
  pool: 'green',
  version: SHA,
  endpoints: ['http://10.0.0.21:3000'],
  ...extra,
});

describe('isImmutableVersion', () => {
  it.each([SHA, 'a'.repeat(40), DIGEST, '0123456'])('accepts %s', (v) => {
    expect(isImmutableVersion(v)).toBe(true);
  });
  it.each(['latest', 'v1.2', 'stable', '3f2c9e', 'a'.repeat(41), 'ABCDEF1', 'sha256:abc', ''])(
    'rejects %s',
    (v) => {
      expect(isImmutableVersion(v)).toBe(false);
    },
  );
  it('pool name pattern', () => {
    expect(POOL_NAME_PATTERN.test('blue-2')).toBe(true);
    expect(POOL_NAME_PATTERN.test('2blue')).toBe(false);
    expect(POOL_NAME_PATTERN.test('a'.repeat(33))).toBe(false);
  });
});

describe('parseCommandInput: valid commands', () => {
  it('set-pool normalises endpoints to their origin', () => {
    const parsed = parseCommandInput(
      setPool({ endpoints: ['http://10.0.0.21:3000/', 'https://Example.COM:443', 'http://h:80'] }),
    );
    expect(parsed).toEqual({
      command: {
        op: 'set-pool',
        pool: 'green',
        version: SHA,
        endpoints: ['http://10.0.0.21:3000', 'https://example.com', 'http://h'],
      },
    });
  });
  it('keeps the envelope fields', () => {
    expect(parseCommandInput({ op: 'rollback', actor: 'ops', expectRevision: 0 })).toEqual({
      command: { op: 'rollback' },
      actor: 'ops',
      expectRevision: 0,
    });
  });
  it('weights in basis points and in percent', () => {
    expect(parseCommandInput({ op: 'weights', weights: { blue: 9000, canary: 1000 } })).toEqual({
      command: { op: 'weights', weights: { blue: 9000, canary: 1000 } },
    });
    expect(parseCommandInput({ op: 'weights', percent: { blue: 87.66, canary: 12.34 } })).toEqual({
      command: { op: 'weights', weights: { blue: 8766, canary: 1234 } },
    });
  });
  it('canary percent or basisPoints, pool defaults to canary', () => {
    expect(parseCommandInput({ op: 'canary', percent: 12.34 }).command).toEqual({
      op: 'canary',
      basisPoints: 1234,
      pool: 'canary',
    });
    expect(parseCommandInput({ op: 'canary', basisPoints: 0, pool: 'green' }).command).toEqual({
      op: 'canary',
      basisPoints: 0,
      pool: 'green',
    });
    expect(parseCommandInput({ op: 'canary', percent: 100 }).command).toMatchObject({
      basisPoints: 10000,
    });
  });
  it('switch, remove-pool, rollback; OCI digests', () => {
    expect(parseCommandInput({ op: 'switch', to: 'green' }).command).toEqual({
      op: 'switch',
      to: 'green',
    });
    expect(parseCommandInput({ op: 'remove-pool', pool: 'green' }).command).toEqual({
      op: 'remove-pool',
      pool: 'green',
    });
    expect(parseCommandInput(setPool({ version: DIGEST })).command).toMatchObject({
      version: DIGEST,
    });
  });
});

describe('parseCommandInput: pools named like Object.prototype members', () => {
  // `constructor` and `prototype` match SPEC §2's pattern, so they are ordinary pool names.
  it.each(['constructor', 'prototype'])('%s', (name) => {
    expect(POOL_NAME_PATTERN.test(name)).toBe(true);
    expect(parseCommandInput(setPool({ pool: name })).command).toMatchObject({ pool: name });
    expect(parseCommandInput({ op: 'switch', to: name }).command).toEqual({
      op: 'switch',
      to: name,
    });
    expect(parseCommandInput({ op: 'remove-pool', pool: name }).command).toEqual({
      op: 'remove-pool',
      pool: name,
    });
    expect(parseCommandInput({ op: 'canary', pool: name, percent: 5 }).command).toEqual({
      op: 'canary',
      pool: name,
      basisPoints: 500,
    });
    const weights = parseCommandInput({ op: 'weights', percent: { blue: 60, [name]: 40 } });
    expect(weights.command).toEqual({ op: 'weights', weights: { blue: 6000, [name]: 4000 } });
  });
});

describe('parseCommandInput: VALIDATION_FAILED', () => {
  const V = 'VALIDATION_FAILED';
  it.each<[string, unknown, string | RegExp]>([
    ['not an object', 'x', 'command: must be a JSON object'],
    ['null', null, 'command: must be a JSON object'],
    ['array', [], 'command: must be a JSON object'],
    ['missing op', {}, /^op: must be one of set-pool, remove-pool/],
    ['unknown op', { op: 'explode' }, /^op: must be one of/],
    ['unknown field', { op: 'rollback', force: true }, 'force: unknown field'],
    [
      'own __proto__ field',
      JSON.parse('{"op":"rollback","__proto__":{"x":1}}'),
      '__proto__: unknown field',
    ],
    ['bad pool name', { op: 'switch', to: 'Blue' }, /^to: must match/],
    // Object.prototype member names are not pool names (uppercase): refused, not looked up.
    ['toString as pool name', { op: 'switch', to: 'toString' }, /^to: must match/],
    ['hasOwnProperty as pool name', { op: 'remove-pool', pool: 'hasOwnProperty' }, /^pool: must/],
    ['__proto__ as pool name', { op: 'canary', pool: '__proto__', basisPoints: 1 }, /^pool: must/],
    ['non-string pool', { op: 'remove-pool', pool: 5 }, 'pool: must be a string'],
    ['actor too long', { op: 'rollback', actor: 'a'.repeat(65) }, /^actor: must be at most 64/],
    ['actor empty', { op: 'rollback', actor: '' }, 'actor: must not be empty'],
    ['actor only spaces', { op: 'rollback', actor: '   ' }, 'actor: must not be empty'],
    [
      'actor with a control character',
      { op: 'rollback', actor: 'alice\u001b[31m' },
      /^actor: must be printable ASCII/,
    ],
    ['actor not ASCII', { op: 'rollback', actor: 'jos\u00e9' }, /^actor: must be printable ASCII/],
    ['actor not a string', { op: 'rollback', actor: 7 }, 'actor: must be a string'],
    ['negative expectRevision', { op: 'rollback', expectRevision: -1 }, /^expectRevision: must/],
    ['fractional expectRevision', { op: 'rollback', expectRevision: 1.5 }, /^expectRevision:/],
    ['string expectRevision', { op: 'rollback', expectRevision: '3' }, /^expectRevision:/],
    // weights
    [
      'weights and percent',
      { op: 'weights', weights: { blue: 10000 }, percent: { blue: 100 } },
      /^weights: give exactly one/,
    ],
    ['neither weights nor percent', { op: 'weights' }, /^weights: give exactly one/],
    [
      'weights not an object',
      { op: 'weights', weights: [10000] },
      /^weights: must be a JSON object/,
    ],
    [
      'fractional bp',
      { op: 'weights', weights: { blue: 9999.5, canary: 0.5 } },
      'weights.blue: must be an integer 0..10000',
    ],
    [
      'negative bp',
      { op: 'weights', weights: { blue: 10001, canary: -1 } },
      'weights.blue: must be an integer 0..10000',
    ],
    [
      'string bp',
      { op: 'weights', weights: { blue: '10000' } },
      'weights.blue: must be an integer 0..10000',
    ],
    [
      'NaN bp',
      { op: 'weights', weights: { blue: Number.NaN } },
      'weights.blue: must be an integer 0..10000',
    ],
    [
      'Infinity bp',
      { op: 'weights', weights: { blue: Infinity } },
      'weights.blue: must be an integer 0..10000',
    ],
    ['bp sum', { op: 'weights', weights: { blue: 9000 } }, 'weights: must sum to 10000 (got 9000)'],
    ['empty weights', { op: 'weights', weights: {} }, 'weights: must sum to 10000 (got 0)'],
    [
      '__proto__ key',
      JSON.parse('{"op":"weights","weights":{"__proto__":10000}}'),
      'weights.__proto__: not a valid pool name',
    ],
    [
      'toString key',
      { op: 'weights', weights: { toString: 10000 } },
      'weights.toString: not a valid pool name',
    ],
    [
      'bad key',
      { op: 'weights', weights: { 'BLUE!': 10000 } },
      'weights."BLUE!": not a valid pool name',
    ],
    [
      'percent decimals',
      { op: 'weights', percent: { blue: 99.999, canary: 0.001 } },
      'percent.blue: at most two decimals',
    ],
    [
      'percent sum',
      { op: 'weights', percent: { blue: 50, canary: 49.99 } },
      'percent: must sum to 100 (got 99.99)',
    ],
    [
      'percent range',
      { op: 'weights', percent: { blue: 101, canary: -1 } },
      'percent.blue: must be a number 0..100',
    ],
    // canary
    ['canary both', { op: 'canary', percent: 10, basisPoints: 1000 }, /^percent: give exactly one/],
    ['canary neither', { op: 'canary' }, /^percent: give exactly one/],
    ['canary decimals', { op: 'canary', percent: 12.345 }, 'percent: at most two decimals'],
    ['canary over 100', { op: 'canary', percent: 100.01 }, 'percent: must be a number 0..100'],
    ['canary negative', { op: 'canary', percent: -1 }, 'percent: must be a number 0..100'],
    ['canary string', { op: 'canary', percent: '10' }, 'percent: must be a number 0..100'],
    ['canary Infinity', { op: 'canary', percent: Infinity }, 'percent: must be a number 0..100'],
    [
      'canary bp fraction',
      { op: 'canary', basisPoints: 10.5 },
      'basisPoints: must be an integer 0..10000',
    ],
    [
      'canary bp range',
      { op: 'canary', basisPoints: 10001 },
      'basisPoints: must be an integer 0..10000',
    ],
    // set-pool
    [
      'set-pool missing endpoints',
      setPool({ endpoints: undefined }),
      /^endpoints: must be an array/,
    ],
    [
      'set-pool no endpoints',
      setPool({ endpoints: [] }),
      'endpoints: must list at least one endpoint',
    ],
    [
      'set-pool too many endpoints',
      setPool({ endpoints: Array.from({ length: 65 }, (_, i) => `http://h${i}`) }),
      'endpoints: must list at most 64 endpoints',
    ],
    ['endpoint not a string', setPool({ endpoints: [5] }), 'endpoints[0]: must be a string'],
    [
      'endpoint too long',
      setPool({ endpoints: [`http://${'a'.repeat(2050)}`] }),
      'endpoints[0]: must be at most 2048 characters',
    ],
    [
      'endpoint relative',
      setPool({ endpoints: ['/x'] }),
      'endpoints[0]: "/x" is not an absolute URL',
    ],
    [
      'endpoint scheme',
      setPool({ endpoints: ['ftp://h'] }),
      'endpoints[0]: must be an http:// or https:// URL',
    ],
    [
      'endpoint file',
      setPool({ endpoints: ['file:///etc/passwd'] }),
      'endpoints[0]: must be an http:// or https:// URL',
    ],
    [
      'endpoint credentials',
      setPool({ endpoints: ['http://u:p@h'] }),
      'endpoints[0]: must not contain credentials',
    ],
    [
      'endpoint query',
      setPool({ endpoints: ['http://h/?a=1'] }),
      'endpoints[0]: must not have a query or fragment',
    ],
    [
      'endpoint empty query',
      setPool({ endpoints: ['http://h?'] }),
      'endpoints[0]: must not have a query or fragment',
    ],
    [
      'endpoint fragment',
      setPool({ endpoints: ['http://h#x'] }),
      'endpoints[0]: must not have a query or fragment',
    ],
    [
      'endpoint path',
      setPool({ endpoints: ['http://h/api'] }),
      'endpoints[0]: must not have a path (got "/api")',
    ],
    [
      'endpoint duplicate',
      setPool({ endpoints: ['http://h:80', 'http://h/'] }),
      'endpoints[1]: duplicate of endpoints[0] (http://h)',
    ],
    ['version not a string', setPool({ version: 1234567 }), 'version: must be a string'],
  ])('%s', (_name, input, message) => {
    expectError(() => parseCommandInput(input), V, message);
  });
});

describe('parseCommandInput: MUTABLE_VERSION', () => {
  it.each(['latest', 'v1.2', 'stable', '3f2c9e', 'g123456', `sha256:${'a'.repeat(63)}`])(
    '%s',
    (version) => {
      expectError(
        () => parseCommandInput(setPool({ version })),
        'MUTABLE_VERSION',
        `version: ${JSON.stringify(version)} is not an immutable identifier (git SHA of 7-40 hex chars or sha256:<64 hex>)`,
      );
    },
  );
  // SPEC §2: every rejected version is MUTABLE_VERSION; uppercase hex keeps a precise hint.
  it.each([
    'ABCDEF1',
    '3F2C9E1',
    '3f2C9e1',
    'A'.repeat(40),
    `sha256:${'AB'.repeat(32)}`,
    `SHA256:${'ab'.repeat(32)}`,
  ])('%s (uppercase hex)', (version) => {
    expectError(
      () => parseCommandInput(setPool({ version })),
      'MUTABLE_VERSION',
      `version: ${JSON.stringify(version)} must be lowercase`,
    );
  });
  it('truncates a huge version in the message', () => {
    expectError(
      () => parseCommandInput(setPool({ version: 'x'.repeat(100_000) })),
      'MUTABLE_VERSION',
      /^version: "x{80}…" is not an immutable identifier/,
    );
  });
});

describe('normaliseEndpoint', () => {
  it('keeps explicit non-default ports and IPv6 hosts', () => {
    expect(normaliseEndpoint('http://[::1]:3000', 'e')).toBe('http://[::1]:3000');
    expect(normaliseEndpoint('https://h:8443/', 'e')).toBe('https://h:8443');
  });
});

describe('parseTable', () => {
  const good = {
    revision: 7,
    pools: {
      blue: { version: SHA, endpoints: ['http://a:1/'], extra: true },
      green: { version: DIGEST, endpoints: ['http://b:2'] },
    },
    weights: { green: 2500, blue: 7500 },
    updatedAt: '2026-01-01T00:00:00.000Z',
    updatedBy: 'redis:1-0',
    junk: 'dropped',
  };

  it('returns a deep-frozen copy with known fields only, weights in pool order', () => {
    const table = parseTable(good);
    expect(table).toEqual({
      revision: 7,
      pools: {
        blue: { version: SHA, endpoints: ['http://a:1'] },
        green: { version: DIGEST, endpoints: ['http://b:2'] },
      },
      weights: { blue: 7500, green: 2500 },
      rules: [],
      updatedAt: '2026-01-01T00:00:00.000Z',
      updatedBy: 'redis:1-0',
    });
    expect(Object.keys(table.weights)).toEqual(['blue', 'green']);
    expect(Object.isFrozen(table)).toBe(true);
    expect(Object.isFrozen(table.pools)).toBe(true);
    expect(Object.isFrozen(table.pools.blue)).toBe(true);
    expect(Object.isFrozen(table.pools.blue?.endpoints)).toBe(true);
    expect(Object.isFrozen(table.weights)).toBe(true);
    expect(Object.isFrozen(good)).toBe(false);
  });

  it('round-trips a table through JSON', () => {
    const table = makeTable();
    expect(parseTable(JSON.parse(JSON.stringify(table)))).toEqual(table);
  });

  it('accepts pools named constructor and prototype and reads only own weights', () => {
    const input = {
      ...good,
      pools: {
        constructor: { version: SHA, endpoints: ['http://a:1'] },
        prototype: { version: DIGEST, endpoints: ['http://b:2'] },
      },
      weights: { prototype: 2500, constructor: 7500 },
    };
    const table = parseTable(JSON.parse(JSON.stringify(input)));
    expect(table.pools).toEqual({
      constructor: { version: SHA, endpoints: ['http://a:1'] },
      prototype: { version: DIGEST, endpoints: ['http://b:2'] },
    });
    expect(table.weights).toEqual({ constructor: 7500, prototype: 2500 });
    expect(Object.keys(table.weights)).toEqual(['constructor', 'prototype']);
    expect(parseTable(JSON.parse(JSON.stringify(table)))).toEqual(table);
    // A weight is never read off Object.prototype: constructor without its own weight is missing.
    expectError(
      () => parseTable({ ...input, weights: { prototype: 10000 } }),
      'VALIDATION_FAILED',
      'weights.constructor: missing',
    );
    expectError(
      () => parseTable({ ...input, weights: { ...input.weights, toString: 0 } }),
      'VALIDATION_FAILED',
      'weights.toString: no such pool',
    );
  });

  it.each<[string, unknown, string | RegExp]>([
    ['not an object', '[]', 'table: must be a JSON object'],
    ['revision 0', { ...good, revision: 0 }, 'revision: must be a positive integer'],
    ['revision fraction', { ...good, revision: 1.5 }, 'revision: must be a positive integer'],
    ['revision unsafe', { ...good, revision: 2 ** 53 }, 'revision: must be a positive integer'],
    ['missing updatedBy', { ...good, updatedBy: undefined }, 'updatedBy: must be a string'],
    ['updatedAt number', { ...good, updatedAt: 5 }, 'updatedAt: must be a string'],
    ['zero pools', { ...good, pools: {}, weights: {} }, 'pools: must hold at least one pool'],
    [
      'pool not object',
      { ...good, pools: { ...good.pools, blue: 'x' } },
      'pools.blue: must be a JSON object',
    ],
    [
      'bad pool name',
      { ...good, pools: { ...good.pools, Blue: good.pools.green } },
      'pools.Blue: not a valid pool name',
    ],
    [
      'mutable version',
      { ...good, pools: { ...good.pools, blue: { version: 'latest', endpoints: ['http://a'] } } },
      /^pools\.blue\.version: "latest" is not an immutable/,
    ],
    [
      // A stored table is corrupt data, not a request: VALIDATION_FAILED for every bad version.
      'uppercase version',
      { ...good, pools: { ...good.pools, blue: { version: 'ABCDEF1', endpoints: ['http://a'] } } },
      'pools.blue.version: "ABCDEF1" must be lowercase',
    ],
    [
      'bad endpoint',
      { ...good, pools: { ...good.pools, blue: { version: SHA, endpoints: ['http://a/x'] } } },
      /^pools\.blue\.endpoints\[0\]: must not have a path/,
    ],
    [
      'no endpoints',
      { ...good, pools: { ...good.pools, blue: { version: SHA, endpoints: [] } } },
      'pools.blue.endpoints: must list at least one endpoint',
    ],
    [
      'weight for unknown pool',
      { ...good, weights: { ...good.weights, red: 0 } },
      'weights.red: no such pool',
    ],
    ['missing weight', { ...good, weights: { blue: 10000 } }, 'weights.green: missing'],
    [
      'bad weight',
      { ...good, weights: { blue: 7500.5, green: 2499.5 } },
      'weights.blue: must be an integer 0..10000',
    ],
    [
      'weight sum',
      { ...good, weights: { blue: 7500, green: 2000 } },
      'weights: must sum to 10000 (got 9500)',
    ],
    [
      '__proto__ pool',
      JSON.parse(
        `{"revision":1,"pools":{"__proto__":{"version":"${SHA}","endpoints":["http://a"]}},"weights":{},"updatedAt":"","updatedBy":""}`,
      ),
      'pools.__proto__: not a valid pool name',
    ],
  ])('%s', (_name, input, message) => {
    expectError(() => parseTable(input), 'VALIDATION_FAILED', message);
  });
});
