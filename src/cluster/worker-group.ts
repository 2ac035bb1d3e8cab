/**
 * The primary's side of `--workers N` (SPEC §13): forks N proxy workers that share the proxy
 * port, feeds each new table to all of them, and answers for them as one data plane: the applied
 * revision is the lowest any serving worker routes by, traffic, outcomes and drain counts are
 * their sums. A worker that dies is logged and forked again with backoff; the group serves while
 * at least one worker does.
 *
 * Health checks: every worker runs its own (active checks and passive ejection), because each
 * routes by its own view and ejection is per connection pool anyway; the primary keeps an
 * unstarted ProxyServer (`local`) that checks too, for the admin API's view of the endpoints.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Config, ListenAddress } from '../config/schema.js';
import type { PoolLoad } from '../data/pool-loads.js';
import type { PoolOutcomeSnapshot } from '../data/pool-outcomes.js';
import type { ProxyServer } from '../data/proxy-server.js';
import { TrafficWindow } from '../data/traffic-window.js';
import { fail } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics, WorkerMetrics } from '../observability/metrics.js';
import { LatencyHistogram } from '../rollout/latency-histogram.js';
import type { RoutingTable } from '../table/types.js';
import { GroupMetrics } from './group-metrics.js';
import {
  isWorkerMessage,
  type PrimaryMessage,
  type WorkerMessage,
  type WirePoolOutcome,
} from './messages.js';

/** A worker forked this long ago that dies starts the backoff from the beginning again. */
const STABLE_AFTER_MS = 30_000;
/** First restart delay; doubles per crash in a row up to MAX_RESTART_DELAY_MS. */
const FIRST_RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 10_000;
/** A worker that has not answered `ready` this long after its fork fails start(). */
const READY_TIMEOUT_MS = 20_000;
/** After `destroy`, a worker still alive this long is SIGKILLed. */
const DESTROY_GRACE_MS = 1_000;
/** Default time to wait for every worker to apply a table (change answers). */
export const APPLY_TIMEOUT_MS = 10_000;

type Slot = {
  /** 1..N, stable across restarts: the `worker` label. */
  readonly index: number;
  worker: Worker | null;
  forkedAt: number;
  ready: boolean;
  revision: number;
  crashes: number;
  restartTimer: NodeJS.Timeout | undefined;
  /** Last report's cumulative figures. */
  routed: Record<string, number>;
  outcomes: Record<string, WirePoolOutcome>;
  drain: Record<string, PoolLoad>;
  inFlight: number;
};

/** What a WorkerGroup uses. */
export interface WorkerGroupDeps {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly workerMetrics: WorkerMetrics;
  /** The primary's unstarted proxy: health checks and the endpoints' view for the admin API. */
  readonly local: ProxyServer;
}

type State = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

/** N proxy worker processes acting as one data plane. */
export class WorkerGroup {
  readonly #config: Config;
  readonly #count: number;
  readonly #log: Logger;
  readonly #local: ProxyServer;
  readonly #workerMetrics: WorkerMetrics;
  readonly #slots: Slot[];
  readonly #traffic = new TrafficWindow();
  /** Outcomes of workers that died: their counts stay in poolCounts() (the judge diffs it). */
  readonly #departed = new Map<
    string,
    { requests: number; errors: number; latency: LatencyHistogram }
  >();
  readonly #ownListeners: ListenAddress[] = [];
  readonly #waiters = new Set<{ revision: number; resolve: () => void }>();
  readonly #groupMetrics: GroupMetrics;
  #table: RoutingTable | null = null;
  #address: ListenAddress | null = null;
  #shuttingDown = false;
  #state: State = 'idle';
  #closing: Promise<void> | undefined;

