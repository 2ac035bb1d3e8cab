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
}

/** Creates a fresh registry with every Switchyard metric and the default process metrics. */
export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    requests: new Counter({
      name: 'switchyard_requests_total',
      help: 'Requests answered by the proxy, by pool, version and status class.',
      labelNames: ['pool', 'version', 'code_class'],
      registers,
    }),
    requestDuration: new Histogram({
      name: 'switchyard_request_duration_seconds',
      help: 'Time from request start to response end, by pool.',
      labelNames: ['pool'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
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
