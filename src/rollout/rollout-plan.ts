/**
 * The body of `POST /v1/rollouts` (SPEC §9), validated into a plan. Pure: the table it is checked
 * against is passed in. Errors name the field (`steps[2].pause: must be a duration ...`).
 */
import { fail } from '../errors.js';
import { isPoolName } from '../table/validate.js';
import { TOTAL_BASIS_POINTS, type RoutingTable } from '../table/types.js';
import { resolveAnalysis, type Analysis } from './analysis.js';
import { parseWebhooks, type Webhook } from './webhooks.js';

/** One step as the status shows it: a weight in basis points, a timed pause or an approval. */
export type RolloutStep =
  | { readonly basisPoints: number }
  | { readonly pause: string; readonly pauseMs: number }
  | { readonly pause: 'approval' };

/** A validated start request. */
export interface RolloutPlan {
  readonly pool: string;
  readonly baseline: string;
  readonly version: string | null;
  readonly endpoints: readonly string[] | null;
  readonly strategy: 'steps' | 'blue-green';
  readonly steps: readonly RolloutStep[];
  readonly analysis: Analysis;
  /** Release webhooks (SPEC §10); empty when none were given. */
  readonly webhooks: readonly Webhook[];
}

/** SPEC §9's default steps: 5 %, pause 1m, 25 %, pause 2m, 50 %, pause 2m, 100 %. */
export const DEFAULT_STEPS: readonly RolloutStep[] = Object.freeze([
  { basisPoints: 500 },
  { pause: '1m', pauseMs: 60_000 },
  { basisPoints: 2500 },
  { pause: '2m', pauseMs: 120_000 },
  { basisPoints: 5000 },
  { pause: '2m', pauseMs: 120_000 },
  { basisPoints: TOTAL_BASIS_POINTS },
]);

const START_FIELDS = [
  'pool',
  'version',
  'endpoints',
  'baseline',
  'steps',
  'strategy',
  'analysis',
  'webhooks',
];

/** True for a weight step. */
export function isWeightStep(step: RolloutStep): step is { readonly basisPoints: number } {
  return 'basisPoints' in step;
}

/** Milliseconds of `text` (`30s`, `5m`, `1h`, `250ms`), or NaN. */
function parseDurationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!m) return Number.NaN;
  const unit = m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 3_600_000;
  return Math.round(Number(m[1]) * unit);
}

function parseStep(raw: unknown, path: string): RolloutStep {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw fail(
      'VALIDATION_FAILED',
      `${path}: must be an object: {"weight": P}, {"basisPoints": N} or {"pause": "5m" | "approval"}`,
    );
  }
  const step = raw as Record<string, unknown>;
  const keys = Object.keys(step);
  if (keys.length !== 1) {
    throw fail('VALIDATION_FAILED', `${path}: give exactly one of weight, basisPoints or pause`);
  }
  const [key] = keys;
  const value = step[key as string];
  if (key === 'weight') {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 100) {
      throw fail('VALIDATION_FAILED', `${path}.weight: must be a percentage above 0, at most 100`);
    }
    const bp = Math.round(value * 100);
    if (bp < 1) throw fail('VALIDATION_FAILED', `${path}.weight: below one basis point`);
    return { basisPoints: bp };
  }
  if (key === 'basisPoints') {
    if (
      typeof value !== 'number' ||
      !Number.isInteger(value) ||
      value < 1 ||
      value > TOTAL_BASIS_POINTS
    ) {
      throw fail(
        'VALIDATION_FAILED',
        `${path}.basisPoints: must be an integer 1..${TOTAL_BASIS_POINTS}`,
      );
    }
    return { basisPoints: value };
  }
  if (key === 'pause') {
    if (value === 'approval') return { pause: 'approval' };
    const ms = typeof value === 'string' ? parseDurationMs(value) : Number.NaN;
    if (!(ms > 0 && ms <= 2_147_483_647)) {
      throw fail(
        'VALIDATION_FAILED',
        `${path}.pause: must be "approval" or a duration such as 30s, 5m or 1h`,
      );
    }
    return { pause: value as string, pauseMs: ms };
  }
  throw fail(
    'VALIDATION_FAILED',
    `${path}.${String(key)}: unknown field (weight, basisPoints or pause)`,
  );
}

