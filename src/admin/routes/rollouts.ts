/**
 * Rollouts (SPEC §9): start one, read its status, and promote, pause, resume or abort it. The
 * engine (RolloutDriver) keeps the rollout in the control store: with Redis any replica answers
 * and takes these calls, one replica drives (see rollout-driver.ts).
 */
import { z } from 'zod';
import { fail } from '../../errors.js';
import type { RolloutDriver, RolloutRecord } from '../../rollout/rollout-driver.js';
import { parseRolloutStart } from '../../rollout/rollout-plan.js';
import { GATE_EVENTS, NOTIFY_EVENTS } from '../../rollout/webhooks.js';
import type { AdminDeps } from '../admin-deps.js';
import { readJsonBody } from '../body.js';
import type { Route, RouteContext } from '../router.js';

const DEFAULT_LIST_LIMIT = 10;
const MAX_LIST_LIMIT = 20;

const figuresSchema = z.object({
  requests: z.int(),
  errors: z.int(),
  errorRatio: z.number(),
  latencyMs: z.number().nullable().describe('Latency quantile (bucket upper edge), ms'),
  latencySamples: z.int(),
});

const stepSchema = z.union([
  z.object({ basisPoints: z.int().describe('The target gets this share (10000 = 100 %)') }),
  z.object({
    pause: z.string().describe('"approval", or a duration such as 5m'),
    pauseMs: z.int().optional(),
  }),
]);

const webhookSchema = z.object({
  url: z.string().describe('http:// or https:// only, without user:password'),
  events: z
    .array(z.enum([...GATE_EVENTS, ...NOTIFY_EVENTS]))
    .describe('Gates (pre-rollout, pre-step) wait for a 2xx; the others are notifications'),
  timeout: z.string().optional().describe('Per call, 100ms to 60s (default 5s)'),
});

/** A rollout as `GET /v1/rollouts/current` answers it. */
export const rolloutSchema = z.object({
  id: z.string(),
  pool: z.string().describe('The target pool'),
  baseline: z.string(),
  version: z.string().nullable(),
  strategy: z.enum(['steps', 'blue-green']),
  phase: z.enum(['progressing', 'paused', 'awaiting-approval', 'promoted', 'aborted']),
  step: z.int().describe('Index of the current step'),
  steps: z.array(stepSchema),
  targetWeightBp: z.int().describe("The target's weight in basis points"),
  startedAt: z.string(),
  updatedAt: z.string(),
  driver: z.string().describe('Id of the replica driving the rollout (as in /v1/replicas)'),
  analysis: z.record(z.string(), z.unknown()).describe('The analysis settings, defaults filled'),
  judgement: z
    .object({
      target: figuresSchema,
      baseline: figuresSchema,
      verdict: z.enum(['collecting', 'pass', 'fail']),
      reason: z.string(),
      evidence: z.object({ have: z.int(), need: z.int() }),
      overdue: z.boolean(),
    })
    .nullable()
    .describe('The live judgement of the current weight (null before one is applied)'),
  stepStartedAt: z
    .string()
    .nullable()
    .optional()
    .describe("When the step's clock started; null until every live replica applied its weights"),
  waiting: z
    .string()
    .nullable()
    .optional()
    .describe(
      'Why it does not move on: replicas that have not applied the weights, or the control store unreachable',
    ),
  decisions: z.array(
    z.object({
      time: z.string(),
      action: z.string(),
      reason: z.string(),
      dryRun: z.boolean().optional().describe('Recorded only: analysis.dryRun'),
      webhook: z
        .object({
          event: z.string(),
          url: z.string(),
          attempt: z.int(),
          status: z.int().nullable(),
          outcome: z.string(),
        })
        .optional()
        .describe('For action "webhook": one call and its result'),
    }),
  ),
  webhooks: z.array(webhookSchema.extend({ timeoutMs: z.int() })),
  drainedAt: z
    .string()
    .nullable()
    .describe('After promotion: when nothing flowed to the old baseline any more'),
});

const startBody = z.object({
  pool: z.string().describe('The target pool; must exist'),
  version: z.string().optional().describe('Deploy this version into the target first'),
  endpoints: z.array(z.string()).optional().describe('... with these endpoints'),
  baseline: z.string().optional().describe('Default: the pool with the most weight'),
  strategy: z.enum(['canary', 'blue-green']).optional(),
  steps: z
    .array(
      z.union([
        z.object({ weight: z.number() }),
        z.object({ basisPoints: z.int() }),
        z.object({ pause: z.string() }),
      ]),
    )
    .optional()
    .describe('Default: 5 %, pause 1m, 25 %, pause 2m, 50 %, pause 2m, 100 %'),
  analysis: z.record(z.string(), z.unknown()).optional().describe('SPEC §9 analysis; any subset'),
  webhooks: z
    .array(webhookSchema)
    .max(10)
    .optional()
    .describe('Release webhooks (SPEC §10), at most 10'),
});

