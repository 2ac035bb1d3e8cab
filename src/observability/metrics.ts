/**
 * Every metric Switchyard exports (SPEC §7), defined in one place and registered on a registry
 * made per app instance. Labels come from small fixed sets: pool names from the table, code
 * classes, reasons. Never a URL, key or request id.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Upstream failure reasons used as the `reason` label of `switchyard_upstream_errors_total`. */
export type UpstreamErrorReason = 'refused' | 'reset' | 'timeout' | 'other';

const ERROR_REASONS: readonly UpstreamErrorReason[] = ['refused', 'reset', 'timeout', 'other'];

/** Values of the `outcome` label of `switchyard_mirror_requests_total`. */
const MIRROR_OUTCOMES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'error', 'timeout'] as const;

/** Values of the `outcome` label of `switchyard_drained_connections_total`. */
const DRAIN_OUTCOMES = ['completed', 'closed'] as const;

/** The metric objects of one app instance. */
export interface Metrics {
  readonly registry: Registry;
  /**
   * Requests answered, by pool, version and status class (`2xx`..`5xx`); filled at collection
   * from the request tallies (count through `requestTally()`, never `inc()` it directly).
   */
  readonly requests: Counter<'pool' | 'version' | 'code_class'>;
  /** Time from request start to response end, by pool; filled from the request tallies. */
  readonly requestDuration: DurationHistogram;
  /** Upstream failures by pool and reason; filled from `poolTally(pool).errors`. */
  readonly upstreamErrors: Counter<'pool' | 'reason'>;
  /** Requests retried once on another endpoint or a fresh connection; from `poolTally()`. */
  readonly retries: Counter<'pool'>;
  /** Retries refused because the pool's retry budget was spent (issue 5); from `poolTally()`. */
  readonly retriesDenied: Counter<'pool'>;
  /** Requests routed by each routing rule (SPEC §12); filled from `ruleTally()`. */
  readonly ruleHits: Counter<'rule'>;
  /**
   * Mirrored requests (SPEC §12) that finished, by mirror pool and outcome (`2xx`..`5xx`,
   * `error`, `timeout`): apart from `switchyard_requests_total`, which counts real traffic only.
   */
  readonly mirrorRequests: Counter<'pool' | 'outcome'>;
  /** Copies not sent: `queue_full`, `body_too_large`, `no_endpoint`. */
  readonly mirrorDropped: Counter<'reason'>;
  /** Time from sending a mirrored request to the end of its answer, by mirror pool. */
  readonly mirrorDuration: Histogram<'pool'>;
  /** Mirrored requests in flight now. */
  readonly mirrorInFlight: Gauge;
  /** Configured weight of each pool, in basis points. */
  readonly poolWeight: Gauge<'pool'>;
  /** Revision of the table this replica routes by. */
  readonly routingRevision: Gauge;
  /** 1 while the control store is reachable. */
  readonly controlStoreUp: Gauge;
  /** Reconnections to the control store. */
  readonly controlStoreReconnects: Counter;
  /** Newest revision seen in the store minus the applied one. */
  readonly controlStoreRevisionLag: Gauge;
  /** Commands rejected by validation or by a guard, by source. */
  readonly commandsRejected: Counter<'source'>;
  /** Long-lived connections open to endpoints that no longer receive traffic. */
  readonly drainingConnections: Gauge<'pool'>;
  /** Connections that ended during a drain: `completed` by themselves or `closed` at the deadline. */
  readonly drainedConnections: Counter<'pool' | 'outcome'>;
  /** Healthy endpoints per pool. */
  readonly healthyEndpoints: Gauge<'pool'>;
  /** Open client WebSocket/upgrade tunnels. */
  readonly upgradedConnections: Gauge<'pool'>;
  /** 1 for the current rollout's phase (SPEC §9), 0 for its other phases. */
  readonly rolloutPhase: Gauge<'pool' | 'phase'>;
  /** Index of the current rollout's step. */
  readonly rolloutStep: Gauge;
  /** Weight the current rollout gives its target, in basis points. */
  readonly rolloutTargetWeight: Gauge;
  /** Rollout decisions by action (start, step, pass, pause, abort, promoted...). */
  readonly rolloutDecisions: Counter<'action'>;
  /** Clients connected to the admin event stream (GET /v1/events). */
  readonly adminEventClients: Gauge;
  /** Event-stream clients dropped because they read too slowly (their buffer passed its cap). */
  readonly adminEventClientsDropped: Counter;
  /**
   * The request tally of a pool/version (the same object for the same pair until the pair is
   * dropped): what the request path counts into instead of `requests` and `requestDuration`.
   */
  requestTally(pool: string, version: string): RequestTally;
  /** The per-pool tally (durations, retries, errors) of `pool`, the same object until dropped. */
  poolTally(pool: string): PoolTally;
  /**
   * Drops the `switchyard_requests_total` series of `tally`'s pool/version (issue 10: a version
   * that left the table and drained), unless another tally has replaced it meanwhile. Whatever
   * still counts into the dropped tally is not exported; the pair starts from zero if it
   * comes back.
   */
  dropVersion(tally: RequestTally): void;
  /**
   * Drops every series of `pool` (a pool that left the table and drained). With
   * `keepConnectionSeries`, the series that connection bookkeeping (drainer, upgrade relay)
   * writes through prom-client stay, because a connection still open would write them back.
   */
  dropPool(pool: string, options?: { keepConnectionSeries?: boolean }): void;
  /**
   * The hit tally of routing rule `rule` (the same object while the rule is kept). Rule names
   * are chosen by the operator and at most MAX_RULES are in a table, so the label is bounded.
   */
  ruleTally(rule: string): CountTally;
  /** Drops the hit series of every rule not in `rules` (the rules of the table in force). */
  retainRules(rules: ReadonlySet<string>): void;
}

