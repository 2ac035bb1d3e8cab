/**
 * The control store contract: where the routing table lives and how changes are made.
 * Implemented by MemoryControlStore (one process) and RedisControlStore (many replicas).
 * The data plane never talks to a store; app.ts feeds it tables through TableFeed.
 */
import type { EventEmitter } from 'node:events';
import type { SwitchyardError } from '../errors.js';
import type { RolloutBook } from '../rollout/rollout-book.js';
import type { CommandMeta, HistoryEntry, RoutingTable } from '../table/types.js';

/** A proxy replica following a namespace (SPEC §6). */
export interface ReplicaInfo {
  readonly id: string;
  /** Revision this replica has applied to its data plane. */
  readonly revision: number;
  readonly heartbeatAt: string;
  /** True while the last heartbeat is under 5 s old. */
  readonly live: boolean;
}

/** What one replica's data plane routes to a pool and still carries there (SPEC §10). */
export interface PoolLoad {
  /** Weight of the pool in the table this replica has applied (0 when the pool left it). */
  readonly weight: number;
  /** Requests being forwarded to the pool's endpoints (including retries). */
  readonly inFlight: number;
  /** Open long-lived connections to them: WebSockets, tunnels, SSE streams. */
  readonly longLived: number;
}

/** Per pool name, a replica's load (pools of its applied table and pools that recently left). */
export type DrainReport = Readonly<Record<string, PoolLoad>>;

/** A replica's last drain report, as read from the store. */
export interface ReplicaDrainReport {
  readonly id: string;
  /** True while the last heartbeat is under 5 s old. */
  readonly live: boolean;
  /** Revision the replica had applied when it reported. */
  readonly revision: number;
  /** null when the replica sent none (an older version) or it could not be read. */
  readonly pools: DrainReport | null;
}

/** Reachability of the backing store. */
export interface StoreStatus {
  readonly kind: 'memory' | 'redis';
  readonly up: boolean;
  /** Newest revision seen in the store (may be ahead of the applied one). */
  readonly newestRevision: number;
}

/** Events every control store emits. */
export interface ControlStoreEvents {
  /** A valid table newer than (or different from) the last one was read or written. */
  table: [table: RoutingTable];
  /** The store became reachable or unreachable. */
  storeStatus: [status: StoreStatus];
}

/** Where the table lives. Every method validates its input with the table/ validators. */
export interface ControlStore extends EventEmitter<ControlStoreEvents> {
  /** Connects and loads the first table (if any). Throws if called twice. */
  start(): Promise<void>;
  /** Stops consumers and timers and disconnects. Idempotent. */
  close(): Promise<void>;
  /** The last valid table this store knows, synchronously; null before any exists. */
  current(): RoutingTable | null;
  /**
   * Validates `input` (a raw command object with `op`, as in SPEC §6) and applies it atomically
   * with compare-and-set on the revision. Resolves with the new table, or with the current one
   * when the command changes nothing (see change()). Rejects with a SwitchyardError
   * (validation, POOL_LIVE, REVISION_CONFLICT, NOTHING_TO_UNDO, STORE_UNAVAILABLE...). Applied
   * and rejected commands are both recorded in history.
   */
  apply(input: unknown, meta: CommandMeta): Promise<RoutingTable>;
  /**
   * apply(), also saying whether the table changed. A command that leaves pools and weights as
   * they are (the same set-pool, a canary share the pool already has, a switch to the pool that
   * has 100 %) makes no revision and no history entry, so rollback still undoes the most recent
   * real change; it resolves with the current table and `changed: false`.
   */
  change(input: unknown, meta: CommandMeta): Promise<ChangeResult>;
  /**
   * Writes `table` as revision 1 only when the store has no table (set-if-absent).
   * Resolves with the table that is in the store afterwards.
   */
  seed(pools: SeedPools, meta: CommandMeta): Promise<RoutingTable>;
  /**
   * Records in history (and counts) a command refused before it reached apply(): a guard that
   * only this replica can check, such as POOL_UNHEALTHY. Never rejects: when the record cannot
   * be written (Redis down) the refusal is logged instead.
   */
  recordRejection(input: unknown, meta: CommandMeta, error: SwitchyardError): Promise<void>;
  /** The audit log, newest first. */
  history(limit: number): Promise<HistoryEntry[]>;
  /** Replicas following this namespace (memory store: just this process). */
  replicas(): Promise<ReplicaInfo[]>;
  /**
   * Every registered replica's last drain report (sent with its heartbeat; memory store: this
   * process, read now).
   */
  drainReports(): Promise<ReplicaDrainReport[]>;
  /** Reachability and newest revision. */
  status(): StoreStatus;
  /**
   * Where rollouts live (SPEC §9): this process's memory, or Redis shared by every replica of the
   * namespace (record, past rollouts, driver lease, per-replica counts).
   */
  rolloutBook(): RolloutBook;
}

/** The outcome of ControlStore.change(). */
export interface ChangeResult {
  /** The table after the command: the new revision, or the current table when unchanged. */
  readonly table: RoutingTable;
  /** False when the command changed nothing: no new revision, nothing recorded. */
  readonly changed: boolean;
}

/** Pools to seed a fresh store with, in order: the first gets 100 %. */
export type SeedPools = ReadonlyArray<{
  readonly name: string;
  readonly version: string;
  readonly endpoints: readonly string[];
}>;
