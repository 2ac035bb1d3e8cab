/**
 * A rollout's record (SPEC §9) as the status shows it: phase, steps, the target's weight, the
 * live judgement and the decisions with their reasons.
 */
import type { Verdict } from './judge.js';
import type { RolloutPlan, RolloutStep } from './rollout-plan.js';

/** Phases of SPEC §9. */
export type RolloutPhase = 'progressing' | 'paused' | 'awaiting-approval' | 'promoted' | 'aborted';

/** Every phase, for the phase metric. */
export const PHASES: readonly RolloutPhase[] = [
  'progressing',
  'paused',
  'awaiting-approval',
  'promoted',
  'aborted',
];

/** One recorded decision. */
export interface RolloutDecision {
  readonly time: string;
  readonly action: string;
  readonly reason: string;
  /** True when `analysis.dryRun` kept the engine from acting on it. */
  readonly dryRun?: boolean;
}

/** The live judgement of the current period. */
export interface RolloutJudgement {
  readonly target: Verdict['target'];
  readonly baseline: Verdict['baseline'];
  readonly verdict: Verdict['verdict'];
  readonly reason: string;
  readonly evidence: Verdict['evidence'];
  readonly overdue: boolean;
}

/** A rollout as the status shows it. */
export interface RolloutRecord {
  readonly id: string;
  readonly pool: string;
  readonly baseline: string;
  readonly version: string | null;
  readonly strategy: RolloutPlan['strategy'];
  phase: RolloutPhase;
  step: number;
  readonly steps: readonly RolloutStep[];
  targetWeightBp: number;
  readonly startedAt: string;
  updatedAt: string;
  /** Id of the replica driving it (the lease holder with Redis). */
  driver: string;
  readonly analysis: RolloutPlan['analysis'];
  judgement: RolloutJudgement | null;
  /** When the current step's clock started; null while the replicas have not all applied it. */
  stepStartedAt?: string | null;
  /**
   * Why the rollout is not moving on although progressing: replicas that have not applied the
   * step's weights yet, or the control store unreachable (as this replica sees it); else null.
   */
  waiting?: string | null;
  readonly decisions: RolloutDecision[];
}

/** Phases in which the rollout owns the weights. */
export const ACTIVE: ReadonlySet<RolloutPhase> = new Set([
  'progressing',
  'paused',
  'awaiting-approval',
]);
