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
