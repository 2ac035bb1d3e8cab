/**
 * What the admin API reads from the data plane. ProxyServer implements it; the admin API never
 * reaches into the data plane otherwise.
 */
import type { PoolOutcomeSnapshot } from '../data/pool-outcomes.js';

/** Read-only view of the proxy's state for the admin API. */
export interface ProxyView {
  /** Revision of the table the proxy currently routes by (0 before the first). */
  appliedRevision(): number;
  /** Requests answered per pool over the last `windowMs` milliseconds. */
  trafficSnapshot(windowMs: number): Record<string, number>;
  /**
   * Healthy, total and not-yet-checked endpoints of `pool` (all 0 for a pool the proxy does not
   * know). While none is healthy and some await their first health check (a pool just added),
   * waits a bounded moment (about the check timeout) for those checks.
   */
  settledPoolHealth(
    pool: string,
    signal?: AbortSignal,
  ): Promise<{ healthy: number; total: number; unchecked: number }>;
  /** The proxy listener's bound address. */
  address(): { host: string; port: number };
  /** Healthy and total endpoints of `pool` (both 0 for a pool the proxy does not know). */
  poolHealth(pool: string): { healthy: number; total: number };
  /** Each endpoint of `pool` with its health; optional so small test views can leave it out. */
  endpointHealth?(pool: string): { url: string; healthy: boolean }[];
  /**
   * Cumulative requests, errors and latency per pool (copies); optional so small test views can
   * leave it out. The event stream turns differences of these into req/s, error ratio and p99.
   */
  poolCounts?(): ReadonlyMap<string, PoolOutcomeSnapshot>;
}
