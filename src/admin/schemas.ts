/**
 * zod schemas of the admin API's request and response bodies, for the OpenAPI document. The
 * authoritative validation of commands is parseCommandInput in table/ (run by the store); these
 * describe the same shapes and a test checks that documented examples pass both.
 */
import { z } from 'zod';
import { POOL_NAME_PATTERN } from '../table/validate.js';
import { MIRROR_METHODS, TOTAL_BASIS_POINTS } from '../table/types.js';
import {
  MAX_MATCHES,
  MAX_REGEX_LENGTH,
  MAX_RULE_TEXT_LENGTH,
  MAX_RULES,
  RULE_NAME_PATTERN,
} from '../table/rules.js';

const poolName = z.string().regex(POOL_NAME_PATTERN).describe('Pool name');
const version = z
  .string()
  .regex(/^(?:[0-9a-f]{7,40}|sha256:[0-9a-f]{64})$/)
  .describe('Immutable version: lowercase hex git SHA (7-40) or sha256:<64 hex>');
const basisPoints = z.int().min(0).max(TOTAL_BASIS_POINTS).describe('Basis points (10000 = 100 %)');
const percent = z
  .number()
  .min(0)
  .max(100)
  .multipleOf(0.01)
  .describe('Percent, at most two decimals');
const expectRevision = z
  .int()
  .min(0)
  .optional()
  .describe('Refuse the change with 409 REVISION_CONFLICT unless the table is at this revision');

/** PUT /v1/pools/{name}. */
export const setPoolBody = z
  .object({
    version,
    endpoints: z
      .array(z.url({ protocol: /^https?$/ }))
      .min(1)
      .max(64)
      .describe('Origins http(s)://host:port, no path'),
    expectRevision,
  })
  .strict();

/** DELETE /v1/pools/{name} (the body is optional). */
export const removePoolBody = z.object({ expectRevision }).strict();

/** PUT /v1/weights: exactly one of `weights` (basis points) or `percent`; pools not named get 0. */
export const weightsBody = z.union([
  z.object({ weights: z.record(poolName, basisPoints), expectRevision }).strict(),
  z.object({ percent: z.record(poolName, percent), expectRevision }).strict(),
]);

/** POST /v1/canary: exactly one of `percent` or `basisPoints`; `pool` defaults to `canary`. */
export const canaryBody = z.union([
  z.object({ percent, pool: poolName.optional(), expectRevision }).strict(),
  z.object({ basisPoints, pool: poolName.optional(), expectRevision }).strict(),
]);

/** POST /v1/switch. */
export const switchBody = z
  .object({
    to: poolName,
    force: z.boolean().optional().describe('Switch even when the pool has no healthy endpoint'),
    expectRevision,
  })
  .strict();

/** One test of a routing rule (SPEC §12): one subject, one test, optionally inverted. */
const ruleMatch = z
  .object({
    header: z.string().optional().describe('Header name (case-insensitive)'),
    cookie: z.string().optional().describe('Cookie name'),
    query: z.string().optional().describe('Query parameter name (percent-decoded)'),
    path: z.literal(true).optional().describe('The request path, without the query'),
    value: z.string().max(MAX_RULE_TEXT_LENGTH).optional().describe('Exact value'),
    prefix: z.string().max(MAX_RULE_TEXT_LENGTH).optional().describe('Value prefix'),
    regex: z
      .string()
      .max(MAX_REGEX_LENGTH)
      .optional()
      .describe('RE2 regular expression (linear time), unanchored: use ^ and $'),
    present: z.literal(true).optional().describe('The subject is present'),
    invert: z.boolean().optional().describe('Negate the test'),
  })
  .strict()
  .describe('Exactly one of header, cookie, query, path and one of value, prefix, regex, present');

/** A routing rule: requests for which every match holds go to `pool`. */
const routingRule = z
  .object({
    name: z.string().regex(RULE_NAME_PATTERN).describe('Rule name, the metric label'),
    match: z.array(ruleMatch).min(1).max(MAX_MATCHES),
    pool: poolName,
  })
  .strict();

/** PUT /v1/rules: the whole rule list, tried in order before the weighted split. */
export const rulesBody = z
  .object({ rules: z.array(routingRule).max(MAX_RULES), expectRevision })
  .strict();

const mirrorMethods = z
  .array(z.enum(MIRROR_METHODS))
  .min(1)
  .max(MIRROR_METHODS.length)
  .describe('Methods to copy (case-insensitive; default GET and HEAD)');
const mirrorShare = {
  percent: z
    .number()
    .gt(0)
    .max(100)
    .multipleOf(0.01)
    .describe('Share of the matching requests copied, more than 0, at most 100, two decimals'),
  basisPoints: z.int().min(1).max(TOTAL_BASIS_POINTS).describe('The share in basis points'),
};

/**
 * PUT /v1/mirror: copy a share of the requests to a pool (SPEC §12); exactly one of `percent` or
 * `basisPoints`.
 */
export const mirrorBody = z.union([
  z
    .object({
      pool: poolName,
      percent: mirrorShare.percent,
      methods: mirrorMethods.optional(),
      match: z.array(ruleMatch).min(1).max(MAX_MATCHES).optional(),
      expectRevision,
    })
    .strict(),
  z
    .object({
      pool: poolName,
      basisPoints: mirrorShare.basisPoints,
      methods: mirrorMethods.optional(),
      match: z.array(ruleMatch).min(1).max(MAX_MATCHES).optional(),
      expectRevision,
    })
    .strict(),
]);

/** DELETE /v1/mirror (the body is optional). */
export const mirrorOffBody = z.object({ expectRevision }).strict();

