/**
 * `/metrics` of a worker group (SPEC §13): the primary's registry answers for the whole group.
 * At install, every metric of the primary's registry is replaced by a relay whose value is the
 * primary's own series plus every serving worker's, merged by prom-client's cluster aggregation
 * (`AggregatorRegistry.aggregate()`, each metric with its own aggregator: counters and
 * histograms sum, `nodejs_version_info` takes the first...). Data-plane series come from the
 * workers (the primary's proxy never serves), control-plane ones from the primary (workers run
 * none), so the sum is right for both. Exceptions: what both count the same thing for
 * (configured weights, healthy endpoints: the primary's alone) and the routing revision (the
 * lowest of the workers').
 *
 * prom-client's own `clusterMetrics()` is not used: it answers from a static registry list in
 * every worker (process-wide state) over listeners it installs itself, and aggregates the
 * workers only, without the primary's control-plane metrics. The IPC here is ours (messages.ts).
 */
import type { Worker } from 'node:cluster';
import {
  AggregatorRegistry,
  type Histogram,
  type MetricObjectWithValues,
  type MetricValue,
  type Registry,
} from 'prom-client';
import type { PrimaryMessage } from './messages.js';

/** Series the primary alone reports for the group. */
const PRIMARY_ONLY = new Set([
  'switchyard_pool_weight_basis_points',
  'switchyard_healthy_endpoints',
  'switchyard_workers_serving',
  'switchyard_worker_restarts_total',
  'switchyard_worker_requests_total',
  // prom-client's aggregator omits it; the primary's start is the group's.
  'process_start_time_seconds',
]);
/** Series the workers alone report, with the aggregator that merges them. */
const WORKERS_ONLY: ReadonlyMap<string, string> = new Map([['switchyard_routing_revision', 'min']]);
/** A worker that has not answered a metrics request in this long is left out of the scrape. */
const WORKER_ANSWER_MS = 2_000;
/** One collection serves every relay of one scrape (they are read concurrently). */
const COLLECTION_REUSE_MS = 50;

type MetricJson = MetricObjectWithValues<MetricValue<string>>;

/** Something the registry can read: what `Registry#registerMetric` needs of a metric. */
interface RegisteredMetric {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly aggregator: string;
  get(): Promise<MetricJson> | MetricJson;
  reset(): void;
}

/** Relays the primary's registry to the whole group's figures. */
export class GroupMetrics {
  readonly #registry: Registry;
  readonly #workers: () => Worker[];
  readonly #pending = new Map<number, (metrics: MetricJson[]) => void>();
  #nextId = 1;
  #originals: RegisteredMetric[] = [];
  #collection: { at: number; registry: Promise<Registry> } | null = null;

  constructor(registry: Registry, workers: () => Worker[]) {
    this.#registry = registry;
    this.#workers = workers;
  }

  /** Replaces every metric of the registry (but PRIMARY_ONLY) by a group-wide relay. */
  install(): void {
    for (const metric of this.#registry.getMetricsAsArray() as unknown as RegisteredMetric[]) {
      if (PRIMARY_ONLY.has(metric.name)) continue;
      this.#originals.push(metric);
      this.#registry.removeSingleMetric(metric.name);
      const relay: RegisteredMetric = {
        name: metric.name,
        help: metric.help,
        type: metric.type,
        aggregator: metric.aggregator,
        get: async () => {
          const merged = (await this.#collect()).getSingleMetric(metric.name) as
            RegisteredMetric | undefined;
          if (merged !== undefined) return merged.get();
          return {
            name: metric.name,
            help: metric.help,
            type: metric.type,
            aggregator: metric.aggregator,
            values: [],
          } as unknown as MetricJson;
        },
        reset() {},
      };
      // Not a prom-client class: the registry only calls get() and reset() (as for the
      // duration histogram in metrics.ts).
      this.#registry.registerMetric(relay as unknown as Histogram);
    }
  }

  /** A worker's answer to a metrics request. */
  answer(id: number, metrics: unknown): void {
    const resolve = this.#pending.get(id);
    if (resolve === undefined) return;
    this.#pending.delete(id);
    resolve(Array.isArray(metrics) ? (metrics as MetricJson[]) : []);
  }

  #collect(): Promise<Registry> {
    const now = Date.now();
    if (this.#collection !== null && now - this.#collection.at < COLLECTION_REUSE_MS)
      return this.#collection.registry;
    const registry = this.#gather();
    this.#collection = { at: now, registry };
    return registry;
  }

  async #gather(): Promise<Registry> {
    const own = await Promise.all(
      this.#originals.filter((m) => !WORKERS_ONLY.has(m.name)).map(async (m) => await m.get()),
    );
    const workers = await Promise.all(this.#workers().map((w) => this.#ask(w)));
    const fromWorkers = workers.map((list) =>
      list.map((m) => {
        const aggregator = WORKERS_ONLY.get(m.name);
        return aggregator === undefined ? m : { ...m, aggregator };
      }),
    );
    // A series only some processes have is still merged by name; the first decides the
    // aggregator, so the primary (with the definitions) goes first.
    return AggregatorRegistry.aggregate([own, ...fromWorkers] as never);
  }

  #ask(worker: Worker): Promise<MetricJson[]> {
    const id = this.#nextId++;
    return new Promise<MetricJson[]>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve([]);
      }, WORKER_ANSWER_MS);
      timer.unref();
      this.#pending.set(id, (metrics) => {
        clearTimeout(timer);
        resolve(metrics);
      });
      const msg: PrimaryMessage = { sy: 'metrics', id };
      if (!worker.isConnected()) {
        this.answer(id, []);
        return;
      }
      worker.send(msg, (err: Error | null) => {
        if (err !== null) this.answer(id, []);
      });
    });
  }
}
