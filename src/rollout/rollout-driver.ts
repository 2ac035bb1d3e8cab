/**
 * The rollout engine (SPEC §9), in process: walks a rollout's steps, moves the weights through the
 * control store the way `POST /v1/canary` does (actor `rollout:<id>`, the reason as the history
 * note), and judges the target against the baseline every second with stepVerdict() over the
 * proxy's own per-pool counts since the current weight was applied everywhere.
 *
 * Periods: a weight step starts a judged period once every live replica has applied it (the
 * store's replica list, as `?wait=all` reads it; in memory mode that is this process). The
 * period runs through the pauses after it; leaving it for the next weight needs a `pass` (a
 * human `promote` of an approval pause is the exception). Failing is checked at every tick, in
 * every phase. Reaching 100 % promotes; for `blue-green` the 100 % period is judged for
 * `analysis.window` against the baseline's counts over the same window before the switch (at
 * most the last 5 min, from snapshots kept every 10 s), then promotes.
 *
 * Every operation (tick, start, promote, pause, resume, abort) runs one at a time through
 * #serial, so a human action and a tick never interleave their store writes.
 */
import { randomBytes } from 'node:crypto';
import type { ControlStore } from '../control/control-store.js';
import type { PoolOutcomeSnapshot } from '../data/pool-outcomes.js';
import { fail, isSwitchyardError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { TOTAL_BASIS_POINTS, type RoutingTable } from '../table/types.js';
import { LATENCY_WARMUP_MS } from './analysis.js';
import { stepVerdict, type PoolCounts, type Verdict } from './judge.js';
import {
  countsSince,
  EMPTY,
  formatBp,
  judgedSteps,
  type CountsSnapshot,
  type Period,
} from './rollout-period.js';
import type { RolloutHooks } from './rollout-hooks.js';
import { isWeightStep, type RolloutPlan } from './rollout-plan.js';
import {
  ACTIVE,
  PHASES,
  type RolloutDecision,
  type RolloutPhase,
  type RolloutRecord,
} from './rollout-record.js';

export type { RolloutRecord } from './rollout-record.js';

/** What the driver uses; all created and closed by the app. */
export interface RolloutDriverDeps {
  readonly store: ControlStore;
  /** Cumulative per-pool counts of this replica's data plane (ProxyServer.poolCounts). */
  readonly counts: () => ReadonlyMap<string, PoolOutcomeSnapshot>;
  readonly replicaId: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Judging interval (default 1000 ms). */
  readonly tickMs?: number;
  /** Release webhooks and the drained record (SPEC §10); none when absent. */
  readonly hooks?: RolloutHooks | undefined;
}

/** Rollouts kept for `GET /v1/rollouts` (newest first). */
const MAX_KEPT = 20;
/** How often counts are kept for blue-green's look back, and for how long. */
const SNAPSHOT_EVERY_MS = 10_000;
const MAX_LOOKBACK_MS = 5 * 60_000;
/** Decisions kept per rollout (the oldest are dropped past this). */
const MAX_DECISIONS = 200;

/** Drives rollouts in this process. */
export class RolloutDriver {
  readonly #deps: RolloutDriverDeps;
  readonly #log: Logger;
  readonly #rollouts: RolloutRecord[] = [];
  #timer: NodeJS.Timeout | null = null;
  #serial: Promise<unknown> = Promise.resolve();
  #state: 'idle' | 'running' | 'closed' = 'idle';
  /** Revision whose application starts the next period; null when not waiting. */
  #pendingRevision: number | null = null;
  #period: Period | null = null;
  /** When the current step began (pauses are timed from it). */
  #stepStartedAtMs = 0;
  /** Target requests of the current rollout's closed periods. */
  #earlierTargetRequests = 0;
  /** The baseline's counts over the window before the switch (blue-green judges against them). */
  #beforeSwitch: PoolCounts | null = null;
  /** Snapshots every SNAPSHOT_EVERY_MS over the last MAX_LOOKBACK_MS, oldest first. */
  readonly #lookback: Array<{ atMs: number; counts: CountsSnapshot }> = [];
  /** Set by promote() until the step is left: a human approval skips the pass gate. */
  #approved = false;
  /** SPEC §10: the weight step waiting for its webhook gates; null when none. */
  #gatedStep: number | null = null;
  /** True while the rollout is paused because a `pre-step` gate failed (retries go on). */
  #gatePaused = false;

  constructor(deps: RolloutDriverDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ component: 'rollout' });
  }

  /** Starts the judging timer. Throws if called twice. */
  start(): void {
    if (this.#state !== 'idle')
      throw new Error(`RolloutDriver.start() called while ${this.#state}`);
    this.#state = 'running';
    this.#remember();
    this.#timer = setInterval(() => {
      this.#remember();
      this.#run(() => this.#tick()).catch((err: unknown) => {
        this.#log.error({ err }, 'rollout tick failed');
      });
    }, this.#deps.tickMs ?? 1000);
    this.#timer.unref();
  }

  /** Stops the timer and waits for the operation in progress. Idempotent. */
  async close(): Promise<void> {
    this.#state = 'closed';
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#serial.catch(() => undefined);
  }

  /** The newest rollout, or null when none has run. */
  current(): RolloutRecord | null {
    return this.#rollouts[0] ?? null;
  }

  /** Up to `limit` rollouts, newest first. */
  list(limit: number): RolloutRecord[] {
    return this.#rollouts.slice(0, limit);
  }

  /** True while a rollout owns the weights (manual weight changes are refused). */
  ownsWeights(): boolean {
    const r = this.current();
    return r !== null && ACTIVE.has(r.phase);
  }

  /** Starts a rollout of `plan`; `actor` made the request. Throws ROLLOUT_IN_PROGRESS. */
  startRollout(plan: RolloutPlan): Promise<RolloutRecord> {
    return this.#run(async () => {
      if (this.ownsWeights()) {
        const r = this.current() as RolloutRecord;
        throw fail(
          'ROLLOUT_IN_PROGRESS',
          `rollout ${r.id} of pool "${r.pool}" is ${r.phase}; abort it first`,
        );
      }
      const id = `r-${randomBytes(4).toString('hex')}`;
      const actor = `rollout:${id}`;
      const now = new Date().toISOString();
      const table = this.#deps.store.current();
      const record: RolloutRecord = {
        id,
        pool: plan.pool,
        baseline: plan.baseline,
        version: plan.version ?? table?.pools[plan.pool]?.version ?? null,
        strategy: plan.strategy,
        phase: 'progressing',
        step: 0,
        steps: plan.steps,
        targetWeightBp: table?.weights[plan.pool] ?? 0,
        startedAt: now,
        updatedAt: now,
        driver: this.#deps.replicaId,
        analysis: plan.analysis,
        judgement: null,
        decisions: [],
        webhooks: plan.webhooks,
        drainedAt: null,
      };
      if (plan.version !== null || plan.endpoints !== null) {
        // Deployed before the rollout is recorded: a refused deploy (POOL_LIVE...) starts nothing.
        const spec = table?.pools[plan.pool];
        await this.#deps.store.change(
          {
            op: 'set-pool',
            pool: plan.pool,
            version: plan.version ?? spec?.version,
            endpoints: plan.endpoints ?? spec?.endpoints,
          },
          { actor, source: 'admin', note: `rollout ${id}: deploy ${plan.version ?? 'endpoints'}` },
        );
      }
      this.#rollouts.unshift(record);
      this.#rollouts.length = Math.min(this.#rollouts.length, MAX_KEPT);
      this.#pendingRevision = null;
      this.#period = null;
      this.#earlierTargetRequests = 0;
      this.#beforeSwitch =
        plan.strategy === 'blue-green'
          ? this.#baselineBefore(plan.baseline, plan.analysis.windowMs)
          : null;
      this.#decide(
        record,
        'start',
        `${plan.pool} against ${plan.baseline}, ${plan.steps.length} step(s)${plan.analysis.dryRun ? ', dry run' : ''}`,
      );
      await this.#enterGated(record, 0);
      return record;
    });
  }

  /** Ends the current pause; `full`: to 100 % now, skipping the remaining steps and analysis. */
  promote(full: boolean): Promise<RolloutRecord> {
    return this.#run(async () => {
      const r = this.#active('promote');
      if (full) {
        await this.#setWeight(r, TOTAL_BASIS_POINTS, 'promoted in full by hand');
        this.#finish(r, 'promoted', 'promote', 'promoted in full by hand');
        return r;
      }
      const step = r.steps[r.step];
      if (
        r.phase !== 'awaiting-approval' &&
        (step === undefined || isWeightStep(step) || !('pause' in step))
      ) {
        throw fail(
          'ROLLOUT_NOT_ACTIVE',
          `rollout ${r.id} is not in a pause (step ${r.step}); use {"full": true} to go to 100 % now`,
        );
      }
      r.phase = 'progressing';
      this.#approved = true;
      this.#decide(r, 'promote', `step ${r.step} approved by hand`);
      await this.#advance(r);
      return r;
    });
  }

  /** Holds the rollout at its current step (failing is still judged). */
  pause(): Promise<RolloutRecord> {
    return this.#run(() => {
      const r = this.#active('pause');
      if (r.phase === 'progressing') {
        r.phase = 'paused';
        this.#decide(r, 'pause', 'paused by hand');
      }
      return Promise.resolve(r);
    });
  }

  /** Continues a paused rollout. */
  resume(): Promise<RolloutRecord> {
    return this.#run(() => {
      const r = this.#active('resume');
      if (r.phase !== 'paused') {
        throw fail('ROLLOUT_NOT_ACTIVE', `rollout ${r.id} is ${r.phase}, not paused`);
      }
      r.phase = 'progressing';
      this.#decide(r, 'resume', 'resumed by hand');
      return Promise.resolve(r);
    });
  }

  /** Aborts: the target's weight to 0 in one revision. Resolves with the table after it. */
  abort(reason: string): Promise<{ record: RolloutRecord; table: RoutingTable | null }> {
    return this.#run(async () => {
      const r = this.#active('abort');
      const table = await this.#abortNow(r, reason);
      return { record: r, table };
    });
  }

  #active(what: string): RolloutRecord {
    const r = this.current();
    if (r === null) throw fail('NO_ROLLOUT', 'no rollout has run');
    if (!ACTIVE.has(r.phase)) {
      throw fail('ROLLOUT_NOT_ACTIVE', `cannot ${what}: rollout ${r.id} is ${r.phase}`);
    }
    return r;
  }

  #run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#serial.then(fn, fn);
    this.#serial = next.catch(() => undefined);
    return next;
  }

  /** One judging turn: start the period's clock, judge, move on. */
  async #tick(): Promise<void> {
    const r = this.current();
    if (r === null || !ACTIVE.has(r.phase) || this.#state !== 'running') return;
    if (this.#pendingRevision !== null) {
      if (!(await this.#appliedEverywhere(this.#pendingRevision))) return;
      this.#pendingRevision = null;
      this.#openPeriod(r);
    }
    const verdict = this.#judge(r, false);
    if (verdict?.verdict === 'fail') {
      if (!r.analysis.dryRun) {
        await this.#abortNow(r, verdict.reason);
        return;
      }
      const period = this.#period;
      if (period !== null && !period.failureRecorded) {
        period.failureRecorded = true;
        this.#decide(r, 'abort', verdict.reason, true);
      }
    }
    if (this.#gatedStep !== null) {
      if (r.phase === 'progressing' || (r.phase === 'paused' && this.#gatePaused))
        await this.#passGates(r);
      return;
    }
    if (r.phase !== 'progressing') return;
    await this.#advance(r);
  }

  /** Moves on from the current step when it is done. */
  async #advance(r: RolloutRecord): Promise<void> {
    if (this.#pendingRevision !== null) return;
    if (this.#gatedStep !== null) {
      // Only a human approval (promote) gets past failing gates.
      if (this.#approved) await this.#enterStep(r, this.#gatedStep);
      return;
    }
    const step = r.steps[r.step];
    if (step === undefined) return;
    const now = Date.now();
    if (isWeightStep(step)) {
      if (step.basisPoints === TOTAL_BASIS_POINTS) {
        if (r.strategy === 'blue-green' && now - this.#stepStartedAtMs < r.analysis.windowMs)
          return;
        if (r.strategy === 'blue-green' && !this.#gatePasses(r)) return;
        this.#finish(r, 'promoted', 'promoted', `${r.pool} has 100 %`);
        return;
      }
    } else if ('pauseMs' in step) {
      if (now - this.#stepStartedAtMs < step.pauseMs) return;
    } else if (!this.#approved) {
      // An approval pause ends only through promote().
      return;
    }
    const next = r.steps[r.step + 1];
    const leavesPeriod = next === undefined || isWeightStep(next);
    if (leavesPeriod && !this.#approved && !this.#gatePasses(r)) return;
    await this.#enterGated(r, r.step + 1);
  }

  /** Enters step `index`; a weight step waits for its webhook gates first (SPEC §10). */
  async #enterGated(r: RolloutRecord, index: number): Promise<void> {
    const step = r.steps[index];
    const approved = this.#approved;
    this.#approved = false;
    if (this.#deps.hooks === undefined || approved || step === undefined || !isWeightStep(step)) {
      await this.#enterStep(r, index);
      return;
    }
    this.#gatedStep = index;
    this.#gatePaused = false;
    await this.#passGates(r);
  }

  /** Reads the gates of the step waiting for them and acts on the answer. */
  async #passGates(r: RolloutRecord): Promise<void> {
    const index = this.#gatedStep;
    const hooks = this.#deps.hooks;
    if (index === null || hooks === undefined) return;
    const gate = hooks.checkGates(r, index);
    switch (gate.kind) {
      case 'wait':
        return;
      case 'open':
        if (this.#gatePaused && r.phase === 'paused') {
          r.phase = 'progressing';
          this.#decide(r, 'resume', `step ${index}: the pre-step gate passed`);
        }
        await this.#enterStep(r, index);
        return;
      case 'abort':
        await this.#abortNow(r, gate.reason);
        return;
      case 'pause':
        r.phase = 'paused';
        this.#gatePaused = true;
        this.#decide(r, 'pause', gate.reason);
        return;
      case 'overdue':
        r.phase = 'awaiting-approval';
        this.#gatePaused = false;
        this.#decide(r, 'awaiting-approval', gate.reason);
        return;
    }
  }

  /** True when the period may be left: `pass`, or a dry run's timed step. Marks overdue. */
  #gatePasses(r: RolloutRecord): boolean {
    const verdict = this.#judge(r, true);
    if (verdict === null) return true;
    if (verdict.verdict === 'pass') {
      this.#decide(r, 'pass', verdict.reason);
      return true;
    }
    if (r.analysis.dryRun) {
      this.#decide(r, 'pass', `dry run: ${verdict.verdict}: ${verdict.reason}`, true);
      return true;
    }
    if (verdict.overdue) {
      r.phase = 'awaiting-approval';
      this.#decide(
        r,
        'awaiting-approval',
        `not enough evidence after ${Math.round(r.analysis.maxStepDurationMs / 1000)} s (${verdict.evidence.have}/${verdict.evidence.need} target requests): promote by hand to go on`,
      );
    }
    return false;
  }

  async #enterStep(r: RolloutRecord, index: number): Promise<void> {
    this.#approved = false;
    this.#gatedStep = null;
    this.#gatePaused = false;
    r.step = index;
    r.updatedAt = new Date().toISOString();
    this.#stepStartedAtMs = Date.now();
    this.#setStepMetrics(r);
    const step = r.steps[index];
    if (step === undefined) return;
    if (isWeightStep(step)) {
      if (this.#period !== null) {
        const t = countsSince(r.pool, this.#period.start, this.#deps.counts());
        this.#earlierTargetRequests += t.requests;
      }
      this.#period = null;
      const reason = `step ${index}: ${r.pool} to ${formatBp(step.basisPoints)}`;
      const table = await this.#setWeight(r, step.basisPoints, reason);
      this.#decide(r, 'step', reason);
      // The step's clock starts when every live replica routes by the new weights.
      this.#pendingRevision = table?.revision ?? 0;
      this.#stepStartedAtMs = Number.POSITIVE_INFINITY;
    } else {
      this.#decide(r, 'step', `step ${index}: pause ${step.pause}`);
    }
  }

  #openPeriod(r: RolloutRecord): void {
    const now = Date.now();
    this.#stepStartedAtMs = now;
    let frozenBaseline: PoolCounts | null = null;
    if (r.strategy === 'blue-green') frozenBaseline = this.#beforeSwitch ?? EMPTY;
    this.#period = {
      start: this.#deps.counts(),
      startedAtMs: now,
      warm: null,
      frozenBaseline,
      failureRecorded: false,
    };
  }

  /** The verdict on the current period, or null when there is none (no weight applied yet). */
  #judge(r: RolloutRecord, stepEnded: boolean): Verdict | null {
    const period = this.#period;
    if (period === null) return null;
    const now = Date.now();
    const elapsedMs = now - period.startedAtMs;
    const counts = this.#deps.counts();
    if (period.warm === null && elapsedMs >= LATENCY_WARMUP_MS) period.warm = counts;
    const target = countsSince(r.pool, period.start, counts, period.warm);
    const baseline =
      period.frozenBaseline ?? countsSince(r.baseline, period.start, counts, period.warm);
    const nextWeight = r.steps.slice(r.step + 1).find(isWeightStep);
    const verdict = stepVerdict({
      targetName: r.pool,
      baselineName: r.baseline,
      target,
      baseline,
      elapsedMs,
      stepEnded,
      final: nextWeight?.basisPoints === TOTAL_BASIS_POINTS || r.strategy === 'blue-green',
      earlierTargetRequests: this.#earlierTargetRequests,
      judgedSteps: judgedSteps(r),
      analysis: r.analysis,
    });
    r.judgement = {
      target: verdict.target,
      baseline: verdict.baseline,
      verdict: verdict.verdict,
      reason: verdict.reason,
      evidence: verdict.evidence,
      overdue: verdict.overdue,
    };
    return verdict;
  }

  /** Keeps a snapshot every SNAPSHOT_EVERY_MS for MAX_LOOKBACK_MS (blue-green's baseline). */
  #remember(): void {
    const now = Date.now();
    const newest = this.#lookback.at(-1);
    if (newest !== undefined && now - newest.atMs < SNAPSHOT_EVERY_MS) return;
    this.#lookback.push({ atMs: now, counts: this.#deps.counts() });
    while ((this.#lookback[0]?.atMs ?? now) < now - MAX_LOOKBACK_MS) this.#lookback.shift();
  }

  /**
   * `baseline`'s counts over the last `windowMs` (at most MAX_LOOKBACK_MS; less when this
   * process has run for less), latency included.
   */
  #baselineBefore(baseline: string, windowMs: number): PoolCounts {
    const now = Date.now();
    const from =
      this.#lookback.find((s) => s.atMs >= now - windowMs)?.counts ?? new Map<string, never>();
    return countsSince(baseline, from, this.#deps.counts(), from);
  }

  /**
   * Seam for many replicas: true once every live replica has applied `revision` (the store's
   * replica list, as `?wait=all` reads it; the memory store lists this process only).
   */
  async #appliedEverywhere(revision: number): Promise<boolean> {
    const replicas = await this.#deps.store.replicas();
    return replicas.some((x) => x.live) && replicas.every((x) => !x.live || x.revision >= revision);
  }

  /** Gives the target `bp` the way POST /v1/canary does; the table after it. */
  async #setWeight(r: RolloutRecord, bp: number, reason: string): Promise<RoutingTable | null> {
    const table = this.#deps.store.current();
    const others =
      table === null
        ? 0
        : Object.entries(table.weights).filter(([p, w]) => p !== r.pool && w > 0).length;
    const meta = {
      actor: `rollout:${r.id}`,
      source: 'admin' as const,
      note: `rollout ${r.id}: ${reason}`,
    };
    // With every other pool at 0 (blue-green, or after 100 %) a canary share has nothing to
    // split the rest among: the baseline gets it back whole.
    const command =
      bp === 0 && others === 0
        ? { op: 'weights', weights: { [r.baseline]: TOTAL_BASIS_POINTS } }
        : { op: 'canary', pool: r.pool, basisPoints: bp };
    const { table: after } = await this.#deps.store.change(command, meta);
    r.targetWeightBp = after.weights[r.pool] ?? 0;
    r.updatedAt = new Date().toISOString();
    this.#deps.metrics.rolloutTargetWeight.set(r.targetWeightBp);
    return after;
  }

  async #abortNow(r: RolloutRecord, reason: string): Promise<RoutingTable | null> {
    let table: RoutingTable | null = null;
    try {
      table = await this.#setWeight(r, 0, `aborted: ${reason}`);
    } catch (err) {
      // The weights could not be moved (store down): the rollout stays active and says why.
      this.#decide(
        r,
        'abort-failed',
        `${reason}; weights not changed: ${isSwitchyardError(err) ? err.message : String(err)}`,
      );
      throw err;
    }
    this.#finish(r, 'aborted', 'abort', reason);
    return table;
  }

  #finish(r: RolloutRecord, phase: RolloutPhase, action: string, reason: string): void {
    r.phase = phase;
    this.#pendingRevision = null;
    this.#period = null;
    this.#gatedStep = null;
    this.#decide(r, action, reason);
    this.#setStepMetrics(r);
  }

  #decide(r: RolloutRecord, action: string, reason: string, dryRun = false): void {
    const decision: RolloutDecision = {
      time: new Date().toISOString(),
      action,
      reason,
      ...(dryRun ? { dryRun } : {}),
    };
    r.decisions.push(decision);
    if (r.decisions.length > MAX_DECISIONS)
      r.decisions.splice(0, r.decisions.length - MAX_DECISIONS);
    r.updatedAt = decision.time;
    this.#deps.metrics.rolloutDecisions.inc({ action });
    this.#log.info({ rollout: r.id, pool: r.pool, action, reason, dryRun }, 'rollout decision');
    this.#deps.hooks?.onDecision(r, decision);
  }

  #setStepMetrics(r: RolloutRecord): void {
    const m = this.#deps.metrics;
    for (const phase of PHASES)
      m.rolloutPhase.set({ pool: r.pool, phase }, phase === r.phase ? 1 : 0);
    m.rolloutStep.set(r.step);
    m.rolloutTargetWeight.set(r.targetWeightBp);
  }
}
