/**
 * A proxy worker process (SPEC §13): serves proxy traffic only, on the port it shares with the
 * other workers of its group. Everything else (control store, admin API, rollouts) is the
 * primary's: the configuration and every table arrive over IPC, and counts flow back in reports.
 */
import type { Worker } from 'node:cluster';
import { ProxyServer } from '../data/proxy-server.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { createMetrics, type Metrics } from '../observability/metrics.js';
import type { LatencyCounts } from '../rollout/latency-histogram.js';
import {
  isPrimaryMessage,
  REPORT_INTERVAL_MS,
  type PrimaryMessage,
  type WorkerMessage,
  type WirePoolOutcome,
} from './messages.js';

/** How a worker ended: `closed` (drained, exit 0) or `destroyed` (aborted, exit 1). */
export type WorkerEnd = 'closed' | 'destroyed' | 'orphaned';

/**
 * Runs this process as worker `worker` of a group until the primary closes it (or dies).
 * Resolves with how it ended; the caller (main.ts) exits.
 */
export function runProxyWorker(worker: Worker): Promise<WorkerEnd> {
  return new Promise<WorkerEnd>((resolve) => {
    let proxy: ProxyServer | null = null;
    let log: Logger | null = null;
    let report: NodeJS.Timeout | undefined;
    let workerMetrics: Metrics | null = null;
    const send = (msg: WorkerMessage): void => {
      if (worker.isConnected()) worker.send(msg);
    };
    let ended = false;
    const finish = (end: WorkerEnd, closing: Promise<void>): void => {
      if (ended) return;
      ended = true;
      clearInterval(report);
      closing
        .catch((err: unknown) => log?.error({ err }, 'worker close failed'))
        .finally(() => {
          send({ sy: 'closed' });
          log?.flush();
          resolve(end);
        });
    };
    const onMessage = (msg: unknown): void => {
      if (!isPrimaryMessage(msg)) return;
      handle(msg);
    };
    const handle = (msg: PrimaryMessage): void => {
      switch (msg.sy) {
        case 'start': {
          const { config } = msg;
          log = createLogger({ level: config.logLevel }).child({ worker: msg.slot });
          const metrics = createMetrics();
          proxy = new ProxyServer(config, { logger: log, metrics, viaToken: msg.viaToken });
          const p = proxy;
          // Route by the table before listening: a worker never answers 503 for want of one.
          if (msg.table !== null) p.applyTable(msg.table);
          for (const address of msg.ownListeners) p.addOwnListener(address);
          if (msg.shuttingDown) p.beginShutdown();
          workerMetrics = metrics;
          p.start().then(
            () => {
              send({ sy: 'ready', revision: p.appliedRevision(), address: p.address() });
              report = setInterval(() => send(reportOf(p)), REPORT_INTERVAL_MS);
              report.unref();
            },
            (err: unknown) => {
              log?.error({ err }, 'worker cannot listen');
              finish('destroyed', Promise.resolve());
            },
          );
          return;
        }
        case 'own-listener':
          proxy?.addOwnListener(msg.address);
          return;
        case 'table':
          if (proxy === null) return;
          proxy.applyTable(msg.table);
          send({ sy: 'applied', revision: proxy.appliedRevision() });
          return;
        case 'begin-shutdown':
          proxy?.beginShutdown();
          return;
        case 'close':
          finish('closed', proxy?.close() ?? Promise.resolve());
          return;
        case 'destroy':
          proxy?.destroy();
          finish('destroyed', Promise.resolve());
          return;
        case 'metrics': {
          const id = msg.id;
          void (workerMetrics?.registry.getMetricsAsJSON() ?? Promise.resolve([])).then(
            (metrics) => send({ sy: 'metrics', id, metrics }),
            (err: unknown) => {
              log?.warn({ err }, 'metrics collection failed');
              send({ sy: 'metrics', id, metrics: [] });
            },
          );
          return;
        }
      }
    };
    worker.process.on('message', onMessage);
    send({ sy: 'hello' });
    // The primary died (or closed the channel): drain what is in flight and leave, rather than
    // serve on with a table nobody updates.
    worker.on('disconnect', () => {
      log?.warn('primary gone: closing');
      finish('orphaned', proxy?.close() ?? Promise.resolve());
    });
  });
}

/** The worker's counts for its primary (about 4 times a second; a few KiB). */
function reportOf(proxy: ProxyServer): WorkerMessage {
  const outcomes: Record<string, WirePoolOutcome> = {};
  for (const [pool, o] of proxy.poolCounts()) {
    const latency: LatencyCounts = o.latency.toJSON();
    outcomes[pool] = { requests: o.requests, errors: o.errors, latency };
  }
  return {
    sy: 'report',
    routed: proxy.trafficTotals(),
    outcomes,
    drain: proxy.drainReport(),
    inFlight: proxy.inFlight(),
  };
}