/** The mirror as the table holds it. */
const trafficMirror = z
  .object({
    pool: poolName,
    basisPoints: mirrorShare.basisPoints,
    methods: z.array(z.enum(MIRROR_METHODS)),
    match: z.array(ruleMatch).optional(),
  })
  .describe('Traffic mirroring: absent when off');

/** POST /v1/rollback (the body is optional). */
export const rollbackBody = z.object({ expectRevision }).strict();

/** The routing table (SPEC §2). */
export const routingTableSchema = z.object({
  revision: z.int().min(1),
  pools: z.record(poolName, z.object({ version, endpoints: z.array(z.string()) })),
  weights: z.record(poolName, basisPoints),
  rules: z.array(routingRule).describe('Routing rules, tried in order before the weighted split'),
  mirror: trafficMirror.optional(),
  updatedAt: z.string().describe('ISO-8601 time'),
  updatedBy: z.string(),
});

/** Every error answer. */
export const errorSchema = z.object({
  error: z
    .object({
      code: z.string().describe('Stable error code, e.g. VALIDATION_FAILED, POOL_LIVE'),
      message: z.string().describe('Names the field and the problem'),
      lagging: z
        .array(z.string())
        .optional()
        .describe('REPLICAS_LAGGING: live replicas not yet at the revision'),
      revision: z
        .int()
        .optional()
        .describe('REPLICAS_LAGGING: the stored revision the wait was for'),
      replicasUnknown: z
        .boolean()
        .optional()
        .describe(
          'REPLICAS_LAGGING: the replica list could not be read (or listed no live replica) before the deadline',
        ),
    })
    .loose(),
});

/** GET /v1/state. */
export const stateSchema = z.object({
  table: routingTableSchema
    .nullable()
    .describe('The table in the control store (null before the first)'),
  appliedRevision: z.int().describe('Revision this replica routes by'),
  store: z.object({
    kind: z.enum(['memory', 'redis']),
    up: z.boolean(),
    newestRevision: z.int(),
    namespace: z
      .string()
      .optional()
      .describe('With Redis: the namespace this replica follows (its keys are switchyard:{NS}:*)'),
  }),
  build: z.string().describe('Build identifier (git SHA)'),
  health: z
    .record(
      z.string(),
      z.object({
        healthy: z.int(),
        total: z.int(),
        endpoints: z
          .array(z.object({ url: z.string(), healthy: z.boolean() }))
          .optional()
          .describe('Each endpoint of the pool, in table order'),
      }),
    )
    .describe(
      'Per pool of the table: endpoints this replica routes to (active checks and passive ejection) and all its endpoints',
    ),
  replica: z.string().optional().describe("This replica's id, as in /v1/replicas"),
});

/** GET /v1/history. */
export const historySchema = z.object({
  history: z.array(
    z.object({
      id: z.string(),
      revision: z.int().nullable().describe('Revision produced; null when rejected'),
      previousRevision: z.int(),
      time: z.string(),
      actor: z.string(),
      source: z.enum(['admin', 'cli', 'redis', 'seed']),
      command: z.unknown(),
      result: z.enum(['applied', 'rejected']),
      reason: z.object({ code: z.string(), message: z.string() }).optional(),
      undoes: z.int().optional().describe('For a rollback: the revision whose change it undid'),
      note: z
        .string()
        .optional()
        .describe("Why the change was made (a rollout's step or abort reason, with its numbers)"),
    }),
  ),
});

/** GET /v1/replicas. */
export const replicasSchema = z.object({
  replicas: z.array(
    z.object({ id: z.string(), revision: z.int(), heartbeatAt: z.string(), live: z.boolean() }),
  ),
});

/** GET /v1/pools/{name}/drain. */
export const drainSchema = z.object({
  pool: z.string(),
  weight: z.int().describe('Weight of the pool in the table, basis points (0 once it left)'),
  drained: z
    .boolean()
    .describe(
      'Weight 0 everywhere, and no live replica has a request or long-lived connection to the pool',
    ),
  replicas: z.array(
    z.object({
      id: z.string(),
      live: z.boolean().describe('Heartbeat under 5 s old; replicas not live do not count'),
      revision: z.int().describe('Revision the replica had applied when it reported'),
      weight: z
        .int()
        .nullable()
        .describe('Weight in the table this replica has applied; null: no report (older version)'),
      inFlight: z.int().nullable().describe('Requests to the pool being forwarded'),
      longLived: z
        .int()
        .nullable()
        .describe('Open WebSockets, tunnels and SSE streams to the pool'),
    }),
  ),
});

/** GET /v1/traffic. */
export const trafficSchema = z.object({
  windowMs: z.int(),
  total: z.int().describe('Requests answered in the window, all pools'),
  revision: z.int().nullable(),
  pools: z.record(
    z.string(),
    z.object({
      requests: z.int(),
      observedShare: z.number().describe("Fraction 0..1 of the window's requests"),
      weight: z.int().describe('Configured weight in basis points'),
      configuredShare: z.number().describe('weight / 10000'),
      interval: z
        .object({ low: z.number(), high: z.number() })
        .nullable()
        .describe('95 % Wilson interval of the observed share; null without requests'),
      skewed: z
        .boolean()
        .describe('Enough samples and the configured share is outside the interval'),
    }),
  ),
  generatedAt: z
    .string()
    .describe("End of the window (server time, ISO 8601); compare with the table's updatedAt"),
});

/** GET /healthz. */
export const healthSchema = z.object({ status: z.literal('ok'), build: z.string() });

/** GET /readyz. */
export const readySchema = z.object({ status: z.enum(['ready', 'not-ready']), revision: z.int() });
