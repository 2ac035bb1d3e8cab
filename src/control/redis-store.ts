/**
 * The Redis control store (SPEC §6): many replicas follow one table in Redis.
 * - Writes: read state (+ history for rollback), applyCommand() in TypeScript, then one Lua
 *   script does compare-and-set on the state token + history XADD + cursor + PUBLISH.
 * - Reads: PUBLISH is only a hint. The subscriber resyncs on every (re)connect and on every
 *   hint, and a poll resyncs as a safety net; every table read is validated (invalid: ignored,
 *   reported once, last good kept). Redis empty again: re-seed from the last good table.
 * - Outages: every client fails fast (no offline queue, command timeout, no resend), writes
 *   carry a Redis-time deadline so a write delayed by a paused server is dropped, not replayed.
 * - The last good table is kept in `stateFile` and used when Redis is unreachable at start.
 * - Credentials: Redis refusing them at start fails start(), later it is logged as an error;
 *   no log line or error cause carries them (see redactRedisError).
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { fail, isSwitchyardError, SwitchyardError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { applyCommand, createSeedTable } from '../table/apply-command.js';
import type { CommandMeta, HistoryEntry, RoutingTable } from '../table/types.js';
import { parseCommandInput, parseTable } from '../table/validate.js';
import { CommandConsumer } from './command-consumer.js';
import { appliedEntry, namedActor, rejectedEntry, type PendingEntry } from './audit-entry.js';
import type {
  ChangeResult,
  ControlStore,
  ControlStoreEvents,
  ReplicaInfo,
  SeedPools,
  StoreStatus,
} from './control-store.js';
import {
  createRedisClient,
  credentialsRefused,
  parseRedisUrl,
  redactRedisError,
  serializeRedisError,
  type RedisRole,
} from './redis-connection.js';
import { decodeHistoryReply, encodeHistoryFields } from './redis-history.js';
import { redisKeys, type RedisKeys } from './redis-keys.js';
import {
  RedisScripts,
  type CommitRequest,
  type RedisClient,
  type StateRead,
} from './redis-scripts.js';
import { ReplicaRegistry } from './replica-registry.js';
import { readStateFile, writeStateFile } from './state-file.js';

/** Largest state value read and parsed (a real table is a few KiB). */
const MAX_STATE_BYTES = 1024 * 1024;
/** Largest `cmd` field parsed from the commands stream. */
const MAX_COMMAND_BYTES = 64 * 1024;
/** Compare-and-set attempts without expectRevision before giving up with REVISION_CONFLICT. */
const MAX_CAS_ATTEMPTS = 5;

/** Options of RedisControlStore. Durations in ms. */
export interface RedisControlStoreOptions {
  /** `redis://`, `rediss://`, `redis+sentinel://`, `redis+cluster://` (see redis-connection.ts). */
  readonly url: string;
  /** Namespace: keys are `switchyard:{NS}:...`. */
  readonly namespace: string;
  /** This replica's id in the registry (unique per process). */
  readonly replicaId: string;
  /** Revision this replica's data plane has applied (TableFeed.appliedRevision). */
  readonly appliedRevision: () => number;
  readonly logger: Logger;
  readonly metrics?: Metrics | undefined;
  /** Where the last good table is persisted and booted from when Redis is unreachable. */
  readonly stateFile?: string | undefined;
  /** Safety-net resync period (default 1000). */
  readonly pollIntervalMs?: number | undefined;
  /** Per-command timeout: a write during an outage fails within about this (default 1500). */
  readonly commandTimeoutMs?: number | undefined;
  /** TCP connect timeout (default 2000). */
  readonly connectTimeoutMs?: number | undefined;
  /** How long start() waits for Redis before booting from the state file (default 3000). */
  readonly startTimeoutMs?: number | undefined;
  /** Approximate cap of the history stream (default 1000). */
  readonly historyMaxLen?: number | undefined;
  /** Heartbeat period of the replica registry (default 1000). */
  readonly heartbeatIntervalMs?: number | undefined;
  /** XREAD BLOCK time of the command consumer (default 1000). */
  readonly commandBlockMs?: number | undefined;
}

type StoreState = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

