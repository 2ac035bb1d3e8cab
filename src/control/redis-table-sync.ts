/**
 * The read side of the Redis store: which table this replica holds and how it follows Redis.
 * PUBLISH is only a hint: every hint, every (re)connect and the poll run one single-flight
 * resync; every table read is validated (invalid: ignored, reported once, the last good one
 * kept); Redis empty again: re-seed it from the last good table. Adopted tables are announced
 * and persisted to the state file.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { RoutingTable } from '../table/types.js';
import { parseTable } from '../table/validate.js';
import { appliedEntry } from './audit-entry.js';
import { encodeHistoryFields } from './redis-history.js';
import type { RedisClient, RedisScripts, StateRead } from './redis-scripts.js';
import { writeStateFile } from './state-file.js';

/** Largest state value read and parsed (a real table is a few KiB). */
export const MAX_STATE_BYTES = 1024 * 1024;

/** Options of RedisTableSync. Durations in ms. */
export interface RedisTableSyncOptions {
  readonly scripts: RedisScripts;
  /** The writer connection; null before the store starts. */
  readonly client: () => RedisClient | null;
  /** This replica's id (the actor of a re-seed). */
  readonly replicaId: string;
  /** Revision this replica's data plane has applied (for the lag metric). */
  readonly appliedRevision: () => number;
  readonly stateFile: string | undefined;
  readonly commandTimeoutMs: number;
  readonly historyMaxLen: number;
  readonly logger: Logger;
  readonly metrics: Metrics | undefined;
  /** A new table was adopted: announce it (may throw; logged). */
  readonly onTable: (table: RoutingTable) => void;
  /** Called after each adoption (the registry heartbeat reports the new revision). */
  readonly afterAdopt: () => void;
  /** Redis answered (true) or failed (false, with the error). */
  readonly setUp: (up: boolean, err?: unknown) => void;
  /** True once the store is closing: no new resync starts. */
  readonly stopped: () => boolean;
}

/** The table a replica holds, kept in step with Redis. */
export class RedisTableSync {
  readonly #options: RedisTableSyncOptions;
  readonly #log: Logger;
  #current: RoutingTable | null = null;
  #bootTable: RoutingTable | null = null;
  #newestRevision = 0;
  #syncing: Promise<void> | null = null;
  #syncAgain = false;
  #invalidSeen: string | null = null;
  #fileWrite: Promise<void> = Promise.resolve();

  constructor(options: RedisTableSyncOptions) {
    this.#options = options;
    this.#log = options.logger;
  }

  /** The last valid table adopted; null before any. */
  current(): RoutingTable | null {
    return this.#current;
  }

  /** The table read from the state file at start, if any. */
  bootTable(): RoutingTable | null {
    return this.#bootTable;
  }

  /** Remembers the state-file table (used until Redis answers, and to re-seed). */
  setBootTable(table: RoutingTable | null): void {
    this.#bootTable = table;
  }

  /** Newest revision seen in Redis (may be ahead of the applied one). */
  newestRevision(): number {
    return this.#newestRevision;
  }

  /** Records that Redis holds `revision` (after our own write). */
  noteRevision(revision: number): void {
    this.#newestRevision = revision;
  }

  /** Single-flight resync: at most one in flight plus one queued. Never rejects. */
  resync(): Promise<void> {
    if (this.#options.stopped()) return Promise.resolve();
    if (this.#syncing !== null) {
      this.#syncAgain = true;
      return this.#syncing;
    }
    this.#syncing = (async () => {
      do {
        this.#syncAgain = false;
        await this.#syncOnce();
      } while (this.#syncAgain && !this.#options.stopped());
    })().finally(() => {
      this.#syncing = null;
    });
    return this.#syncing;
  }

  /** Resolves when the running resync and state-file writes are done (for close()). */
  async settled(): Promise<void> {
    await this.#syncing;
    await this.#fileWrite;
  }

