/**
 * The rollout judge (SPEC §9): from the proxy's own counts of the target and the baseline over the
 * same period, is the target worse, good enough to go on, or is there not enough evidence yet?
 * Pure: no I/O, no clock; the engine calls stepVerdict() about every second with the counts of
 * the current step and acts on the answer (not at all when `analysis.dryRun`).
 *
 * ## Failing: checked every call, with sequential tests that need less evidence the worse it is
 * The null hypothesis is "the target is within tolerance": its error ratio p_t <= g(p_b) =
 * max(ratio·p_b, p_b + points/100), and its latency quantile <= latency.ratio × the baseline's.
 * Each test is an e-value E (a non-negative supermartingale under the null, starting at 1), so by
 * Ville's inequality P(E ever >= 1/α) <= α however often it is looked at: checking every second
 * costs nothing. The budget ALPHA is per rollout, split evenly between its judged steps (each
 * step starts fresh, so a target that turns bad late is not shielded by the good evidence of
 * earlier steps), then half to errors and half to latency; within each, a fifth goes to the
 * confidence sequence that bounds the baseline (below) and four fifths to the test itself.
 *
 * Errors. The null is a union, {p_t <= ratio·p_b} ∪ {p_t <= p_b + points/100}, so the target
 * fails only when both parts are rejected (an intersection–union test: each at level α, no split):
 * - E_ratio, conditional binomial, free of the unknown p_b and robust to load (errors of both
 *   pools may rise and fall together). Given the errors of both pools in the step, each falls on
 *   the target with probability θ = w·p_t / (w·p_t + (1 − w)·p_b), w = n_t / (n_t + n_b) the
 *   target's share of the requests; at the boundary p_t = ratio·p_b,
 *   θ0 = w·ratio / (w·ratio + 1 − w), and E_ratio = mixtureEValue(e_t, e_t + e_b, θ0): the equal
 *   mixture over K in {2,4,8,16,32} of K^e_t / (1 + θ0·(K − 1))^(e_t + e_b), a supermartingale
 *   whenever θ <= θ0 (judge-stats.ts).
 * - E_points, one-sample: the target's errors against τ = U_b + points/100, U_b the baseline's
 *   upper bound from an anytime-valid confidence sequence (Robbins' Beta mixture) at α_cs;
 *   E_points = mixtureEValue(e_t, n_t, τ), which only falls as τ rises, so it is valid at
 *   α + α_cs. It is skipped (implied) once the sequence's lower bound L_b >= points/(ratio − 1):
 *   then the ratio term is the larger one.
 *   Fail when min(E_ratio, E_points) >= 1/α; reported as `sequential.errors`.
 * - Hard limit, at once: the step's error ratio reaches hardLimit.errorRatio after at least
 *   hardLimit.minRequests target requests, and is beyond the tolerance of the baseline's ratio
 *   (a baseline failing as badly is a shared outage, not the target's fault).
 *
 * Latency (quantile q, ratio r; samples after the step's first 10 s): the target is slower beyond
 * tolerance iff more than a share 1 − q of its answers take longer than T = r × the baseline's
 * q-quantile. T_b, an anytime-valid upper bound of the baseline's quantile, is the lowest bucket
 * edge whose slower-than share lies wholly below 1 − q in the confidence sequence; then
 * s_t = target answers in buckets at or above T = r·T_b (an undercount) and
 * E_L = mixtureEValue(s_t, n_t, 1 − q). Until the baseline has enough answers for the sequence
 * to place its quantile (at the defaults at least ~1,100 for p99, more with a real tail) no T_b
 * exists and latency is not judged; nor is it in a step's first LATENCY_WARMUP_MS.
 *
 * ## Passing: checked when the step's time is up, needs more evidence
 * At least `minRequests` target requests in the step (and `minRequestsToPromote` in all before
 * the step that reaches 100 %), an exact one-sided PASS_CONFIDENCE upper bound of the target's
 * error ratio within g(p̂_b) of the baseline's ratio in the step, and, once both pools have at
 * least 10/(1 − q) latency samples (1,000 for p99: ten answers beyond the quantile, so one or
 * two stray slow requests cannot move it), the target's quantile within r × the baseline's.
 * With fewer latency samples latency does not hold a step back; the sequential test above keeps
 * watching it at every step. Too little traffic is never a failure: the verdict stays
 * `collecting` and `overdue` turns true after maxStepDuration (the engine pauses for approval).
 *
 * ## Measured (test/unit/rollout/judge.test.ts prints these; seeded simulations at 200 req/s,
 * one check a second, steps 5 %, 25 %, 50 % of 1 min each, SPEC's default analysis)
 * - Both pools at 1 % errors: 0 of 20,000 rollouts aborted (bound: ALPHA = 5 % at the boundary).
 * - Target exactly at the tolerance boundary (1.5 % vs 1 %): 0 of 1,000 aborted. The guarantee
 *   is loose in practice: the baseline's uncertainty widens the effective tolerance early on.
 * - 20 % vs 0.1 % errors, checked after every target request: aborted after a median of 20
 *   target requests (the hard limit), 76 % within 30, p90 41, max 85; checked once a second
 *   (10 target requests a second): median 28, p90 49, max 84. Runs beyond 30 are those whose
 *   first 30 requests held <= 5 errors, which the ~600 baseline requests seen by then cannot
 *   tell apart from a baseline at 2 %.
 * - 5 % vs 1 %: aborted after a median of 427 target requests (p90 1,451, max 2,769); 77 % in
 *   the 5 % step.
 * - Equal pools, 5 % step at 200 req/s planned for 1 min: every run passed, median 77 s
 *   (p90 281 s, max 600 s: the 90 % bound needs ~650 target requests at 1 % errors).
 * - Latency, target 2× slower (log-normal σ 0.4) in a 25 % step: failed after a median of 1,570
 *   target answers (p90 2,342, max 2,963); equal latency: 0 of 150 steps failed.
 */
