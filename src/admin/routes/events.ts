/** GET /v1/events: the server-sent event stream (see event-hub.ts). */
import type { EventHub } from '../event-hub.js';
import type { Route } from '../router.js';

/** The event-stream route. */
export function eventRoutes(hub: EventHub): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/events',
      auth: 'token',
      summary: 'Server-sent events: table changes, traffic and health snapshots, replicas, rollout',
      description:
        'A `text/event-stream` that stays open. Events (each `data:` is one JSON object): `table` ' +
        '(`{table, appliedRevision}`, on every change), `traffic` (about once a second: the ' +
        '/v1/traffic report plus `rates` per pool over the last ~10 s: `requestsPerSecond`, ' +
        '`errorRatio`, `p99Ms`), `health` (about once a second: per pool healthy/total endpoints, ' +
        'each endpoint, and for pools at weight 0 the drain state), `replicas` (when one joins, ' +
        'leaves, goes stale or applies another revision) and `rollout` (`{rollout}` as ' +
        '/v1/rollouts/current, or null, when it changes). A new client gets one of each at once. ' +
        'Heartbeat comments every 15 s; `retry: 2000`. A client that reads too slowly (over 1 MiB ' +
        'unsent) is disconnected and should reconnect. At most 64 streams are open at once; one more ' +
        'is refused with 503 TOO_MANY_EVENT_CLIENTS. Browsers: read it with fetch() and send the ' +
        'token in `Authorization` (EventSource cannot send headers; never put the token in a URL).',
      response: { contentType: 'text/event-stream' },
      handle: (ctx) => {
        if (ctx.req.method === 'HEAD') {
          return Promise.resolve({
            status: 200,
            body: Buffer.alloc(0),
            headers: { 'content-type': 'text/event-stream; charset=utf-8' },
          });
        }
        hub.attach(ctx.req, ctx.res);
        return Promise.resolve({ status: 200, streamed: true });
      },
    },
  ];
}
