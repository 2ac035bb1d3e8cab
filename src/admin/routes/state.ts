/** GET /v1/state: the table in the store, this replica's applied revision, store status, build. */
import type { AdminDeps } from '../admin-deps.js';
import type { Route } from '../router.js';
import { stateSchema } from '../schemas.js';

/** The state route. */
export function stateRoutes(deps: AdminDeps, buildSha: string): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/state',
      auth: 'token',
      summary: "The current table and this replica's applied revision",
      response: stateSchema,
      handle: () =>
        Promise.resolve({
          status: 200,
          json: {
            table: deps.store.current(),
            appliedRevision: deps.proxy.appliedRevision(),
            store: deps.store.status(),
            build: buildSha,
            ...(deps.replicaId === undefined ? {} : { replica: deps.replicaId }),
          },
        }),
    },
  ];
}
