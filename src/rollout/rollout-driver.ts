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
 *
 * Where the rollout lives: the control store's RolloutBook. Every operation reads the current
 * rollout with its engine state from the book, acts, and writes it back with compare-and-set
 * (#op). With Redis the book is shared: every replica publishes its per-pool counts there each
 * tick and judges the sum; one replica drives (ticks) while it holds the lease
 * (`rollout-lease`, renewed every tick); another takes over when the lease runs out and goes on
 * from the stored step and period. Human operations run on whichever replica receives them.
 * current()/list() answer from the last read (refreshed every tick and by refresh()).
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
  decodeCounts,
  decodePoolCounts,
  encodeCounts,
  encodePoolCounts,
  MAX_PAST,
  sumCounts,
  type EngineState,
  type RolloutBook,
  type StoredRollout,
} from './rollout-book.js';
import {
  countsSince,
  EMPTY,
  formatBp,
  judgedSteps,
  type CountsSnapshot,
  type Period,
} from './rollout-period.js';
import type { RolloutHooks } from './rollout-hooks.js';
import { isWeightStep, parseRolloutStart, type RolloutPlan } from './rollout-plan.js';
import {
  ACTIVE,
  appendDecision,
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
  /** Judging interval (default 1000 ms); with Redis also how often counts are published. */
  readonly tickMs?: number;
  /** Driver lease with a shared (Redis) book (default 5000 ms). */
  readonly leaseMs?: number;
  /** Release webhooks and the drained record (SPEC §10); none when absent. */
  readonly hooks?: RolloutHooks | undefined;
}

/** Default driver lease (SPEC §9). */
export const DEFAULT_LEASE_MS = 5000;
/** Attempts of a human operation whose write lost a compare-and-set race. */
const MAX_OP_ATTEMPTS = 5;
/** The waiting reason while the book cannot be read. */
const STORE_DOWN = 'control store unreachable: no step advances until it returns';

/** How often counts are kept for blue-green's look back, and for how long. */
const SNAPSHOT_EVERY_MS = 10_000;
const MAX_LOOKBACK_MS = 5 * 60_000;

/** Drives rollouts in this process. */
export class RolloutDriver {
  readonly #deps: RolloutDriverDeps;
  readonly #log: Logger;
  readonly #book: RolloutBook;
  /** The current rollout as last read or written (what current() answers). */
  #cache: RolloutRecord | null = null;
  /** Past rollouts as last read, newest first. */
  #past: RolloutRecord[] = [];
  /** The record the operation in progress works on (loaded by #op). */
  #record: RolloutRecord | null = null;
  /** Cluster-wide counts read at the start of the operation in progress. */
  #counts: CountsSnapshot = new Map();
  /** True while this replica holds the driver lease (always with a memory book). */
  #driving = false;
  #timer: NodeJS.Timeout | null = null;
  /** An extra turn when the holder's lease runs out before the next tick. */
  #retry: NodeJS.Timeout | null = null;
  #serial: Promise<unknown> = Promise.resolve();
  #state: 'idle' | 'running' | 'closed' = 'idle';
  // Engine state of the current rollout, loaded from the book by #op and saved after it.
  /** Revision whose application starts the next period; null when not waiting. */
  #pendingRevision: number | null = null;
  #period: Period | null = null;
  /** When the current step began (pauses are timed from it); Infinity while waiting. */
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
  /**
   * Decisions of the operation in progress, told to the hooks once it is written: an operation
   * that loses a compare-and-set race runs again, and must not notify twice.
   */
  #unsent: Array<{ r: RolloutRecord; decision: RolloutDecision }> = [];

