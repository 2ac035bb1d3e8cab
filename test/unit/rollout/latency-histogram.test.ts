/** LatencyHistogram: fixed log buckets, quantiles within a bucket, merging across replicas. */
import { describe, expect, test } from 'vitest';
import {
  BUCKET_COUNT,
  LatencyHistogram,
  MAX_MS,
  bucketIndex,
  bucketLowerMs,
  bucketUpperMs,
} from '../../../src/rollout/latency-histogram.js';
import { createRandom, normal } from './simulate.js';

describe('LatencyHistogram', () => {
  test('every bucket holds its own edges: lower inclusive, upper exclusive', () => {
    expect(bucketIndex(0)).toBe(0);
    expect(bucketIndex(0.999)).toBe(0);
    expect(bucketIndex(-5)).toBe(0);
    expect(bucketIndex(Number.NaN)).toBe(0);
    for (let i = 1; i < BUCKET_COUNT - 1; i += 1) {
      expect(bucketIndex(bucketLowerMs(i))).toBe(i);
      expect(bucketIndex(bucketUpperMs(i) * (1 - 1e-9))).toBe(i);
      // about 4.4 % wide
      expect(bucketUpperMs(i) / bucketLowerMs(i)).toBeCloseTo(2 ** (1 / 16), 12);
    }
    expect(bucketIndex(MAX_MS)).toBe(BUCKET_COUNT - 1);
    expect(bucketIndex(1e9)).toBe(BUCKET_COUNT - 1);
    expect(MAX_MS).toBeGreaterThan(60_000);
  });

  test('quantiles are within one bucket above the exact sample quantile', () => {
    const random = createRandom(1);
    const h = new LatencyHistogram();
    const samples: number[] = [];
    for (let i = 0; i < 50_000; i += 1) {
      const ms = 30 * Math.exp(0.6 * normal(random));
      samples.push(ms);
      h.observe(ms);
    }
    samples.sort((a, b) => a - b);
    for (const q of [0.5, 0.9, 0.99, 0.999]) {
      const exact = samples[Math.ceil(q * samples.length) - 1] as number;
      const got = h.quantile(q);
      expect(got).toBeGreaterThanOrEqual(exact);
      expect(got / exact).toBeLessThanOrEqual(2 ** (1 / 16) + 1e-9);
    }
    expect(h.total).toBe(50_000);
  });

  test('merging replicas equals observing everything in one', () => {
    const random = createRandom(2);
    const all = new LatencyHistogram();
    const replicas = [new LatencyHistogram(), new LatencyHistogram(), new LatencyHistogram()];
    for (let i = 0; i < 9_000; i += 1) {
      const ms = 5 + 200 * random();
      all.observe(ms);
      replicas[i % 3]?.observe(ms);
    }
    const merged = new LatencyHistogram();
    for (const r of replicas) merged.add(r);
    expect(merged.toJSON()).toEqual(all.toJSON());
    expect(merged.quantile(0.99)).toBe(all.quantile(0.99));
    // Through the store's sparse JSON form and back.
    const stored = LatencyHistogram.fromJSON(
      JSON.parse(JSON.stringify(replicas[0])) as Record<string, number>,
    );
    expect(stored.toJSON()).toEqual(replicas[0]?.toJSON());
  });

  test('since() gives the samples after a snapshot (a step after its warm-up)', () => {
    const h = new LatencyHistogram();
    for (let i = 0; i < 100; i += 1) h.observe(500);
    const warm = h.clone();
    for (let i = 0; i < 10; i += 1) h.observe(20);
    const after = h.since(warm);
    expect(after.total).toBe(10);
    expect(after.quantile(0.99)).toBe(bucketUpperMs(bucketIndex(20)));
    expect(() => warm.since(h)).toThrow(/earlier histogram has more samples/);
  });

  test('countAtLeast counts only buckets wholly at or above the threshold', () => {
    const h = new LatencyHistogram();
    h.observe(10);
    h.observe(100);
    h.observe(100_000);
    expect(h.countAtLeast(0)).toBe(3);
    expect(h.countAtLeast(50)).toBe(2);
    // 100 ms sits in a bucket starting below 100 ms: not counted (an undercount, on purpose).
    expect(h.countAtLeast(bucketLowerMs(bucketIndex(100)) + 0.001)).toBe(1);
    expect(h.countAtLeast(1e9)).toBe(0);
  });

  test('bad merges and quantiles are refused', () => {
    const h = new LatencyHistogram();
    expect(h.quantile(0.99)).toBe(0);
    expect(() => h.quantile(0)).toThrow(/quantile 0 is not in \(0, 1\]/);
    expect(() => h.addCount(BUCKET_COUNT, 1)).toThrow(/latency bucket/);
    expect(() => h.addCount(3, -1)).toThrow(/count -1/);
    expect(() => LatencyHistogram.fromJSON({ x: 1 })).toThrow(/latency bucket NaN/);
  });
});
