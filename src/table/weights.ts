/**
 * Basis-point arithmetic (SPEC §2): percentages with at most two decimals, and the canary split
 * that keeps the other pools' ratio with largest-remainder rounding.
 */
import { fail } from '../errors.js';
import { TOTAL_BASIS_POINTS } from './types.js';

/** Slack for float error in `p * 100` (12.34 * 100 = 1233.9999999999998). */
const DECIMAL_EPSILON = 1e-6;

/**
 * Converts a percentage (0..100, at most two decimals) to integer basis points.
 * `field` is the path named in the VALIDATION_FAILED message, e.g. `percent.blue`.
 */
export function percentToBasisPoints(p: number, field: string): number {
  if (typeof p !== 'number' || !Number.isFinite(p)) {
    throw fail('VALIDATION_FAILED', `${field}: must be a number 0..100`);
  }
  if (p < 0 || p > 100) {
    throw fail('VALIDATION_FAILED', `${field}: must be a number 0..100`);
  }
  const scaled = p * 100;
  const weightBp = Math.round(scaled);
  if (Math.abs(scaled - weightBp) > DECIMAL_EPSILON) {
    throw fail('VALIDATION_FAILED', `${field}: at most two decimals`);
  }
  return weightBp;
}

/**
 * Weights after giving `pool` exactly `weightBp` basis points: the other pools share the rest in
 * proportion to their current weights, rounded with the largest-remainder method (ties go to the
 * pool listed first), so the result is exact integers summing to 10000 in the same key order.
 * Throws UNKNOWN_POOL when `pool` is not in `weights`, and NO_STABLE_POOL when the rest would
 * have to go to pools that all have weight 0.
 */
export function canaryWeights(
  weights: Readonly<Record<string, number>>,
  pool: string,
  weightBp: number,
): Record<string, number> {
  if (!Object.hasOwn(weights, pool)) {
    throw fail('UNKNOWN_POOL', `pool: unknown pool "${pool}"`);
  }
  if (!Number.isSafeInteger(weightBp) || weightBp < 0 || weightBp > TOTAL_BASIS_POINTS) {
    throw fail('VALIDATION_FAILED', `basisPoints: must be an integer 0..${TOTAL_BASIS_POINTS}`);
  }
  const names = Object.keys(weights);
  const restBp = TOTAL_BASIS_POINTS - weightBp;
  let othersBp = 0;
  for (const name of names) {
    if (name !== pool) othersBp += weights[name] ?? 0;
  }
  if (restBp > 0 && othersBp <= 0) {
    throw fail(
      'NO_STABLE_POOL',
      `pool: every pool other than "${pool}" has weight 0, so nothing can take the remaining ${restBp / 100} % (${restBp} basis points)`,
    );
  }

  // Integer arithmetic throughout: restBp * weight <= 10^8, so quotients and remainders are exact.
  const result: Record<string, number> = {};
  const remainders: { name: string; index: number; remainder: number }[] = [];
  let assignedBp = 0;
  names.forEach((name, index) => {
    if (name === pool) {
      result[name] = weightBp;
      return;
    }
    const numerator = restBp * (weights[name] ?? 0);
    const share = othersBp === 0 ? 0 : Math.floor(numerator / othersBp);
    result[name] = share;
    assignedBp += share;
    remainders.push({ name, index, remainder: othersBp === 0 ? 0 : numerator % othersBp });
  });
  remainders.sort((a, b) => b.remainder - a.remainder || a.index - b.index);
  let leftoverBp = restBp - assignedBp;
  for (const entry of remainders) {
    if (leftoverBp <= 0) break;
    result[entry.name] = (result[entry.name] ?? 0) + 1;
    leftoverBp -= 1;
  }
  return result;
}
