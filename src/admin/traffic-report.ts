/**
 * Observed vs configured split (GET /v1/traffic): per pool, the share of requests over a sliding
 * window beside the configured weight, with a 95 % Wilson score interval and a skew flag.
 */
import { TOTAL_BASIS_POINTS, type RoutingTable } from '../table/types.js';

/** z for a two-sided 95 % interval. */
const Z_95 = 1.959963984540054;

/**
 * Fewer requests than this in the window never count as skewed: with a handful of sticky clients
 * the split is lumpy by design, and tiny samples would flag noise.
 */
export const MIN_SAMPLES_FOR_SKEW = 100;

/** One pool's line of the report. */
export interface PoolTraffic {
  requests: number;
  observedShare: number;
  weight: number;
  configuredShare: number;
  interval: { low: number; high: number } | null;
  skewed: boolean;
}

/** The whole report. */
export interface TrafficReport {
  windowMs: number;
  total: number;
  revision: number | null;
  pools: Record<string, PoolTraffic>;
}

/** Wilson score interval for `successes` out of `n` trials (n > 0), clamped to [0, 1]. */
export function wilsonInterval(
  successes: number,
  n: number,
  z = Z_95,
): { low: number; high: number } {
  if (n <= 0) throw new Error('wilsonInterval: n must be positive');
  const p = successes / n;
  const z2 = z * z;
  const denominator = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denominator;
  const half = (z / denominator) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // At p = 0 or 1 the bound is exactly 0 or 1 in theory; floating point leaves ~1e-17, which
  // would flag a pool configured at 0 % that got no requests as skewed.
  return {
    low: successes <= 0 ? 0 : Math.max(0, centre - half),
    high: successes >= n ? 1 : Math.min(1, centre + half),
  };
}

/**
 * Builds the report from per-pool request counts. Pools of the table come first in table order;
 * pools that still got traffic in the window but are no longer in the table follow with weight 0.
 */
export function buildTrafficReport(
  counts: Readonly<Record<string, number>>,
  table: RoutingTable | null,
  windowMs: number,
): TrafficReport {
  const weights = table?.weights ?? {};
  const names = [...Object.keys(weights)];
  for (const name of Object.keys(counts)) if (!names.includes(name)) names.push(name);
  let total = 0;
  for (const name of names) total += ownNumber(counts, name);
  const pools: Record<string, PoolTraffic> = {};
  for (const name of names) {
    const requests = ownNumber(counts, name);
    const weight = ownNumber(weights, name);
    const configuredShare = weight / TOTAL_BASIS_POINTS;
    const interval = total > 0 ? wilsonInterval(requests, total) : null;
    const skewed =
      interval !== null &&
      total >= MIN_SAMPLES_FOR_SKEW &&
      (configuredShare < interval.low || configuredShare > interval.high);
    pools[name] = {
      requests,
      observedShare: total > 0 ? requests / total : 0,
      weight,
      configuredShare,
      interval,
      skewed,
    };
  }
  return { windowMs, total, revision: table?.revision ?? null, pools };
}

/**
 * `record[name]`, or 0 when it is not an own key: pool names such as `constructor` would
 * otherwise find `Object.prototype` members.
 */
function ownNumber(record: Readonly<Record<string, number>>, name: string): number {
  return Object.hasOwn(record, name) ? (record[name] ?? 0) : 0;
}
