/** GET /v1/traffic: observed vs configured split over the last minute. */
import type { AdminDeps } from '../admin-deps.js';
import type { Route } from '../router.js';
import { trafficSchema } from '../schemas.js';
import { buildTrafficReport } from '../traffic-report.js';

/** Width of the sliding window the report covers. */
export const TRAFFIC_WINDOW_MS = 60_000;

/** The traffic route. */
export function trafficRoutes(deps: AdminDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/traffic',
      auth: 'token',
      summary: 'Observed share per pool over the last 60 s beside the configured weight',
      description:
        'Per pool: requests answered in the window, observed share, configured weight, the 95 % Wilson ' +
        'interval of the observed share, and `skewed` when at least 100 requests were seen and the ' +
        'configured share lies outside the interval. Shares count requests, not sticky keys: a few ' +
        'busy clients pinned to one pool can skew it legitimately.',
      response: trafficSchema,
      handle: () => {
        const counts = deps.proxy.trafficSnapshot(TRAFFIC_WINDOW_MS);
        return Promise.resolve({
          status: 200,
          json: {
            ...buildTrafficReport(counts, deps.store.current(), TRAFFIC_WINDOW_MS),
            // The window's end, by the clock that stamps `updatedAt`: a client compares the two
            // to tell whether the window still holds traffic routed by an earlier table.
            generatedAt: new Date().toISOString(),
          },
        });
      },
    },
  ];
}
