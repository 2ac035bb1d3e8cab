/**
 * Replica registry and receipts (SPEC §6): every replica writes its applied revision and a
 * heartbeat (Redis time, so replicas on different hosts share one clock) every second and right
 * after it applies a table, so `?wait=all` sees receipts within milliseconds.
 */
import type { Logger } from '../observability/logger.js';
import type { ReplicaInfo } from './control-store.js';
import type { RedisClient, RedisScripts } from './redis-scripts.js';

/** A replica is live while its heartbeat is younger than this (SPEC §5). */
export const REPLICA_LIVE_MS = 5000;
/** Heartbeat period. */
export const HEARTBEAT_INTERVAL_MS = 1000;
/** Entries not refreshed for this long are dropped from the registry. */
const STALE_REPLICA_MS = 60 * 60 * 1000;

/** Options of ReplicaRegistry. */
export interface ReplicaRegistryOptions {
  readonly client: RedisClient;
  readonly scripts: RedisScripts;
  /** The registry hash key. */
  readonly key: string;
  readonly replicaId: string;
  /** Revision this replica's data plane has applied. */
  readonly appliedRevision: () => number;
  readonly logger: Logger;
  readonly intervalMs?: number | undefined;
}

/** Heartbeats this replica and lists all of them. */
export class ReplicaRegistry {
  readonly #options: ReplicaRegistryOptions;
  #timer: NodeJS.Timeout | null = null;
  #inFlight: Promise<void> | null = null;
  #again = false;
  #closed = false;
  #failing = false;

  constructor(options: ReplicaRegistryOptions) {
    this.#options = options;
  }

  /** Starts the periodic heartbeat (first one at once). */
  start(): void {
    this.#timer = setInterval(() => this.beat(), this.#options.intervalMs ?? HEARTBEAT_INTERVAL_MS);
    this.#timer.unref();
    this.beat();
  }

  /** Sends a heartbeat now (coalesced: at most one in flight plus one queued). Never throws. */
  beat(): void {
    if (this.#closed) return;
    if (this.#inFlight !== null) {
      this.#again = true;
      return;
    }
    this.#inFlight = this.#send().finally(() => {
      this.#inFlight = null;
      if (this.#again && !this.#closed) {
        this.#again = false;
        this.beat();
      }
    });
  }

  /** Every registered replica with its liveness. */
  async list(): Promise<ReplicaInfo[]> {
    const { client, scripts } = this.#options;
    const { nowMs, entries } = await scripts.listReplicas(client);
    const replicas: ReplicaInfo[] = [];
    for (const [id, value] of entries) {
      const match = /^(\d+) (\d+)$/.exec(value);
      if (match === null) continue;
      const heartbeatMs = Number(match[2]);
      replicas.push({
        id,
        revision: Number(match[1]),
        heartbeatAt: new Date(heartbeatMs).toISOString(),
        live: nowMs - heartbeatMs < REPLICA_LIVE_MS,
      });
    }
    return replicas.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Stops heartbeats and removes this replica from the registry (best effort). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#inFlight;
    try {
      await this.#options.client.hdel(this.#options.key, this.#options.replicaId);
    } catch (err) {
      this.#options.logger.debug({ err }, 'replica deregistration failed');
    }
  }

  async #send(): Promise<void> {
    const { client, scripts, replicaId, appliedRevision, logger } = this.#options;
    try {
      const { replacedType } = await scripts.heartbeat(
        client,
        replicaId,
        appliedRevision(),
        STALE_REPLICA_MS,
      );
      if (replacedType !== '') {
        logger.warn(
          { replacedType },
          'replica registry key had the wrong type (written by hand?): replaced with a fresh registry',
        );
      }
      if (this.#failing) logger.debug('replica heartbeat restored');
      this.#failing = false;
    } catch (err) {
      // Reachability is reported by the store's sync loop; log the first failure only.
      if (!this.#failing) logger.debug({ err }, 'replica heartbeat failed');
      this.#failing = true;
    }
  }
}
