/**
 * The control store contract: where the routing table lives and how changes are made.
 * Implemented by MemoryControlStore (one process) and RedisControlStore (many replicas).
 * The data plane never talks to a store; app.ts feeds it tables through TableFeed.
 */
import type { EventEmitter } from 'node:events';
import type { SwitchyardError } from '../errors.js';
import type { CommandMeta, CommandSource, HistoryEntry, RoutingTable } from '../table/types.js';

/** A proxy replica following a namespace (SPEC §6). */
export interface ReplicaInfo {
  readonly id: string;
  /** Revision this replica has applied to its data plane. */
  readonly revision: number;
  readonly heartbeatAt: string;
  /** True while the last heartbeat is under 5 s old. */
  readonly live: boolean;
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
   * with compare-and-set on the revision. Resolves with the new table. Rejects with a
   * SwitchyardError (validation, POOL_LIVE, REVISION_CONFLICT, NOTHING_TO_UNDO,
   * STORE_UNAVAILABLE...). Applied and rejected commands are both recorded in history.
   */
  apply(input: unknown, meta: CommandMeta): Promise<RoutingTable>;
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
  /** Reachability and newest revision. */
  status(): StoreStatus;
}

/** Pools to seed a fresh store with, in order: the first gets 100 %. */
export type SeedPools = ReadonlyArray<{
  readonly name: string;
  readonly version: string;
  readonly endpoints: readonly string[];
}>;

/** The audit entry of a refused command (SPEC §6: `rejected`, with its reason), for every store. */
export function rejectedEntry(
  command: unknown,
  by: { readonly actor: string; readonly source: CommandSource },
  previousRevision: number,
  time: string,
  error: SwitchyardError,
): Omit<HistoryEntry, 'id'> {
  return {
    revision: null,
    previousRevision,
    time,
    actor: by.actor,
    source: by.source,
    command,
    result: 'rejected',
    reason: { code: error.code, message: error.message },
  };
}
