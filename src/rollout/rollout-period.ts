/**
 * The judged period of a rollout's current weight (SPEC §9): counts are cumulative per pool, so a
 * period's counts are the difference between now and the snapshot taken when its clock started.
 */
import type { PoolOutcomeSnapshot } from '../data/pool-outcomes.js';
import type { PoolCounts } from './judge.js';
import type { LatencyHistogram } from './latency-histogram.js';
import { isWeightStep } from './rollout-plan.js';
import type { RolloutRecord } from './rollout-record.js';
import { TOTAL_BASIS_POINTS } from '../table/types.js';

/** Per-pool cumulative counts at one moment. */
export type CountsSnapshot = ReadonlyMap<string, PoolOutcomeSnapshot>;

/** No requests. */
export const EMPTY: PoolCounts = Object.freeze({ requests: 0, errors: 0 });

/** The judged period of the current weight. */
export interface Period {
  /** Counts when the weight was applied everywhere (the clock start). */
  readonly start: ReadonlyMap<string, PoolOutcomeSnapshot>;
  readonly startedAtMs: number;
  /** Counts at the end of the latency warm-up, once reached. */
  warm: ReadonlyMap<string, PoolOutcomeSnapshot> | null;
  /** Baseline counts judged instead of the live ones (blue-green: from before the switch). */
  readonly frozenBaseline: PoolCounts | null;
  /** A dry-run failure was recorded for this period already. */
  failureRecorded: boolean;
}

/**
 * `pool`'s counts between `start` and `now`; with `warm` (the snapshot at the end of the latency
 * warm-up) also the latency of the answers since then.
 */
export function countsSince(
  pool: string,
  start: CountsSnapshot,
  now: CountsSnapshot,
  warm: CountsSnapshot | null = null,
): PoolCounts {
  const a = start.get(pool);
  const b = now.get(pool);
  if (b === undefined) return EMPTY;
  const from = warm?.get(pool);
  return {
    // Summed over replicas (Redis), a replica's counts may drop out: never below zero.
    requests: Math.max(0, b.requests - (a?.requests ?? 0)),
    errors: Math.max(0, b.errors - (a?.errors ?? 0)),
    ...(warm === null ? {} : { latency: from ? latencySince(b.latency, from.latency) : b.latency }),
  };
}

/** `now.since(earlier)`, or everything in `now` when `earlier` is not an earlier snapshot of it. */
function latencySince(now: LatencyHistogram, earlier: LatencyHistogram): LatencyHistogram {
  try {
    return now.since(earlier);
  } catch {
    return now;
  }
}

/** Judged periods of a rollout (the false-abort budget is split among them). */
export function judgedSteps(r: RolloutRecord): number {
  if (r.strategy === 'blue-green') return 1;
  return Math.max(
    1,
    r.steps.filter((s) => isWeightStep(s) && s.basisPoints < TOTAL_BASIS_POINTS).length,
  );
}

/** `2.5 %` for 250 basis points. */
export function formatBp(bp: number): string {
  return `${String(bp / 100)} %`;
}