import { DEFAULT_ANALYSIS, LATENCY_WARMUP_MS, type Analysis } from './analysis.js';
import {
  confidenceSequence,
  isBelowAnytime,
  mixtureEValue,
  upperBound,
  type BetaPrior,
} from './judge-stats.js';
import { formatMs, formatPercent, group, quantileLabel } from './judge-format.js';
import { BUCKET_COUNT, bucketUpperMs, type LatencyHistogram } from './latency-histogram.js';

/**
 * Probability that a rollout whose target sits exactly at the tolerance boundary is aborted at
 * some point; a target as good as the baseline is aborted far less often (MEASURED).
 */
export const ALPHA = 0.05;
/** Confidence of the upper bound a step's error ratio needs to pass. */
export const PASS_CONFIDENCE = 0.9;
/**
 * Prior of the baseline's error-ratio confidence sequence. The points term of the tolerance
 * only matters for baselines below points/(ratio − 1) (1 % at the defaults), so the mixture is
 * concentrated there (mean 1 %): with 0 errors in 500 baseline requests the upper bound is
 * about 1.6 % instead of Jeffreys' 2.1 % (measured: 20 % vs 0.1 % aborted within 30 target
 * requests in 76 % of runs instead of 73 %, max 85 instead of 102). Any prior keeps the
 * sequence valid; a baseline far from 1 % only gets a wider one.
 */
const BASELINE_ERRORS_PRIOR: BetaPrior = Object.freeze({ a: 0.5, b: 50 });
/** Share of each test's budget spent on the baseline's confidence sequence. */
const CS_SHARE = 0.2;

/** One pool's counts over the period judged. */
export interface PoolCounts {
  /** Answered requests (client aborts excluded). */
  readonly requests: number;
  /** Of which errors: 5xx from the upstreams, or the proxy's own 502/503/504. */
  readonly errors: number;
  /** Latency of the answers after the step's warm-up (LATENCY_WARMUP_MS), if recorded. */
  readonly latency?: LatencyHistogram;
}

/** What the judge needs to decide on the current step. */
export interface StepInput {
  /** Target pool name, for the reason. */
  readonly targetName: string;
  /** Baseline pool name, for the reason. */
  readonly baselineName: string;
  /** The target's counts since the step's clock started. */
  readonly target: PoolCounts;
  /** The baseline's counts over the same period. */
  readonly baseline: PoolCounts;
  /** Time since the step's clock started (ms). */
  readonly elapsedMs: number;
  /** True once the step's planned time is over: passing is considered. */
  readonly stepEnded: boolean;
  /** True when passing this step reaches 100 %: minRequestsToPromote applies. */
  readonly final: boolean;
  /** Target requests in this rollout's earlier steps. */
  readonly earlierTargetRequests: number;
  /** How many steps of this rollout are judged (the false-abort budget is split among them). */
  readonly judgedSteps: number;
  /** The rollout's settings; DEFAULT_ANALYSIS when absent. */
  readonly analysis?: Analysis;
}

/** One pool's figures as the status shows them. */
export interface PoolFigures {
  readonly requests: number;
  readonly errors: number;
  readonly errorRatio: number;
  /** Latency quantile in ms (bucket upper edge), null without samples. */
  readonly latencyMs: number | null;
  readonly latencySamples: number;
}