/** Upper bounds of `switchyard_request_duration_seconds`, in seconds. */
const DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** A counter kept as a plain number on the request path, exported at collection. */
export class CountTally {
  value = 0;

  /** Adds one. */
  inc(): void {
    // hot path
    this.value++;
  }
}

/**
 * What the request path counts per pool, as plain numbers: request durations (the `pool` series
 * of the duration histogram), retries, denied retries and upstream errors by reason.
 */
export class PoolTally {
  readonly pool: string;
  /** Observations per duration bucket (not cumulative); above the last bound only `count`. */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length);
  /** Sum of the observed durations, in seconds. */
  durationSum = 0;
  /** Number of observed durations. */
  durationCount = 0;
  readonly retries = new CountTally();
  readonly retriesDenied = new CountTally();
  readonly errors: Readonly<Record<UpstreamErrorReason, CountTally>> = {
    refused: new CountTally(),
    reset: new CountTally(),
    timeout: new CountTally(),
    other: new CountTally(),
  };

  constructor(pool: string) {
    this.pool = pool;
  }
}

/**
 * Requests of one pool/version, counted as plain numbers on the request path and folded into
 * `switchyard_requests_total` and `switchyard_request_duration_seconds` when the registry is
 * collected (a scrape, or `metric.get()`). A prom-client child hashes its labels and validates
 * them on every inc/observe (about 0.3 µs each); this is an array write.
 */
export class RequestTally {
  readonly pool: string;
  readonly version: string;
  /** Requests answered, index = status / 100 (1..5); cumulative. */
  readonly byClass = new Float64Array(6);
  readonly #poolTally: PoolTally;

  constructor(pool: string, version: string, poolTally: PoolTally) {
    this.pool = pool;
    this.version = version;
    this.#poolTally = poolTally;
  }

  /** Counts one answered request by its status class (no duration: upgrades). */
  count(status: number): void {
    // hot path
    const c = (status / 100) | 0;
    if (c >= 1 && c <= 5) this.byClass[c] = (this.byClass[c] as number) + 1;
  }

