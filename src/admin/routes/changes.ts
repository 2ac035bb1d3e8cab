/**
 * The routes that change the table. Each builds the raw command `{op, ...body}` and hands it to
 * `store.change`, the one validator for every entry point (admin, CLI, Redis), which also records
 * rejections in the audit log. Every change is answered with the table after it and `changed`
 * (false when the command changed nothing: no new revision). The caller may name itself in
 * `x-switchyard-actor`; the audit log records it as `<source>:<name>`.
 */
import { z } from 'zod';
import { namedActor } from '../../control/audit-entry.js';
import type { Logger } from '../../observability/logger.js';
import { fail, isSwitchyardError, type SwitchyardError } from '../../errors.js';
import { TOTAL_BASIS_POINTS } from '../../table/types.js';
import { actorProblem } from '../../table/validate.js';
import type { AdminDeps } from '../admin-deps.js';
import { readJsonBody } from '../body.js';
import { ownListenerOf, type OwnListener } from '../own-listeners.js';
import type { Route, RouteContext, RouteReply } from '../router.js';
import {
  canaryBody,
  mirrorBody,
  mirrorOffBody,
  removePoolBody,
  rollbackBody,
  routingTableSchema,
  rulesBody,
  setPoolBody,
  switchBody,
  weightsBody,
} from '../schemas.js';
import { parseWaitQuery, waitForReplicas } from '../wait-for-replicas.js';

const WAIT_QUERY = [
  {
    name: 'wait',
    description:
      'all: answer once every live replica has applied the new revision (else 504 REPLICAS_LAGGING)',
    schema: { type: 'string', enum: ['all'] },
  },
  {
    name: 'timeout',
    description: 'With wait=all: how long to wait, e.g. 5s or 500ms (default 10s)',
    schema: { type: 'string', examples: ['5s'] },
  },
] as const;

/** Status codes every change may answer besides 200. */
const CHANGE_ERRORS = [400, 404, 409, 413, 415, 503, 504] as const;

/** How long a weight change waits for the rollout state from the store before its guard. */
const GUARD_READ_MS = 300;

/** Request header naming the person or tool behind a change (issue 11). */
export const ACTOR_HEADER = 'x-switchyard-actor';

/** The answer to a change: the table after it, and whether it made a new revision. */
const changeResultSchema = routingTableSchema.extend({
  changed: z
    .boolean()
    .describe('false when the command changed nothing: no new revision, nothing recorded'),
});

/**
 * The routes that change the table. `ownListeners` gives this replica's listeners (proxy and
 * admin), which no pool endpoint may be.
 */
