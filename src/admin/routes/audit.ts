/** GET /v1/history and GET /v1/replicas. */
import { fail } from '../../errors.js';
import type { AdminDeps } from '../admin-deps.js';
import type { Route } from '../router.js';
import { historySchema, replicasSchema } from '../schemas.js';

const DEFAULT_HISTORY_LIMIT = 50;
const MAX_HISTORY_LIMIT = 1000;

/** The audit and replica routes. */
export function auditRoutes(deps: AdminDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/history',
      auth: 'token',
      summary: 'The audit log, newest first, rejected commands included',
      query: [
        {
          name: 'limit',
          description: `Entries to return (default ${DEFAULT_HISTORY_LIMIT})`,
          schema: { type: 'integer', minimum: 1, maximum: MAX_HISTORY_LIMIT },
        },
      ],
      // 503: read from the control store, which may be unreachable (Redis down).
      errors: [400, 503],
      response: historySchema,
      handle: async ({ query }) => {
        const limit = parseLimit(query.get('limit'));
        const entries = await deps.store.history(limit);
        // `before` is the store's private rollback record (a whole table): not part of the audit view.
        const history = entries.map((entry) => {
          const view: Record<string, unknown> = { ...entry };
          delete view.before;
          return view;
        });
        return { status: 200, json: { history } };
      },
    },
    {
      method: 'GET',
      path: '/v1/replicas',
      auth: 'token',
      summary: 'Replicas following this namespace, with their applied revision and liveness',
      errors: [503],
      response: replicasSchema,
      handle: async () => ({ status: 200, json: { replicas: await deps.store.replicas() } }),
    },
  ];
}

function parseLimit(raw: string | null): number {
  if (raw === null) return DEFAULT_HISTORY_LIMIT;
  if (!/^\d{1,7}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_HISTORY_LIMIT) {
    throw fail('VALIDATION_FAILED', `limit: must be an integer 1..${MAX_HISTORY_LIMIT}`);
  }
  return Number(raw);
}
