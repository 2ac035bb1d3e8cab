/**
 * A rollout's record (SPEC §9) as the status shows it: phase, steps, the target's weight, the
 * live judgement and the decisions with their reasons.
 */
import type { Verdict } from './judge.js';
import type { RolloutPlan, RolloutStep } from './rollout-plan.js';
import type { WebhookEvent } from './webhooks.js';

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
  /** For action `webhook`: one call and its result (SPEC §10). */
  readonly webhook?: WebhookCallRecord;
}

/** One webhook call as the decisions keep it. */
export interface WebhookCallRecord {
  readonly event: WebhookEvent;
  readonly url: string;
  readonly attempt: number;
  /** HTTP status, or null for a timeout or a network error. */
  readonly status: number | null;
  /** `200`, `timeout after 5000 ms`, `error: ...`. */
  readonly outcome: string;
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
  /** Release webhooks (SPEC §10). */
  readonly webhooks: RolloutPlan['webhooks'];
  /** After promotion: when nothing flowed to the old baseline any more (SPEC §10); else null. */
  drainedAt: string | null;
}

/** Decisions kept per rollout. */
export const MAX_KEPT_DECISIONS = 200;

/**
 * Appends `decision` to `r`, keeping at most MAX_KEPT_DECISIONS: past it the oldest webhook call
 * record goes first, so the engine's own decisions outlive a chatty receiver.
 */
export function appendDecision(r: RolloutRecord, decision: RolloutDecision): void {
  r.decisions.push(decision);
  while (r.decisions.length > MAX_KEPT_DECISIONS) {
    const i = r.decisions.findIndex((d) => d.action === 'webhook');
    r.decisions.splice(i === -1 ? 0 : i, 1);
  }
  r.updatedAt = decision.time;
}

/** Phases in which the rollout owns the weights. */
export const ACTIVE: ReadonlySet<RolloutPhase> = new Set([
  'progressing',
  'paused',
  'awaiting-approval',
]);
