/**
 * What a rollout tells and asks the systems around it (SPEC §10), as one dependency of the
 * RolloutDriver:
 * - gates: before a weight increase the driver polls checkGates(); calls run in the background
 *   (never inside the driver's serial section) and their result is read at the next tick.
 *   `pre-rollout` (before the first step) failing aborts; `pre-step` failing pauses, is retried
 *   every `gateRetryMs`, and past `analysis.maxStepDuration` waits for approval.
 * - notifications: onDecision() maps each decision to its events (`step`, `paused`, `promoted`,
 *   `aborted`, and `decision` for every one) and queues them on the sender: never waited for.
 * - the drained record: after a promotion, the old baseline's drain state is polled (as
 *   GET /v1/pools/{name}/drain computes it); the moment it drains the rollout records
 *   `drainedAt` and sends `drained`, once.
 * Every call and its result is kept in the rollout's decisions (action `webhook`), written through
 * the driver (attach()), which stores the rollout: with Redis, for every replica to read. Events
 * come from the decisions the driver has written, so each is sent once, by the replica that made
 * it (the driver for a judging turn, the receiving replica for a human operation).
 */
import type { ControlStore } from '../control/control-store.js';
import { drainView } from '../control/drain-view.js';
import { isSwitchyardError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { isWeightStep } from './rollout-plan.js';
import { appendDecision, type RolloutDecision, type RolloutRecord } from './rollout-record.js';
import type { WebhookCallResult, WebhookSender } from './webhook-sender.js';
import type { GateEvent, NotifyEvent, Webhook, WebhookEvent } from './webhooks.js';

/** What checkGates() tells the driver about the weight step it wants to enter. */
export type GateCheck =
  | { readonly kind: 'open' }
  | { readonly kind: 'wait' }
  /** `pre-rollout` failed: abort. */
  | { readonly kind: 'abort'; readonly reason: string }
  /** `pre-step` failed for the first time: pause (retries go on). */
  | { readonly kind: 'pause'; readonly reason: string }
  /** `pre-step` still fails after maxStepDuration: wait for approval. */
  | { readonly kind: 'overdue'; readonly reason: string };

/**
 * Changes the stored rollout `id` through the driver: `annotate` changes it and returns true, or
 * returns false to leave it as it is. Resolves true when a change was written.
 */
export type RolloutAnnotator = (
  id: string,
  annotate: (r: RolloutRecord) => boolean,
) => Promise<boolean>;

/** The hooks' dependencies, created and closed by the app. */
export interface RolloutHooksDeps {
  readonly sender: WebhookSender;
  readonly store: ControlStore;
  readonly logger: Logger;
  /** Pause between tries of a failing gate (default 2 s). */
  readonly gateRetryMs?: number;
  /** How often the old baseline's drain state is read after a promotion (default 1 s). */
  readonly drainPollMs?: number;
  /** Stop watching a baseline that has not drained after this long (default 24 h). */
  readonly maxDrainWatchMs?: number;
}

interface GateState {
  inFlight: boolean;
  passed: boolean;
  failures: number;
  firstFailAtMs: number;
  nextTryAtMs: number;
  lastReason: string;
  reported: boolean;
}

interface DrainWatch {
  readonly rollout: RolloutRecord;
  readonly timer: NodeJS.Timeout;
  readonly untilMs: number;
  busy: boolean;
}

/** Gates, notifications and the drained record of the rollouts of one driver. */
export class RolloutHooks {
  readonly #deps: RolloutHooksDeps;
  readonly #log: Logger;
  /** `<rollout id>:<step index>` the gate states belong to. */
  #gateKey = '';
  readonly #gates = new Map<GateEvent, GateState>();
  #watch: DrainWatch | null = null;
  #closed = false;
  #annotate: RolloutAnnotator | null = null;

  constructor(deps: RolloutHooksDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ component: 'rollout-hooks' });
  }

  /** The driver tells how its stored rollout is changed (it calls this once, when made). */
  attach(annotate: RolloutAnnotator): void {
    this.#annotate = annotate;
  }

  /** Appends a decision to the stored rollout `id`. */
  #append(id: string, decision: RolloutDecision): void {
    void this.#annotate?.(id, (r) => {
      appendDecision(r, decision);
      return true;
    });
  }

  /** True when a webhook of `r` is a gate before weight step `index`. */
  hasGates(r: RolloutRecord, index: number): boolean {
    const events = gateEvents(index);
    return r.webhooks.some((h) => events.some((e) => h.events.includes(e)));
  }

  /**
   * The gates before weight step `index` of `r`: `pre-rollout` before the first one, then
   * `pre-step` before each. Starts calls as needed; never waits for one.
   */
  checkGates(r: RolloutRecord, index: number, nowMs = Date.now()): GateCheck {
    const key = `${r.id}:${index}`;
    if (key !== this.#gateKey) {
      this.#gateKey = key;
      this.#gates.clear();
    }
    for (const event of gateEvents(index)) {
      const hooks = r.webhooks.filter((h) => h.events.includes(event));
      if (hooks.length === 0) continue;
      let g = this.#gates.get(event);
      if (g === undefined) {
        g = {
          inFlight: false,
          passed: false,
          failures: 0,
          firstFailAtMs: 0,
          nextTryAtMs: 0,
          lastReason: '',
          reported: false,
        };
        this.#gates.set(event, g);
      }
      if (g.passed) continue;
      if (g.inFlight) return { kind: 'wait' };
      if (g.failures > 0) {
        if (event === 'pre-rollout') return { kind: 'abort', reason: g.lastReason };
        if (!g.reported) {
          g.reported = true;
          return {
            kind: 'pause',
            reason: `${g.lastReason}; retrying every ${Math.round(this.#retryMs() / 1000)} s for up to ${Math.round(r.analysis.maxStepDurationMs / 1000)} s`,
          };
        }
        if (nowMs - g.firstFailAtMs >= r.analysis.maxStepDurationMs) {
          return {
            kind: 'overdue',
            reason: `${g.lastReason}, still after ${Math.round(r.analysis.maxStepDurationMs / 1000)} s: promote by hand to go on`,
          };
        }
        if (nowMs < g.nextTryAtMs) return { kind: 'wait' };
      }
      this.#runGate(r, index, event, hooks, g, key);
      return { kind: 'wait' };
    }
    return { kind: 'open' };
  }

  /** Called by the driver after each decision it records: queues the matching events. */
  onDecision(r: RolloutRecord, decision: RolloutDecision): void {
    if (this.#closed) return;
    if (decision.action === 'start' && this.#watch !== null && this.#watch.rollout.id !== r.id) {
      this.#stopWatch();
    }
    const event = decision.dryRun === true ? null : eventOf(r, decision);
    if (event !== null) this.#notify(r, event, { decision });
    this.#notify(r, 'decision', { decision });
    if (event === 'promoted') this.#watchDrain(r);
  }

  /** Stops the drain watch and gate calls; queued notifications end with the sender. */
  close(): Promise<void> {
    this.#closed = true;
    this.#stopWatch();
    return Promise.resolve();
  }

  #retryMs(): number {
    return this.#deps.gateRetryMs ?? 2000;
  }

  #runGate(
    r: RolloutRecord,
    index: number,
    event: GateEvent,
    hooks: readonly Webhook[],
    g: GateState,
    key: string,
  ): void {
    g.inFlight = true;
    const step = r.steps[index];
    const body = JSON.stringify({
      event,
      rollout: r,
      next: {
        step: index,
        basisPoints: step !== undefined && isWeightStep(step) ? step.basisPoints : null,
      },
    });
    const calls = hooks.map(async (hook) => {
      const result = await this.#deps.sender.call(hook, event, body);
      this.#record(r, hook, event, result);
      return { hook, result };
    });
    void Promise.all(calls).then((results) => {
      if (key !== this.#gateKey) return;
      g.inFlight = false;
      const failed = results.filter((x) => !x.result.ok);
      if (failed.length === 0) {
        g.passed = true;
        return;
      }
      const now = Date.now();
      if (g.failures === 0) g.firstFailAtMs = now;
      g.failures++;
      g.nextTryAtMs = now + this.#retryMs();
      g.lastReason = `${event} gate failed: ${failed.map((x) => `${x.hook.url} ${x.result.outcome}`).join(', ')}`;
    });
  }

  #notify(r: RolloutRecord, event: NotifyEvent, extra: Record<string, unknown>): void {
    const hooks = r.webhooks.filter((h) => h.events.includes(event));
    if (hooks.length === 0) return;
    // Serialized now: the delivery carries the rollout as it was when the event happened.
    const body = JSON.stringify({ event, rollout: r, ...extra });
    for (const [i, hook] of r.webhooks.entries()) {
      if (!hooks.includes(hook)) continue;
      this.#deps.sender.notify(
        `${r.id}#${i}`,
        hook,
        event,
        body,
        (result) => this.#record(r, hook, event, result),
        (dropped) =>
          this.#append(r.id, {
            time: new Date().toISOString(),
            action: 'webhook',
            reason: `${dropped} → ${hook.url}: dropped, too many waiting deliveries`,
          }),
      );
    }
  }

  #record(r: RolloutRecord, hook: Webhook, event: WebhookEvent, result: WebhookCallResult): void {
    this.#append(r.id, {
      time: new Date().toISOString(),
      action: 'webhook',
      reason: `${event} → ${hook.url}: ${result.outcome} (attempt ${result.attempt})`,
      webhook: {
        event,
        url: hook.url,
        attempt: result.attempt,
        status: result.status,
        outcome: result.outcome,
      },
    });
  }

  /**
   * A driver that took over (with Redis) calls this on every idle turn with the stored rollout:
   * a promoted one whose old baseline has not drained yet is watched from here on, so the
   * `drained` record and event do not depend on the replica that promoted it staying up.
   */
  resumeDrainWatch(r: RolloutRecord): void {
    if (this.#closed || r.phase !== 'promoted' || r.drainedAt !== null) return;
    if (this.#watch?.rollout.id === r.id) return;
    // Traffic went back to the baseline (a rollback): it will not drain for this rollout.
    if ((this.#deps.store.current()?.weights[r.baseline] ?? 0) > 0) return;
    const promotedAtMs = Date.parse(r.updatedAt);
    const untilMs =
      (Number.isFinite(promotedAtMs) ? promotedAtMs : Date.now()) + this.#maxDrainWatchMs();
    if (Date.now() > untilMs) return;
    this.#log.info({ rollout: r.id, pool: r.baseline }, 'watching the old baseline drain');
    this.#watchDrain(r, untilMs);
  }

  #maxDrainWatchMs(): number {
    return this.#deps.maxDrainWatchMs ?? 24 * 3_600_000;
  }

  #watchDrain(r: RolloutRecord, untilMs = Date.now() + this.#maxDrainWatchMs()): void {
    this.#stopWatch();
    if (r.drainedAt !== null) return;
    const timer = setInterval(() => {
      void this.#checkDrain();
    }, this.#deps.drainPollMs ?? 1000);
    timer.unref();
    this.#watch = { rollout: r, timer, untilMs, busy: false };
    void this.#checkDrain();
  }

  #stopWatch(): void {
    if (this.#watch !== null) clearInterval(this.#watch.timer);
    this.#watch = null;
  }

  async #checkDrain(): Promise<void> {
    const w = this.#watch;
    if (w === null || w.busy) return;
    const r = w.rollout;
    if (Date.now() > w.untilMs) {
      this.#log.warn(
        { rollout: r.id, pool: r.baseline },
        'old baseline never drained: not watching',
      );
      this.#stopWatch();
      return;
    }
    w.busy = true;
    try {
      const store = this.#deps.store;
      const reports = await store.drainReports();
      if (this.#watch !== w) return;
      const table = store.current();
      if ((table?.weights[r.baseline] ?? 0) > 0) {
        // Traffic went back to the baseline (a rollback): it will not drain for this rollout.
        this.#log.info({ rollout: r.id, pool: r.baseline }, 'old baseline has traffic again');
        this.#stopWatch();
        return;
      }
      let drained: boolean;
      let live = 0;
      try {
        const view = drainView(r.baseline, table, reports);
        drained = view.drained;
        live = view.replicas.filter((x) => x.live).length;
      } catch (err) {
        // No replica knows the pool any more: nothing can flow to it.
        if (!isSwitchyardError(err, 'UNKNOWN_POOL')) throw err;
        drained = true;
      }
      if (!drained) return;
      const time = new Date().toISOString();
      const decision: RolloutDecision = {
        time,
        action: 'drained',
        reason: `${r.baseline}: no traffic left on ${live} live replica(s): may be scaled down`,
      };
      // Written once (compare-and-set, through the driver), and sent only by the replica whose
      // write it was: after a takeover two replicas may both be watching.
      const written =
        (await this.#annotate?.(r.id, (stored) => {
          if (stored.drainedAt !== null || stored.phase !== 'promoted') return false;
          stored.drainedAt = time;
          appendDecision(stored, decision);
          return true;
        })) ?? false;
      if (this.#watch !== w) return;
      this.#stopWatch();
      if (!written) return;
      // `r` is the rollout as promoted: what the drained event carries.
      r.drainedAt = time;
      this.#log.info({ rollout: r.id, pool: r.baseline }, 'old baseline drained');
      this.#notify(r, 'drained', { decision });
      this.#notify(r, 'decision', { decision });
    } catch (err) {
      // The store is unreachable for now: the next poll tries again.
      this.#log.warn({ err, rollout: r.id }, 'drain check failed');
    } finally {
      w.busy = false;
    }
  }
}

/** The gate events before weight step `index`. */
function gateEvents(index: number): readonly GateEvent[] {
  return index === 0 ? ['pre-rollout', 'pre-step'] : ['pre-step'];
}

/** The notification a decision stands for, besides `decision`; null for none. */
function eventOf(r: RolloutRecord, d: RolloutDecision): NotifyEvent | null {
  switch (d.action) {
    case 'step':
      return 'step';
    case 'pause':
    case 'awaiting-approval':
      return 'paused';
    case 'promoted':
    case 'promote':
      return r.phase === 'promoted' ? 'promoted' : null;
    case 'abort':
      return r.phase === 'aborted' ? 'aborted' : null;
    default:
      return null;
  }
}