  /** A PUBLISH hint carrying a revision: note it and resync unless we hold it. */
  onHint(message: string): void {
    const revision = Number(message);
    if (Number.isInteger(revision) && revision > this.#newestRevision)
      this.#newestRevision = revision;
    if (revision !== this.#current?.revision) void this.resync();
  }

  /** The valid table in `read`, or null (reported once per distinct invalid value). */
  validateRead(read: StateRead): RoutingTable | null {
    let reason: string;
    if (read.type !== 'string') {
      reason = `state is a redis ${read.type}, not a string`;
    } else if (read.value === null) {
      reason = `state is ${read.length} bytes, over the ${MAX_STATE_BYTES} byte limit`;
    } else {
      try {
        const table = parseTable(JSON.parse(read.value) as unknown);
        this.#invalidSeen = null;
        return table;
      } catch (err) {
        reason = err instanceof Error ? err.message : String(err);
      }
    }
    const fingerprint = `${read.type}:${read.length}:${createHash('sha1')
      .update(read.value ?? '')
      .digest('hex')}`;
    if (fingerprint !== this.#invalidSeen) {
      this.#invalidSeen = fingerprint;
      this.#log.error(
        { state: { type: read.type, bytes: read.length, reason } },
        'invalid table in redis ignored: keeping the last good table',
      );
      this.#options.metrics?.commandsRejected.inc({ source: 'state' });
    }
    return null;
  }

  /** Makes `table` current (when it differs), announces and persists it. */
  adopt(table: RoutingTable, persist: boolean): void {
    const previous = this.#current;
    if (
      previous !== null &&
      previous.revision === table.revision &&
      previous.updatedAt === table.updatedAt &&
      previous.updatedBy === table.updatedBy
    ) {
      return;
    }
    this.#current = table;
    try {
      this.#options.onTable(table);
    } catch (err) {
      this.#log.error({ err, revision: table.revision }, 'table listener failed');
    }
    this.updateLag();
    this.#options.afterAdopt();
    const stateFile = this.#options.stateFile;
    if (persist && stateFile !== undefined) {
      this.#fileWrite = this.#fileWrite
        .then(() => writeStateFile(stateFile, table))
        .catch((err: unknown) => this.#log.warn({ err, stateFile }, 'state file not written'));
    }
  }

  /** Sets the revision-lag metric (newest seen minus applied). */
  updateLag(): void {
    const lag = Math.max(0, this.#newestRevision - this.#options.appliedRevision());
    this.#options.metrics?.controlStoreRevisionLag.set(lag);
  }

  async #syncOnce(): Promise<void> {
    const writer = this.#options.client();
    if (writer === null) return;
    let read: StateRead;
    try {
      read = await this.#options.scripts.readState(writer, MAX_STATE_BYTES, false);
    } catch (err) {
      this.#options.setUp(false, err);
      return;
    }
    this.#options.setUp(true);
    if (read.type === 'none') {
      await this.reseed(writer, read.nowMs);
    } else {
      const table = this.validateRead(read);
      if (table !== null) {
        this.#newestRevision = table.revision;
        this.adopt(table, true);
      }
    }
    this.updateLag();
  }

  /**
   * Redis lost the state (restart without persistence, flush): put our last good table back,
   * recorded in the history as a `seed`. Called by the read path, and by a write that finds Redis
   * empty (so the history shows the re-seed before the change, whichever came first). Another
   * replica re-seeding first is fine: the `create` write then does nothing.
   */
  async reseed(writer: RedisClient, nowMs: number): Promise<void> {
    const lastGood = this.#current ?? this.#bootTable;
    if (lastGood === null) return;
    try {
      const result = await this.#options.scripts.commit(writer, {
        mode: 'create',
        state: JSON.stringify(lastGood),
        revision: lastGood.revision,
        historyMaxLen: this.#options.historyMaxLen,
        deadlineMs: nowMs + this.#options.commandTimeoutMs,
        fields: encodeHistoryFields(
          appliedEntry(
            { op: 'reseed', revision: lastGood.revision },
            { actor: `replica:${this.#options.replicaId}`, source: 'seed' },
            {
              revision: lastGood.revision,
              previousRevision: 0,
              time: new Date().toISOString(),
              before: null,
            },
          ),
        ),
      });
      if (result.status === 'ok') {
        this.#log.warn(
          { revision: lastGood.revision },
          'redis had no table: re-seeded it from the last good table',
        );
        this.#newestRevision = lastGood.revision;
        this.adopt(lastGood, true);
      } else {
        // Another replica re-seeded first (or the write expired): read again.
        this.#syncAgain = true;
      }
    } catch (err) {
      this.#options.setUp(false, err);
    }
  }
}
