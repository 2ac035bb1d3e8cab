/** The judge's statistics: bounds against known values, coverage and validity by simulation. */
import { describe, expect, test } from 'vitest';
import {
  JEFFREYS,
  confidenceSequence,
  lnGamma,
  mixtureEValue,
  upperBound,
} from '../../../src/rollout/judge-stats.js';
import { createRandom } from './simulate.js';

describe('judge statistics', () => {
  test('lnGamma matches factorials and Γ(½) = √π', () => {
    expect(lnGamma(1)).toBeCloseTo(0, 9);
    expect(lnGamma(11)).toBeCloseTo(Math.log(3_628_800), 10);
    expect(lnGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 9);
    expect(lnGamma(1001)).toBeCloseTo(5912.128178488163, 7);
  });

  test('the exact upper bound matches closed forms', () => {
    // 0 hits: 1 − (1 − c)^(1/n).
    expect(upperBound(0, 100, 0.9)).toBeCloseTo(1 - 0.1 ** (1 / 100), 9);
    // 2 of 250 at 90 %: the chi-square form χ²(0.9; 6) / (2n) ≈ 10.645 / 500, within the
    // Poisson approximation's error.
    expect(upperBound(2, 250, 0.9)).toBeCloseTo(0.0213, 3);
    expect(upperBound(5, 5, 0.9)).toBe(1);
    // Large counts do not underflow: 1 % of 100,000 bounds near 1 % + 1.28 σ.
    expect(upperBound(1_000, 100_000, 0.9)).toBeCloseTo(0.01 + 1.2816 * Math.sqrt(0.0099 / 1e5), 4);
  });

  test.each([
    [0.02, JEFFREYS],
    [0.001, { a: 0.5, b: 50 }],
    [0.2, { a: 0.5, b: 50 }],
  ])('the confidence sequence holds p = %d at every look, >= 1 − α of the time', (p, prior) => {
    const random = createRandom(8);
    const alpha = 0.05;
    let misses = 0;
    const runs = 500;
    for (let r = 0; r < runs; r += 1) {
      let hits = 0;
      for (let n = 1; n <= 3_000; n += 1) {
        if (random() < p) hits += 1;
        if (n % 25 !== 0) continue;
        const { lower, upper } = confidenceSequence(hits, n, alpha, prior);
        if (p < lower || p > upper) {
          misses += 1;
          break;
        }
      }
    }
    expect(misses / runs).toBeLessThan(alpha);
  });

  test('confidence sequence edge cases', () => {
    const alpha = 0.05;
    const { lower, upper } = confidenceSequence(100, 10_000, alpha);
    expect(lower).toBeLessThan(0.01);
    expect(upper).toBeGreaterThan(0.01);
    expect(confidenceSequence(0, 0, alpha)).toEqual({ lower: 0, upper: 1 });
  });

  test('the mixture e-value has mean 1 at the null boundary, less below it, at every n', () => {
    // Exact expectation over Binomial(n, p): Monte Carlo would miss the rare huge values that
    // carry the mean of a heavy-tailed e-value.
    const mean = (n: number, p: number, null0: number): number => {
      let sum = 0;
      for (let h = 0; h <= n; h += 1) {
        const lnPmf =
          lnGamma(n + 1) -
          lnGamma(h + 1) -
          lnGamma(n - h + 1) +
          h * Math.log(p) +
          (n - h) * Math.log1p(-p);
        // Terms too unlikely to matter would only overflow (0 × Infinity).
        if (lnPmf > -600) sum += Math.exp(lnPmf) * mixtureEValue(h, n, null0);
      }
      return sum;
    };
    for (const n of [1, 10, 50, 100]) {
      expect(mean(n, 0.05, 0.05)).toBeCloseTo(1, 6);
      expect(mean(n, 0.01, 0.05)).toBeLessThan(1);
    }
    expect(mixtureEValue(0, 0, 0.05)).toBe(1);
    expect(mixtureEValue(20, 100, 0.01)).toBeGreaterThan(1e6);
    // Decreasing in the null share: a conservative (larger) boundary never adds evidence.
    expect(mixtureEValue(10, 200, 0.02)).toBeLessThan(mixtureEValue(10, 200, 0.015));
  });
});
