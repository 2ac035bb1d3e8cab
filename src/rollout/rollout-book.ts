/**
 * Where rollouts live (SPEC §9 "Many replicas"): the current rollout with the engine's state, the
 * recent rollouts, the driver lease and every replica's per-pool counts. The memory book is this
 * process; the Redis book (control/redis-rollout-book.ts) shares all of it between the replicas
 * of a namespace, so any of them can answer the status and take over driving.
 */
import type { PoolOutcomeSnapshot } from '../data/pool-outcomes.js';
import type { PoolCounts } from './judge.js';
import { LatencyHistogram, type LatencyCounts } from './latency-histogram.js';
import type { RolloutRecord } from './rollout-record.js';

/** Per-pool cumulative counts at one moment. */
export type CountsSnapshot = ReadonlyMap<string, PoolOutcomeSnapshot>;

/** A CountsSnapshot as JSON: pool → requests, errors, sparse latency buckets. */
export type CountsJSON = Readonly<
  Record<string, { readonly r: number; readonly e: number; readonly l: LatencyCounts }>
>;

/** PoolCounts as JSON (latency as sparse buckets). */
export interface StoredPoolCounts {
  readonly requests: number;
  readonly errors: number;
  readonly latency?: LatencyCounts;
}

/** PoolCounts as JSON. */
export function encodePoolCounts(c: PoolCounts): StoredPoolCounts {
  return {
    requests: c.requests,
    errors: c.errors,
    ...(c.latency === undefined ? {} : { latency: c.latency.toJSON() }),
  };
}

/** Reads what encodePoolCounts wrote. */
export function decodePoolCounts(c: StoredPoolCounts): PoolCounts {
  return {
    requests: c.requests,
    errors: c.errors,
    ...(c.latency === undefined ? {} : { latency: LatencyHistogram.fromJSON(c.latency) }),
  };
}

/** The judged period of the current weight, as stored (see rollout-period.ts). */
export interface StoredPeriod {
  readonly start: CountsJSON;
  readonly startedAtMs: number;
  readonly warm: CountsJSON | null;
  readonly frozenBaseline: StoredPoolCounts | null;
  readonly failureRecorded: boolean;
}

/** What the engine needs besides the record to go on driving (possibly on another replica). */
export interface EngineState {
  /** Revision whose application everywhere starts the next period; null when not waiting. */
  readonly pendingRevision: number | null;
  /** When the current step's clock started (ms since epoch); null while waiting for receipts. */
  readonly stepStartedAtMs: number | null;
  readonly period: StoredPeriod | null;
  /** Target requests of the rollout's closed periods. */
  readonly earlierTargetRequests: number;
  /** blue-green: the baseline's counts over the window before the switch. */
  readonly beforeSwitch: StoredPoolCounts | null;
  /** A human approval skips the pass gate of the current step. */
  readonly approved: boolean;
  /** SPEC §10: the weight step waiting for its webhook gates (absent: none). */
  readonly gatedStep?: number | null;
  /** Paused because a `pre-step` gate failed (its retries go on). */
  readonly gatePaused?: boolean;
}

/** The current rollout as kept in the book. */
export interface StoredRollout {
  readonly record: RolloutRecord;
  readonly engine: EngineState;
}

/** A read of the current rollout with its compare-and-set token. */
export interface BookRead {
  readonly current: StoredRollout | null;
  readonly token: string;
}

