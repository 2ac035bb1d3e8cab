/**
 * Composition root: builds one Switchyard instance from a frozen Config. Joins the control plane
 * (a ControlStore) and the data plane (ProxyServer) through one TableFeed, and exposes the admin
 * API. No process-wide state: the logger and metrics registry are made here per instance.
 */
import type { DestinationStream } from 'pino';
import { AdminServer } from './admin/admin-server.js';
import type { EventHubOptions } from './admin/event-hub.js';
import type { Config } from './config/schema.js';
import type { ControlStore } from './control/control-store.js';
import { MemoryControlStore } from './control/memory-store.js';
import { RedisControlStore } from './control/redis-store.js';
import { TableFeed } from './control/table-feed.js';
import { isSwitchyardError } from './errors.js';
import { ProxyServer } from './data/proxy-server.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createMetrics, createWorkerMetrics, type Metrics } from './observability/metrics.js';
import { RolloutDriver } from './rollout/rollout-driver.js';
import { autoWorkers } from './cluster/cpus.js';
import { WorkerGroup } from './cluster/worker-group.js';
import { RolloutHooks } from './rollout/rollout-hooks.js';
import { WebhookSender } from './rollout/webhook-sender.js';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';

/** Things tests (and the demo) may inject instead of the defaults. */
export interface AppOverrides {
  /** Where JSON log lines go (default stdout). */
  readonly logStream?: DestinationStream | undefined;
  /** A store made by the caller; the app does not close it. */
  readonly store?: ControlStore | undefined;
  /** Replica id in the registry (default `<hostname>-<pid>-<random>`). */
  readonly replicaId?: string | undefined;
  /** Collect default process metrics (default true; tests running many apps turn it off). */
  readonly defaultMetrics?: boolean | undefined;
  /** Admin event-stream tunables (tests lower the slow-client buffer cap). */
  readonly adminEvents?: EventHubOptions | undefined;
  /** Proxy worker processes (default: config.workers, `auto` resolved); > 1 forks them. */
  readonly workers?: number | undefined;
}

type AppState = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

/** One Switchyard instance: proxy + admin API + control store. */
export interface App {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly store: ControlStore;
  readonly feed: TableFeed;
  readonly proxy: ProxyServer;
  readonly admin: AdminServer;
  /** The rollout engine (SPEC §9); with Redis it shares its state and is driven under a lease. */
  readonly rollouts: RolloutDriver;
  /** The worker processes that serve the traffic with --workers > 1 (SPEC §13), else null. */
  readonly workers: WorkerGroup | null;
  readonly replicaId: string;
  /** Starts the store, loads or seeds the table, then listens. Throws if called twice. */
  start(): Promise<void>;
  /**
   * Graceful stop (SPEC §4): readiness 503 at once, keep serving for `shutdownDelay`, then close.
   * Bounded by `shutdownTimeout`. Idempotent.
   */
  shutdown(): Promise<void>;
  /** Immediate stop: stops listeners, drains in-flight work, closes what the app created. */
  close(): Promise<void>;
  /** True while a table is loaded and the app is not shutting down. */
  isReady(): boolean;
}