export function changeRoutes(
  deps: AdminDeps,
  log: Logger,
  ownListeners: () => readonly OwnListener[],
): Route[] {
  const change = (ctx: RouteContext, command: Record<string, unknown>): Promise<RouteReply> =>
    applyChange(deps, log, ctx, command);
  /**
   * Refuses a command in a replica-local guard: logged, and recorded in the audit log like every
   * other refusal (the store also counts it). Returns the error to throw.
   */
  const refuse = async (
    ctx: RouteContext,
    command: Record<string, unknown>,
    err: SwitchyardError,
  ): Promise<SwitchyardError> => {
    const actor = actorOf(ctx);
    log.warn({ code: err.code, message: err.message, actor, op: command.op }, 'command rejected');
    await deps.store.recordRejection(command, { actor, source: ctx.source }, err);
    return err;
  };
  /** SPEC §9: while a rollout is active it owns the weights; manual moves are refused. */
  const guardRollout = async (
    ctx: RouteContext,
    command: Record<string, unknown>,
  ): Promise<void> => {
    // With Redis another replica may have started one: read the store, not just the last read
    // (bounded: a hanging store must not delay the change's own fast 503).
    await deps.rollouts?.refresh({ maxWaitMs: GUARD_READ_MS });
    const r = deps.rollouts?.current();
    if (r === null || r === undefined || deps.rollouts?.ownsWeights() !== true) return;
    throw await refuse(
      ctx,
      command,
      fail(
        'ROLLOUT_IN_PROGRESS',
        `rollout ${r.id} of pool "${r.pool}" is ${r.phase} and owns the weights; promote or abort it first (POST /v1/rollouts/current/abort, or POST /v1/rollback)`,
      ),
    );
  };
  return [
    {
      method: 'PUT',
      path: '/v1/pools/{name}',
      auth: 'token',
      summary: 'Create or update a pool (a pool with weight > 0 cannot change its version)',
      description:
        "An endpoint that is one of this replica's own listeners (proxy or admin port) is refused with 400 VALIDATION_FAILED: it would loop.",
      body: setPoolBody,
      query: WAIT_QUERY,
      errors: CHANGE_ERRORS,
      response: changeResultSchema,
      handle: async (ctx) => {
        const command: Record<string, unknown> = {
          ...(await readObject(ctx)),
          op: 'set-pool',
          pool: ctx.params.name,
        };
        // A bad query is refused before anything is recorded, as for every other change.
        parseWaitQuery(ctx.query);
        const loop = selfEndpoint(command.endpoints, ownListeners());
        if (loop !== null) throw await refuse(ctx, command, loop);
        return change(ctx, command);
      },
    },
    {
      method: 'DELETE',
      path: '/v1/pools/{name}',
      auth: 'token',
      summary: 'Remove a pool that has weight 0',
      body: removePoolBody,
      query: WAIT_QUERY,
      errors: CHANGE_ERRORS,
      response: changeResultSchema,
      handle: async (ctx) =>
        change(ctx, { ...(await readObject(ctx)), op: 'remove-pool', pool: ctx.params.name }),
    },
    {
      method: 'PUT',
      path: '/v1/weights',
      auth: 'token',
      summary: 'Set every weight at once (basis points or percent); pools not named get 0',
      body: weightsBody,
      query: WAIT_QUERY,
      errors: CHANGE_ERRORS,
      response: changeResultSchema,
      handle: async (ctx) => {
        const command = { ...(await readObject(ctx)), op: 'weights' };
        await guardRollout(ctx, command);
        return change(ctx, command);
      },
    },
    {
      method: 'POST',
      path: '/v1/canary',
      auth: 'token',
      summary:
        'Give one pool (default canary) a share; the others split the rest in their current ratio',
      body: canaryBody,
      query: WAIT_QUERY,
      errors: CHANGE_ERRORS,
      response: changeResultSchema,
      handle: async (ctx) => {
        const command = { ...(await readObject(ctx)), op: 'canary' };
        await guardRollout(ctx, command);
        return change(ctx, command);
      },
    },
    {
      method: 'POST',
      path: '/v1/switch',
      auth: 'token',
      summary: 'Send all traffic to one pool in one revision',
      description:
        'Refused with 409 POOL_UNHEALTHY when the pool has no healthy endpoint on this replica, unless `force` is true.',
      body: switchBody,
      query: WAIT_QUERY,
      errors: CHANGE_ERRORS,
      response: changeResultSchema,
      handle: async (ctx) => {
        const { force, ...body } = await readObject(ctx);
        // A bad query or actor is refused before anything is recorded, as for every other change.
        parseWaitQuery(ctx.query);
        actorOf(ctx);
        const command = { ...body, ...(force === undefined ? {} : { force }), op: 'switch' };
        await guardRollout(ctx, command);
        if (force !== undefined && typeof force !== 'boolean') {
          throw await refuse(ctx, command, fail('VALIDATION_FAILED', 'force: must be a boolean'));
        }
        const to = body.to;
        const current = deps.store.current();
        // A switch to the pool that already has all the traffic changes nothing: no guard.
        if (
          force !== true &&
          typeof to === 'string' &&
          current !== null &&
          Object.hasOwn(current.pools, to) &&
          current.weights[to] !== TOTAL_BASIS_POINTS
        ) {
          // A pool just added has endpoints whose first health check may not have answered:
          // this waits for it (bounded) instead of trusting them (issue 10 item 11).
          const health = await deps.proxy.settledPoolHealth(to, ctx.signal);
          if (health.healthy === 0) {
            const pending =
              health.unchecked === 0 ? '' : `, ${health.unchecked} not health-checked yet`;
            throw await refuse(
              ctx,
              command,
              fail(
                'POOL_UNHEALTHY',
                `to: pool "${to}" has no healthy endpoint (0 of ${health.total}${pending}); pass force: true to switch anyway`,
              ),
            );
          }
        }
        return change(ctx, { ...body, op: 'switch' });
      },
    },
    {
      method: 'PUT',
      path: '/v1/rules',
      auth: 'token',
      summary: 'Replace the routing rules (tried in order before the weighted split)',
      description:
        'A rule naming a pool not in the table: 404 UNKNOWN_POOL. A bad rule or regex: 400 VALIDATION_FAILED naming the field. A pool a rule names cannot be removed (409 POOL_LIVE). While a rollout is progressing or paused the rules hold still: 409 ROLLOUT_IN_PROGRESS. `{"rules":[]}` removes every rule.',
      body: rulesBody,
      query: WAIT_QUERY,
      errors: CHANGE_ERRORS,
      response: changeResultSchema,
      handle: async (ctx) => {
        // A rule change mid-rollout would change what the judged periods compare (and could
        // send users to the target past an abort): the rules hold still while it runs.
        const command = { ...(await readObject(ctx)), op: 'rules' };
        await guardRollout(ctx, command);
        return change(ctx, command);
      },
    },
    {
      method: 'PUT',
      path: '/v1/mirror',
      auth: 'token',
      summary: 'Copy a share of the requests to a pool, fire-and-forget (traffic mirroring)',
      description:
        'Replaces the mirror. Unknown pool: 404 UNKNOWN_POOL. `percent` must be more than 0 (end a mirror with DELETE). `methods` default to GET and HEAD; `match` uses the rule grammar. The mirror target cannot be removed (409 POOL_LIVE). Mirrored requests carry `x-switchyard-mirror: 1`; their answers are discarded and counted apart (switchyard_mirror_requests_total).',
      body: mirrorBody,
      query: WAIT_QUERY,
      errors: CHANGE_ERRORS,
      response: changeResultSchema,
      handle: async (ctx) => change(ctx, { ...(await readObject(ctx)), op: 'mirror' }),
    },
    {
      method: 'DELETE',
      path: '/v1/mirror',
      auth: 'token',
      summary: 'End traffic mirroring',
      description: 'With no mirror set, nothing changes (`changed: false`).',
      body: mirrorOffBody,
      query: WAIT_QUERY,
      errors: CHANGE_ERRORS,
      response: changeResultSchema,
      handle: async (ctx) => change(ctx, { ...(await readObject(ctx)), op: 'mirror', pool: null }),
    },
    {
      method: 'POST',
      path: '/v1/rollback',
      auth: 'token',
      summary: 'Undo the most recent change not yet undone, as a new revision',
      description:
        'Repeated rollbacks walk further back through history, never forward. Nothing left: 409 NOTHING_TO_UNDO.',
      body: rollbackBody,
      query: WAIT_QUERY,
      errors: CHANGE_ERRORS,
      response: changeResultSchema,
      handle: async (ctx) => {
        const command = { ...(await readObject(ctx)), op: 'rollback' };
        const rollouts = deps.rollouts;
        await rollouts?.refresh({ maxWaitMs: GUARD_READ_MS });
        if (rollouts?.ownsWeights() === true) {
          // SPEC §9: a rollback during a rollout aborts it (the target back to 0 in one revision).
          const wait = parseWaitQuery(ctx.query);
          const { table } = await rollouts.abort(
            `rolled back by ${actorOf(ctx)} (POST /v1/rollback)`,
          );
          log.info(
            { revision: table?.revision, actor: actorOf(ctx) },
            'rollback aborted the rollout',
          );
          if (wait !== null && table !== null) {
            await waitForReplicas(deps.store, table.revision, wait.timeoutMs, ctx.signal);
          }
          return { status: 200, json: { ...table, changed: true } };
        }
        return change(ctx, command);
      },
    },
  ];
}

