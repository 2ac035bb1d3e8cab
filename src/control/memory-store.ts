/**
 * In-memory control store: one process, no persistence. The default when no Redis is
 * configured, and the reference behaviour the Redis store's contract suite is checked against.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { fail, isSwitchyardError, type SwitchyardError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import { MemoryRolloutBook, type RolloutBook } from '../rollout/rollout-book.js';
import { applyCommand, createSeedTable } from '../table/apply-command.js';
import type { CommandMeta, HistoryEntry, RoutingTable } from '../table/types.js';
import { parseCommandInput } from '../table/validate.js';
import { appliedEntry, namedActor, rejectedEntry, type PendingEntry } from './audit-entry.js';
import type {
  ChangeResult,
  ControlStore,
  ControlStoreEvents,
  DrainReport,
  ReplicaDrainReport,
  ReplicaInfo,
  SeedPools,
  StoreStatus,
} from './control-store.js';

/** Audit entries kept in memory (oldest dropped first). */
const HISTORY_LIMIT = 1000;

/** Options of MemoryControlStore. */
export interface MemoryControlStoreOptions {
  /** Revision this process's data plane has applied (reported by replicas()). */
  readonly appliedRevision: () => number;
  /** Replica id reported by replicas(); defaults to `<hostname>:<pid>`. */
  readonly replicaId?: string | undefined;
  /** Counts rejected commands (`switchyard_commands_rejected_total`). */
  readonly metrics?: Metrics | undefined;
  /** This process's per-pool load (reported by drainReports(); without it, none is reported). */
  readonly drainReport?: (() => DrainReport) | undefined;
}

/** A ControlStore held in this process's memory. */
export class MemoryControlStore extends EventEmitter<ControlStoreEvents> implements ControlStore {
  readonly #appliedRevision: () => number;
  readonly #replicaId: string;
  readonly #metrics: Metrics | undefined;
  readonly #drainReport: (() => DrainReport) | undefined;
  #table: RoutingTable | null = null;
  /** Oldest first. */
  #history: HistoryEntry[] = [];
  #sequence = 0;
  #state: 'idle' | 'running' | 'closed' = 'idle';
  readonly #rolloutBook = new MemoryRolloutBook();

  constructor(options: MemoryControlStoreOptions) {
    super();
    this.#appliedRevision = options.appliedRevision;
    this.#replicaId = options.replicaId ?? `${hostname()}:${process.pid}`;
    this.#metrics = options.metrics;
    this.#drainReport = options.drainReport;
  }

  /** Nothing to connect to; marks the store running. */
  start(): Promise<void> {
    if (this.#state !== 'idle')
      return Promise.reject(new Error('MemoryControlStore already started'));
    this.#state = 'running';
    this.emit('storeStatus', this.status());
    return Promise.resolve();
  }

  /** Idempotent; later changes fail with CLOSED. */
  close(): Promise<void> {
    this.#state = 'closed';
    return Promise.resolve();
  }

  current(): RoutingTable | null {
    return this.#table;
  }

  /** Rollouts of this process. */
  rolloutBook(): RolloutBook {
    return this.#rolloutBook;
  }

  /** Validates and applies a raw command; see ControlStore.apply. */
  async apply(input: unknown, meta: CommandMeta): Promise<RoutingTable> {
    return (await this.change(input, meta)).table;
  }

  /** Validates and applies a raw command; records applied and rejected commands alike. */
  change(input: unknown, meta: CommandMeta): Promise<ChangeResult> {
    if (this.#state === 'closed') return Promise.reject(fail('CLOSED', 'control store is closed'));
    const before = this.#table;
    const previousRevision = before?.revision ?? 0;
    const time = meta.now ?? new Date().toISOString();
    let actor = meta.actor;
    try {
      const parsed = parseCommandInput(input);
      if (parsed.actor !== undefined) actor = namedActor(meta.source, parsed.actor);
      const expectRevision = meta.expectRevision ?? parsed.expectRevision;
      const { table, changed, undoes } = applyCommand(
        before,
        parsed.command,
        { actor, source: meta.source, expectRevision, now: time },
        this.#newestFirst(),
      );
      if (!changed) return Promise.resolve({ table, changed });
      this.#record(
        appliedEntry(
          parsed.command,
          { actor, source: meta.source },
          { revision: table.revision, previousRevision, time, before, undoes, note: meta.note },
        ),
      );
      this.#table = table;
      this.emit('table', table);
      return Promise.resolve({ table, changed });
    } catch (err) {
      if (!isSwitchyardError(err)) throw err;
      this.#record(
        rejectedEntry(input, { actor, source: meta.source }, previousRevision, time, err),
      );
      return Promise.reject(err);
    }
  }

  /** Writes revision 1 from `pools` unless a table exists; resolves with the stored table. */
  seed(pools: SeedPools, meta: CommandMeta): Promise<RoutingTable> {
    if (this.#table !== null) return Promise.resolve(this.#table);
    const table = createSeedTable(pools, meta);
    this.#record(
      appliedEntry(
        { op: 'seed', pools },
        { actor: meta.actor, source: 'seed' },
        { revision: table.revision, previousRevision: 0, time: table.updatedAt, before: null },
      ),
    );
    this.#table = table;
    this.emit('table', table);
    return Promise.resolve(table);
  }

  history(limit: number): Promise<HistoryEntry[]> {
    return Promise.resolve(this.#newestFirst().slice(0, Math.max(0, limit)));
  }

  replicas(): Promise<ReplicaInfo[]> {
    return Promise.resolve([
      {
        id: this.#replicaId,
        revision: this.#appliedRevision(),
        heartbeatAt: new Date().toISOString(),
        live: this.#state === 'running',
      },
    ]);
  }

  drainReports(): Promise<ReplicaDrainReport[]> {
    return Promise.resolve([
      {
        id: this.#replicaId,
        live: this.#state === 'running',
        revision: this.#appliedRevision(),
        pools: this.#drainReport?.() ?? null,
      },
    ]);
  }

  status(): StoreStatus {
    return {
      kind: 'memory',
      up: this.#state === 'running',
      newestRevision: this.#table?.revision ?? 0,
    };
  }

  recordRejection(input: unknown, meta: CommandMeta, error: SwitchyardError): Promise<void> {
    const time = meta.now ?? new Date().toISOString();
    this.#record(rejectedEntry(input, meta, this.#table?.revision ?? 0, time, error));
    return Promise.resolve();
  }

  #record(entry: PendingEntry): void {
    if (entry.result === 'rejected') this.#metrics?.commandsRejected.inc({ source: entry.source });
    this.#sequence += 1;
    this.#history.push({ id: String(this.#sequence), ...entry });
    if (this.#history.length > HISTORY_LIMIT) this.#history.shift();
  }

  #newestFirst(): HistoryEntry[] {
    return this.#history.slice().reverse();
  }
}
