/**
 * GET /v1/pools/{name}/drain: the "drained" signal (SPEC §10), the moment the old colour of a
 * release can be scaled down. Every replica reports, with its heartbeat, per pool the weight in
 * the table it has applied and the requests and long-lived connections still open to the pool;
 * this route joins those reports.
 */
import { drainView } from '../../control/drain-view.js';
import type { AdminDeps } from '../admin-deps.js';
import type { Route } from '../router.js';
import { drainSchema } from '../schemas.js';

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
