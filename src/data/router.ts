/**
 * The compiled routing snapshot: everything the request path needs from one table revision,
 * resolved once at apply time (picker, endpoint handles, metric children, traffic counters), so
 * a request reads one field and does no map building or label hashing.
 */
import type {
  CountTally,
  Metrics,
  RequestTally,
  UpstreamErrorReason,
} from '../observability/metrics.js';
import { compileRules, type RuleRequest } from '../table/rule-match.js';
import { createPoolPicker, type PoolPicker } from '../table/sticky-hash.js';
import type { RoutingTable } from '../table/types.js';
import { compileMirror, type CompiledMirror } from './mirror.js';
import type { RetryBudget, RetryBudgets } from './retry-budget.js';
import type { PoolOutcomeCounter, PoolOutcomes } from './pool-outcomes.js';
import type { PoolTrafficCounter, TrafficWindow } from './traffic-window.js';
import type { UpstreamPool } from './upstream-pool.js';

export type { UpstreamErrorReason } from '../observability/metrics.js';

/**
 * What the request path counts for one pool/version: plain-number tallies, resolved once per
 * table so the hot path never hashes labels, folded into prom-client at scrape time.
 */
export interface PoolMetricChildren {
  /** Requests (per version) and durations (per pool). */
  readonly tally: RequestTally;
  readonly retries: CountTally;
  /** Retries refused by the pool's retry budget. */
  readonly retriesDenied: CountTally;
  readonly errors: Readonly<Record<UpstreamErrorReason, CountTally>>;
}

/** One pool of a compiled snapshot. */
export interface CompiledPool {
  readonly name: string;
  readonly version: string;
  readonly weightBp: number;
  readonly endpoints: readonly UpstreamPool[];
  /** Value of the `x-switchyard-upstream` response header: `POOL@VERSION`. */
  readonly upstreamHeader: string;
  readonly metrics: PoolMetricChildren;
  readonly traffic: PoolTrafficCounter;
  /** Requests, errors and latency for the rollout judge. */
  readonly outcomes: PoolOutcomeCounter;
  readonly retryBudget: RetryBudget;
  /** Round-robin start offset for balancing ties; the only mutable field. */
  rr: number;
}

/** A routing rule compiled against its table: its predicate, its pool and its hit counter. */
export interface CompiledRoute {
  readonly name: string;
  readonly test: (req: RuleRequest) => boolean;
  readonly pool: CompiledPool;
  readonly hits: CountTally;
}

/** An immutable compiled view of one routing table. */
export interface RoutingSnapshot {
  readonly revision: number;
  readonly table: RoutingTable;
  readonly pick: PoolPicker;
  readonly pools: ReadonlyMap<string, CompiledPool>;
  /** The table's rules in order; empty when it has none (the request path then reads nothing). */
  readonly rules: readonly CompiledRoute[];
  /** The table's mirror (SPEC §12), or null: the request path then reads nothing more. */
  readonly mirror: CompiledMirror | null;
}

/** Builds the metric children of a pool/version pair. */
export function poolMetricChildren(
  metrics: Metrics,
  pool: string,
  version: string,
): PoolMetricChildren {
  const p = metrics.poolTally(pool);
  return {
    tally: metrics.requestTally(pool, version),
    retries: p.retries,
    retriesDenied: p.retriesDenied,
    errors: p.errors,
  };
}

/** Compiles `table` against the live endpoint handles (`endpointFor` creates or reuses one). */
export function compileSnapshot(
  table: RoutingTable,
  endpointFor: (url: string) => UpstreamPool,
  metrics: Metrics,
  traffic: TrafficWindow,
  retryBudgets: RetryBudgets,
  outcomes: PoolOutcomes,
): RoutingSnapshot {
  const pools = new Map<string, CompiledPool>();
  for (const [name, spec] of Object.entries(table.pools)) {
    pools.set(name, {
      name,
      version: spec.version,
      weightBp: table.weights[name] ?? 0,
      endpoints: Object.freeze(spec.endpoints.map(endpointFor)),
      upstreamHeader: `${name}@${spec.version}`,
      metrics: poolMetricChildren(metrics, name, spec.version),
      traffic: traffic.counter(name),
      outcomes: outcomes.counter(name),
      retryBudget: retryBudgets.for(name),
      rr: 0,
    });
  }
  const rules: CompiledRoute[] = [];
  for (const rule of compileRules(table.rules)) {
    const pool = pools.get(rule.pool);
    // Validation keeps a rule's pool in the table; were it gone, the rule would match nothing.
    if (pool === undefined) continue;
    rules.push({ name: rule.name, test: rule.test, pool, hits: metrics.ruleTally(rule.name) });
  }
  metrics.retainRules(new Set(table.rules.map((rule) => rule.name)));
  return Object.freeze({
    revision: table.revision,
    table,
    pick: createPoolPicker(table.weights),
    pools,
    rules: Object.freeze(rules),
    mirror: compileMirror(table.mirror, pools),
  });
}

/**
 * Picks the endpoint with the fewest outstanding requests, starting from a rotating offset so
 * ties are spread round robin. Unhealthy endpoints are skipped, and so is `exclude` (retry
 * elsewhere); returns undefined when nothing is left.
 */
export function pickEndpoint(pool: CompiledPool, exclude?: UpstreamPool): UpstreamPool | undefined {
  // hot path
  const eps = pool.endpoints;
  const n = eps.length;
  if (n === 1) {
    const only = eps[0] as UpstreamPool;
    return only === exclude || !only.healthy ? undefined : only;
  }
  const start = pool.rr;
  // A retry's pick leaves the rotation alone: advancing it too would hand every next first
  // attempt to the same (failing) endpoint when the pool has two.
  if (exclude === undefined) pool.rr = start + 1 >= n ? 0 : start + 1;
  let best: UpstreamPool | undefined;
  for (let k = 0; k < n; k++) {
    const e = eps[(start + k) % n] as UpstreamPool;
    if (e === exclude || !e.healthy) continue;
    if (best === undefined || e.outstanding < best.outstanding) best = e;
  }
  return best;
}