/** The judge's answer. */
export interface Verdict {
  readonly verdict: 'collecting' | 'pass' | 'fail';
  /** What failed, when it did. */
  readonly failure: 'hard-limit' | 'errors' | 'latency' | null;
  /** A human reason with the numbers behind it. */
  readonly reason: string;
  /** Target requests towards passing: have / need. */
  readonly evidence: { readonly have: number; readonly need: number };
  readonly target: PoolFigures;
  readonly baseline: PoolFigures;
  /** Evidence against the target: e-values and the threshold at which it fails. */
  readonly sequential: {
    readonly errors: number;
    readonly latency: number;
    readonly threshold: number;
  };
  /** Still collecting after maxStepDuration: the engine pauses for approval. */
  readonly overdue: boolean;
}

function ratioOf(c: PoolCounts): number {
  return c.requests > 0 ? c.errors / c.requests : 0;
}

/** The tolerance boundary g(p) = max(ratio·p, p + points/100), at most 1. */
export function toleranceBoundary(p: number, analysis: Analysis): number {
  return Math.min(1, Math.max(analysis.tolerance.ratio * p, p + analysis.tolerance.points / 100));
}

function figures(c: PoolCounts, q: number): PoolFigures {
  const samples = c.latency?.total ?? 0;
  return {
    requests: c.requests,
    errors: c.errors,
    errorRatio: ratioOf(c),
    latencyMs: c.latency && samples > 0 ? c.latency.quantile(q) : null,
    latencySamples: samples,
  };
}

/**
 * Evidence that the target's errors are beyond tolerance: min(E_ratio, E_points), or E_ratio
 * alone once the baseline is known to be at least points/(ratio − 1) (then the ratio term rules
 * the tolerance). 1 when the target is no worse than the baseline.
 */
function errorEValue(t: PoolCounts, b: PoolCounts, a: Analysis, alphaCs: number): number {
  if (t.errors === 0 || b.requests === 0) return 1;
  const w = t.requests / (t.requests + b.requests);
  const r = a.tolerance.ratio;
  const theta0 = (w * r) / (w * r + 1 - w);
  // Cheap exit, exact: a target error share within θ0 gives every K a likelihood ratio <= 1
  // (concavity of ln), so E_ratio <= 1.
  if (t.errors / (t.errors + b.errors) <= theta0) return 1;
  const eRatio = mixtureEValue(t.errors, t.errors + b.errors, theta0);
  const points = a.tolerance.points / 100;
  if (points === 0 || eRatio <= 1) return eRatio;
  const { lower, upper } = confidenceSequence(b.errors, b.requests, alphaCs, BASELINE_ERRORS_PRIOR);
  if (r > 1 && lower * (r - 1) >= points) return eRatio;
  const ePoints = mixtureEValue(t.errors, t.requests, Math.min(1, upper + points));
  return Math.min(eRatio, ePoints);
}

/** The latency threshold T = ratio × T_b and the target's answers at or above it, or null. */
function slowCount(
  t: LatencyHistogram,
  b: LatencyHistogram,
  a: Analysis,
  alphaCs: number,
): { thresholdMs: number; slow: number } | null {
  const tail = 1 - a.latency.quantile;
  let below = 0;
  for (let i = 0; i < BUCKET_COUNT - 1; i += 1) {
    below += b.count(i);
    const above = b.total - below;
    if (above / b.total < tail && isBelowAnytime(tail, above, b.total, alphaCs)) {
      const thresholdMs = a.latency.ratio * bucketUpperMs(i);
      return { thresholdMs, slow: t.countAtLeast(thresholdMs) };
    }
  }
  return null;
}

/**
 * The verdict on the current step: `fail` (abort), `pass` (go on; only when `stepEnded`) or
 * `collecting`. Call it about every second with the step's cumulative counts.
 */
