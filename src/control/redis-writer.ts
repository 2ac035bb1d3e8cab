/**
 * The write side of the Redis store: read state (+ history for rollback), applyCommand() in
 * TypeScript, then one Lua script does compare-and-set on the state token + history XADD +
 * commands cursor + PUBLISH. Every write carries a Redis-time deadline, so a write delayed by a
 * paused server is dropped, never applied after its caller was told 503. Rejections are
 * recorded in history (for a commands entry atomically with the cursor).
 */
import { fail, isSwitchyardError, type SwitchyardError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { applyCommand, createSeedTable } from '../table/apply-command.js';
import type { CommandMeta, HistoryEntry, RoutingTable } from '../table/types.js';
import { parseCommandInput } from '../table/validate.js';
import { appliedEntry, namedActor, rejectedEntry, type PendingEntry } from './audit-entry.js';
import type { ChangeResult, SeedPools } from './control-store.js';
import { decodeHistoryReply, encodeHistoryFields } from './redis-history.js';
import type { RedisKeys } from './redis-keys.js';
import type { CommitRequest, CommitResult, RedisClient, RedisScripts } from './redis-scripts.js';
import { MAX_STATE_BYTES, type RedisTableSync } from './redis-table-sync.js';

/** Compare-and-set attempts without expectRevision before giving up with REVISION_CONFLICT. */
const MAX_CAS_ATTEMPTS = 5;

/** Options of RedisWriter. Durations in ms. */
export interface RedisWriterOptions {
  readonly scripts: RedisScripts;
  readonly keys: RedisKeys;
  /** The writer connection; throws STORE_UNAVAILABLE before the store starts. */
  readonly client: () => RedisClient;
  readonly sync: RedisTableSync;
  /** Runs a Redis call; any failure becomes STORE_UNAVAILABLE (and marks the store down). */
  readonly guard: <T>(fn: () => Promise<T>) => Promise<T>;
  /** STORE_UNAVAILABLE for `cause` (and marks the store down). */
  readonly unavailable: (cause?: unknown) => SwitchyardError;
  readonly commandTimeoutMs: number;
  readonly historyMaxLen: number;
  readonly logger: Logger;
  readonly metrics: Metrics | undefined;
}

/** What a write reads first. */
interface WriteSnapshot {
  readonly token: string;
  readonly table: RoutingTable | null;
  readonly history: HistoryEntry[];
  readonly nowMs: number;
}

/** Applies commands and seeds to Redis with compare-and-set. */
export class RedisWriter {
  readonly #options: RedisWriterOptions;

  constructor(options: RedisWriterOptions) {
    this.#options = options;
  }

  /**
   * Parses, applies and commits one command; records rejections. Resolves with the new table
   * (or the current one, unchanged), or null when `commandId` was already handled by another
   * replica.
   */
  async change(
    input: unknown,
    meta: CommandMeta,
    commandId: string | undefined,
  ): Promise<ChangeResult | null> {
    const { sync } = this.#options;
    const time = meta.now ?? new Date().toISOString();
    let actor = meta.actor;
    let previousRevision = sync.current()?.revision ?? 0;
    /**
     * Records a rejection and returns the error to throw, or null when another replica already
     * handled this commands entry (it was re-checked against a table that already includes it,
     * so the "rejection" is not one: stay quiet).
     */
    const rejected = async (err: unknown): Promise<SwitchyardError | null> => {
      const error = isSwitchyardError(err)
        ? err
        : fail('VALIDATION_FAILED', 'command: could not be applied', { cause: err });
      const outcome = await this.recordRejection(
        rejectedEntry(input, { actor, source: meta.source }, previousRevision, time, error),
        commandId,
      );
      return outcome === 'duplicate' ? null : error;
    };
    const reject = async (err: unknown): Promise<null> => {
      const error = await rejected(err);
      if (error === null) return null;
      throw error;
    };

    let parsed;
    try {
      parsed = parseCommandInput(input);
    } catch (err) {
      return reject(err);
    }
    if (parsed.actor !== undefined) actor = namedActor(meta.source, parsed.actor);
    const expectRevision = meta.expectRevision ?? parsed.expectRevision;
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt += 1) {
      const snapshot = await this.#readForWrite(parsed.command.op === 'rollback');
      previousRevision = snapshot.table?.revision ?? 0;
      let applied;
      try {
        applied = applyCommand(
          snapshot.table,
          parsed.command,
          { actor, source: meta.source, expectRevision, now: time },
          snapshot.history,
        );
      } catch (err) {
        return reject(err);
      }
      const { table } = applied;
      if (!applied.changed) {
        // Nothing to write; a commands entry still moves the cursor, so it is handled once.
        if (commandId !== undefined) {
          const skipped = await this.#commit({
            mode: 'skip',
            historyMaxLen: this.#options.historyMaxLen,
            commandId,
            fields: [],
          });
          if (skipped.status === 'duplicate') return null;
        }
        sync.adopt(table, true);
        return { table, changed: false };
      }
      const result = await this.#commit({
        mode: 'apply',
        token: snapshot.token,
        state: JSON.stringify(table),
        revision: table.revision,
        historyMaxLen: this.#options.historyMaxLen,
        commandId,
        deadlineMs: snapshot.nowMs + this.#options.commandTimeoutMs,
        fields: encodeHistoryFields(
          appliedEntry(
            parsed.command,
            { actor, source: meta.source },
            {
              revision: table.revision,
              previousRevision,
              time,
              before: snapshot.table,
              undoes: applied.undoes,
              note: meta.note,
            },
          ),
        ),
      });
      switch (result.status) {
        case 'ok':
          sync.noteRevision(table.revision);
          sync.adopt(table, true);
          return { table, changed: true };
        case 'duplicate':
          return null;
        case 'expired':
          throw this.#options.unavailable();
        case 'conflict':
        case 'exists':
          // Another writer won; with expectRevision the next attempt reports the conflict.
          continue;
      }
    }
    return reject(
      fail(
        'REVISION_CONFLICT',
        `the table changed concurrently ${MAX_CAS_ATTEMPTS} times while applying; retry`,
      ),
    );
  }

  /** Writes revision 1 from `pools` unless Redis (or this replica) already has a table. */
  async seed(pools: SeedPools, meta: CommandMeta): Promise<RoutingTable> {
    const { scripts, sync } = this.#options;
    const table = createSeedTable(pools, meta);
    const read = await this.#options.guard(() =>
      scripts.readState(this.#options.client(), 0, false),
    );
    if (read.type === 'none' && sync.current() === null && sync.bootTable() === null) {
      const result = await this.#commit({
        mode: 'create',
        state: JSON.stringify(table),
        revision: table.revision,
        historyMaxLen: this.#options.historyMaxLen,
        deadlineMs: read.nowMs + this.#options.commandTimeoutMs,
        fields: encodeHistoryFields(
          appliedEntry(
            { op: 'seed', pools },
            { actor: meta.actor, source: 'seed' },
            { revision: table.revision, previousRevision: 0, time: table.updatedAt, before: null },
          ),
        ),
      });
      if (result.status === 'ok') {
        sync.noteRevision(table.revision);
        sync.adopt(table, true);
        return table;
      }
      if (result.status === 'expired') throw this.#options.unavailable();
    }
    // Someone else seeded, or we re-seed from our last good table: read what is there.
    await sync.resync();
    const current = sync.current();
    if (current === null) {
      throw fail('STORE_UNAVAILABLE', 'redis holds no valid table and none could be seeded');
    }
    return current;
  }

  /**
   * Appends a rejection to history. For a commands entry it also advances the cursor and must
   * succeed (else the entry is retried); for admin calls it is best effort.
   */
  async recordRejection(
    entry: PendingEntry,
    commandId: string | undefined,
  ): Promise<'recorded' | 'duplicate' | 'lost'> {
    let recorded = false;
    let duplicate = false;
    try {
      const result = await this.#options.scripts.commit(this.#options.client(), {
        mode: 'reject',
        historyMaxLen: this.#options.historyMaxLen,
        commandId,
        fields: encodeHistoryFields(entry),
      });
      recorded = result.status === 'ok';
      duplicate = result.status === 'duplicate';
    } catch (err) {
      if (commandId !== undefined) throw this.#options.unavailable(err);
      this.#options.logger.warn(
        { err },
        'rejected change not recorded in history: redis unavailable',
      );
      recorded = true;
    }
    if (recorded) this.#options.metrics?.commandsRejected.inc({ source: entry.source });
    return duplicate ? 'duplicate' : recorded ? 'recorded' : 'lost';
  }

  /**
   * Moves the commands cursor past `commandId` without changing the table: the replica that
   * claims an entry handles it (a `rollout-*` command runs after its claim, at most once).
   * Resolves false when another replica handled it already.
   */
  async claim(commandId: string): Promise<boolean> {
    const result = await this.#commit({
      mode: 'skip',
      historyMaxLen: this.#options.historyMaxLen,
      commandId,
      fields: [],
    });
    return result.status === 'ok';
  }

  /** State (validated; the last good table when Redis holds none or garbage) and history. */
  async #readForWrite(withHistory: boolean): Promise<WriteSnapshot> {
    const { scripts, sync, guard, keys, historyMaxLen } = this.#options;
    const writer = this.#options.client();
    let read = await guard(() => scripts.readState(writer, MAX_STATE_BYTES, true));
    if (read.type === 'none' && sync.current() !== null) {
      // Redis lost the table: put the last good one back first, then change that.
      await sync.reseed(writer, read.nowMs);
      read = await guard(() => scripts.readState(writer, MAX_STATE_BYTES, true));
    }
    const table =
      read.type === 'none' ? sync.current() : (sync.validateRead(read) ?? sync.current());
    let history: HistoryEntry[] = [];
    if (withHistory) {
      const reply: unknown = await guard(() =>
        writer.xrevrange(keys.history, '+', '-', 'COUNT', historyMaxLen * 2),
      );
      history = decodeHistoryReply(reply);
    }
    return { token: read.token, table, history, nowMs: read.nowMs };
  }

  async #commit(request: CommitRequest): Promise<CommitResult> {
    return this.#options.guard(() => this.#options.scripts.commit(this.#options.client(), request));
  }
}
