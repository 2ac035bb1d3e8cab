/**
 * GET /v1/pools/{name}/drain: the "drained" signal (SPEC §10), the moment the old colour of a
 * release can be scaled down. Every replica reports, with its heartbeat, per pool the weight in
 * the table it has applied and the requests and long-lived connections still open to the pool;
 * this route joins those reports.
 */
import { fail } from '../../errors.js';
import type { ReplicaDrainReport } from '../../control/control-store.js';
import type { RoutingTable } from '../../table/types.js';
import type { AdminDeps } from '../admin-deps.js';
import type { Route } from '../router.js';
import { drainSchema } from '../schemas.js';

/** One replica's line of the answer; null counts mean "sent no report". */
interface ReplicaDrainView {
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

/** The drain route. */
export function drainRoutes(deps: AdminDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/pools/{name}/drain',
      auth: 'token',
      summary: 'Whether anything still flows to a pool on any live replica',
      description:
        '`drained` is true when the pool has weight 0 in the table (or left it) and every live ' +
        'replica has applied such a table and reports no request in flight and no long-lived ' +
        'connection (WebSocket, tunnel, SSE stream) to the pool. Replicas report with their ' +
        'heartbeat (every second); one without a heartbeat for 5 s is not live and does not ' +
        'count. A pool that left the table stays answerable for an hour on the replicas that ' +
        'had it; a name no replica knows is 404 UNKNOWN_POOL.',
      errors: [404, 503],
      response: drainSchema,
      handle: async (ctx) => ({
        status: 200,
        json: drainView(
          ctx.params.name as string,
          deps.store.current(),
          await deps.store.drainReports(),
        ),
      }),
    },
  ];
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