  constructor(config: Config, count: number, deps: WorkerGroupDeps) {
    if (!cluster.isPrimary) throw new Error('WorkerGroup: only a primary process forks workers');
    this.#config = config;
    this.#count = count;
    this.#log = deps.logger.child({ component: 'workers' });
    this.#local = deps.local;
    this.#workerMetrics = deps.workerMetrics;
    this.#slots = Array.from({ length: count }, (_, i) => ({
      index: i + 1,
      worker: null,
      forkedAt: 0,
      ready: false,
      revision: 0,
      crashes: 0,
      restartTimer: undefined,
      routed: {},
      outcomes: {},
      drain: {},
      inFlight: 0,
    }));
    this.#groupMetrics = new GroupMetrics(deps.metrics.registry, () =>
      this.#slots.flatMap((s) => (s.ready && s.worker !== null ? [s.worker] : [])),
    );
    this.#workerMetrics.serving.set(0);
  }

  /** Forks every worker and resolves once all of them listen (rejects if one cannot). */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error('WorkerGroup.start() called twice');
    this.#state = 'starting';
    this.#groupMetrics.install();
    await Promise.all(this.#slots.map((slot) => this.#fork(slot)));
    this.#state = 'running';
    this.#log.info(
      { workers: this.#count, schedulingPolicy: schedulingPolicyName() },
      'workers started',
    );
  }

  #fork(slot: Slot): Promise<void> {
    const worker = cluster.fork();
    slot.worker = worker;
    slot.forkedAt = Date.now();
    slot.ready = false;
    slot.revision = 0;
    slot.routed = {};
    slot.outcomes = {};
    slot.drain = {};
    slot.inFlight = 0;
    worker.on('message', (msg: unknown) => {
      if (isWorkerMessage(msg)) this.#onMessage(slot, worker, msg);
    });
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`worker ${slot.index} did not start in ${READY_TIMEOUT_MS / 1000} s`));
      }, READY_TIMEOUT_MS);
      timer.unref();
      const onReady = (msg: unknown): void => {
        if (!isWorkerMessage(msg) || msg.sy !== 'ready') return;
        clearTimeout(timer);
        worker.off('message', onReady);
        resolve();
      };
      worker.on('message', onReady);
      worker.once('exit', (code, signal) => {
        clearTimeout(timer);
        worker.off('message', onReady);
        if (!slot.ready)
          reject(new Error(`worker ${slot.index} exited (${signal ?? code}) before listening`));
        this.#onExit(slot, worker, code, signal);
      });
    });
  }

  #onMessage(slot: Slot, worker: Worker, msg: WorkerMessage): void {
    if (slot.worker !== worker) return;
    switch (msg.sy) {
      case 'hello':
        // The table and listeners as they are now, not as they were at the fork.
        this.#send(worker, {
          sy: 'start',
          slot: slot.index,
          config: this.#config,
          table: this.#table,
          viaToken: this.#local.viaToken,
          ownListeners: this.#ownListeners,
          shuttingDown: this.#shuttingDown,
        });
        return;
      case 'ready':
        slot.ready = true;
        slot.revision = msg.revision;
        this.#address ??= msg.address;
        // A table applied while it was starting may have crossed the start message.
        if (this.#table !== null && this.#table.revision !== msg.revision)
          this.#send(worker, { sy: 'table', table: this.#table });
        this.#workerMetrics.serving.set(this.serving());
        this.#log.info({ worker: slot.index, pid: worker.process.pid }, 'worker ready');
        this.#settleWaiters();
        return;
      case 'applied':
        slot.revision = msg.revision;
        this.#settleWaiters();
        return;
      case 'report': {
        const now = Date.now();
        for (const [pool, total] of Object.entries(msg.routed)) {
          const delta = total - (slot.routed[pool] ?? 0);
          if (delta > 0) {
            this.#traffic.counter(pool).add(now, delta);
            this.#workerMetrics.requests.inc({ worker: String(slot.index) }, delta);
          }
        }
        slot.routed = msg.routed;
        slot.outcomes = msg.outcomes;
        slot.drain = msg.drain;
        slot.inFlight = msg.inFlight;
        return;
      }
      case 'metrics':
        this.#groupMetrics.answer(msg.id, msg.metrics);
        return;
      case 'closed':
        return;
    }
  }

  #onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    // Its counts stay counted: the rollout judge diffs cumulative figures.
    for (const [pool, o] of Object.entries(slot.outcomes)) {
      let d = this.#departed.get(pool);
      if (d === undefined) {
        d = { requests: 0, errors: 0, latency: new LatencyHistogram() };
        this.#departed.set(pool, d);
      }
      d.requests += o.requests;
      d.errors += o.errors;
      d.latency.add(LatencyHistogram.fromJSON(o.latency));
    }
    const wasReady = slot.ready;
    slot.worker = null;
    slot.ready = false;
    slot.outcomes = {};
    slot.drain = {};
    slot.inFlight = 0;
    this.#workerMetrics.serving.set(this.serving());
    this.#settleWaiters();
    if (this.#state === 'closing' || this.#state === 'closed' || this.#shuttingDown) return;
    if (!wasReady && this.#state === 'starting') return;
    const stable = Date.now() - slot.forkedAt >= STABLE_AFTER_MS;
    slot.crashes = stable ? 1 : slot.crashes + 1;
    const delayMs = Math.min(
      MAX_RESTART_DELAY_MS,
      FIRST_RESTART_DELAY_MS * 2 ** (slot.crashes - 1),
    );
    this.#workerMetrics.restarts.inc();
    this.#log.error(
      {
        worker: slot.index,
        pid: worker.process.pid,
        code,
        signal,
        serving: this.serving(),
        restartInMs: delayMs,
      },
      'worker died',
    );
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.#state !== 'running' || this.#shuttingDown) return;
      this.#fork(slot).catch((err: unknown) =>
        this.#log.error({ err, worker: slot.index }, 'worker restart failed'),
      );
    }, delayMs);
    slot.restartTimer.unref();
  }

  #send(worker: Worker, msg: PrimaryMessage): void {
    if (!worker.isConnected()) return;
    worker.send(msg, (err: Error | null) => {
      // The worker died meanwhile: its exit is handled (and logged) on its own.
      if (err !== null) this.#log.debug({ err, sy: msg.sy }, 'message to worker lost');
    });
  }

  #broadcast(msg: PrimaryMessage): void {
    for (const slot of this.#slots) if (slot.worker !== null) this.#send(slot.worker, msg);
  }

  /** Workers listening now. */
  serving(): number {
    let n = 0;
    for (const slot of this.#slots) if (slot.ready) n++;
    return n;
  }

  /** Sends `table` to every worker (and to workers forked later); the local proxy applies it. */
  applyTable(table: RoutingTable): void {
    this.#table = table;
    this.#local.applyTable(table);
    this.#broadcast({ sy: 'table', table });
  }

  /**
   * The revision the whole group routes by: the lowest of the serving workers (0 when none
   * serves). What the replica registry reports, so receipts stay true.
   */
  appliedRevision(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const slot of this.#slots) if (slot.ready) min = Math.min(min, slot.revision);
    return min === Number.POSITIVE_INFINITY ? 0 : min;
  }

  /**
   * Resolves once every serving worker routes by `revision` or later; rejects with
   * REPLICAS_LAGGING naming the lagging workers after `timeoutMs`.
   */
  waitApplied(revision: number, timeoutMs = APPLY_TIMEOUT_MS): Promise<void> {
    if (this.#allAt(revision)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        revision,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        const lagging = this.#slots
          .filter((s) => s.ready && s.revision < revision)
          .map((s) => `worker-${s.index}`);
        reject(
          fail(
            'REPLICAS_LAGGING',
            `revision ${revision} was stored, but ${lagging.length} worker(s) of this replica had not applied it within ${timeoutMs} ms`,
            { details: { lagging, revision } },
          ),
        );
      }, timeoutMs);
      timer.unref();
      this.#waiters.add(waiter);
    });
  }

  #allAt(revision: number): boolean {
    for (const slot of this.#slots) if (slot.ready && slot.revision < revision) return false;
    return true;
  }

  #settleWaiters(): void {
    for (const w of this.#waiters) {
      if (this.#allAt(w.revision)) {
        this.#waiters.delete(w);
        w.resolve();
      }
    }
  }

  /** The shared proxy address (after start). */
  address(): { host: string; port: number } {
    if (this.#address === null) throw new Error('WorkerGroup is not listening');
    return this.#address;
  }

  /** Another listener of this replica (admin API): every worker answers 508 for endpoints on it. */
  addOwnListener(address: ListenAddress): void {
    const a = { host: address.host, port: address.port };
    this.#ownListeners.push(a);
    this.#local.addOwnListener(a);
    this.#broadcast({ sy: 'own-listener', address: a });
  }

  /** Requests routed per pool by all workers over the last `windowMs` (reports lag ≤ 250 ms). */
  trafficSnapshot(windowMs: number): Record<string, number> {
    return this.#traffic.snapshot(windowMs);
  }

  /** Cumulative outcomes per pool over every worker, dead ones included (rollout judge). */
  poolCounts(): Map<string, PoolOutcomeSnapshot> {
    const out = new Map<string, { requests: number; errors: number; latency: LatencyHistogram }>();
    const entry = (
      pool: string,
    ): { requests: number; errors: number; latency: LatencyHistogram } => {
      let e = out.get(pool);
      if (e === undefined) {
        e = { requests: 0, errors: 0, latency: new LatencyHistogram() };
        out.set(pool, e);
      }
      return e;
    };
    for (const [pool, d] of this.#departed) {
      const e = entry(pool);
      e.requests += d.requests;
      e.errors += d.errors;
      e.latency.add(d.latency);
    }
    for (const slot of this.#slots) {
      for (const [pool, o] of Object.entries(slot.outcomes)) {
        const e = entry(pool);
        e.requests += o.requests;
        e.errors += o.errors;
        e.latency.add(LatencyHistogram.fromJSON(o.latency));
      }
    }
    return out;
  }

  /**
   * Per pool, over the workers: the highest weight any of them routes by (a pool is drained
   * only once every worker gives it 0), in-flight requests and long-lived connections summed.
   */
  drainReport(): Record<string, PoolLoad> {
    const out: Record<string, PoolLoad> = {};
    for (const [pool, load] of Object.entries(this.#local.drainReport()))
      out[pool] = { weight: load.weight, inFlight: 0, longLived: 0 };
    for (const slot of this.#slots) {
      for (const [pool, load] of Object.entries(slot.drain)) {
        const o = (out[pool] ??= { weight: 0, inFlight: 0, longLived: 0 });
        o.weight = Math.max(o.weight, load.weight);
        o.inFlight += load.inFlight;
        o.longLived += load.longLived;
      }
    }
    return out;
  }

  /** Client requests in flight over the workers (last reports). */
  inFlight(): number {
    let n = 0;
    for (const slot of this.#slots) n += slot.inFlight;
    return n;
  }

  poolHealth(pool: string): { healthy: number; total: number } {
    return this.#local.poolHealth(pool);
  }

  settledPoolHealth(
    pool: string,
    signal?: AbortSignal,
  ): Promise<{ healthy: number; total: number; unchecked: number }> {
    return this.#local.settledPoolHealth(pool, signal);
  }

  endpointHealth(pool: string): { url: string; healthy: boolean }[] {
    return this.#local.endpointHealth(pool);
  }

  /** Every worker answers with Connection: close from now on; no worker is restarted. */
  beginShutdown(): void {
    this.#shuttingDown = true;
    this.#local.beginShutdown();
    this.#broadcast({ sy: 'begin-shutdown' });
  }

  /**
   * Each worker stops accepting, finishes its in-flight requests, closes its long-lived
   * connections (as one process does, within drainTimeout) and exits; resolves when all have
   * exited. Workers still alive after drainTimeout + 5 s are destroyed. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#state = 'closing';
    for (const slot of this.#slots) clearTimeout(slot.restartTimer);
    const exits = this.#slots.flatMap((slot) =>
      slot.worker === null ? [] : [exitOf(slot.worker)],
    );
    this.#broadcast({ sy: 'close' });
    const deadline = this.#config.drainTimeout + 5_000;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), deadline);
      timer.unref();
    });
    const outcome = await Promise.race([Promise.all(exits).then(() => 'done' as const), late]);
    clearTimeout(timer);
    if (outcome === 'late') {
      this.#log.warn({ deadlineMs: deadline }, 'workers did not exit in time: killing');
      for (const slot of this.#slots) slot.worker?.process.kill('SIGKILL');
      await Promise.all(exits);
    }
    await this.#local.close();
    this.#state = 'closed';
    this.#log.info('workers closed');
  }

  /** Aborts every worker's connections at once; workers alive after a second are killed. */
  destroy(): void {
    this.#shuttingDown = true;
    for (const slot of this.#slots) clearTimeout(slot.restartTimer);
    this.#broadcast({ sy: 'destroy' });
    for (const slot of this.#slots) {
      const worker = slot.worker;
      if (worker === null) continue;
      const t = setTimeout(() => worker.process.kill('SIGKILL'), DESTROY_GRACE_MS);
      t.unref();
      worker.once('exit', () => clearTimeout(t));
    }
    this.#local.destroy();
  }
}

function exitOf(worker: Worker): Promise<void> {
  if (worker.isDead()) return Promise.resolve();
  return new Promise((resolve) => worker.once('exit', () => resolve()));
}

/** `rr` (the primary accepts and hands connections round-robin) or `none` (the kernel). */
function schedulingPolicyName(): 'rr' | 'none' {
  return cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none';
}
