import { describe, expect, it } from 'vitest';
import { canaryWeights, percentToBasisPoints } from '../../../src/table/weights.js';
import { expectError } from './expect-error.js';

describe('percentToBasisPoints', () => {
  it.each([
    [0, 0],
    [100, 10000],
    [12.34, 1234],
    [0.01, 1],
    [33.33, 3333],
    [99.99, 9999],
    [4.35, 435],
    [0.07, 7],
  ])('%d %% = %d bp (float-safe)', (percent, bp) => {
    expect(percentToBasisPoints(percent, 'percent')).toBe(bp);
  });
  it.each([12.345, 0.001, 33.333])('%d has more than two decimals', (p) => {
    expectError(
      () => percentToBasisPoints(p, 'percent.x'),
      'VALIDATION_FAILED',
      'percent.x: at most two decimals',
    );
  });
  it.each([-0.01, 100.01, Number.NaN, Infinity])('%d is out of range', (p) => {
    expectError(
      () => percentToBasisPoints(p, 'percent'),
      'VALIDATION_FAILED',
      'percent: must be a number 0..100',
    );
  });
});

describe('canaryWeights', () => {
  it('splits the rest in the current ratio with largest-remainder rounding', () => {
    // rest 9000: a, b 2999.7 each, c 3000.6 -> floors sum 8998; the two leftover points go to
    // the largest remainders (a and b, .7 each)
    expect(canaryWeights({ a: 3333, b: 3333, c: 3334, canary: 0 }, 'canary', 1000)).toEqual({
      a: 3000,
      b: 3000,
      c: 3000,
      canary: 1000,
    });
    // rest 9000 over b:c = 3333:3334: b 4499.33, c 4500.67 -> one leftover point, to c
    expect(canaryWeights({ a: 3333, b: 3333, c: 3334 }, 'a', 1000)).toEqual({
      a: 1000,
      b: 4499,
      c: 4501,
    });
  });

  it('breaks remainder ties by pool order', () => {
    // rest 9999 over 1:1 -> 4999.5 each; the first listed pool gets the extra point
    expect(canaryWeights({ blue: 5000, green: 5000, canary: 0 }, 'canary', 1)).toEqual({
      blue: 5000,
      green: 4999,
      canary: 1,
    });
    expect(canaryWeights({ green: 5000, blue: 5000, canary: 0 }, 'canary', 1)).toEqual({
      green: 5000,
      blue: 4999,
      canary: 1,
    });
    // three equal pools, rest 10000: 3333.33 each; the first gets the extra point
    expect(canaryWeights({ x: 1, y: 1, z: 1, canary: 9997 }, 'canary', 0)).toEqual({
      x: 3334,
      y: 3333,
      z: 3333,
      canary: 0,
    });
  });

  it('keeps an exact ratio along a canary ramp', () => {
    let weights: Record<string, number> = { blue: 7500, green: 2500, canary: 0 };
    const seen: Record<string, number>[] = [];
    for (const bp of [100, 500, 1000, 2500, 5000, 10000]) {
      weights = canaryWeights(weights, 'canary', bp);
      seen.push(weights);
    }
    expect(seen).toEqual([
      { blue: 7425, green: 2475, canary: 100 },
      { blue: 7125, green: 2375, canary: 500 },
      { blue: 6750, green: 2250, canary: 1000 },
      { blue: 5625, green: 1875, canary: 2500 },
      { blue: 3750, green: 1250, canary: 5000 },
      { blue: 0, green: 0, canary: 10000 },
    ]);
  });

  it('never gives a zero-weight pool anything', () => {
    expect(canaryWeights({ blue: 9999, green: 0, red: 1, canary: 0 }, 'canary', 3333)).toEqual({
      blue: 6666,
      green: 0,
      red: 1,
      canary: 3333,
    });
  });

  it('gives the whole table to the canary at 10000 even with no other traffic', () => {
    expect(canaryWeights({ blue: 0, canary: 10000 }, 'canary', 10000)).toEqual({
      blue: 0,
      canary: 10000,
    });
  });

  it('NO_STABLE_POOL when every other pool has weight 0', () => {
    expectError(
      () => canaryWeights({ blue: 0, green: 0, canary: 10000 }, 'canary', 500),
      'NO_STABLE_POOL',
      /^pool: every pool other than "canary" has weight 0/,
    );
    expectError(() => canaryWeights({ canary: 10000 }, 'canary', 0), 'NO_STABLE_POOL', /^pool:/);
  });

  it('UNKNOWN_POOL for a pool not in the table', () => {
    expectError(
      () => canaryWeights({ blue: 10000 }, 'canary', 500),
      'UNKNOWN_POOL',
      'pool: unknown pool "canary"',
    );
    for (const name of ['constructor', 'toString', 'hasOwnProperty', 'prototype']) {
      expectError(
        () => canaryWeights({ blue: 10000 }, name, 500),
        'UNKNOWN_POOL',
        `pool: unknown pool "${name}"`,
      );
    }
  });
});