export function stepVerdict(input: StepInput): Verdict {
  const a = input.analysis ?? DEFAULT_ANALYSIS;
  const t = input.target;
  const b = input.baseline;
  const q = a.latency.quantile;
  const alphaStep = ALPHA / Math.max(1, input.judgedSteps);
  const alphaHalf = alphaStep / 2;
  const threshold = 1 / (alphaHalf * (1 - CS_SHARE));
  const alphaCs = alphaHalf * CS_SHARE;
  // Built only for decisions and step ends: formatting costs more than judging.
  const errorsLine = (): string =>
    `${input.targetName} 5xx ${group(t.errors)}/${group(t.requests)} ` +
    `(${formatPercent(ratioOf(t))}) vs ${input.baselineName} ${group(b.errors)}/` +
    `${group(b.requests)} (${formatPercent(ratioOf(b))})`;

  const eErrors = errorEValue(t, b, a, alphaCs);
  let eLatency = 1;
  let slow: { thresholdMs: number; slow: number } | null = null;
  const latencyJudged =
    input.elapsedMs >= LATENCY_WARMUP_MS && t.latency !== undefined && b.latency !== undefined;
  if (latencyJudged && t.latency.total > 0 && b.latency.total > 0) {
    slow = slowCount(t.latency, b.latency, a, alphaCs);
    if (slow && slow.slow / t.latency.total > 1 - q) {
      eLatency = mixtureEValue(slow.slow, t.latency.total, 1 - q);
    }
  }
  const base = {
    target: figures(t, q),
    baseline: figures(b, q),
    sequential: {
      errors: Math.min(eErrors, 1e12),
      latency: Math.min(eLatency, 1e12),
      threshold,
    },
  };
  const evidence = evidenceOf(input, a);
  const verdict = (
    v: Verdict['verdict'],
    failure: Verdict['failure'],
    reason: string,
  ): Verdict => ({
    verdict: v,
    failure,
    reason,
    evidence,
    ...base,
    overdue: v === 'collecting' && input.elapsedMs >= a.maxStepDurationMs,
  });

  const rt = ratioOf(t);
  if (
    t.requests >= a.hardLimit.minRequests &&
    rt >= a.hardLimit.errorRatio &&
    rt > toleranceBoundary(ratioOf(b), a)
  ) {
    return verdict(
      'fail',
      'hard-limit',
      `${errorsLine()}: hard limit ${formatPercent(a.hardLimit.errorRatio)} crossed`,
    );
  }
  if (eErrors >= threshold) {
    return verdict('fail', 'errors', `${errorsLine()}: worse beyond tolerance`);
  }
  const latencyLine = (): string =>
    `${input.targetName} ${quantileLabel(q)} ${formatMs(base.target.latencyMs ?? 0)} vs ` +
    `${input.baselineName} ${quantileLabel(q)} ${formatMs(base.baseline.latencyMs ?? 0)}`;
  if (eLatency >= threshold && slow && t.latency) {
    return verdict(
      'fail',
      'latency',
      `${latencyLine()}: slower beyond ${String(a.latency.ratio)}× (` +
        `${group(slow.slow)} of ${group(t.latency.total)} ${input.targetName} answers ` +
        `>= ${formatMs(slow.thresholdMs)})`,
    );
  }

  if (!input.stepEnded) {
    return verdict(
      'collecting',
      null,
      `collecting: step not over, ${String(evidence.have)} of ${String(evidence.need)} requests`,
    );
  }
  if (evidence.have < evidence.need) {
    return verdict(
      'collecting',
      null,
      `${errorsLine()}: collecting (${group(evidence.have)} of ${group(evidence.need)} requests)`,
    );
  }
  if (b.requests === 0) {
    return verdict('collecting', null, `${errorsLine()}: no baseline requests to compare with`);
  }
  const tolerance = toleranceBoundary(ratioOf(b), a);
  const bound = upperBound(t.errors, t.requests, PASS_CONFIDENCE);
  const boundText = `upper bound ${formatPercent(bound)}`;
  if (bound > tolerance) {
    return verdict(
      'collecting',
      null,
      `${errorsLine()}: not yet within tolerance (${boundText} > ${formatPercent(tolerance)})`,
    );
  }
  const minSamples = Math.ceil(10 / (1 - q));
  const tl = base.target;
  const bl = base.baseline;
  let latencyText = `; latency not compared yet (${group(tl.latencySamples)} of ${group(minSamples)} samples)`;
  if (
    latencyJudged &&
    tl.latencyMs !== null &&
    bl.latencyMs !== null &&
    tl.latencySamples >= minSamples &&
    bl.latencySamples >= minSamples
  ) {
    if (tl.latencyMs > a.latency.ratio * bl.latencyMs) {
      return verdict(
        'collecting',
        null,
        `${latencyLine()}: not yet within ${String(a.latency.ratio)}×`,
      );
    }
    latencyText = `; ${latencyLine()}`;
  }
  return verdict(
    'pass',
    null,
    `${errorsLine()}: within tolerance (${boundText} <= ${formatPercent(tolerance)})${latencyText}`,
  );
}

/** have/need towards passing: the step's requests, or the rollout's when those bind. */
function evidenceOf(input: StepInput, a: Analysis): { have: number; need: number } {
  const step = { have: input.target.requests, need: a.minRequests };
  if (!input.final || a.minRequestsToPromote === 0) return step;
  const all = {
    have: input.earlierTargetRequests + input.target.requests,
    need: a.minRequestsToPromote,
  };
  return all.have / all.need < step.have / step.need ? all : step;
}