/** Builds an App; does no I/O until start(). */
export function createApp(config: Config, overrides: AppOverrides = {}): App {
  const logger = createLogger({ level: config.logLevel, stream: overrides.logStream });
  const metrics = createMetrics({ defaultMetrics: overrides.defaultMetrics !== false });
  const replicaId =
    overrides.replicaId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const feed = new TableFeed();
  const ownsStore = overrides.store === undefined;
  const store: ControlStore =
    overrides.store ??
    (config.redis !== undefined
      ? new RedisControlStore({
          url: config.redis,
          namespace: config.namespace,
          replicaId,
          appliedRevision: () => workers?.appliedRevision() ?? feed.appliedRevision(),
          drainReport: () => plane.drainReport(),
          logger, // the store makes its own `component` child
          metrics,
          stateFile: config.stateFile,
          // SPEC §9: `rollout-*` entries of the commands stream run on the rollout engine.
          rolloutCommand: (input) => rollouts.command(input),
          rolloutGuard: {
            refuseWhileActive: () => rollouts.refuseWhileActive(),
            active: async () => {
              await rollouts.refresh();
              return rollouts.ownsWeights();
            },
            abort: async (reason) => {
              await rollouts.abort(reason);
            },
          },
        })
      : new MemoryControlStore({
          appliedRevision: () => workers?.appliedRevision() ?? feed.appliedRevision(),
          drainReport: () => plane.drainReport(),
          replicaId,
          metrics,
        }));

  const proxy = new ProxyServer(config, {
    logger, // the proxy makes its own `component` child
    metrics,
  });
  // --workers (SPEC §13): N worker processes serve the traffic and `proxy` stays here unstarted,
  // checking endpoint health for the admin API. `plane` is whichever serves.
  const workerCount =
    overrides.workers ?? (config.workers === 'auto' ? autoWorkers().workers : config.workers);
  const workers =
    workerCount > 1
      ? new WorkerGroup(config, workerCount, {
          logger,
          metrics,
          workerMetrics: createWorkerMetrics(metrics.registry),
          local: proxy,
        })
      : null;
  const plane = workers ?? proxy;
  let state: AppState = 'idle';
  let shuttingDown = false;
  const isReady = (): boolean =>
    state === 'running' &&
    !shuttingDown &&
    feed.current() !== null &&
    (workers === null || workers.serving() > 0);
  // Release webhooks and the drained record (SPEC §10); the secret comes from the environment.
  const webhooks = new WebhookSender({ secret: config.webhookSecret, logger });
  const hooks = new RolloutHooks({ sender: webhooks, store, logger });
  const rollouts = new RolloutDriver({
    store,
    counts: () => plane.poolCounts(),
    replicaId,
    logger,
    metrics,
    leaseMs: config.rolloutLease,
    hooks,
  });
  const admin = new AdminServer(
    overrides.adminEvents === undefined ? config : { ...config, events: overrides.adminEvents },
    {
      logger: logger.child({ component: 'admin' }),
      metrics,
      store,
      proxy: plane,
      isReady,
      rollouts,
      replicaId,
      awaitApplied: workers === null ? undefined : (revision) => workers.waitApplied(revision),
    },
  );

  const setState = (next: AppState): void => {
    logger.debug({ from: state, to: next }, 'app state');
    state = next;
  };

  // The proxy logs the one 'table applied' line per change.
  feed.on('tableApplied', (table) => {
    plane.applyTable(table);
  });
  store.on('table', (table) => {
    feed.offer(table);
  });
  /**
   * Seeds the store from the configured pools when it has no table. A store that is unreachable
   * now is seeded when it comes back (storeStatus up), so a replica started during a Redis
   * outage still converges without operator action; until then /readyz stays 503.
   */
  const seedFromConfig = async (): Promise<void> => {
    if (store.current() !== null || config.pools.length === 0) return;
    try {
      await store.seed(config.pools, { actor: 'config', source: 'seed' });
    } catch (err) {
      if (!isSwitchyardError(err, 'STORE_UNAVAILABLE')) throw err;
      logger.warn({ err }, 'control store unavailable: seeding when it returns');
    }
  };
  store.on('storeStatus', (status) => {
    metrics.controlStoreUp.set(status.up ? 1 : 0);
    if (status.up && state === 'running') {
      seedFromConfig().catch((err: unknown) => logger.error({ err }, 'seeding failed'));
    }
  });

  let closing: Promise<void> | undefined;
  let shutting: Promise<void> | undefined;

  const close = (): Promise<void> => {
    closing ??= (async () => {
      setState('closing');
      const failures: unknown[] = [];
      const step = async (fn: () => Promise<void>): Promise<void> => {
        try {
          await fn();
        } catch (err) {
          failures.push(err);
        }
      };
      // Reverse of start, except the admin API closes last: /readyz keeps answering 503 (and
      // /metrics keeps answering) while the proxy drains.
      await step(() => rollouts.close());
      await step(() => hooks.close());
      // Queued notifications (an `aborted` just decided) go out while the proxy drains.
      await Promise.all([step(() => webhooks.close()), step(() => plane.close())]);
      if (ownsStore) await step(() => store.close());
      await step(() => admin.close());
      setState('closed');
      logger.info('closed');
      if (failures.length > 0) throw new AggregateError(failures, 'app close failed');
    })();
    return closing;
  };

  return {
    config,
    logger,
    metrics,
    store,
    feed,
    proxy,
    admin,
    rollouts,
    workers,
    replicaId,
    isReady,
    async start() {
      if (state !== 'idle') throw new Error('app already started');
      setState('starting');
      try {
        if (ownsStore) await store.start();
        await seedFromConfig();
        const table = store.current();
        if (table !== null) feed.offer(table);
        await plane.start();
        await admin.start();
        // An endpoint on the admin port would serve the admin API on the public one (issue 10).
        plane.addOwnListener(admin.address());
        rollouts.start();
        setState('running');
        logger.info(
          {
            replicaId,
            listen: plane.address(),
            workers: workerCount,
            admin: admin.address(),
            store: store.status().kind,
            revision: feed.appliedRevision(),
          },
          'switchyard started',
        );
      } catch (err) {
        await close().catch(() => undefined);
        throw err;
      }
    },
    shutdown() {
      shutting ??= (async () => {
        shuttingDown = true;
        // Clients on keep-alive connections are told to leave at once (Connection: close on
        // their next response); the listener stays open for shutdownDelay so load balancers
        // see /readyz fail before connections are refused.
        plane.beginShutdown();
        logger.info({ shutdownDelayMs: config.shutdownDelay }, 'shutdown started');
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), config.shutdownTimeout);
          timer.unref();
        });
        const graceful = (async () => {
          await new Promise((resolve) => setTimeout(resolve, config.shutdownDelay));
          await close();
          return 'done' as const;
        })();
        const outcome = await Promise.race([graceful, deadline]);
        clearTimeout(timer);
        if (outcome === 'timeout') {
          logger.warn({ shutdownTimeoutMs: config.shutdownTimeout }, 'shutdown timeout reached');
          plane.destroy();
        }
      })();
      return shutting;
    },
    close,
  };
}
