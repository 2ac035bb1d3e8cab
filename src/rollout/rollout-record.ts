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
  readonly driver: string;
  readonly analysis: RolloutPlan['analysis'];
  judgement: RolloutJudgement | null;
  readonly decisions: RolloutDecision[];
}

/** Phases in which the rollout owns the weights. */
export const ACTIVE: ReadonlySet<RolloutPhase> = new Set([
  'progressing',
  'paused',
  'awaiting-approval',
]);
