/**
 * The IPC messages between the primary and its proxy workers (SPEC §13), over Node's cluster
 * channel (JSON serialisation). Every message carries `sy` so that messages of Node itself or of
 * a library on the same channel are never mistaken for ours.
 */
import type { Config, ListenAddress } from '../config/schema.js';
import type { PoolLoad } from '../data/pool-loads.js';
import type { LatencyCounts } from '../rollout/latency-histogram.js';
import type { RoutingTable } from '../table/types.js';

/** One pool's cumulative outcomes in a worker (data/pool-outcomes.ts), as sent. */
export interface WirePoolOutcome {
  readonly requests: number;
  readonly errors: number;
  /** LatencyHistogram#toJSON(): sparse bucket counts. */
  readonly latency: LatencyCounts;
}

/** Primary → worker. */
export type PrimaryMessage =
  /**
   * The first message: the configuration (loaded once, by the primary), the table to route by
   * (null: none yet), the shared Via token and the group's other listeners (loop detection).
   */
  | {
      readonly sy: 'start';
      /** The worker's slot, 1..N, kept across restarts (logs and metrics call it `worker`). */
      readonly slot: number;
      readonly config: Config;
      readonly table: RoutingTable | null;
      readonly viaToken: string;
      readonly ownListeners: readonly ListenAddress[];
      readonly shuttingDown: boolean;
    }
  /** Another listener of this replica (the admin API, once bound). */
  | { readonly sy: 'own-listener'; readonly address: ListenAddress }
  /** Route by this table from now on; answer `applied`. */
  | { readonly sy: 'table'; readonly table: RoutingTable }
  /** Shutdown began: every response carries Connection: close (SPEC §4). */
  | { readonly sy: 'begin-shutdown' }
  /** Stop accepting, drain in-flight work, close, then exit 0. */
  | { readonly sy: 'close' }
  /** Abort every connection now and exit (the shutdown deadline passed). */
  | { readonly sy: 'destroy' }
  /** Answer `metrics` with this id: the worker's registry as getMetricsAsJSON(). */
  | { readonly sy: 'metrics'; readonly id: number };

/** Worker → primary. */
export type WorkerMessage =
  /**
   * Listening for messages: the primary answers `start`. (Node's `online` event comes before
   * the worker's modules have loaded, and a message sent then would be lost.)
   */
  | { readonly sy: 'hello' }
  /** Listening on the shared port, with the table it routes by (revision 0: none yet). */
  | { readonly sy: 'ready'; readonly revision: number; readonly address: ListenAddress }
  /** Routes by `revision` from now on. */
  | { readonly sy: 'applied'; readonly revision: number }
  /**
   * Sent every REPORT_INTERVAL_MS: requests routed per pool since the worker started (the
   * primary feeds the differences to its traffic window), cumulative outcomes per pool (rollout judge), the drain report (SPEC §10).
   */
  | {
      readonly sy: 'report';
      readonly routed: Record<string, number>;
      readonly outcomes: Record<string, WirePoolOutcome>;
      readonly drain: Record<string, PoolLoad>;
      readonly inFlight: number;
    }
  | { readonly sy: 'metrics'; readonly id: number; readonly metrics: unknown }
  /** The worker's proxy closed; it exits next. */
  | { readonly sy: 'closed' };

/** How often workers report their counts to the primary. */
export const REPORT_INTERVAL_MS = 250;

const PRIMARY_KINDS = new Set([
  'start',
  'own-listener',
  'table',
  'begin-shutdown',
  'close',
  'destroy',
  'metrics',
]);
const WORKER_KINDS = new Set(['hello', 'ready', 'applied', 'report', 'metrics', 'closed']);

/** True when `msg` is one of ours from the primary. */
export function isPrimaryMessage(msg: unknown): msg is PrimaryMessage {
  return (
    typeof msg === 'object' &&
    msg !== null &&
    PRIMARY_KINDS.has((msg as { sy?: unknown }).sy as string)
  );
}

/** True when `msg` is one of ours from a worker. */
export function isWorkerMessage(msg: unknown): msg is WorkerMessage {
  return (
    typeof msg === 'object' &&
    msg !== null &&
    WORKER_KINDS.has((msg as { sy?: unknown }).sy as string)
  );
}
