/**
 * The Redis control store (SPEC §6): many replicas follow one table in Redis. This file is the
 * ControlStore facade: connections, lifecycle and status. The parts live beside it:
 * - redis-writer.ts: the compare-and-set write path (apply, seed, recorded rejections);
 * - redis-table-sync.ts: the read path (hints, resync, poll, validation, re-seed, state file);
 * - redis-command-decoder.ts: entries of the `commands` stream (read by command-consumer.ts);
 * - redis-connection.ts, redis-scripts.ts, redis-history.ts, replica-registry.ts.
 * Outages: every client fails fast (no offline queue, command timeout, no resend), writes carry a
 * Redis-time deadline so a write delayed by a paused server is dropped, not replayed. The last
 * good table is kept in `stateFile` and used when Redis is unreachable at start.
 * Credentials: Redis refusing them at start fails start(), later it is logged as an error; no log
 * line or error cause carries them (see redactRedisError).
 */
import { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { fail, isSwitchyardError, type SwitchyardError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { RolloutBook } from '../rollout/rollout-book.js';
import type { CommandMeta, HistoryEntry, RoutingTable } from '../table/types.js';
import { rejectedEntry } from './audit-entry.js';
import { CommandConsumer } from './command-consumer.js';
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
import { handleCommandEntry, type RolloutGuard } from './redis-command-decoder.js';
import {
  createRedisClient,
  credentialsRefused,
  parseRedisUrl,
  serializeRedisError,
  storeUnavailable,
  waitReady,
  type RedisRole,
} from './redis-connection.js';
import { decodeHistoryReply } from './redis-history.js';
import { redisKeys, type RedisKeys } from './redis-keys.js';
import { RedisScripts, type RedisClient } from './redis-scripts.js';
import { RedisRolloutBook } from './redis-rollout-book.js';
import { RedisTableSync } from './redis-table-sync.js';
import { RedisWriter } from './redis-writer.js';
import { ReplicaRegistry } from './replica-registry.js';
import { readStateFile } from './state-file.js';

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
  /** This replica's per-pool load, sent with every heartbeat (SPEC §10). */
  readonly drainReport?: (() => DrainReport) | undefined;
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
  /**
   * Runs a `rollout-*` entry of the commands stream (SPEC §9); rejects with a SwitchyardError to
   * refuse it. Without one such entries are rejected as unknown commands.
   */
  readonly rolloutCommand?: ((input: Record<string, unknown>) => Promise<void>) | undefined;
  /** Guards `weights`/`canary`/`switch`/`rollback` entries while a rollout runs (SPEC §9). */
  readonly rolloutGuard?: RolloutGuard | undefined;
}

type StoreState = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

/** A ControlStore shared by every replica of a namespace through Redis. */
export class RedisControlStore extends EventEmitter<ControlStoreEvents> implements ControlStore {
  readonly #options: RedisControlStoreOptions;
  readonly #log: Logger;
  readonly #metrics: Metrics | undefined;
  readonly #keys: RedisKeys;
  readonly #scripts: RedisScripts;
  readonly #commandTimeoutMs: number;
  readonly #historyMaxLen: number;
  readonly #sync: RedisTableSync;
  readonly #writes: RedisWriter;
  readonly #rolloutBook: RedisRolloutBook;
  #state: StoreState = 'idle';
  #writer: RedisClient | null = null;
  #subscriber: RedisClient | null = null;
  #consumerClient: RedisClient | null = null;
  #registry: ReplicaRegistry | null = null;
  #consumer: CommandConsumer | null = null;
  #pollTimer: NodeJS.Timeout | null = null;
  #up = false;
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
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 1500;
    this.#historyMaxLen = options.historyMaxLen ?? 1000;
    this.#scripts = new RedisScripts(this.#keys);
    this.#sync = new RedisTableSync({
      scripts: this.#scripts,
      client: () => this.#writer,
      replicaId: options.replicaId,
      appliedRevision: options.appliedRevision,
      stateFile: options.stateFile,
      commandTimeoutMs: this.#commandTimeoutMs,
      historyMaxLen: this.#historyMaxLen,
      logger: this.#log,
      metrics: this.#metrics,
      onTable: (table) => this.emit('table', table),
      afterAdopt: () => this.#registry?.beat(),
      setUp: (up, err) => this.#setUp(up, err),
      stopped: () => this.#state === 'closing' || this.#state === 'closed',
    });
    this.#writes = new RedisWriter({
      scripts: this.#scripts,
      keys: this.#keys,
      client: () => this.#requireWriter(),
      sync: this.#sync,
      guard: (fn) => this.#guard(fn),
      unavailable: (cause) => (cause === undefined ? storeUnavailable() : this.#unavailable(cause)),
      commandTimeoutMs: this.#commandTimeoutMs,
      historyMaxLen: this.#historyMaxLen,
      logger: this.#log,
      metrics: this.#metrics,
    });
    this.#rolloutBook = new RedisRolloutBook({
      keys: this.#keys,
      client: () => this.#requireWriter(),
      guard: (fn) => this.#guard(fn),
    });
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
        this.#sync.setBootTable(await readStateFile(options.stateFile));
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
    this.#watchConnection(writer, 'writer', () => this.#sync.resync());
    this.#watchConnection(subscriber, 'subscriber', () => this.#onSubscriberReady(subscriber));
    this.#watchConnection(consumerClient, 'consumer', () => Promise.resolve());
    writer.on('close', () => this.#setUp(false));
    subscriber.on('message', (_channel: string, message: string) => this.#sync.onHint(message));

    const startTimeoutMs = options.startTimeoutMs ?? 3000;
    const first = await waitReady(writer, startTimeoutMs);
    if (first.outcome === 'refused') {
      for (const client of [writer, subscriber, consumerClient]) client.disconnect();
      this.#setState('closed');
      throw fail('INVALID_CONFIG', `redis refused the credentials in the URL: ${first.reason}`);
    }
    if (first.outcome === 'ready') {
      await this.#sync.resync();
    } else {
      // The store starts "down", so no transition would say so: an operator must see why a
      // replica is not ready (or routes with its state file) without turning on debug logs.
      this.#log.warn(
        { waitedMs: startTimeoutMs, lastError: first.lastError },
        'control store unreachable at start: retrying in the background',
      );
    }
    const bootTable = this.#sync.bootTable();
    if (this.#sync.current() === null && bootTable !== null) {
      this.#log.warn(
        { revision: bootTable.revision, stateFile: options.stateFile },
        'booting from state file: no valid table in redis',
      );
      this.#sync.adopt(bootTable, false);
    }

    this.#registry = new ReplicaRegistry({
      client: writer,
      scripts: this.#scripts,
      key: this.#keys.replicas,
      drainKey: this.#keys.drain,
      replicaId: options.replicaId,
      appliedRevision: options.appliedRevision,
      drainReport: options.drainReport,
      logger: this.#log,
      intervalMs: options.heartbeatIntervalMs,
    });
    this.#registry.start();
    this.#consumer = new CommandConsumer({
      client: consumerClient,
      keys: this.#keys,
      handle: (id, fields) =>
        handleCommandEntry(id, fields, {
          writer: this.#writes,
          revision: () => this.#sync.current()?.revision ?? 0,
          logger: this.#log,
          rolloutCommand: options.rolloutCommand,
          rolloutGuard: options.rolloutGuard,
        }),
      logger: this.#log,
      blockMs: timeouts.blockMs,
    });
    this.#consumer.start();
    this.#pollTimer = setInterval(() => void this.#sync.resync(), options.pollIntervalMs ?? 1000);
    this.#pollTimer.unref();
    this.#setState('running');
  }

  /** Stops loops and timers, deregisters, disconnects. Idempotent and bounded. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  current(): RoutingTable | null {
    return this.#sync.current();
  }

  /** Validates and applies a raw command with compare-and-set; see ControlStore.apply. */
  async apply(input: unknown, meta: CommandMeta): Promise<RoutingTable> {
    return (await this.change(input, meta)).table;
  }

  /** apply(), also saying whether the table changed; see ControlStore.change. */
  async change(input: unknown, meta: CommandMeta): Promise<ChangeResult> {
    this.#requireRunning();
    const result = await this.#writes.change(input, meta, undefined);
    // Only command-stream entries can be duplicates.
    if (result === null) throw new Error('unexpected duplicate for an admin change');
    return result;
  }

  /** Writes revision 1 from `pools` unless Redis (or this replica) already has a table. */
  async seed(pools: SeedPools, meta: CommandMeta): Promise<RoutingTable> {
    this.#requireRunning();
    return this.#writes.seed(pools, meta);
  }

  /** Appends a refusal made before apply() to history; best effort (see ControlStore). */
  async recordRejection(input: unknown, meta: CommandMeta, error: SwitchyardError): Promise<void> {
    const time = meta.now ?? new Date().toISOString();
    await this.#writes.recordRejection(
      rejectedEntry(input, meta, this.#sync.current()?.revision ?? 0, time, error),
      undefined,
    );
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

  /** Every registered replica's last drain report; `live` as in replicas(). */
  async drainReports(): Promise<ReplicaDrainReport[]> {
    this.#requireRunning();
    const registry = this.#registry;
    if (registry === null) return [];
    return this.#guard(() => registry.drainReports(), true);
  }

  /** Rollouts shared by every replica of the namespace. */
  rolloutBook(): RolloutBook {
    return this.#rolloutBook;
  }

  status(): StoreStatus {
    return { kind: 'redis', up: this.#up, newestRevision: this.#sync.newestRevision() };
  }

  async #onSubscriberReady(subscriber: RedisClient): Promise<void> {
    // Subscribe before reading, so a change between the two is not missed; pub/sub loses
    // whatever was published while we were away, hence the resync on every ready.
    try {
      await subscriber.subscribe(this.#keys.events);
    } catch (err) {
      this.#log.warn({ err }, 'subscribe to redis events failed; relying on the poll');
    }
    await this.#sync.resync();
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
    if (up) {
      this.#log.info({ newestRevision: this.#sync.newestRevision() }, 'control store reachable');
    } else this.#log.warn({ err }, 'control store unreachable: routing with the last good table');
    this.emit('storeStatus', this.status());
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
    return storeUnavailable(err, readOnly);
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
      step(() => this.#sync.settled()),
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
