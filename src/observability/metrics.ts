/**
 * Every metric Switchyard exports (SPEC §7), defined in one place and registered on a registry
 * made per app instance. Labels come from small fixed sets: pool names from the table, code
 * classes, reasons. Never a URL, key or request id.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The metric objects of one app instance. */
export interface Metrics {
  readonly registry: Registry;
  /** Requests answered, by pool, version and status class (`2xx`..`5xx`). */
  readonly requests: Counter<'pool' | 'version' | 'code_class'>;
  /** Time from request start to response end, by pool. */
  readonly requestDuration: Histogram<'pool'>;
  /** Upstream failures by pool and reason (`refused`, `reset`, `timeout`, `no_healthy`, ...). */
  readonly upstreamErrors: Counter<'pool' | 'reason'>;
  /** Requests retried once on another endpoint or a fresh connection. */
  readonly retries: Counter<'pool'>;
  /** Retries refused because the pool's retry budget was spent (issue 5). */
  readonly retriesDenied: Counter<'pool'>;
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
  /**
   * The request tally of a pool/version (the same object for the same pair): what the request
   * path counts into instead of `requests` and `requestDuration`.
   */
  requestTally(pool: string, version: string): RequestTally;
}

/** Upper bounds of `switchyard_request_duration_seconds`, in seconds. */
const DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Request durations of one pool, as the `pool` series of the duration histogram holds them. */
class DurationTally {
  readonly pool: string;
  /** Observations per bucket (not cumulative), as prom-client keeps them. */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length);
  sum = 0;
  count = 0;

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
  readonly #byClass = new Float64Array(6);
  /** `#byClass` as already added to the prom-client counter. */
  readonly #flushed = new Float64Array(6);
  readonly #duration: DurationTally;

  constructor(pool: string, version: string, duration: DurationTally) {
    this.pool = pool;
    this.version = version;
    this.#duration = duration;
  }

  /** Counts one answered request by its status class (no duration: upgrades). */
  count(status: number): void {
    // hot path
    const c = (status / 100) | 0;
    if (c >= 1 && c <= 5) this.#byClass[c] = (this.#byClass[c] as number) + 1;
  }

  /** Counts one answered request and its duration in seconds. */
  record(status: number, seconds: number): void {
    // hot path
    this.count(status);
    const d = this.#duration;
    d.sum += seconds;
    d.count++;
    // Same rule as prom-client: the first bound >= the value; above the last, only the count.
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      if (seconds <= (DURATION_BUCKETS[i] as number)) {
        d.buckets[i] = (d.buckets[i] as number) + 1;
        break;
      }
    }
  }

  /** Adds what was counted since the last flush to the prom-client counter. */
  flushTo(counter: Counter<'pool' | 'version' | 'code_class'>): void {
    for (let c = 1; c <= 5; c++) {
      const delta = (this.#byClass[c] as number) - (this.#flushed[c] as number);
      if (delta <= 0) continue;
      this.#flushed[c] = this.#byClass[c] as number;
      counter.inc({ pool: this.pool, version: this.version, code_class: `${c}xx` }, delta);
    }
  }
}

/** One series of a prom-client histogram (its internal `hashMap` entry). */
interface HistogramSeries {
  labels: Record<string, string | number>;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

/**
 * Writes the tallied durations into the histogram's series. prom-client has no public way to
 * add pre-bucketed observations, so this sets its internal per-series record (the shape its
 * `zero()` creates); test/unit/observability/request-tally.test.ts checks the exposition
 * matches one fed through `observe()`, so a prom-client change that breaks this fails there.
 */
function flushDurations(histogram: Histogram<'pool'>, tallies: Iterable<DurationTally>): void {
  const internal = histogram as unknown as { hashMap: Record<string, HistogramSeries> };
  let byPool: Map<string, HistogramSeries> | undefined;
  const seriesByPool = (): Map<string, HistogramSeries> => {
    const m = new Map<string, HistogramSeries>();
    for (const s of Object.values(internal.hashMap)) m.set(String(s.labels.pool), s);
    return m;
  };
  for (const t of tallies) {
    if (t.count === 0) continue;
    byPool ??= seriesByPool();
    let series = byPool.get(t.pool);
    if (series === undefined) {
      histogram.zero({ pool: t.pool });
      byPool = seriesByPool();
      series = byPool.get(t.pool);
      if (series === undefined) throw new Error('prom-client histogram internals changed');
    }
    for (let i = 0; i < DURATION_BUCKETS.length; i++)
      series.bucketValues[DURATION_BUCKETS[i] as number] = t.buckets[i] as number;
    series.sum = t.sum;
    series.count = t.count;
  }
}

/** Creates a fresh registry with every Switchyard metric and the default process metrics. */
export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  // Kept for the life of the registry, like the prom-client series they feed.
  const tallies = new Map<string, RequestTally>();
  const durations = new Map<string, DurationTally>();
  const requests = new Counter({
    name: 'switchyard_requests_total',
    help: 'Requests answered by the proxy, by pool, version and status class.',
    labelNames: ['pool', 'version', 'code_class'],
    registers,
    collect() {
      for (const t of tallies.values()) t.flushTo(requests);
    },
  });
  const requestDuration = new Histogram({
    name: 'switchyard_request_duration_seconds',
    help: 'Time from request start to response end, by pool.',
    labelNames: ['pool'],
    buckets: [...DURATION_BUCKETS],
    registers,
    collect() {
      flushDurations(requestDuration, durations.values());
    },
  });
  return {
    registry,
    requests,
    requestDuration,
    requestTally(pool: string, version: string): RequestTally {
      const key = `${pool}\n${version}`;
      let t = tallies.get(key);
      if (t === undefined) {
        let d = durations.get(pool);
        if (d === undefined) {
          d = new DurationTally(pool);
          durations.set(pool, d);
        }
        t = new RequestTally(pool, version, d);
        tallies.set(key, t);
      }
      return t;
    },
    upstreamErrors: new Counter({
      name: 'switchyard_upstream_errors_total',
      help: 'Upstream failures by pool and reason.',
      labelNames: ['pool', 'reason'],
      registers,
    }),
    retries: new Counter({
      name: 'switchyard_retries_total',
      help: 'Requests retried after a failure before any response byte.',
      labelNames: ['pool'],
      registers,
    }),
    retriesDenied: new Counter({
      name: 'switchyard_retries_denied_total',
      help: 'Retries refused because the pool retry budget was spent, per pool.',
      labelNames: ['pool'],
      registers,
    }),
    poolWeight: new Gauge({
      name: 'switchyard_pool_weight_basis_points',
      help: 'Configured weight of each pool in basis points (10000 = 100 %).',
      labelNames: ['pool'],
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
}