  constructor(deps: RolloutDriverDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ component: 'rollout' });
    this.#book = deps.store.rolloutBook();
    deps.hooks?.attach((id, annotate) => this.#annotate(id, annotate));
  }

  /** Starts the judging timer. Throws if called twice. */
  start(): void {
    if (this.#state !== 'idle')
      throw new Error(`RolloutDriver.start() called while ${this.#state}`);
    this.#state = 'running';
    if (!this.#book.shared) this.#remember(this.#deps.counts());
    this.#timer = setInterval(() => {
      this.#run(() => this.#turn()).catch((err: unknown) => {
        this.#log.error({ err }, 'rollout tick failed');
      });
    }, this.#deps.tickMs ?? 1000);
    this.#timer.unref();
    void this.refresh({ past: true });
  }

  /** Stops the timer and waits for the operation in progress. Idempotent. */
  async close(): Promise<void> {
    const wasRunning = this.#state === 'running';
    this.#state = 'closed';
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#retry !== null) clearTimeout(this.#retry);
    this.#retry = null;
    await this.#serial.catch(() => undefined);
    if (wasRunning && this.#book.shared && this.#driving) {
      // Another replica takes over at its next tick rather than after the lease runs out.
      await this.#book.release(this.#deps.replicaId).catch(() => undefined);
    }
  }

  /** The newest rollout, or null when none has run (as last read from the store). */
  current(): RolloutRecord | null {
    return this.#cache;
  }

  /**
   * Up to `limit` rollouts, newest first, as last read from the store (the past ones are read by
   * refresh({ past: true }) and kept as this replica last saw them).
   */
  list(limit: number): RolloutRecord[] {
    return (this.#cache === null ? this.#past : [this.#cache, ...this.#past]).slice(0, limit);
  }

  /**
   * Reads the current rollout (and with `past`, the ones before it) from the store: with Redis
   * another replica may have changed them. Never rejects: when the store is unreachable the last
   * read stays, marked so.
   */
  async refresh(options: { past?: boolean; maxWaitMs?: number } = {}): Promise<void> {
    if (!this.#deps.store.status().up) {
      this.#noteUnreachable(undefined);
      return;
    }
    const reading = this.#read(options.past === true);
    if (options.maxWaitMs === undefined) return reading;
    // The read goes on in the background and updates what current() answers when it lands.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, options.maxWaitMs);
    });
    await Promise.race([reading, timeout]);
    clearTimeout(timer);
  }

  async #read(withPast: boolean): Promise<void> {
    try {
      const [{ current }, past] = await Promise.all([
        this.#book.read(),
        withPast ? this.#book.past(MAX_PAST) : Promise.resolve(null),
      ]);
      this.#cache = current?.record ?? null;
      if (past !== null) this.#past = past;
      if (this.#cache !== null && !this.#driving) this.#setStepMetrics(this.#cache);
    } catch (err) {
      this.#noteUnreachable(err);
    }
  }

  /** True while a rollout owns the weights (manual weight changes are refused). */
  ownsWeights(): boolean {
    const r = this.current();
    return r !== null && ACTIVE.has(r.phase);
  }

  /**
   * Rejects ROLLOUT_IN_PROGRESS while a rollout owns the weights, as read from the store now
   * (a weight change written to the Redis commands stream, SPEC §9).
   */
  async refuseWhileActive(): Promise<void> {
    await this.refresh();
    const r = this.current();
    if (r !== null && ACTIVE.has(r.phase)) {
      throw fail(
        'ROLLOUT_IN_PROGRESS',
        `rollout ${r.id} of pool "${r.pool}" is ${r.phase} and owns the weights; promote or abort it first (rollout-abort, or rollback)`,
      );
    }
  }

  /** Starts a rollout of `plan`; `actor` made the request. Throws ROLLOUT_IN_PROGRESS. */
  startRollout(plan: RolloutPlan): Promise<RolloutRecord> {
    // Chosen once: an attempt retried after a lost race keeps the id its gate calls were made for.
    const id = `r-${randomBytes(4).toString('hex')}`;
    return this.#op('start', async (previous) => {
      if (previous !== null && ACTIVE.has(previous.phase)) {
        const r = previous;
        throw fail(
          'ROLLOUT_IN_PROGRESS',
          `rollout ${r.id} of pool "${r.pool}" is ${r.phase}; abort it first`,
        );
      }
      const actor = `rollout:${id}`;
      const now = new Date().toISOString();
      const table = this.#deps.store.current();
      // An abort puts everybody back on the baseline only if the weights are all that send
      // requests to the target: a rule to it would keep its users there.
      const rule = table?.rules.find((x) => x.pool === plan.pool);
      if (rule !== undefined) {
        throw fail(
          'POOL_LIVE',
          `pool: routing rule "${rule.name}" sends requests to ${plan.pool}; a rollout must own all of its target's traffic, so change the rules first`,
        );
      }
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
        driver: await this.#driverNow(),
        analysis: plan.analysis,
        judgement: null,
        stepStartedAt: null,
        waiting: null,
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
      this.#record = record;
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
      return { result: record, archive: previous };
    });
  }

  /** Ends the current pause; `full`: to 100 % now, skipping the remaining steps and analysis. */
  promote(full: boolean): Promise<RolloutRecord> {
    return this.#op('promote', async () => {
      const r = this.#active('promote');
      if (full) {
        await this.#setWeight(r, TOTAL_BASIS_POINTS, 'promoted in full by hand');
        this.#finish(r, 'promoted', 'promote', 'promoted in full by hand');
        return { result: r };
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
      return { result: r };
    });
  }

  /** Holds the rollout at its current step (failing is still judged). */
  pause(): Promise<RolloutRecord> {
    return this.#op('pause', () => {
      const r = this.#active('pause');
      if (r.phase === 'progressing') {
        r.phase = 'paused';
        this.#decide(r, 'pause', 'paused by hand');
      }
      return Promise.resolve({ result: r });
    });
  }

  /** Continues a paused rollout. */
  resume(): Promise<RolloutRecord> {
    return this.#op('resume', () => {
      const r = this.#active('resume');
      if (r.phase !== 'paused') {
        throw fail('ROLLOUT_NOT_ACTIVE', `rollout ${r.id} is ${r.phase}, not paused`);
      }
      r.phase = 'progressing';
      this.#decide(r, 'resume', 'resumed by hand');
      return Promise.resolve({ result: r });
    });
  }

  /** Aborts: the target's weight to 0 in one revision. Resolves with the table after it. */
  abort(reason: string): Promise<{ record: RolloutRecord; table: RoutingTable | null }> {
    return this.#op('abort', async () => {
      const r = this.#active('abort');
      const table = await this.#abortNow(r, reason);
      return { result: { record: r, table } };
    });
  }

  /**
   * Runs a `rollout-*` command of the Redis commands stream (SPEC §9): the same operations with
   * the same validation as the admin API. Rejects with a SwitchyardError to refuse it.
   */
  async command(input: Record<string, unknown>): Promise<void> {
    const body = { ...input };
    const op = body.op;
    // `actor` is allowed on every command (SPEC §6); the rollout's own changes are rollout:<id>.
    delete body.op;
    delete body.actor;
    const only = (allowed: readonly string[]): void => {
      for (const key of Object.keys(body)) {
        if (!allowed.includes(key)) throw fail('VALIDATION_FAILED', `${key}: unknown field`);
      }
    };
    switch (op) {
      case 'rollout-start': {
        const plan = parseRolloutStart(body, this.#deps.store.current());
        await this.startRollout(plan);
        return;
      }
      case 'rollout-promote': {
        only(['full']);
        const full = body.full ?? false;
        if (typeof full !== 'boolean') throw fail('VALIDATION_FAILED', 'full: must be a boolean');
        await this.promote(full);
        return;
      }
      case 'rollout-pause':
        only([]);
        await this.pause();
        return;
      case 'rollout-resume':
        only([]);
        await this.resume();
        return;
      case 'rollout-abort': {
        only(['reason']);
        const reason = body.reason ?? 'aborted by a redis command';
        if (typeof reason !== 'string' || reason.length === 0 || reason.length > 500) {
          throw fail('VALIDATION_FAILED', 'reason: must be a string of 1..500 characters');
        }
        await this.abort(reason);
        return;
      }
      default:
        throw fail('VALIDATION_FAILED', `op: unknown rollout command ${JSON.stringify(op)}`);
    }
  }

  #active(what: string): RolloutRecord {
    const r = this.#record;
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

  /**
   * One human operation on the stored rollout: read it (with the cluster's counts), run `fn`,
   * write it back with compare-and-set; a lost race is retried from a fresh read. `archive`
   * (the rollout a start replaces) joins the past rollouts.
   */
  #op<T>(
    what: string,
    fn: (previous: RolloutRecord | null) => Promise<{ result: T; archive?: RolloutRecord | null }>,
  ): Promise<T> {
    return this.#run(async () => {
      for (let attempt = 1; ; attempt += 1) {
        const { token } = await this.#load();
        const { result, archive = null } = await fn(this.#record);
        if (await this.#save(token, archive)) return result;
        if (attempt >= MAX_OP_ATTEMPTS) {
          throw fail(
            'REVISION_CONFLICT',
            `${what}: the rollout changed concurrently ${MAX_OP_ATTEMPTS} times; retry`,
          );
        }
        this.#log.debug({ what, attempt }, 'rollout changed concurrently: retrying');
      }
    });
  }

  /**
   * Changes the stored rollout `id` outside a judging turn (a webhook call's record, the drained
   * record of SPEC §10): read, `annotate`, write back, retried on a lost race. Nothing when
   * another rollout is current by then.
   */
  #annotate(id: string, annotate: (r: RolloutRecord) => boolean): Promise<boolean> {
    return this.#run(async () => {
      if (this.#state === 'closed') return false;
      for (let attempt = 1; attempt <= MAX_OP_ATTEMPTS; attempt += 1) {
        const { token } = await this.#load();
        const r = this.#record;
        if (r === null || r.id !== id) return false;
        if (!annotate(r)) return false;
        if (await this.#save(token, null)) return true;
      }
      this.#log.warn({ rollout: id }, 'rollout changed concurrently: a record on it is lost');
      return false;
    }).catch((err: unknown) => {
      this.#log.warn({ err, rollout: id }, 'could not record on the rollout');
      return false;
    });
  }

  /**
   * Every tick, on every replica: publish this replica's counts (Redis), take or renew the lease,
   * and when driving run one judging turn on the stored rollout.
   */
  async #turn(): Promise<void> {
    if (this.#state !== 'running') return;
    const book = this.#book;
    try {
      if (book.shared) {
        await book.publishCounts(this.#deps.replicaId, this.#deps.counts());
        const lease = await book.lease(
          this.#deps.replicaId,
          this.#deps.leaseMs ?? DEFAULT_LEASE_MS,
        );
        const driving = lease.held;
        if (driving !== this.#driving) {
          this.#log.info({ driving }, driving ? 'rollout lease taken' : 'rollout lease lost');
        }
        this.#driving = driving;
        if (!driving) {
          this.#tryAgainAt(lease.expiresInMs);
          if (this.#lookbackDue()) this.#remember(await this.#clusterCounts());
          await this.refresh();
          return;
        }
      } else {
        this.#driving = true;
      }
      // Idle (no active rollout): read no counts but the lookback's, and write nothing.
      const peek = (await this.#book.read()).current?.record ?? null;
      if (peek === null || !ACTIVE.has(peek.phase)) {
        this.#cache = peek;
        if (this.#lookbackDue()) this.#remember(await this.#clusterCounts());
        // The replica that promoted it may be gone: the driver watches the old baseline drain.
        if (peek !== null && book.shared) this.#deps.hooks?.resumeDrainWatch(peek);
        return;
      }
      const { token } = await this.#load();
      this.#remember(this.#counts);
      const r = this.#record;
      if (r === null || !ACTIVE.has(r.phase)) return;
      if (r.driver !== this.#deps.replicaId) {
        const was = r.driver;
        r.driver = this.#deps.replicaId;
        this.#decide(r, 'driver', `${r.driver} drives from step ${r.step} (was ${was})`);
      }
      await this.#tick();
      if (!(await this.#save(token, null))) {
        this.#log.debug('rollout changed during a tick: judged again at the next one');
      }
    } catch (err) {
      if (!isSwitchyardError(err, 'STORE_UNAVAILABLE')) throw err;
      this.#noteUnreachable(err);
    }
  }

  /** The replica that drives from now on: this one if it can take the lease, else its holder. */
  async #driverNow(): Promise<string> {
    if (!this.#book.shared) return this.#deps.replicaId;
    const lease = await this.#book.lease(
      this.#deps.replicaId,
      this.#deps.leaseMs ?? DEFAULT_LEASE_MS,
    );
    this.#driving = lease.held;
    return lease.holder;
  }

  /**
   * When the holder's lease runs out before the next tick, tries again right then: a dead
   * driver is replaced within the lease time, not the lease time plus a tick.
   */
  #tryAgainAt(expiresInMs: number): void {
    if (this.#retry !== null || expiresInMs >= (this.#deps.tickMs ?? 1000)) return;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      if (this.#state !== 'running') return;
      this.#run(() => this.#turn()).catch((err: unknown) => {
        this.#log.error({ err }, 'rollout tick failed');
      });
    }, expiresInMs + 5);
    this.#retry.unref();
  }

  /** Loads the stored rollout and its engine state, and the cluster's counts. */
  async #load(): Promise<{ token: string }> {
    const [{ current, token }, counts] = await Promise.all([
      this.#book.read(),
      this.#clusterCounts(),
    ]);
    this.#counts = counts;
    this.#unsent = [];
    // A copy: an operation that fails half-way leaves the stored rollout as it was.
    const stored = current === null ? null : structuredClone<StoredRollout>(current);
    this.#record = stored?.record ?? null;
    this.#cache = current?.record ?? null;
    this.#loadEngine(stored?.engine ?? null);
    return { token };
  }

  /** Writes the record and engine state back; false when another write came in between. */
  async #save(token: string, archive: RolloutRecord | null): Promise<boolean> {
    const r = this.#record;
    if (r === null) return true;
    const stored: StoredRollout = { record: r, engine: this.#engineState() };
    if (!(await this.#book.write(stored, token, archive))) return false;
    const unsent = this.#unsent;
    this.#unsent = [];
    for (const { r: record, decision } of unsent) this.#deps.hooks?.onDecision(record, decision);
    this.#cache = r;
    if (archive !== null) this.#past = [archive, ...this.#past].slice(0, MAX_PAST);
    this.#setStepMetrics(r);
    return true;
  }

  #loadEngine(e: EngineState | null): void {
    this.#pendingRevision = e?.pendingRevision ?? null;
    this.#stepStartedAtMs = e?.stepStartedAtMs ?? Number.POSITIVE_INFINITY;
    this.#earlierTargetRequests = e?.earlierTargetRequests ?? 0;
    this.#beforeSwitch = e?.beforeSwitch ? decodePoolCounts(e.beforeSwitch) : null;
    this.#approved = e?.approved ?? false;
    this.#gatedStep = e?.gatedStep ?? null;
    this.#gatePaused = e?.gatePaused ?? false;
    const p = e?.period ?? null;
    this.#period =
      p === null
        ? null
        : {
            start: decodeCounts(p.start),
            startedAtMs: p.startedAtMs,
            warm: p.warm === null ? null : decodeCounts(p.warm),
            frozenBaseline: p.frozenBaseline ? decodePoolCounts(p.frozenBaseline) : null,
            failureRecorded: p.failureRecorded,
          };
  }

  #engineState(): EngineState {
    const p = this.#period;
    return {
      pendingRevision: this.#pendingRevision,
      stepStartedAtMs: Number.isFinite(this.#stepStartedAtMs) ? this.#stepStartedAtMs : null,
      earlierTargetRequests: this.#earlierTargetRequests,
      beforeSwitch: this.#beforeSwitch === null ? null : encodePoolCounts(this.#beforeSwitch),
      approved: this.#approved,
      gatedStep: this.#gatedStep,
      gatePaused: this.#gatePaused,
      period:
        p === null
          ? null
          : {
              start: encodeCounts(p.start),
              startedAtMs: p.startedAtMs,
              warm: p.warm === null ? null : encodeCounts(p.warm),
              frozenBaseline: p.frozenBaseline ? encodePoolCounts(p.frozenBaseline) : null,
              failureRecorded: p.failureRecorded,
            },
    };
  }

  /**
   * Per-pool counts of every replica: this one's live counters plus, with Redis, the others'
   * last published ones.
   */
  async #clusterCounts(): Promise<CountsSnapshot> {
    const own = this.#deps.counts();
    if (!this.#book.shared) return own;
    const all = await this.#book.replicaCounts();
    all.delete(this.#deps.replicaId);
    return sumCounts([own, ...all.values()]);
  }

  /**
   * With Redis, every replica's per-pool counters by replica id (this one's live, the others' as
   * last published, at most about a second old); null with a memory book (one replica).
   */
  async fleetCounts(): Promise<Map<string, CountsSnapshot> | null> {
    if (!this.#book.shared) return null;
    const all = await this.#book.replicaCounts();
    all.set(this.#deps.replicaId, this.#deps.counts());
    return all;
  }

  /** Marks the rollout as seen here: the store cannot be read, so nothing advances. */
  #noteUnreachable(err: unknown): void {
    this.#log.debug({ err }, 'rollout store unreachable');
    const r = this.#cache;
    if (r !== null && ACTIVE.has(r.phase) && r.waiting !== STORE_DOWN) {
      this.#cache = { ...r, waiting: STORE_DOWN };
    }
  }

  /** One judging turn: start the period's clock, judge, move on. */
  async #tick(): Promise<void> {
    const r = this.#record;
    if (r === null || !ACTIVE.has(r.phase) || this.#state !== 'running') return;
    if (this.#pendingRevision !== null) {
      const lagging = await this.#lagging(this.#pendingRevision);
      if (lagging.length > 0) {
        r.waiting = `waiting for ${lagging.join(', ')} to apply revision ${this.#pendingRevision}`;
        return;
      }
      this.#pendingRevision = null;
      r.waiting = null;
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
    // Only the driver calls gates: a replica that is not driving (a rollout started through it)
    // leaves the step gated and the driver calls them at its next tick, once. Without gates
    // (the usual case) the step is entered at once, wherever the rollout was started.
    if (this.#book.shared && !this.#driving && hooks.hasGates(r, index)) return;
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
    r.stepStartedAt = r.updatedAt;
    r.waiting = null;
    this.#stepStartedAtMs = Date.now();
    this.#setStepMetrics(r);
    const step = r.steps[index];
    if (step === undefined) return;
    if (isWeightStep(step)) {
      if (this.#period !== null) {
        const t = countsSince(r.pool, this.#period.start, this.#counts);
        this.#earlierTargetRequests += t.requests;
      }
      this.#period = null;
      const reason = `step ${index}: ${r.pool} to ${formatBp(step.basisPoints)}`;
      const table = await this.#setWeight(r, step.basisPoints, reason);
      this.#decide(r, 'step', reason);
      // The step's clock starts when every live replica routes by the new weights.
      this.#pendingRevision = table?.revision ?? 0;
      this.#stepStartedAtMs = Number.POSITIVE_INFINITY;
      r.stepStartedAt = null;
    } else {
      this.#decide(r, 'step', `step ${index}: pause ${step.pause}`);
    }
  }

  #openPeriod(r: RolloutRecord): void {
    const now = Date.now();
    this.#stepStartedAtMs = now;
    r.stepStartedAt = new Date(now).toISOString();
    let frozenBaseline: PoolCounts | null = null;
    if (r.strategy === 'blue-green') frozenBaseline = this.#beforeSwitch ?? EMPTY;
    this.#period = {
      start: this.#counts,
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
    const counts = this.#counts;
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
  #remember(counts: CountsSnapshot): void {
    if (!this.#lookbackDue()) return;
    const now = Date.now();
    this.#lookback.push({ atMs: now, counts });
    while ((this.#lookback[0]?.atMs ?? now) < now - MAX_LOOKBACK_MS) this.#lookback.shift();
  }

  #lookbackDue(): boolean {
    const newest = this.#lookback.at(-1);
    return newest === undefined || Date.now() - newest.atMs >= SNAPSHOT_EVERY_MS;
  }

  /**
   * `baseline`'s counts over the last `windowMs` (at most MAX_LOOKBACK_MS; less when this
   * process has run for less), latency included.
   */
  #baselineBefore(baseline: string, windowMs: number): PoolCounts {
    const now = Date.now();
    const from =
      this.#lookback.find((s) => s.atMs >= now - windowMs)?.counts ?? new Map<string, never>();
    return countsSince(baseline, from, this.#counts, from);
  }

  /**
   * The live replicas that have not applied `revision` yet (the store's replica list, as
   * `?wait=all` reads it; the memory store lists this process only). With no live replica at
   * all (the list not written yet) it names this one: nobody has confirmed the weights.
   */
  async #lagging(revision: number): Promise<string[]> {
    const replicas = await this.#deps.store.replicas();
    if (!replicas.some((x) => x.live)) return [this.#deps.replicaId];
    return replicas.filter((x) => x.live && x.revision < revision).map((x) => x.id);
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
    r.waiting = null;
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
    appendDecision(r, decision);
    this.#deps.metrics.rolloutDecisions.inc({ action });
    this.#log.info({ rollout: r.id, pool: r.pool, action, reason, dryRun }, 'rollout decision');
    this.#unsent.push({ r, decision });
  }

  #setStepMetrics(r: RolloutRecord): void {
    const m = this.#deps.metrics;
    for (const phase of PHASES)
      m.rolloutPhase.set({ pool: r.pool, phase }, phase === r.phase ? 1 : 0);
    m.rolloutStep.set(r.step);
    m.rolloutTargetWeight.set(r.targetWeightBp);
  }
}
