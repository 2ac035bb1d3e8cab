/**
 * Replica registry and receipts (SPEC §6): every replica writes its applied revision and a
 * heartbeat (Redis time, so replicas on different hosts share one clock) every second and right
 * after it applies a table, so `?wait=all` sees receipts within milliseconds.
 */
import type { Logger } from '../observability/logger.js';
import type { DrainReport, PoolLoad, ReplicaDrainReport, ReplicaInfo } from './control-store.js';
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
  /** The drain report hash key. */
  readonly drainKey: string;
  readonly replicaId: string;
  /** Revision this replica's data plane has applied. */
  readonly appliedRevision: () => number;
  /** This replica's per-pool load, sent with every heartbeat (none when absent). */
  readonly drainReport?: (() => DrainReport) | undefined;
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

  /** Every registered replica's last drain report, with its liveness. */
  async drainReports(): Promise<ReplicaDrainReport[]> {
    const { client, scripts } = this.#options;
    const { nowMs, registry, reports } = await scripts.listDrainReports(client);
    const out: ReplicaDrainReport[] = [];
    for (const [id, value] of registry) {
      const match = /^(\d+) (\d+)$/.exec(value);
      if (match === null) continue;
      out.push({
        id,
        live: nowMs - Number(match[2]) < REPLICA_LIVE_MS,
        revision: Number(match[1]),
        pools: decodeDrainReport(reports.get(id)),
      });
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Stops heartbeats and removes this replica from the registry (best effort). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#inFlight;
    try {
      await this.#options.client.hdel(this.#options.key, this.#options.replicaId);
      await this.#options.client.hdel(this.#options.drainKey, this.#options.replicaId);
    } catch (err) {
      this.#options.logger.debug({ err }, 'replica deregistration failed');
    }
  }

  async #send(): Promise<void> {
    const { client, scripts, replicaId, appliedRevision, drainReport, logger } = this.#options;
    try {
      const { replacedType } = await scripts.heartbeat(
        client,
        replicaId,
        appliedRevision(),
        STALE_REPLICA_MS,
        drainReport === undefined ? '' : encodeDrainReport(drainReport()),
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

/** `{"pool":[weight,inFlight,longLived],...}`: a few bytes per pool, sent every second. */
export function encodeDrainReport(report: DrainReport): string {
  const out: Record<string, [number, number, number]> = {};
  for (const [pool, load] of Object.entries(report))
    out[pool] = [load.weight, load.inFlight, load.longLived];
  return JSON.stringify(out);
}

/** Reads what encodeDrainReport wrote; null when absent or unreadable (written by hand). */
export function decodeDrainReport(raw: string | undefined): DrainReport | null {
  if (raw === undefined || raw === '') return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  const out: Record<string, PoolLoad> = {};
  for (const [pool, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (!Array.isArray(value) || value.length !== 3) return null;
    const [weight, inFlight, longLived] = value as unknown[];
    if (!isCount(weight) || !isCount(inFlight) || !isCount(longLived)) return null;
    out[pool] = { weight, inFlight, longLived };
  }
  return out;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
