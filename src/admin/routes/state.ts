/**
 * GET /v1/state: the table in the store, this replica's applied revision, store status (with the
 * namespace when it is Redis: a command written to a namespace no replica follows is never
 * applied, so operators need to see which one this is), build, and the healthy endpoints of every
 * pool as this replica sees them.
 */
import type { AdminDeps } from '../admin-deps.js';
import type { Route } from '../router.js';
import { stateSchema } from '../schemas.js';

/** The state route. */
export function stateRoutes(deps: AdminDeps, buildSha: string, namespace?: string): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/state',
      auth: 'token',
      summary: "The current table and this replica's applied revision",
      response: stateSchema,
      handle: () => {
        const table = deps.store.current();
        const store = deps.store.status();
        const health: Record<
          string,
          { healthy: number; total: number; endpoints?: { url: string; healthy: boolean }[] }
        > = {};
        for (const pool of Object.keys(table?.pools ?? {})) {
          const endpoints = deps.proxy.endpointHealth?.(pool);
          health[pool] = {
            ...deps.proxy.poolHealth(pool),
            ...(endpoints === undefined ? {} : { endpoints }),
          };
        }
        return Promise.resolve({
          status: 200,
          json: {
            table,
            appliedRevision: deps.proxy.appliedRevision(),
            store:
              store.kind === 'redis' && namespace !== undefined ? { ...store, namespace } : store,
            build: buildSha,
            health,
            ...(deps.replicaId === undefined ? {} : { replica: deps.replicaId }),
          },
        });
      },
    },
  ];
}
