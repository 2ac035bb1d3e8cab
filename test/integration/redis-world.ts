/** Test replicas on a real redis-server: a RedisControlStore wired to its own TableFeed. */
import { TableFeed } from '../../src/control/table-feed.js';
import { RedisControlStore, type RedisControlStoreOptions } from '../../src/control/redis-store.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics, type Metrics } from '../../src/observability/metrics.js';
import { createLogCollector } from '../helpers/log-collector.js';

/** One simulated proxy replica. */
export interface TestReplica {
  readonly id: string;
  readonly store: RedisControlStore;
  readonly feed: TableFeed;
  readonly metrics: Metrics;
  /** Parsed JSON log lines of this replica's store. */
  readonly logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** Starts a replica following `namespace` on `url`. */
export async function startReplica(
  url: string,
  namespace: string,
  id: string,
  overrides: Partial<RedisControlStoreOptions> = {},
): Promise<TestReplica> {
  const feed = new TableFeed();
  const metrics = createMetrics({ defaultMetrics: false });
  const { stream, logs } = createLogCollector();
  const store = new RedisControlStore({
    url,
    namespace,
    replicaId: id,
    appliedRevision: () => feed.appliedRevision(),
    logger: createLogger({ level: 'debug', stream }),
    metrics,
    ...overrides,
  });
  store.on('table', (table) => feed.offer(table));
  await store.start();
  return { id, store, feed, metrics, logs, close: () => store.close() };
}

/** Current value of a metric without labels (or with the given labels). */
export async function metricValue(
  metrics: Metrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  const data = await metric.get();
  const match = data.values.find((v) =>
    Object.entries(labels).every(([k, value]) => v.labels[k] === value),
  );
  return match?.value ?? 0;
}