interface WriteSnapshot {
  readonly token: string;
  readonly table: RoutingTable | null;
  readonly history: HistoryEntry[];
  readonly nowMs: number;
}

/** A ControlStore shared by every replica of a namespace through Redis. */
export class RedisControlStore extends EventEmitter<ControlStoreEvents> implements ControlStore {
  readonly #options: RedisControlStoreOptions;
  readonly #log: Logger;
  readonly #metrics: Metrics | undefined;
  readonly #keys: RedisKeys;
  readonly #scripts: RedisScripts;
  readonly #commandTimeoutMs: number;
  readonly #historyMaxLen: number;
  #state: StoreState = 'idle';
  #writer: RedisClient | null = null;
  #subscriber: RedisClient | null = null;
  #consumerClient: RedisClient | null = null;
  #registry: ReplicaRegistry | null = null;
  #consumer: CommandConsumer | null = null;
  #pollTimer: NodeJS.Timeout | null = null;
  #current: RoutingTable | null = null;
  #bootTable: RoutingTable | null = null;
  #up = false;
  #newestRevision = 0;
  #syncing: Promise<void> | null = null;
  #syncAgain = false;
  #invalidSeen: string | null = null;
  #fileWrite: Promise<void> = Promise.resolve();
  #closing: Promise<void> | null = null;
  #refusalLogged = false;
  readonly #connected = new Map<RedisRole, boolean>();
  readonly #everReady = new Set<RedisRole>();

