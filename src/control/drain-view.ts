/**
 * The "drained" signal of a pool (SPEC §10), joined from the replicas' heartbeat reports: used by
 * GET /v1/pools/{name}/drain and by a promoted rollout watching its old baseline. Pure.
 */
import { fail } from '../errors.js';
import type { RoutingTable } from '../table/types.js';
import type { ReplicaDrainReport } from './control-store.js';

/** One replica's line of the answer; null counts mean "sent no report". */
export interface ReplicaDrainView {
  id: string;
  live: boolean;
  revision: number;
  weight: number | null;
  inFlight: number | null;
  longLived: number | null;
}

/** The answer of GET /v1/pools/{name}/drain. */
export interface DrainView {
  pool: string;
  weight: number;
  drained: boolean;
  replicas: ReplicaDrainView[];
}

/** Joins the replicas' reports for `pool`; throws UNKNOWN_POOL when no one knows it. */
export function drainView(
  pool: string,
  table: RoutingTable | null,
  reports: readonly ReplicaDrainReport[],
): DrainView {
  const inTable = table !== null && Object.hasOwn(table.weights, pool);
  const known = inTable || reports.some((r) => r.pools !== null && Object.hasOwn(r.pools, pool));
  if (!known)
    throw fail(
      'UNKNOWN_POOL',
      `pool: unknown pool "${pool.slice(0, 64)}" (not in the table, and no replica has had it in the last hour)`,
    );
  const weight = inTable ? (table.weights[pool] ?? 0) : 0;
  let liveReplicas = 0;
  let busy = false;
  const replicas = reports.map((r): ReplicaDrainView => {
    const load =
      r.pools === null
        ? null
        : Object.hasOwn(r.pools, pool)
          ? r.pools[pool]
          : { weight: 0, inFlight: 0, longLived: 0 };
    if (r.live) {
      liveReplicas++;
      // A live replica without a report (an older version) may still send traffic.
      if (load == null || load.weight > 0 || load.inFlight > 0 || load.longLived > 0) busy = true;
    }
    return {
      id: r.id,
      live: r.live,
      revision: r.revision,
      weight: load?.weight ?? null,
      inFlight: load?.inFlight ?? null,
      longLived: load?.longLived ?? null,
    };
  });
  // No live replica at all means no fresh report, not "nothing flows": stay false.
  return { pool, weight, drained: weight === 0 && liveReplicas > 0 && !busy, replicas };
}