/** The rollout routes. */
export function rolloutRoutes(deps: AdminDeps): Route[] {
  const driver = (): RolloutDriver => {
    if (deps.rollouts === undefined) throw fail('NO_ROLLOUT', 'no rollout has run');
    return deps.rollouts;
  };
  const current = (): RolloutRecord => {
    const r = deps.rollouts?.current() ?? null;
    if (r === null) throw fail('NO_ROLLOUT', 'no rollout has run');
    return r;
  };
  const control = (
    action: 'promote' | 'pause' | 'resume' | 'abort',
    summary: string,
    run: (ctx: RouteContext) => Promise<RolloutRecord>,
  ): Route => ({
    method: 'POST',
    path: `/v1/rollouts/current/${action}`,
    auth: 'token',
    summary,
    errors: [400, 404, 409, 503],
    response: rolloutSchema,
    handle: async (ctx) => ({ status: 200, json: await run(ctx) }),
  });
  return [
    {
      method: 'POST',
      path: '/v1/rollouts',
      auth: 'token',
      summary: 'Start a rollout: move traffic to the target in judged steps (SPEC §9)',
      description:
        'One at a time per namespace: 409 ROLLOUT_IN_PROGRESS while another is progressing, paused or awaiting approval. A routing rule that sends requests to the target: 409 POOL_LIVE (an abort must put everybody back on the baseline). With Redis any replica may take it; one replica drives it under a lease.',
      body: startBody,
      okStatus: 201,
      errors: [400, 404, 409, 413, 415, 503],
      response: rolloutSchema,
      handle: async (ctx) => {
        const body = await readJsonBody(ctx.req);
        const d = driver();
        await d.refresh();
        if (d.ownsWeights()) {
          const r = current();
          throw fail(
            'ROLLOUT_IN_PROGRESS',
            `rollout ${r.id} of pool "${r.pool}" is ${r.phase}; abort it first`,
          );
        }
        const plan = parseRolloutStart(body, deps.store.current());
        return { status: 201, json: await d.startRollout(plan) };
      },
    },
    {
      method: 'GET',
      path: '/v1/rollouts/current',
      auth: 'token',
      summary: 'The newest rollout with its live judgement and decisions',
      errors: [404],
      response: rolloutSchema,
      handle: async () => {
        await deps.rollouts?.refresh();
        return { status: 200, json: current() };
      },
    },
    {
      method: 'GET',
      path: '/v1/rollouts',
      auth: 'token',
      summary: 'Recent rollouts, newest first (the store keeps the last 20)',
      query: [
        {
          name: 'limit',
          description: `Rollouts to return (default ${DEFAULT_LIST_LIMIT})`,
          schema: { type: 'integer', minimum: 1, maximum: MAX_LIST_LIMIT },
        },
      ],
      errors: [400],
      response: z.object({ rollouts: z.array(rolloutSchema) }),
      handle: async ({ query }) => {
        const limit = parseLimit(query.get('limit'));
        await deps.rollouts?.refresh({ past: true });
        return { status: 200, json: { rollouts: deps.rollouts?.list(limit) ?? [] } };
      },
    },
    control(
      'promote',
      'End the current pause; {"full": true}: to 100 % now, skipping the remaining steps',
      async (ctx) => {
        const body = await readOptionalObject(ctx);
        const full = body.full ?? false;
        if (typeof full !== 'boolean') throw fail('VALIDATION_FAILED', 'full: must be a boolean');
        return driver().promote(full);
      },
    ),
    control('pause', 'Hold the rollout at its step (failing is still judged)', async (ctx) => {
      await readOptionalObject(ctx);
      return driver().pause();
    }),
    control('resume', 'Continue a paused rollout', async (ctx) => {
      await readOptionalObject(ctx);
      return driver().resume();
    }),
    control('abort', "Abort: the target's weight to 0 in one revision", async (ctx) => {
      const body = await readOptionalObject(ctx);
      const reason = body.reason ?? 'aborted by hand';
      if (typeof reason !== 'string' || reason.length === 0 || reason.length > 500) {
        throw fail('VALIDATION_FAILED', 'reason: must be a string of 1..500 characters');
      }
      return (await driver().abort(reason)).record;
    }),
  ];
}

/** An optional JSON object body (control calls may be sent without one). */
async function readOptionalObject(ctx: RouteContext): Promise<Record<string, unknown>> {
  const length = ctx.req.headers['content-length'];
  if (
    length === '0' ||
    (length === undefined && ctx.req.headers['transfer-encoding'] === undefined)
  ) {
    return {};
  }
  const body = await readJsonBody(ctx.req);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw fail('VALIDATION_FAILED', 'body: must be a JSON object');
  }
  return body as Record<string, unknown>;
}

function parseLimit(raw: string | null): number {
  if (raw === null) return DEFAULT_LIST_LIMIT;
  if (!/^\d{1,3}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_LIST_LIMIT) {
    throw fail('VALIDATION_FAILED', `limit: must be an integer 1..${MAX_LIST_LIMIT}`);
  }
  return Number(raw);
}