  /** Counts one answered request and its duration in seconds. */
  record(status: number, seconds: number): void {
    // hot path
    this.count(status);
    const d = this.#poolTally;
    d.durationSum += seconds;
    d.durationCount++;
    // Same rule as prom-client: the first bound >= the value; above the last, only the count.
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      if (seconds <= (DURATION_BUCKETS[i] as number)) {
        d.buckets[i] = (d.buckets[i] as number) + 1;
        break;
      }
    }
  }
}

/** One exported sample, in the shape every prom-client metric's `get()` returns. */
interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName: string;
}

/**
 * `switchyard_request_duration_seconds`, exported straight from the pool tallies. prom-client
 * has no public way to add pre-bucketed observations to a Histogram (only `observe()`, one
 * value at a time), so this is a collector of its own, registered with
 * `Registry#registerMetric()`: the registry reads it through `get()`, the public method every
 * metric has, returning the documented shape that `getMetricsAsJSON()` and the cluster
 * aggregator use. test/unit/observability/request-tally.test.ts checks the exposition has the
 * same lines as a prom-client Histogram fed through `observe()`.
 */
export class DurationHistogram {
  readonly name = 'switchyard_request_duration_seconds';
  readonly help = 'Time from request start to response end, by pool.';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: readonly string[] = ['pool'];
  readonly #tallies: () => Iterable<PoolTally>;

  constructor(tallies: () => Iterable<PoolTally>) {
    this.#tallies = tallies;
  }

  /** The current samples: cumulative buckets, `+Inf`, sum and count per pool with observations. */
  get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: Sample[];
  }> {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const t of this.#tallies()) {
      if (t.durationCount === 0) continue;
      let acc = 0;
      for (let i = 0; i < DURATION_BUCKETS.length; i++) {
        acc += t.buckets[i] as number;
        values.push({
          value: acc,
          labels: { le: DURATION_BUCKETS[i] as number, pool: t.pool },
          metricName: bucket,
        });
      }
      values.push({
        value: t.durationCount,
        labels: { le: '+Inf', pool: t.pool },
        metricName: bucket,
      });
      values.push({
        value: t.durationSum,
        labels: { pool: t.pool },
        metricName: `${this.name}_sum`,
      });
      values.push({
        value: t.durationCount,
        labels: { pool: t.pool },
        metricName: `${this.name}_count`,
      });
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    });
  }

  /** Registry#resetMetrics() calls this; the tallies are cumulative and owned by the pools. */
  reset(): void {}
}

