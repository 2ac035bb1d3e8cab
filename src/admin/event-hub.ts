/**
 * GET /v1/events: server-sent events for the dashboard and any other client (SPEC §11, issue 14).
 *
 * - `table` on every change, written from the store's `table` event (no polling, so it reaches
 *   clients within milliseconds of the change);
 * - `traffic` and `health` snapshots about once a second, built only while a client is connected;
 * - `replicas` when a replica joins, leaves, goes stale or applies another revision;
 * - `rollout` when the current rollout's record changes (read from the driver each tick).
 * A new client gets one of each at once, so it needs no other call to draw the page.
 *
 * Slow readers are bounded: every event is written to every client, and a client whose socket
 * buffer holds more than `maxBufferedBytes` unsent bytes is dropped (it reconnects and starts
 * from a fresh snapshot, which is all an event stream of snapshots needs). Memory per client is
 * therefore at most the cap plus one event.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fail } from '../errors.js';
import type { RoutingTable } from '../table/types.js';
import type { AdminDeps } from './admin-deps.js';
import { FleetRates, PoolRates, type PoolRate } from './pool-rates.js';
import { TRAFFIC_WINDOW_MS } from './routes/traffic.js';
import { drainView } from '../control/drain-view.js';
import { buildTrafficReport } from './traffic-report.js';

/** Tunables of the event stream; every field has a default. */
export interface EventHubOptions {
  /** Unsent bytes a client may have buffered before it is dropped (default 1 MiB). */
  readonly maxBufferedBytes?: number;
  /** Streams open at once; one more is refused with 503 TOO_MANY_EVENT_CLIENTS (default 64). */
  readonly maxClients?: number;
  /** Interval of traffic/health/replicas/rollout snapshots (default 1000 ms). */
  readonly snapshotMs?: number;
  /** Interval of heartbeat comments that keep proxies from closing a quiet stream (default 15 s). */
  readonly heartbeatMs?: number;
  /** Reconnection delay the stream asks clients to wait (`retry:`, default 2000 ms). */
  readonly retryMs?: number;
}

/** `traffic.fleet`: the rates of every replica together (Redis only). */
interface FleetRateEvent {
  /** Milliseconds the figures cover (0 until two reads of the fleet's counters). */
  readonly rateWindowMs: number;
  readonly rates: Record<string, PoolRate>;
  /** Replicas that served requests in the window (a replica's first 10 s are not counted). */
  readonly replicas: number;
}

/** The event names the stream sends. */
export type AdminEventName = 'table' | 'traffic' | 'health' | 'replicas' | 'rollout';

const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;
/** With 1 MiB each, the streams can hold at most 64 MiB between them. */
const DEFAULT_MAX_CLIENTS = 64;

interface Client {
  readonly res: ServerResponse;
}