/**
 * VALIDATION_FAILED naming the first of `endpoints` that is one of this replica's own listeners,
 * or null. Anything not a list of strings is left to the store's validation.
 */
function selfEndpoint(
  endpoints: unknown,
  listeners: readonly OwnListener[],
): SwitchyardError | null {
  if (!Array.isArray(endpoints)) return null;
  for (const [i, endpoint] of endpoints.entries()) {
    if (typeof endpoint !== 'string') continue;
    const listener = ownListenerOf(endpoint, listeners);
    if (listener === null) continue;
    // The origin only: no userinfo or path of the given URL is echoed.
    const origin = new URL(endpoint).origin;
    return fail(
      'VALIDATION_FAILED',
      `endpoints[${i}]: ${origin} is this replica's own ${listener.name} listener (${listener.host}:${listener.port}); traffic would loop`,
    );
  }
  return null;
}

/** Reads the body as a JSON object; the actor is the server's to set, so a body `actor` is dropped. */
async function readObject(ctx: RouteContext): Promise<Record<string, unknown>> {
  const body = await readJsonBody(ctx.req);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw fail('VALIDATION_FAILED', 'body: must be a JSON object');
  }
  const rest = { ...(body as Record<string, unknown>) };
  delete rest.actor;
  return rest;
}