/** Creates a fresh registry with every Switchyard metric and the default process metrics. */
export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  // What the request path counts into. A series lives as long as its tally is in these maps:
  // each collect() rebuilds the prom-client series from them (reset, then inc by the totals),
  // so dropping a tally drops its series, and a late count into a dropped tally is never
  // written back.
  const tallies = new Map<string, RequestTally>();
  const pools = new Map<string, PoolTally>();
  const poolTally = (pool: string): PoolTally => {
    let t = pools.get(pool);
    if (t === undefined) {
      t = new PoolTally(pool);
      pools.set(pool, t);
    }
    return t;
  };
  const requests = new Counter({
    name: 'switchyard_requests_total',
    help: 'Requests answered by the proxy, by pool, version and status class.',
    labelNames: ['pool', 'version', 'code_class'],
    registers,
    collect() {
      requests.reset();
      for (const t of tallies.values()) {
        for (let c = 1; c <= 5; c++) {
          const n = t.byClass[c] as number;
          if (n > 0) requests.inc({ pool: t.pool, version: t.version, code_class: `${c}xx` }, n);
        }
      }
    },
  });
  const requestDuration = new DurationHistogram(() => pools.values());
  // Not a prom-client class (see DurationHistogram); the registry only calls get() and reset().
  registry.registerMetric(requestDuration as unknown as Histogram);
  const upstreamErrors = new Counter({
    name: 'switchyard_upstream_errors_total',
    help: 'Upstream failures by pool and reason.',
    labelNames: ['pool', 'reason'],
    registers,
    collect() {
      upstreamErrors.reset();
      for (const t of pools.values()) {
        for (const reason of ERROR_REASONS) {
          const n = t.errors[reason].value;
          if (n > 0) upstreamErrors.inc({ pool: t.pool, reason }, n);
        }
      }
    },
  });
  const retries = new Counter({
    name: 'switchyard_retries_total',
    help: 'Requests retried after a failure before any response byte.',
    labelNames: ['pool'],
    registers,
    collect() {
      retries.reset();
      for (const t of pools.values())
        if (t.retries.value > 0) retries.inc({ pool: t.pool }, t.retries.value);
    },
  });
  const retriesDenied = new Counter({
    name: 'switchyard_retries_denied_total',
    help: 'Retries refused because the pool retry budget was spent, per pool.',
    labelNames: ['pool'],
    registers,
    collect() {
      retriesDenied.reset();
      for (const t of pools.values())
        if (t.retriesDenied.value > 0) retriesDenied.inc({ pool: t.pool }, t.retriesDenied.value);
    },
  });
  const rules = new Map<string, CountTally>();
  const ruleHits = new Counter({
    name: 'switchyard_rule_hits_total',
    help: 'Requests routed by a routing rule, by rule name.',
    labelNames: ['rule'],
    registers,
    collect() {
      ruleHits.reset();
      for (const [rule, t] of rules) if (t.value > 0) ruleHits.inc({ rule }, t.value);
    },
  });
  const metrics: Metrics = {
    registry,
    ruleHits,
    ruleTally(rule: string): CountTally {
      let t = rules.get(rule);
      if (t === undefined) {
        t = new CountTally();
        rules.set(rule, t);
      }
      return t;
    },
    retainRules(keep: ReadonlySet<string>): void {
      for (const rule of [...rules.keys()]) if (!keep.has(rule)) rules.delete(rule);
    },
    requests,
    requestDuration,
    upstreamErrors,
    retries,
    retriesDenied,
    requestTally(pool: string, version: string): RequestTally {
      const key = `${pool}\n${version}`;
      let t = tallies.get(key);
      if (t === undefined) {
        t = new RequestTally(pool, version, poolTally(pool));
        tallies.set(key, t);
      }
      return t;
    },
    poolTally,
    dropVersion(tally: RequestTally): void {
      const key = `${tally.pool}\n${tally.version}`;
      if (tallies.get(key) === tally) tallies.delete(key);
    },
    dropPool(pool: string, options: { keepConnectionSeries?: boolean } = {}): void {
      pools.delete(pool);
      for (const t of [...tallies.values()])
        if (t.pool === pool) tallies.delete(`${pool}\n${t.version}`);
      metrics.poolWeight.remove({ pool });
      metrics.healthyEndpoints.remove({ pool });
      metrics.mirrorDuration.remove({ pool });
      for (const outcome of MIRROR_OUTCOMES) metrics.mirrorRequests.remove({ pool, outcome });
      if (options.keepConnectionSeries === true) return;
      metrics.drainingConnections.remove({ pool });
      metrics.upgradedConnections.remove({ pool });
      for (const outcome of DRAIN_OUTCOMES) metrics.drainedConnections.remove({ pool, outcome });
    },
    mirrorRequests: new Counter({
      name: 'switchyard_mirror_requests_total',
      help: 'Mirrored requests that finished, by mirror pool and outcome (status class, error, timeout).',
      labelNames: ['pool', 'outcome'],
      registers,
    }),
    mirrorDropped: new Counter({
      name: 'switchyard_mirror_dropped_total',
      help: 'Request copies not sent to the mirror, by reason.',
      labelNames: ['reason'],
      registers,
    }),
    mirrorDuration: new Histogram({
      name: 'switchyard_mirror_duration_seconds',
      help: 'Time from sending a mirrored request to the end of its answer, by mirror pool.',
      labelNames: ['pool'],
      buckets: [...DURATION_BUCKETS],
      registers,
    }),
    mirrorInFlight: new Gauge({
      name: 'switchyard_mirror_in_flight',
      help: 'Mirrored requests in flight.',
      registers,
    }),
    poolWeight: new Gauge({
      name: 'switchyard_pool_weight_basis_points',
      help: 'Configured weight of each pool in basis points (10000 = 100 %).',
      labelNames: ['pool'],
      registers,
    }),
    rolloutPhase: new Gauge({
      name: 'switchyard_rollout_phase',
      help: "1 for the rollout's current phase, 0 for its other phases.",
      labelNames: ['pool', 'phase'],
      registers,
    }),
    rolloutStep: new Gauge({
      name: 'switchyard_rollout_step',
      help: "Index of the rollout's current step.",
      registers,
    }),
    rolloutTargetWeight: new Gauge({
      name: 'switchyard_rollout_target_weight_basis_points',
      help: 'Weight the rollout gives its target pool, in basis points (10000 = 100 %).',
      registers,
    }),
    rolloutDecisions: new Counter({
      name: 'switchyard_rollout_decisions_total',
      help: 'Rollout decisions by action.',
      labelNames: ['action'],
      registers,
    }),
    adminEventClients: new Gauge({
      name: 'switchyard_admin_event_clients',
      help: 'Clients connected to the admin event stream (GET /v1/events).',
      registers,
    }),
    adminEventClientsDropped: new Counter({
      name: 'switchyard_admin_event_clients_dropped_total',
      help: 'Admin event-stream clients dropped because they read too slowly.',
      registers,
    }),
    routingRevision: new Gauge({
      name: 'switchyard_routing_revision',
      help: 'Revision of the routing table this replica routes by.',
      registers,
    }),
    controlStoreUp: new Gauge({
      name: 'switchyard_control_store_up',
      help: '1 while the control store is reachable, else 0.',
      registers,
    }),
    controlStoreReconnects: new Counter({
      name: 'switchyard_control_store_reconnects_total',
      help: 'Reconnections to the control store.',
      registers,
    }),
    controlStoreRevisionLag: new Gauge({
      name: 'switchyard_control_store_revision_lag',
      help: 'Newest revision seen in the control store minus the applied revision.',
      registers,
    }),
    commandsRejected: new Counter({
      name: 'switchyard_commands_rejected_total',
      help: 'Commands rejected by validation or a guard, by source.',
      labelNames: ['source'],
      registers,
    }),
    drainingConnections: new Gauge({
      name: 'switchyard_draining_connections',
      help: 'Open connections to endpoints that no longer receive new traffic.',
      labelNames: ['pool'],
      registers,
    }),
    drainedConnections: new Counter({
      name: 'switchyard_drained_connections_total',
      help: 'Draining connections that ended: completed by themselves or closed at the deadline.',
      labelNames: ['pool', 'outcome'],
      registers,
    }),
    healthyEndpoints: new Gauge({
      name: 'switchyard_healthy_endpoints',
      help: 'Endpoints currently considered healthy, per pool.',
      labelNames: ['pool'],
      registers,
    }),
    upgradedConnections: new Gauge({
      name: 'switchyard_upgraded_connections',
      help: 'Open WebSocket and other upgraded connections, per pool.',
      labelNames: ['pool'],
      registers,
    }),
  };
  return metrics;
}

/** Metrics of a worker group (SPEC §13), kept by the primary. */
export interface WorkerMetrics {
  /** Workers listening now. */
  readonly serving: Gauge;
  /** Workers that died and were forked again. */
  readonly restarts: Counter;
  /**
   * Requests routed by each worker (`worker`: its slot, 1..N, kept across restarts): how evenly
   * the connections are spread.
   */
  readonly requests: Counter<'worker'>;
}

/** Registers the worker-group metrics on `registry` (only a primary with workers does). */
export function createWorkerMetrics(registry: Registry): WorkerMetrics {
  const registers = [registry];
  return {
    serving: new Gauge({
      name: 'switchyard_workers_serving',
      help: 'Proxy worker processes listening now.',
      registers,
    }),
    restarts: new Counter({
      name: 'switchyard_worker_restarts_total',
      help: 'Proxy worker processes that died and were forked again.',
      registers,
    }),
    requests: new Counter({
      name: 'switchyard_worker_requests_total',
      help: 'Requests routed by each proxy worker (slot 1..N, kept across restarts).',
      labelNames: ['worker'],
      registers,
    }),
  };
}