  constructor(options: RedisControlStoreOptions) {
    super();
    this.#options = options;
    // The serializer keeps passwords out of every line of the store, its consumer and registry.
    this.#log = options.logger.child(
      { component: 'redis-store' },
      { serializers: { err: serializeRedisError } },
    );
    this.#metrics = options.metrics;
    this.#keys = redisKeys(options.namespace);
    this.#scripts = new RedisScripts(this.#keys);
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 1500;
    this.#historyMaxLen = options.historyMaxLen ?? 1000;
    this.#metrics?.controlStoreUp.set(0);
  }

  /**
   * Connects, loads the table and starts the subscriber, poll, heartbeat and command consumer.
   * Bounded: when Redis does not answer within startTimeoutMs it boots from the state file (if
   * any) and keeps reconnecting in the background. When Redis refuses the URL's credentials it
   * throws INVALID_CONFIG instead (a wrong password is not an outage to ride out). Throws if
   * called twice.
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error('RedisControlStore already started');
    this.#setState('starting');
    const options = this.#options;
    if (options.stateFile !== undefined) {
      try {
        this.#bootTable = await readStateFile(options.stateFile);
      } catch (err) {
        this.#log.warn(
          { err, stateFile: options.stateFile },
          'state file ignored: unreadable or invalid',
        );
      }
    }
    const target = parseRedisUrl(options.url);
    const timeouts = {
      commandTimeoutMs: this.#commandTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs ?? 2000,
      blockMs: options.commandBlockMs ?? 1000,
    };
    const name = (role: RedisRole): string => `switchyard:${options.replicaId}:${role}`;
    const writer = createRedisClient(target, 'writer', timeouts, name('writer'));
    const subscriber = createRedisClient(target, 'subscriber', timeouts, name('subscriber'));
    const consumerClient = createRedisClient(target, 'consumer', timeouts, name('consumer'));
    this.#writer = writer;
    this.#subscriber = subscriber;
    this.#consumerClient = consumerClient;
    this.#watchConnection(writer, 'writer', () => this.#resync());
    this.#watchConnection(subscriber, 'subscriber', () => this.#onSubscriberReady(subscriber));
    this.#watchConnection(consumerClient, 'consumer', () => Promise.resolve());
    writer.on('close', () => this.#setUp(false));
    subscriber.on('message', (_channel: string, message: string) => this.#onHint(message));

    const startTimeoutMs = options.startTimeoutMs ?? 3000;
    const first = await waitReady(writer, startTimeoutMs);
    if (first.outcome === 'refused') {
      for (const client of [writer, subscriber, consumerClient]) client.disconnect();
      this.#setState('closed');
      throw fail('INVALID_CONFIG', `redis refused the credentials in the URL: ${first.reason}`);
    }
    if (first.outcome === 'ready') {
      await this.#resync();
    } else {
      // The store starts "down", so no transition would say so: an operator must see why a
      // replica is not ready (or routes with its state file) without turning on debug logs.
      this.#log.warn(
        { waitedMs: startTimeoutMs, lastError: first.lastError },
        'control store unreachable at start: retrying in the background',
      );
    }
    if (this.#current === null && this.#bootTable !== null) {
      this.#log.warn(
        { revision: this.#bootTable.revision, stateFile: options.stateFile },
        'booting from state file: no valid table in redis',
      );
      this.#adopt(this.#bootTable, false);
    }

    this.#registry = new ReplicaRegistry({
      client: writer,
      scripts: this.#scripts,
      key: this.#keys.replicas,
      replicaId: options.replicaId,
      appliedRevision: options.appliedRevision,
      logger: this.#log,
      intervalMs: options.heartbeatIntervalMs,
    });
    this.#registry.start();
    this.#consumer = new CommandConsumer({
      client: consumerClient,
      keys: this.#keys,
      handle: (id, fields) => this.#handleCommandEntry(id, fields),
      logger: this.#log,
      blockMs: timeouts.blockMs,
    });
    this.#consumer.start();
    this.#pollTimer = setInterval(() => void this.#resync(), options.pollIntervalMs ?? 1000);
    this.#pollTimer.unref();
    this.#setState('running');
  }

  /** Stops loops and timers, deregisters, disconnects. Idempotent and bounded. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  current(): RoutingTable | null {
    return this.#current;
  }

  /** Validates and applies a raw command with compare-and-set; see ControlStore.apply. */
  async apply(input: unknown, meta: CommandMeta): Promise<RoutingTable> {
    return (await this.change(input, meta)).table;
  }

  /** apply(), also saying whether the table changed; see ControlStore.change. */
  async change(input: unknown, meta: CommandMeta): Promise<ChangeResult> {
    this.#requireRunning();
    const result = await this.#applyInput(input, meta, undefined);
    // Only command-stream entries can be duplicates.
    if (result === null) throw new Error('unexpected duplicate for an admin change');
    return result;
  }

  /** Writes revision 1 from `pools` unless Redis (or this replica) already has a table. */
  async seed(pools: SeedPools, meta: CommandMeta): Promise<RoutingTable> {
    this.#requireRunning();
    const table = createSeedTable(pools, meta);
    const read = await this.#guard(() => this.#scripts.readState(this.#requireWriter(), 0, false));
    if (read.type === 'none' && this.#current === null && this.#bootTable === null) {
      const result = await this.#commit({
        mode: 'create',
        state: JSON.stringify(table),
        revision: table.revision,
        historyMaxLen: this.#historyMaxLen,
        deadlineMs: read.nowMs + this.#commandTimeoutMs,
        fields: encodeHistoryFields(
          appliedEntry(
            { op: 'seed', pools },
            { actor: meta.actor, source: 'seed' },
            { revision: table.revision, previousRevision: 0, time: table.updatedAt, before: null },
          ),
        ),
      });
      if (result.status === 'ok') {
        this.#newestRevision = table.revision;
        this.#adopt(table, true);
        return table;
      }
      if (result.status === 'expired') throw unavailable();
    }
    // Someone else seeded, or we re-seed from our last good table: read what is there.
    await this.#resync();
    if (this.#current === null) {
      throw fail('STORE_UNAVAILABLE', 'redis holds no valid table and none could be seeded');
    }
    return this.#current;
  }

  /** The audit log from the history stream, newest first. */
  async history(limit: number): Promise<HistoryEntry[]> {
    this.#requireRunning();
    if (limit <= 0) return [];
    const count = Math.min(Math.floor(limit), this.#historyMaxLen * 2);
    const reply: unknown = await this.#guard(
      () => this.#requireWriter().xrevrange(this.#keys.history, '+', '-', 'COUNT', count),
      true,
    );
    return decodeHistoryReply(reply);
  }

  /** Registered replicas; `live` while the heartbeat is under 5 s old (Redis time). */
  async replicas(): Promise<ReplicaInfo[]> {
    this.#requireRunning();
    const registry = this.#registry;
    if (registry === null) return [];
    return this.#guard(() => registry.list(), true);
  }

  status(): StoreStatus {
    return { kind: 'redis', up: this.#up, newestRevision: this.#newestRevision };
  }

  // ------------------------------------------------------------------------------------------
  // write path

  /**
   * Parses, applies and commits one command; records rejections. Resolves with the new table
   * (or the current one, unchanged), or null when `commandId` was already handled by another
   * replica.
   */
  async #applyInput(
    input: unknown,
    meta: CommandMeta,
    commandId: string | undefined,
  ): Promise<ChangeResult | null> {
    const time = meta.now ?? new Date().toISOString();
    let actor = meta.actor;
    let previousRevision = this.#current?.revision ?? 0;
    /**
     * Records a rejection and returns the error to throw, or null when another replica already
     * handled this commands entry (it was re-checked against a table that already includes it,
     * so the "rejection" is not one: stay quiet).
     */
    const rejected = async (err: unknown): Promise<SwitchyardError | null> => {
      const error = isSwitchyardError(err)
        ? err
        : fail('VALIDATION_FAILED', 'command: could not be applied', { cause: err });
      const outcome = await this.#recordRejection(
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
            historyMaxLen: this.#historyMaxLen,
            commandId,
            fields: [],
          });
          if (skipped.status === 'duplicate') return null;
        }
        this.#adopt(table, true);
        return { table, changed: false };
      }
      const result = await this.#commit({
        mode: 'apply',
        token: snapshot.token,
        state: JSON.stringify(table),
        revision: table.revision,
        historyMaxLen: this.#historyMaxLen,
        commandId,
        deadlineMs: snapshot.nowMs + this.#commandTimeoutMs,
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
            },
          ),
        ),
      });
      switch (result.status) {
        case 'ok':
          this.#newestRevision = table.revision;
          this.#adopt(table, true);
          return { table, changed: true };
        case 'duplicate':
          return null;
        case 'expired':
          throw unavailable();
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

  /** State (validated; the last good table when Redis holds none or garbage) and history. */
  async #readForWrite(withHistory: boolean): Promise<WriteSnapshot> {
    const writer = this.#requireWriter();
    const read = await this.#guard(() => this.#scripts.readState(writer, MAX_STATE_BYTES, true));
    const table =
      read.type === 'none' ? this.#current : (this.#validateRead(read) ?? this.#current);
    let history: HistoryEntry[] = [];
    if (withHistory) {
      const reply: unknown = await this.#guard(() =>
        writer.xrevrange(this.#keys.history, '+', '-', 'COUNT', this.#historyMaxLen * 2),
      );
      history = decodeHistoryReply(reply);
    }
    return { token: read.token, table, history, nowMs: read.nowMs };
  }

  /**
   * Appends a rejection to history. For a commands entry it also advances the cursor and must
   * succeed (else the entry is retried); for admin calls it is best effort.
   */
  async recordRejection(input: unknown, meta: CommandMeta, error: SwitchyardError): Promise<void> {
    const time = meta.now ?? new Date().toISOString();
    await this.#recordRejection(
      rejectedEntry(input, meta, this.#current?.revision ?? 0, time, error),
      undefined,
    );
  }

  async #recordRejection(
    entry: PendingEntry,
    commandId: string | undefined,
  ): Promise<'recorded' | 'duplicate' | 'lost'> {
    let recorded = false;
    let duplicate = false;
    try {
      const result = await this.#scripts.commit(this.#requireWriter(), {
        mode: 'reject',
        historyMaxLen: this.#historyMaxLen,
        commandId,
        fields: encodeHistoryFields(entry),
      });
      recorded = result.status === 'ok';
      duplicate = result.status === 'duplicate';
    } catch (err) {
      if (commandId !== undefined) throw this.#unavailable(err);
      this.#log.warn({ err }, 'rejected change not recorded in history: redis unavailable');
      recorded = true;
    }
    if (recorded) this.#metrics?.commandsRejected.inc({ source: entry.source });
    return duplicate ? 'duplicate' : recorded ? 'recorded' : 'lost';
  }

  async #commit(request: CommitRequest): Promise<Awaited<ReturnType<RedisScripts['commit']>>> {
    return this.#guard(() => this.#scripts.commit(this.#requireWriter(), request));
  }

  // ------------------------------------------------------------------------------------------
  // commands stream

  /** Handles one `commands` entry; rejects only when Redis failed (the entry is retried). */
  async #handleCommandEntry(id: string, fields: readonly string[]): Promise<void> {
    const meta: CommandMeta = { actor: 'redis', source: 'redis' };
    const raw = fieldValue(fields, 'cmd');
    let problem: SwitchyardError | null = null;
    let input: unknown;
    let recordedCommand: unknown;
    if (raw === undefined) {
      recordedCommand = { fields: fieldNames(fields) };
      problem = fail(
        'VALIDATION_FAILED',
        'cmd: missing (an entry needs a field "cmd" holding JSON)',
      );
    } else if (Buffer.byteLength(raw) > MAX_COMMAND_BYTES) {
      // The audit entry summarises (cuts and redacts) the text.
      recordedCommand = { truncated: raw, bytes: Buffer.byteLength(raw) };
      problem = fail('BODY_TOO_LARGE', `cmd: larger than ${MAX_COMMAND_BYTES} bytes`);
    } else {
      try {
        input = JSON.parse(raw) as unknown;
      } catch {
        recordedCommand = raw;
        problem = fail('INVALID_JSON', 'cmd: not valid JSON');
      }
    }
    if (problem !== null) {
      await this.#recordRejection(
        rejectedEntry(
          recordedCommand,
          meta,
          this.#current?.revision ?? 0,
          new Date().toISOString(),
          problem,
        ),
        id,
      );
      this.#log.warn(
        { command: { id }, reason: { code: problem.code, message: problem.message } },
        'redis command rejected',
      );
      return;
    }
    try {
      const result = await this.#applyInput(input, meta, id);
      if (result?.changed === true) {
        this.#log.info(
          { command: { id }, revision: result.table.revision },
          'redis command applied',
        );
      } else if (result !== null) {
        this.#log.info(
          { command: { id }, revision: result.table.revision },
          'redis command changed nothing',
        );
      }
    } catch (err) {
      if (isSwitchyardError(err) && err.code !== 'STORE_UNAVAILABLE') {
        this.#log.warn(
          { command: { id }, reason: { code: err.code, message: err.message } },
          'redis command rejected',
        );
        return;
      }
      throw err;
    }
  }

  // ------------------------------------------------------------------------------------------
  // read path

  /** Single-flight resync: at most one in flight plus one queued. Never rejects. */
  #resync(): Promise<void> {
    if (this.#state === 'closing' || this.#state === 'closed') return Promise.resolve();
    if (this.#syncing !== null) {
      this.#syncAgain = true;
      return this.#syncing;
    }
    this.#syncing = (async () => {
      do {
        this.#syncAgain = false;
        await this.#syncOnce();
      } while (this.#syncAgain && this.#state !== 'closing' && this.#state !== 'closed');
    })().finally(() => {
      this.#syncing = null;
    });
    return this.#syncing;
  }

  async #syncOnce(): Promise<void> {
    const writer = this.#writer;
    if (writer === null) return;
    let read: StateRead;
    try {
      read = await this.#scripts.readState(writer, MAX_STATE_BYTES, false);
    } catch (err) {
      this.#setUp(false, err);
      return;
    }
    this.#setUp(true);
    if (read.type === 'none') {
      await this.#reseed(writer, read.nowMs);
    } else {
      const table = this.#validateRead(read);
      if (table !== null) {
        this.#newestRevision = table.revision;
        this.#adopt(table, true);
      }
    }
    this.#updateLag();
  }

  /** Redis lost the state (restart without persistence, flush): put our last good table back. */
  async #reseed(writer: RedisClient, nowMs: number): Promise<void> {
    const lastGood = this.#current ?? this.#bootTable;
    if (lastGood === null) return;
    try {
      const result = await this.#scripts.commit(writer, {
        mode: 'create',
        state: JSON.stringify(lastGood),
        revision: lastGood.revision,
        historyMaxLen: this.#historyMaxLen,
        deadlineMs: nowMs + this.#commandTimeoutMs,
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
        this.#adopt(lastGood, true);
      } else {
        // Another replica re-seeded first (or the write expired): read again.
        this.#syncAgain = true;
      }
    } catch (err) {
      this.#setUp(false, err);
    }
  }

  /** The valid table in `read`, or null (reported once per distinct invalid value). */
  #validateRead(read: StateRead): RoutingTable | null {
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
      this.#metrics?.commandsRejected.inc({ source: 'state' });
    }
    return null;
  }

  #onHint(message: string): void {
    const revision = Number(message);
    if (Number.isInteger(revision) && revision > this.#newestRevision)
      this.#newestRevision = revision;
    if (revision !== this.#current?.revision) void this.#resync();
  }

  async #onSubscriberReady(subscriber: RedisClient): Promise<void> {
    // Subscribe before reading, so a change between the two is not missed; pub/sub loses
    // whatever was published while we were away, hence the resync on every ready.
    try {
      await subscriber.subscribe(this.#keys.events);
    } catch (err) {
      this.#log.warn({ err }, 'subscribe to redis events failed; relying on the poll');
    }
    await this.#resync();
  }

  /** Makes `table` current (when it differs), announces and persists it. */
  #adopt(table: RoutingTable, persist: boolean): void {
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
      this.emit('table', table);
    } catch (err) {
      this.#log.error({ err, revision: table.revision }, 'table listener failed');
    }
    this.#updateLag();
    this.#registry?.beat();
    const stateFile = this.#options.stateFile;
    if (persist && stateFile !== undefined) {
      this.#fileWrite = this.#fileWrite
        .then(() => writeStateFile(stateFile, table))
        .catch((err: unknown) => this.#log.warn({ err, stateFile }, 'state file not written'));
    }
  }

  // ------------------------------------------------------------------------------------------
  // connection status

  #watchConnection(client: RedisClient, role: RedisRole, onReady: () => Promise<void>): void {
    client.on('ready', () => {
      if (this.#state === 'closing' || this.#state === 'closed') return;
      if (this.#everReady.has(role)) this.#metrics?.controlStoreReconnects.inc();
      this.#everReady.add(role);
      this.#connected.set(role, true);
      this.#refusalLogged = false;
      this.#log.info({ connection: role }, 'redis connection ready');
      void onReady();
    });
    client.on('close', () => {
      if (this.#state === 'closing' || this.#state === 'closed') return;
      if (this.#connected.get(role) === true) {
        this.#log.warn({ connection: role }, 'redis connection lost');
      }
      this.#connected.set(role, false);
    });
    // ioredis reports every failed reconnect as an error event; the transitions above are logged,
    // and so is a refusal of our credentials (once until a connection is ready again): retrying
    // cannot fix it, an operator must.
    client.on('error', (err: Error) => {
      const reason = credentialsRefused(err);
      if (reason !== null && !this.#refusalLogged) {
        this.#refusalLogged = true;
        this.#log.error(
          { err, connection: role, reason },
          'redis refused the credentials in the url',
        );
      } else {
        this.#log.debug({ err, connection: role }, 'redis client error');
      }
    });
  }

  #setUp(up: boolean, err?: unknown): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    if (up === this.#up) return;
    this.#up = up;
    this.#metrics?.controlStoreUp.set(up ? 1 : 0);
    if (up) this.#log.info({ newestRevision: this.#newestRevision }, 'control store reachable');
    else this.#log.warn({ err }, 'control store unreachable: routing with the last good table');
    this.emit('storeStatus', this.status());
  }

  #updateLag(): void {
    const lag = Math.max(0, this.#newestRevision - this.#options.appliedRevision());
    this.#metrics?.controlStoreRevisionLag.set(lag);
  }

  /** Runs a Redis call; any failure becomes STORE_UNAVAILABLE (503). */
  async #guard<T>(fn: () => Promise<T>, readOnly = false): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isSwitchyardError(err)) throw err;
      throw this.#unavailable(err, readOnly);
    }
  }

  #unavailable(err: unknown, readOnly = false): SwitchyardError {
    this.#setUp(false, err);
    return unavailable(err, readOnly);
  }

  #requireWriter(): RedisClient {
    if (this.#writer === null) throw fail('STORE_UNAVAILABLE', 'control store is not started');
    return this.#writer;
  }

  #requireRunning(): void {
    if (this.#state === 'closing' || this.#state === 'closed') {
      throw fail('CLOSED', 'control store is closed');
    }
    if (this.#state !== 'running') throw fail('STORE_UNAVAILABLE', 'control store is not started');
  }

  #setState(next: StoreState): void {
    this.#log.debug({ from: this.#state, to: next }, 'redis store state');
    this.#state = next;
  }

  async #shutdown(): Promise<void> {
    // A start() refused by Redis has already disconnected.
    if (this.#state === 'closed') return;
    if (this.#state === 'idle') {
      this.#setState('closed');
      return;
    }
    this.#setState('closing');
    if (this.#pollTimer !== null) clearInterval(this.#pollTimer);
    this.#pollTimer = null;
    // One deadline for the whole close: a paused server must not stretch it step by step.
    const deadline = Date.now() + this.#commandTimeoutMs + 500;
    const failures: unknown[] = [];
    const step = async (work: () => Promise<unknown>): Promise<void> => {
      const remainingMs = Math.max(0, deadline - Date.now());
      try {
        await Promise.race([work(), delay(remainingMs, undefined, { ref: false })]);
      } catch (err) {
        failures.push(err);
      }
    };
    // Dropping the consumer connection ends its blocking read at once.
    this.#consumerClient?.disconnect();
    await Promise.all([
      step(async () => this.#consumer?.close()),
      step(async () => this.#registry?.close()),
      step(async () => this.#syncing),
      step(() => this.#fileWrite),
    ]);
    const clients = [this.#subscriber, this.#writer].filter((c): c is RedisClient => c !== null);
    await Promise.all(clients.map((c) => step(() => c.quit().catch(() => undefined))));
    for (const client of clients) client.disconnect();
    this.#setState('closed');
    this.#metrics?.controlStoreUp.set(0);
    if (failures.length > 0) {
      throw new AggregateError(failures, 'redis store closed with errors');
    }
  }
}

function unavailable(cause?: unknown, readOnly = false): SwitchyardError {
  const message = readOnly
    ? 'control store unavailable'
    : 'control store unavailable: the change was not applied';
  // The cause reaches other components' logs: without credentials.
  return fail('STORE_UNAVAILABLE', message, { cause: redactRedisError(cause) });
}

/**
 * Resolves true once `client` is ready, false after `timeoutMs`, or with Redis's reason as soon
 * as it refuses the credentials.
 */
/** How the first connection went: ready, credentials refused, or no answer in time. */
type FirstConnection =
  | { readonly outcome: 'ready' }
  | { readonly outcome: 'refused'; readonly reason: string }
  | { readonly outcome: 'timeout'; readonly lastError: string | undefined };

function waitReady(client: RedisClient, timeoutMs: number): Promise<FirstConnection> {
  if (client.status === 'ready') return Promise.resolve({ outcome: 'ready' });
  return new Promise((resolve) => {
    let lastError: string | undefined;
    const finish = (result: FirstConnection): void => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onError);
      resolve(result);
    };
    const timer = setTimeout(() => finish({ outcome: 'timeout', lastError }), timeoutMs);
    timer.unref();
    const onReady = (): void => finish({ outcome: 'ready' });
    const onError = (err: unknown): void => {
      const refused = credentialsRefused(err);
      if (refused !== null) finish({ outcome: 'refused', reason: refused });
      // ioredis messages name the address and the errno (ECONNREFUSED, ETIMEDOUT), never the URL.
      else lastError = err instanceof Error ? err.message : String(err);
    };
    client.once('ready', onReady);
    client.on('error', onError);
  });
}

function fieldValue(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === name) return fields[i + 1];
  }
  return undefined;
}

function fieldNames(fields: readonly string[]): string[] {
  const names: string[] = [];
  for (let i = 0; i < fields.length && names.length < 20; i += 2) {
    names.push((fields[i] ?? '').slice(0, 64));
  }
  return names;
}