function parseSteps(raw: unknown): RolloutStep[] {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > 100) {
    throw fail('VALIDATION_FAILED', 'steps: must be an array of 1..100 steps');
  }
  const steps = raw.map((s, i) => parseStep(s, `steps[${i}]`));
  let last = 0;
  for (const [i, step] of steps.entries()) {
    if (!isWeightStep(step)) continue;
    if (step.basisPoints < last) {
      // The sticky ramp is monotonic: a user moved to the target is never moved back.
      throw fail(
        'VALIDATION_FAILED',
        `steps[${i}]: weights must not decrease (${step.basisPoints} < ${last} basis points)`,
      );
    }
    last = step.basisPoints;
  }
  const lastStep = steps[steps.length - 1];
  if (
    lastStep === undefined ||
    !isWeightStep(lastStep) ||
    lastStep.basisPoints !== TOTAL_BASIS_POINTS
  ) {
    throw fail('VALIDATION_FAILED', 'steps: the last step must be {"weight": 100}');
  }
  return steps;
}

/**
 * Validates a start body against `table`. Throws VALIDATION_FAILED naming the field, or
 * UNKNOWN_POOL (404) for a target or baseline the table does not have.
 */
export function parseRolloutStart(body: unknown, table: RoutingTable | null): RolloutPlan {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw fail('VALIDATION_FAILED', 'body: must be a JSON object');
  }
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) {
    if (!START_FIELDS.includes(key)) throw fail('VALIDATION_FAILED', `${key}: unknown field`);
  }
  if (typeof b.pool !== 'string' || !isPoolName(b.pool)) {
    throw fail('VALIDATION_FAILED', 'pool: must name the target pool');
  }
  const pool = b.pool;
  if (table === null || !Object.hasOwn(table.pools, pool)) {
    throw fail('UNKNOWN_POOL', `pool: no pool named "${pool}"`);
  }
  const version = b.version === undefined ? null : b.version;
  if (version !== null && typeof version !== 'string') {
    throw fail('VALIDATION_FAILED', 'version: must be a string');
  }
  const endpoints = b.endpoints === undefined ? null : b.endpoints;
  if (
    endpoints !== null &&
    (!Array.isArray(endpoints) || !endpoints.every((e) => typeof e === 'string'))
  ) {
    throw fail('VALIDATION_FAILED', 'endpoints: must be an array of URLs');
  }
  let baseline: string;
  if (b.baseline === undefined) {
    const others = Object.keys(table.pools).filter((p) => p !== pool);
    others.sort((x, y) => (table.weights[y] ?? 0) - (table.weights[x] ?? 0));
    const best = others[0];
    if (best === undefined || (table.weights[best] ?? 0) === 0) {
      throw fail(
        'VALIDATION_FAILED',
        'baseline: no other pool has traffic to compare the target with',
      );
    }
    baseline = best;
  } else {
    if (typeof b.baseline !== 'string' || !isPoolName(b.baseline)) {
      throw fail('VALIDATION_FAILED', 'baseline: must name a pool');
    }
    baseline = b.baseline;
    if (!Object.hasOwn(table.pools, baseline)) {
      throw fail('UNKNOWN_POOL', `baseline: no pool named "${baseline}"`);
    }
    if (baseline === pool) throw fail('VALIDATION_FAILED', 'baseline: must differ from pool');
    if ((table.weights[baseline] ?? 0) === 0) {
      throw fail(
        'VALIDATION_FAILED',
        `baseline: pool "${baseline}" has weight 0: nothing to compare the target with`,
      );
    }
  }
  let strategy: RolloutPlan['strategy'] = 'steps';
  if (b.strategy !== undefined) {
    if (b.strategy !== 'blue-green' && b.strategy !== 'canary') {
      throw fail('VALIDATION_FAILED', 'strategy: must be "blue-green" or "canary"');
    }
    if (b.strategy === 'blue-green') {
      if (b.steps !== undefined)
        throw fail('VALIDATION_FAILED', 'steps: not with strategy "blue-green"');
      strategy = 'blue-green';
    }
  }
  const steps =
    strategy === 'blue-green'
      ? [{ basisPoints: TOTAL_BASIS_POINTS }]
      : b.steps === undefined
        ? [...DEFAULT_STEPS]
        : parseSteps(b.steps);
  const analysis = resolveAnalysis(b.analysis);
  const webhooks = parseWebhooks(b.webhooks);
  return {
    pool,
    baseline,
    version: version,
    endpoints: endpoints,
    strategy,
    steps,
    analysis,
    webhooks,
  };
}
