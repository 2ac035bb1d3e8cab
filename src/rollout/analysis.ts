/**
 * A rollout's `analysis` settings (SPEC §9): every field has a default and any subset may be
 * given. resolveAnalysis() validates a request body's `analysis` and fills the defaults; errors
 * name the field (`analysis.tolerance.ratio: must be a number >= 1`).
 */
import { fail } from '../errors.js';

/** The judge's settings, all present, durations in milliseconds. */
export interface Analysis {
  /** The target fails when its error ratio is above max(ratio × baseline, baseline + points %). */
  readonly tolerance: { readonly ratio: number; readonly points: number };
  /** ... or its latency quantile is above ratio × the baseline's (after a step's warm-up). */
  readonly latency: { readonly quantile: number; readonly ratio: number };
  /** ... or, at once, its error ratio reaches errorRatio after at least minRequests requests. */
  readonly hardLimit: { readonly errorRatio: number; readonly minRequests: number };
  /** Target requests a step needs before it may pass. */
  readonly minRequests: number;
  /** Target requests in all the rollout's steps before the last step may pass. */
  readonly minRequestsToPromote: number;
  /** A step still collecting evidence after this long pauses for approval. */
  readonly maxStepDurationMs: number;
  /** How long the `blue-green` strategy judges after the switch. */
  readonly windowMs: number;
  /** Judge and record, never act. */
  readonly dryRun: boolean;
}

/** SPEC §9's defaults. */
export const DEFAULT_ANALYSIS: Analysis = Object.freeze({
  tolerance: Object.freeze({ ratio: 1.5, points: 0.5 }),
  latency: Object.freeze({ quantile: 0.99, ratio: 1.5 }),
  hardLimit: Object.freeze({ errorRatio: 0.2, minRequests: 20 }),
  minRequests: 250,
  minRequestsToPromote: 1000,
  maxStepDurationMs: 30 * 60_000,
  windowMs: 5 * 60_000,
  dryRun: false,
});

/** Latency of the first 10 s of a step is not judged (cold caches, JIT, connection set-up). */
export const LATENCY_WARMUP_MS = 10_000;

/** Longest duration accepted, as for every other duration (a Node timer's limit, ~24.8 days). */
const MAX_DURATION_MS = 2_147_483_647;

type Problems = string[];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unknownKeys(
  path: string,
  value: Record<string, unknown>,
  known: readonly string[],
  problems: Problems,
): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) problems.push(`${path}.${key}: unknown field`);
  }
}

function num(
  path: string,
  value: unknown,
  fallback: number,
  ok: (n: number) => boolean,
  rule: string,
  problems: Problems,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) {
    problems.push(`${path}: must be ${rule}`);
    return fallback;
  }
  return value;
}

function duration(path: string, value: unknown, fallback: number, problems: Problems): number {
  if (value === undefined) return fallback;
  let ms = Number.NaN;
  if (typeof value === 'number') ms = value;
  else if (typeof value === 'string') {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
    if (m) {
      const unit = m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : m[2] === 'h' ? 3_600_000 : 1;
      ms = Math.round(Number(m[1]) * unit);
    }
  }
  if (!(ms > 0 && ms <= MAX_DURATION_MS)) {
    problems.push(`${path}: must be a duration such as 30s, 5m or 1h (milliseconds if a number)`);
    return fallback;
  }
  return ms;
}

function group(
  path: string,
  value: unknown,
  known: readonly string[],
  problems: Problems,
): Record<string, unknown> {
  if (value === undefined) return {};
  if (!isObject(value)) {
    problems.push(`${path}: must be an object`);
    return {};
  }
  unknownKeys(path, value, known, problems);
  return value;
}

const isInt = (min: number) => (n: number) => Number.isInteger(n) && n >= min;

/**
 * Validates `input` (a request's `analysis`, or undefined) and fills SPEC §9's defaults. Throws
 * VALIDATION_FAILED listing every problem with its field path.
 */
export function resolveAnalysis(input: unknown, path = 'analysis'): Analysis {
  if (input === undefined) return DEFAULT_ANALYSIS;
  const problems: Problems = [];
  const top = group(
    path,
    input,
    [
      'tolerance',
      'latency',
      'hardLimit',
      'minRequests',
      'minRequestsToPromote',
      'maxStepDuration',
      'window',
      'dryRun',
    ],
    problems,
  );
  const d = DEFAULT_ANALYSIS;
  const tol = group(`${path}.tolerance`, top.tolerance, ['ratio', 'points'], problems);
  const lat = group(`${path}.latency`, top.latency, ['quantile', 'ratio'], problems);
  const hard = group(`${path}.hardLimit`, top.hardLimit, ['errorRatio', 'minRequests'], problems);
  const dryRun = top.dryRun ?? d.dryRun;
  if (typeof dryRun !== 'boolean') problems.push(`${path}.dryRun: must be true or false`);
  const p = (name: string) => `${path}.${name}`;
  const analysis: Analysis = {
    tolerance: {
      ratio: num(
        p('tolerance.ratio'),
        tol.ratio,
        d.tolerance.ratio,
        (n) => n >= 1,
        'a number >= 1',
        problems,
      ),
      points: num(
        p('tolerance.points'),
        tol.points,
        d.tolerance.points,
        (n) => n >= 0 && n <= 100,
        'a number of percentage points 0..100',
        problems,
      ),
    },
    latency: {
      quantile: num(
        p('latency.quantile'),
        lat.quantile,
        d.latency.quantile,
        (n) => n > 0 && n < 1,
        'a number between 0 and 1 (e.g. 0.99)',
        problems,
      ),
      ratio: num(
        p('latency.ratio'),
        lat.ratio,
        d.latency.ratio,
        (n) => n >= 1,
        'a number >= 1',
        problems,
      ),
    },
    hardLimit: {
      errorRatio: num(
        p('hardLimit.errorRatio'),
        hard.errorRatio,
        d.hardLimit.errorRatio,
        (n) => n > 0 && n <= 1,
        'a share above 0, at most 1 (e.g. 0.2)',
        problems,
      ),
      minRequests: num(
        p('hardLimit.minRequests'),
        hard.minRequests,
        d.hardLimit.minRequests,
        isInt(1),
        'an integer >= 1',
        problems,
      ),
    },
    minRequests: num(
      p('minRequests'),
      top.minRequests,
      d.minRequests,
      isInt(1),
      'an integer >= 1',
      problems,
    ),
    minRequestsToPromote: num(
      p('minRequestsToPromote'),
      top.minRequestsToPromote,
      d.minRequestsToPromote,
      isInt(0),
      'an integer >= 0',
      problems,
    ),
    maxStepDurationMs: duration(
      p('maxStepDuration'),
      top.maxStepDuration,
      d.maxStepDurationMs,
      problems,
    ),
    windowMs: duration(p('window'), top.window, d.windowMs, problems),
    dryRun: dryRun === true,
  };
  if (problems.length > 0) {
    throw fail('VALIDATION_FAILED', problems.join('; '));
  }
  return analysis;
}
