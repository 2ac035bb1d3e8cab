import { describe, expect, it } from 'vitest';
import {
  createPoolPicker,
  StickyIdSource,
  type PoolPicker,
} from '../../../src/table/sticky-hash.js';
import { canaryWeights } from '../../../src/table/weights.js';

const KEY_COUNT = 100_000;
const KEYS = Array.from({ length: KEY_COUNT }, (_, i) => `user-${i}`);

function assign(weights: Record<string, number>, picker: PoolPicker = createPoolPicker(weights)) {
  return KEYS.map((key) => picker(key));
}

function shares(assignment: readonly (string | undefined)[]): Map<string | undefined, number> {
  const counts = new Map<string | undefined, number>();
  for (const pool of assignment) counts.set(pool, (counts.get(pool) ?? 0) + 1);
  return counts;
}

describe('createPoolPicker', () => {
  it('returns undefined only when no pool has weight', () => {
    expect(createPoolPicker({})('k')).toBeUndefined();
    expect(createPoolPicker({ blue: 0, green: 0 })('k')).toBeUndefined();
    expect(createPoolPicker({ blue: 0, green: 10000 })('k')).toBe('green');
    expect(createPoolPicker({ blue: 1, green: 0 })('')).toBe('blue');
  });

  it('(1) is deterministic: separately built pickers agree on every key', () => {
    const weights = { blue: 4000, green: 3500, canary: 2500 };
    const first = assign(weights);
    // A second picker built from a copy with a different key order: the seeds depend on the
    // pool name only, so every replica agrees whatever order it read the table in.
    const second = assign({ canary: 2500, green: 3500, blue: 4000 });
    expect(second).toEqual(first);
    expect(first.slice(0, 3)).toEqual(assign(weights).slice(0, 3));
  });

  it.each<[string, Record<string, number>]>([
    ['50/50', { blue: 5000, green: 5000 }],
    ['95/5', { blue: 9500, canary: 500 }],
    ['33.33/33.33/33.34', { blue: 3333, green: 3333, canary: 3334 }],
    ['99.99/0.01', { blue: 9999, canary: 1 }],
    ['70/20/10 with an idle pool', { blue: 7000, green: 0, canary: 2000, red: 1000 }],
    ['1/99', { blue: 100, green: 9900 }],
  ])('(2) each share is within 0.5 points of its weight: %s', (_name, weights) => {
    const counts = shares(assign(weights));
    for (const [pool, weightBp] of Object.entries(weights)) {
      const sharePercent = ((counts.get(pool) ?? 0) / KEY_COUNT) * 100;
      expect(Math.abs(sharePercent - weightBp / 100), `${pool}: ${sharePercent}%`).toBeLessThan(
        0.5,
      );
    }
    expect(counts.get(undefined)).toBeUndefined();
  });

  it('(3) a key moves from A to B only if A fell or B rose', () => {
    const steps: Record<string, number>[] = [
      { blue: 10000, green: 0, canary: 0 },
      { blue: 9000, green: 0, canary: 1000 },
      { blue: 5000, green: 4000, canary: 1000 },
      { blue: 2000, green: 6000, canary: 2000 }, // blue falls, green and canary rise
      { blue: 3000, green: 6500, canary: 500 }, // blue and green rise, canary falls
      { blue: 0, green: 10000, canary: 0 },
      { blue: 3333, green: 3333, canary: 3334 },
    ];
    let moved = 0;
    for (let s = 1; s < steps.length; s++) {
      const from = steps[s - 1] as Record<string, number>;
      const to = steps[s] as Record<string, number>;
      const before = assign(from);
      const after = assign(to);
      for (let i = 0; i < KEY_COUNT; i++) {
        const a = before[i] as string;
        const b = after[i] as string;
        if (a === b) continue;
        moved++;
        const allowed = (to[a] ?? 0) < (from[a] ?? 0) || (to[b] ?? 0) > (from[b] ?? 0);
        if (!allowed) expect.fail(`${KEYS[i]} moved ${a} -> ${b} between steps ${s - 1} and ${s}`);
      }
    }
    expect(moved).toBeGreaterThan(0);
  });

  it('(4) a canary ramp never moves keys between other pools and only adds keys to the canary', () => {
    let weights: Record<string, number> = { blue: 7500, green: 2500, canary: 0 };
    let previous = assign(weights);
    for (const bp of [100, 500, 1000, 2500, 5000]) {
      weights = canaryWeights(weights, 'canary', bp);
      const current = assign(weights);
      let inCanary = 0;
      for (let i = 0; i < KEY_COUNT; i++) {
        const was = previous[i];
        const now = current[i];
        if (now === 'canary') inCanary++;
        if (was === now) continue;
        // the only allowed move is into the canary
        if (now !== 'canary') expect.fail(`${KEYS[i]} moved ${was} -> ${now} at canary ${bp} bp`);
      }
      expect(Math.abs((inCanary / KEY_COUNT) * 10000 - bp)).toBeLessThan(50);
      previous = current;
    }
  });
});

describe('StickyIdSource', () => {
  it('gives 22-character base64url ids that do not repeat, across refills of its pool', () => {
    const source = new StickyIdSource();
    // 1000 ids span several refills of the 4 KiB pool (256 ids each).
    const ids = new Set(Array.from({ length: 1000 }, () => source.next()));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    // Two sources never share their random bytes.
    const other = new StickyIdSource();
    for (let i = 0; i < 1000; i++) expect(ids.has(other.next())).toBe(false);
  });
});