/** Fan-out of admin events to connected SSE clients. */
export class EventHub {
  readonly #deps: AdminDeps;
  readonly #maxBufferedBytes: number;
  readonly #maxClients: number;
  readonly #snapshotMs: number;
  readonly #heartbeatMs: number;
  readonly #retryMs: number;
  readonly #clients = new Set<Client>();
  readonly #rates = new PoolRates();
  /** With Redis: the whole fleet's figures, from every replica's published counters. */
  readonly #fleet = new FleetRates();
  /** A read of the fleet's counters is under way (never awaited by a snapshot). */
  #fleetReading = false;
  /** The last fleet read failed (Redis down): no fleet figures are sent rather than old ones. */
  #fleetDown = false;
  readonly #onTable = (table: RoutingTable): void => {
    this.#broadcast('table', tableEvent(table, this.#deps));
  };
  #state: 'idle' | 'running' | 'closed' = 'idle';
  #snapshotTimer: NodeJS.Timeout | null = null;
  #heartbeatTimer: NodeJS.Timeout | null = null;
  #ticking = false;
  /** True while snapshots fail (logged once until they recover). */
  #failing = false;
  /** Last `replicas` / `rollout` payloads sent (JSON), so unchanged ones are not repeated. */
  #lastReplicas = '';
  #lastRollout = '';

  constructor(deps: AdminDeps, options: EventHubOptions = {}) {
    this.#deps = deps;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.#maxClients = options.maxClients ?? DEFAULT_MAX_CLIENTS;
    this.#snapshotMs = options.snapshotMs ?? 1000;
    this.#heartbeatMs = options.heartbeatMs ?? 15_000;
    this.#retryMs = options.retryMs ?? 2000;
  }

  /** Follows the store's table changes. Throws if called twice. */
  start(): void {
    if (this.#state !== 'idle') throw new Error(`EventHub.start() called while ${this.#state}`);
    this.#state = 'running';
    this.#deps.store.on('table', this.#onTable);
  }

  /** Connected clients. */
  clientCount(): number {
    return this.#clients.size;
  }

  /**
   * Turns `res` into an event stream: headers, `retry:`, one event of each kind, then whatever
   * happens until the client leaves or the hub closes.
   */
  attach(req: IncomingMessage, res: ServerResponse): void {
    if (this.#state === 'closed') throw fail('CLOSED', 'the admin API is shutting down');
    if (this.#state !== 'running') throw new Error(`EventHub.attach() called while ${this.#state}`);
    // Every stream may buffer up to maxBufferedBytes: their number is bounded too.
    if (this.#clients.size >= this.#maxClients) {
      throw fail(
        'TOO_MANY_EVENT_CLIENTS',
        `${this.#clients.size} event streams are open, the most this admin API serves; close one or retry later`,
      );
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // Reverse proxies (nginx) buffer responses unless told not to; events must flow at once.
      'x-accel-buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    const client: Client = { res };
    this.#clients.add(client);
    this.#deps.metrics.adminEventClients.set(this.#clients.size);
    const leave = (): void => {
      if (!this.#clients.delete(client)) return;
      this.#deps.metrics.adminEventClients.set(this.#clients.size);
      if (this.#clients.size === 0) this.#idle();
    };
    res.on('close', leave);
    req.on('error', leave);
    this.#write(client, `retry: ${this.#retryMs}\n\n`);
    const table = this.#deps.store.current();
    if (table !== null) this.#write(client, frame('table', tableEvent(table, this.#deps)));
    if (this.#clients.size === 1) this.#busy();
    // The first snapshots go to everyone, which is harmless (they are snapshots) and keeps one
    // code path; `replicas` and `rollout` are re-sent so the newcomer has them.
    this.#lastReplicas = '';
    this.#lastRollout = '';
    this.#tick();
  }

  /** Ends every stream and stops the timers. Idempotent. */
  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#deps.store.off('table', this.#onTable);
    this.#idle();
    for (const client of [...this.#clients]) {
      // A reader that keeps up gets a clean end; one that does not would never flush it.
      if (client.res.writableLength > 0) client.res.destroy();
      else client.res.end();
    }
    this.#clients.clear();
    this.#deps.metrics.adminEventClients.set(0);
  }

  /** The first client arrived: start the snapshot and heartbeat timers. */
  #busy(): void {
    this.#rates.clear();
    this.#fleet.clear();
    this.#snapshotTimer = setInterval(() => this.#tick(), this.#snapshotMs);
    this.#snapshotTimer.unref();
    this.#heartbeatTimer = setInterval(() => {
      for (const client of this.#clients) this.#write(client, ': heartbeat\n\n');
    }, this.#heartbeatMs);
    this.#heartbeatTimer.unref();
  }

  /** Nobody is listening: stop sampling. */
  #idle(): void {
    if (this.#snapshotTimer !== null) clearInterval(this.#snapshotTimer);
    if (this.#heartbeatTimer !== null) clearInterval(this.#heartbeatTimer);
    this.#snapshotTimer = null;
    this.#heartbeatTimer = null;
    this.#rates.clear();
    this.#fleet.clear();
  }

  #tick(): void {
    if (this.#ticking || this.#clients.size === 0) return;
    this.#ticking = true;
    this.#snapshot()
      .then(
        () => {
          if (this.#failing) this.#deps.logger.info('event snapshots recovered');
          this.#failing = false;
        },
        (err: unknown) => {
          // Once per outage (Redis down fails every second), not once a second.
          if (!this.#failing) this.#deps.logger.warn({ err }, 'event snapshot failed');
          this.#failing = true;
        },
      )
      .finally(() => {
        this.#ticking = false;
      });
  }

  async #snapshot(): Promise<void> {
    const { proxy, store, rollouts } = this.#deps;
    const table = store.current();
    const now = Date.now();
    const counts = proxy.poolCounts?.();
    if (counts !== undefined) this.#rates.sample(counts, now);
    const rates = this.#rates.report();
    this.#sampleFleet(now);
    const traffic = buildTrafficReport(
      proxy.trafficSnapshot(TRAFFIC_WINDOW_MS),
      table,
      TRAFFIC_WINDOW_MS,
    );
    this.#broadcast('traffic', {
      ...traffic,
      rateWindowMs: rates.windowMs,
      rates: rates.pools,
      fleet: this.#fleetReport(),
      generatedAt: new Date(now).toISOString(),
    });

    const rollout = rollouts?.current() ?? null;
    const rolloutJson = JSON.stringify(rollout);
    if (rolloutJson !== this.#lastRollout) {
      this.#lastRollout = rolloutJson;
      this.#broadcastRaw('rollout', `{"rollout":${rolloutJson}}`);
    }

    // The store calls below may fail (Redis down): traffic and rollout above are sent anyway.
    const reports = await store.drainReports();
    const pools: Record<string, unknown> = {};
    for (const name of Object.keys(table?.pools ?? {})) {
      const weight = table?.weights[name] ?? 0;
      let drain = null;
      if (weight === 0) {
        const view = drainView(name, table, reports);
        let inFlight = 0;
        let longLived = 0;
        for (const r of view.replicas) {
          if (!r.live) continue;
          inFlight += r.inFlight ?? 0;
          longLived += r.longLived ?? 0;
        }
        drain = { drained: view.drained, inFlight, longLived };
      }
      pools[name] = {
        ...proxy.poolHealth(name),
        endpoints: proxy.endpointHealth?.(name) ?? [],
        drain,
      };
    }
    this.#broadcast('health', { pools, store: store.status() });

    const replicas = await store.replicas();
    // heartbeatAt moves every second; a change is a replica joining, leaving, going stale or
    // applying another revision.
    const key = JSON.stringify(replicas.map((r) => [r.id, r.revision, r.live]));
    if (key !== this.#lastReplicas) {
      this.#lastReplicas = key;
      this.#broadcast('replicas', { replicas });
    }
  }

  /**
   * Starts a read of every replica's counters (Redis only) that feeds the fleet figures when it
   * lands: a slow or unreachable Redis delays no event.
   */
  #sampleFleet(atMs: number): void {
    const rollouts = this.#deps.rollouts;
    if (rollouts === undefined || this.#fleetReading) return;
    this.#fleetReading = true;
    rollouts
      .fleetCounts()
      .then(
        (byReplica) => {
          this.#fleetDown = false;
          if (byReplica !== null && this.#snapshotTimer !== null) {
            this.#fleet.sample(byReplica, atMs);
          }
        },
        () => {
          this.#fleetDown = true;
          this.#fleet.clear();
        },
      )
      .finally(() => {
        this.#fleetReading = false;
      });
  }

  /** The fleet's figures; null with one replica (memory store) or with Redis unreachable. */
  #fleetReport(): FleetRateEvent | null {
    const { rollouts, store } = this.#deps;
    if (rollouts === undefined || store.status().kind !== 'redis' || this.#fleetDown) return null;
    const r = this.#fleet.report();
    return { rateWindowMs: r.windowMs, rates: r.pools, replicas: r.replicas };
  }

  #broadcast(event: AdminEventName, data: unknown): void {
    this.#broadcastRaw(event, JSON.stringify(data));
  }

  #broadcastRaw(event: AdminEventName, json: string): void {
    if (this.#clients.size === 0) return;
    const text = `event: ${event}\ndata: ${json}\n\n`;
    for (const client of this.#clients) this.#write(client, text);
  }

  /** Writes to one client, or drops it when it has fallen too far behind. */
  #write(client: Client, text: string): void {
    const { res } = client;
    if (res.destroyed || res.writableEnded) return;
    if (res.writableLength > this.#maxBufferedBytes) {
      this.#deps.metrics.adminEventClientsDropped.inc();
      this.#deps.logger.warn(
        { bufferedBytes: res.writableLength, maxBufferedBytes: this.#maxBufferedBytes },
        'event client too slow: dropped',
      );
      res.destroy();
      return;
    }
    res.write(text);
  }
}

/** The `table` event: the table and the revision this replica routes by. */
function tableEvent(table: RoutingTable, deps: AdminDeps): unknown {
  return { table, appliedRevision: deps.proxy.appliedRevision() };
}

function frame(event: AdminEventName, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