/** Rollout storage of one namespace. Every method may reject with STORE_UNAVAILABLE. */
export interface RolloutBook {
  /** True when other replicas share it (Redis): counts are summed, a lease elects the driver. */
  readonly shared: boolean;
  /** The current rollout (null before any) and its token. */
  read(): Promise<BookRead>;
  /**
   * Replaces the current rollout when its token is still `token`; `archive` (the previous
   * rollout, when a new one starts) goes to the head of the capped list of past rollouts.
   * Resolves false on a conflict (someone wrote in between).
   */
  write(next: StoredRollout, token: string, archive: RolloutRecord | null): Promise<boolean>;
  /** Past rollouts (not the current one), newest first. */
  past(limit: number): Promise<RolloutRecord[]>;
  /**
   * Takes or renews the driver lease for `owner`: `held` while `owner` holds it; otherwise
   * `expiresInMs` says when the other holder's lease runs out (if it does not renew it).
   */
  lease(owner: string, ttlMs: number): Promise<LeaseState>;
  /** Gives the lease up if `owner` holds it (best effort). */
  release(owner: string): Promise<void>;
  /** Stores this replica's cumulative per-pool counts (shared books only). */
  publishCounts(replicaId: string, counts: CountsSnapshot): Promise<void>;
  /** Every replica's last stored counts (shared books only; empty otherwise). */
  replicaCounts(): Promise<Map<string, CountsSnapshot>>;
}

/** The outcome of RolloutBook.lease(). */
export interface LeaseState {
  readonly held: boolean;
  readonly expiresInMs: number;
  /** The replica holding the lease now. */
  readonly holder: string;
}

/** Past rollouts kept (`GET /v1/rollouts` shows them after the current one). */
export const MAX_PAST = 19;

/** The book of one process (memory store). */
export class MemoryRolloutBook implements RolloutBook {
  readonly shared = false;
  #current: StoredRollout | null = null;
  #version = 0;
  #past: RolloutRecord[] = [];

  read(): Promise<BookRead> {
    return Promise.resolve({ current: this.#current, token: String(this.#version) });
  }

  write(next: StoredRollout, token: string, archive: RolloutRecord | null): Promise<boolean> {
    if (token !== String(this.#version)) return Promise.resolve(false);
    this.#version += 1;
    this.#current = next;
    if (archive !== null) {
      this.#past.unshift(archive);
      this.#past.length = Math.min(this.#past.length, MAX_PAST);
    }
    return Promise.resolve(true);
  }

  past(limit: number): Promise<RolloutRecord[]> {
    return Promise.resolve(this.#past.slice(0, limit));
  }

  lease(owner: string, ttlMs: number): Promise<LeaseState> {
    return Promise.resolve({ held: true, expiresInMs: ttlMs, holder: owner });
  }

  release(): Promise<void> {
    return Promise.resolve();
  }

  publishCounts(): Promise<void> {
    return Promise.resolve();
  }

  replicaCounts(): Promise<Map<string, CountsSnapshot>> {
    return Promise.resolve(new Map<string, CountsSnapshot>());
  }
}

/** `counts` as JSON. */
export function encodeCounts(counts: CountsSnapshot): CountsJSON {
  const out: Record<string, { r: number; e: number; l: LatencyCounts }> = {};
  for (const [pool, c] of counts) out[pool] = { r: c.requests, e: c.errors, l: c.latency.toJSON() };
  return out;
}

/** Reads what encodeCounts wrote; pools that do not read as counts are left out. */
export function decodeCounts(raw: unknown): Map<string, PoolOutcomeSnapshot> {
  const out = new Map<string, PoolOutcomeSnapshot>();
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return out;
  for (const [pool, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value !== 'object' || value === null) continue;
    const { r, e, l } = value as Record<string, unknown>;
    if (!isCount(r) || !isCount(e) || typeof l !== 'object' || l === null) continue;
    try {
      out.set(pool, {
        requests: r,
        errors: e,
        latency: LatencyHistogram.fromJSON(l as LatencyCounts),
      });
    } catch {
      // A bucket out of range (written by hand): leave the pool out.
    }
  }
  return out;
}

/** The per-pool sum of several replicas' counts. */
export function sumCounts(all: Iterable<CountsSnapshot>): Map<string, PoolOutcomeSnapshot> {
  const out = new Map<string, { requests: number; errors: number; latency: LatencyHistogram }>();
  for (const counts of all) {
    for (const [pool, c] of counts) {
      let sum = out.get(pool);
      if (sum === undefined) {
        sum = { requests: 0, errors: 0, latency: new LatencyHistogram() };
        out.set(pool, sum);
      }
      sum.requests += c.requests;
      sum.errors += c.errors;
      sum.latency.add(c.latency);
    }
  }
  return out;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