async function applyChange(
  deps: AdminDeps,
  log: Logger,
  ctx: RouteContext,
  command: Record<string, unknown>,
): Promise<RouteReply> {
  // Query and header problems are refused before anything changes.
  const wait = parseWaitQuery(ctx.query);
  const actor = actorOf(ctx);
  const expectRevision =
    typeof command.expectRevision === 'number' ? command.expectRevision : undefined;
  let result;
  try {
    result = await deps.store.change(command, { actor, source: ctx.source, expectRevision });
  } catch (err) {
    if (isSwitchyardError(err)) {
      log.warn({ code: err.code, message: err.message, actor, op: command.op }, 'command rejected');
    }
    throw err;
  }
  const { table, changed } = result;
  if (changed) {
    log.info(
      {
        revision: table.revision,
        previousRevision: table.revision - 1,
        weights: table.weights,
        actor,
        op: command.op,
      },
      'table changed',
    );
  } else {
    log.info({ revision: table.revision, actor, op: command.op }, 'table unchanged');
  }
  if (changed && deps.awaitApplied !== undefined) await deps.awaitApplied(table.revision);
  if (wait !== null) await waitForReplicas(deps.store, table.revision, wait.timeoutMs, ctx.signal);
  return { status: 200, json: { ...table, changed } };
}

/**
 * The actor of a change: `<source>:<name>` when the request names one in `x-switchyard-actor`
 * (1..64 printable ASCII characters, given once), else the source (`admin` or `cli`).
 */
function actorOf(ctx: RouteContext): string {
  const values = ctx.req.headersDistinct[ACTOR_HEADER];
  if (values === undefined) return ctx.source;
  const [name] = values;
  if (values.length !== 1 || name === undefined) {
    throw fail('VALIDATION_FAILED', `${ACTOR_HEADER}: give the header once`);
  }
  const problem = actorProblem(name);
  if (problem !== null) throw fail('VALIDATION_FAILED', `${ACTOR_HEADER}: ${problem}`);
  return namedActor(ctx.source, name);
}
