/** resolveAnalysis: SPEC §9's defaults, any subset, and errors naming the field. */
import { describe, expect, test } from 'vitest';
import { isSwitchyardError } from '../../../src/errors.js';
import { DEFAULT_ANALYSIS, resolveAnalysis } from '../../../src/rollout/analysis.js';

function problem(input: unknown): string {
  try {
    resolveAnalysis(input);
  } catch (err) {
    expect(isSwitchyardError(err, 'VALIDATION_FAILED')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected a validation error');
}

describe('resolveAnalysis', () => {
  test('SPEC defaults when nothing is given', () => {
    expect(resolveAnalysis(undefined)).toEqual({
      tolerance: { ratio: 1.5, points: 0.5 },
      latency: { quantile: 0.99, ratio: 1.5 },
      hardLimit: { errorRatio: 0.2, minRequests: 20 },
      minRequests: 250,
      minRequestsToPromote: 1000,
      maxStepDurationMs: 1_800_000,
      windowMs: 300_000,
      dryRun: false,
    });
    expect(resolveAnalysis({})).toEqual(DEFAULT_ANALYSIS);
  });

  test('any subset overrides its fields only', () => {
    const a = resolveAnalysis({
      tolerance: { points: 1 },
      maxStepDuration: '10m',
      window: 90_000,
      dryRun: true,
    });
    expect(a.tolerance).toEqual({ ratio: 1.5, points: 1 });
    expect(a.maxStepDurationMs).toBe(600_000);
    expect(a.windowMs).toBe(90_000);
    expect(a.dryRun).toBe(true);
    expect(a.latency).toEqual(DEFAULT_ANALYSIS.latency);
  });

  test('every problem is reported with its field path', () => {
    const message = problem({
      tolerance: { ratio: 0.5 },
      latency: { quantile: 1 },
      hardLimit: { minRequests: 2.5 },
      minRequests: '250',
      maxStepDuration: 'soon',
      dryRun: 'yes',
      surprise: 1,
    });
    for (const part of [
      'analysis.tolerance.ratio: must be a number >= 1',
      'analysis.latency.quantile: must be a number between 0 and 1',
      'analysis.hardLimit.minRequests: must be an integer >= 1',
      'analysis.minRequests: must be an integer >= 1',
      'analysis.maxStepDuration: must be a duration',
      'analysis.dryRun: must be true or false',
      'analysis.surprise: unknown field',
    ]) {
      expect(message).toContain(part);
    }
    expect(problem('fast')).toBe('analysis: must be an object');
    expect(problem({ latency: [] })).toBe('analysis.latency: must be an object');
  });
});
