/**
 * Validators for everything that enters the table domain from outside: commands (admin bodies,
 * Redis `cmd` fields, CLI) and tables read from a store (SPEC §2, §6). Every failure is a
 * SwitchyardError whose message starts with the field path (`weights.canary: ...`).
 */
import { z } from 'zod';
import { fail, SwitchyardError, type ErrorCode } from '../errors.js';
import { redactText } from './redact.js';
import { freezeMirror, parseMirrorFields } from './mirror.js';
import { parseRules } from './rules.js';
import { percentToBasisPoints } from './weights.js';
import {
  TOTAL_BASIS_POINTS,
  type Command,
  type PoolSpec,
  type RoutingRule,
  type RoutingTable,
  type TrafficMirror,
} from './types.js';

/** Pool names (SPEC §2). */
export const POOL_NAME_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

const GIT_SHA_PATTERN = /^[0-9a-f]{7,40}$/;
const OCI_DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;

/** Longest actor name (the `actor` of a command, the admin API's `x-switchyard-actor`). */
export const MAX_ACTOR_LENGTH = 64;
/** Printable ASCII: an actor is shown in tables and logs, never a control character. */
const ACTOR_PATTERN = /^[\x20-\x7e]+$/;
const MAX_ENDPOINT_LENGTH = 2048;
const MAX_ENDPOINTS = 64;
/** How much of an offending value is echoed back in a message. */
const MAX_ECHO_LENGTH = 80;

const COMMAND_OPS = [
  'set-pool',
  'remove-pool',
  'weights',
  'canary',
  'switch',
  'rules',
  'mirror',
  'rollback',
] as const;

/**
 * True for an immutable version: a lowercase hex git SHA of 7..40 characters or an OCI digest
 * `sha256:<64 lowercase hex>`. Uppercase hex is not accepted; like every other rejected version
 * it fails with MUTABLE_VERSION (SPEC §2), with a "must be lowercase" hint in the message.
 */
export function isImmutableVersion(v: string): boolean {
  return GIT_SHA_PATTERN.test(v) || OCI_DIGEST_PATTERN.test(v);
}

/**
 * True for a valid pool name (POOL_NAME_PATTERN). Names such as `constructor` and `prototype` are
 * valid, so a record keyed by pool name is only ever read through an own-property check
 * (`Object.hasOwn`), never by plain indexing, which would find `Object.prototype` members.
 */
export function isPoolName(name: string): boolean {
  return POOL_NAME_PATTERN.test(name);
}

/**
 * What is wrong with an actor name (who made a change, e.g. `alice@laptop`), or null when it is
 * fine: 1..MAX_ACTOR_LENGTH printable ASCII characters, not only spaces.
 */
export function actorProblem(name: string): string | null {
  if (name.trim() === '') return 'must not be empty';
  if (name.length > MAX_ACTOR_LENGTH) return `must be at most ${MAX_ACTOR_LENGTH} characters`;
  if (!ACTOR_PATTERN.test(name)) {
    const bad = /[^\x20-\x7e]/.exec(name);
    return `must be printable ASCII (character ${(bad?.index ?? 0) + 1} is ${JSON.stringify(bad?.[0] ?? '')})`;
  }
  return null;
}

/** The result of parseCommandInput: the validated command and its envelope fields. */
export interface ParsedCommandInput {
  command: Command;
  actor?: string;
  expectRevision?: number;
}

// ---------------------------------------------------------------------------------------------
// zod shapes: types, ranges and unknown fields. Maps, names and URLs are checked by hand below,
// because z.record silently drops an own `__proto__` key and we want one precise message each.

const poolNameSchema = z
  .string({ error: 'must be a string' })
  .refine(isPoolName, { error: `must match ${POOL_NAME_PATTERN.source}` });
const plainObjectSchema = z.custom<Record<string, unknown>>(isPlainObject, {
  error: 'must be a JSON object mapping pool names to numbers',
});
const basisPointsSchema = z
  .number({ error: `must be an integer 0..${TOTAL_BASIS_POINTS}` })
  .int({ error: `must be an integer 0..${TOTAL_BASIS_POINTS}` })
  .min(0, { error: `must be an integer 0..${TOTAL_BASIS_POINTS}` })
  .max(TOTAL_BASIS_POINTS, { error: `must be an integer 0..${TOTAL_BASIS_POINTS}` });
const percentSchema = z.number({ error: 'must be a number 0..100' });
const envelopeShape = {
  actor: z
    .string({ error: 'must be a string' })
    .check((ctx) => {
      const problem = actorProblem(ctx.value);
      if (problem !== null) ctx.issues.push({ code: 'custom', message: problem, input: ctx.value });
    })
    .optional(),
  expectRevision: z
    .number({ error: 'must be a non-negative integer' })
    .int({ error: 'must be a non-negative integer' })
    .min(0, { error: 'must be a non-negative integer' })
    .max(Number.MAX_SAFE_INTEGER, { error: 'must be a non-negative integer' })
    .optional(),
};
const endpointsSchema = z
  .array(
    z
      .string({ error: 'must be a string' })
      .max(MAX_ENDPOINT_LENGTH, { error: `must be at most ${MAX_ENDPOINT_LENGTH} characters` }),
    { error: 'must be an array of URLs' },
  )
  .min(1, { error: 'must list at least one endpoint' })
  .max(MAX_ENDPOINTS, { error: `must list at most ${MAX_ENDPOINTS} endpoints` });

const commandSchema = z.discriminatedUnion(
  'op',
  [
    z.strictObject({
      ...envelopeShape,
      op: z.literal('set-pool'),
      pool: poolNameSchema,
      version: z.string({ error: 'must be a string' }),
      endpoints: endpointsSchema,
    }),
    z.strictObject({ ...envelopeShape, op: z.literal('remove-pool'), pool: poolNameSchema }),
    z.strictObject({
      ...envelopeShape,
      op: z.literal('weights'),
      weights: plainObjectSchema.optional(),
      percent: plainObjectSchema.optional(),
    }),
    z.strictObject({
      ...envelopeShape,
      op: z.literal('canary'),
      pool: poolNameSchema.optional(),
      percent: percentSchema.optional(),
      basisPoints: basisPointsSchema.optional(),
    }),
    z.strictObject({ ...envelopeShape, op: z.literal('switch'), to: poolNameSchema }),
    // The rule list is checked by hand (parseRules) for one precise message per problem.
    z.strictObject({ ...envelopeShape, op: z.literal('rules'), rules: z.unknown().optional() }),
    // The mirror's fields are checked by hand (parseMirrorFields), like rules.
    z.strictObject({
      ...envelopeShape,
      op: z.literal('mirror'),
      pool: z.union([poolNameSchema, z.null()], {
        error: 'must be a pool name, or null to end the mirror',
      }),
      percent: z.unknown().optional(),
      basisPoints: z.unknown().optional(),
      methods: z.unknown().optional(),
      match: z.unknown().optional(),
    }),
    z.strictObject({ ...envelopeShape, op: z.literal('rollback') }),
  ],
  { error: `must be one of ${COMMAND_OPS.join(', ')}` },
);

const tableSchema = z.object({
  revision: z
    .number({ error: 'must be a positive integer' })
    .int({ error: 'must be a positive integer' })
    .min(1, { error: 'must be a positive integer' })
    .max(Number.MAX_SAFE_INTEGER, { error: 'must be a positive integer' }),
  pools: z.custom<Record<string, unknown>>(isPlainObject, {
    error: 'must be a JSON object mapping pool names to pools',
  }),
  weights: plainObjectSchema,
  // Tables written before rules existed have none.
  rules: z.unknown().optional(),
  // Absent when no mirror is set.
  mirror: z.unknown().optional(),
  updatedAt: z.string({ error: 'must be a string' }),
  updatedBy: z.string({ error: 'must be a string' }),
});

const poolSpecSchema = z.object({
  version: z.string({ error: 'must be a string' }),
  endpoints: endpointsSchema,
});

// ---------------------------------------------------------------------------------------------

/**
 * Validates a raw command (SPEC §6: `op` plus the fields of the matching admin call, plus the
 * optional envelope fields `actor` and `expectRevision`). Percentages become basis points,
 * endpoints are normalised to their origin, and canary `pool` defaults to `canary`.
 * Throws VALIDATION_FAILED (or MUTABLE_VERSION for a mutable `version`).
 */
export function parseCommandInput(input: unknown): ParsedCommandInput {
  if (!isPlainObject(input)) {
    throw fail('VALIDATION_FAILED', 'command: must be a JSON object');
  }
  const raw = parseWithSchema(commandSchema, input, 'command');
  const command = buildCommand(raw);
  const parsed: ParsedCommandInput = { command };
  if (raw.actor !== undefined) parsed.actor = raw.actor;
  if (raw.expectRevision !== undefined) parsed.expectRevision = raw.expectRevision;
  return parsed;
}

type RawCommand = z.infer<typeof commandSchema>;

function buildCommand(raw: RawCommand): Command {
  switch (raw.op) {
    case 'set-pool': {
      const spec = parsePoolSpecFields(raw.version, raw.endpoints, '', 'MUTABLE_VERSION');
      return { op: 'set-pool', pool: raw.pool, version: spec.version, endpoints: spec.endpoints };
    }
    case 'remove-pool':
      return { op: 'remove-pool', pool: raw.pool };
    case 'weights':
      return { op: 'weights', weights: parseWeightsChange(raw.weights, raw.percent) };
    case 'canary': {
      if ((raw.percent === undefined) === (raw.basisPoints === undefined)) {
        throw fail('VALIDATION_FAILED', 'percent: give exactly one of percent or basisPoints');
      }
      const basisPoints =
        raw.basisPoints ?? percentToBasisPoints(raw.percent ?? Number.NaN, 'percent');
      return { op: 'canary', basisPoints, pool: raw.pool ?? 'canary' };
    }
    case 'switch':
      return { op: 'switch', to: raw.to };
    case 'rules':
      return { op: 'rules', rules: parseRules(raw.rules) };
    case 'mirror': {
      if (raw.pool === null) {
        for (const key of ['percent', 'basisPoints', 'methods', 'match'] as const) {
          if (raw[key] !== undefined) {
            throw fail('VALIDATION_FAILED', `${key}: pool null ends the mirror; give nothing else`);
          }
        }
        return { op: 'mirror', pool: null };
      }
      return { op: 'mirror', ...parseMirrorFields({ ...raw, pool: raw.pool }) };
    }
    case 'rollback':
      return { op: 'rollback' };
  }
}

function parseWeightsChange(
  weights: Record<string, unknown> | undefined,
  percent: Record<string, unknown> | undefined,
): Record<string, number> {
  if ((weights === undefined) === (percent === undefined)) {
    throw fail('VALIDATION_FAILED', 'weights: give exactly one of weights or percent');
  }
  const field = weights !== undefined ? 'weights' : 'percent';
  const map = weights ?? percent ?? {};
  const result: Record<string, number> = {};
  let totalBp = 0;
  for (const name of Object.keys(map)) {
    const path = `${field}.${echoKey(name)}`;
    if (!isPoolName(name)) {
      throw fail('VALIDATION_FAILED', `${path}: not a valid pool name`);
    }
    const value = map[name];
    let weightBp: number;
    if (field === 'weights') {
      weightBp = checkBasisPoints(value, path);
    } else {
      if (typeof value !== 'number') {
        throw fail('VALIDATION_FAILED', `${path}: must be a number 0..100`);
      }
      weightBp = percentToBasisPoints(value, path);
    }
    result[name] = weightBp;
    totalBp += weightBp;
  }
  if (totalBp !== TOTAL_BASIS_POINTS) {
    const message =
      field === 'weights'
        ? `weights: must sum to ${TOTAL_BASIS_POINTS} (got ${totalBp})`
        : `percent: must sum to 100 (got ${totalBp / 100})`;
    throw fail('VALIDATION_FAILED', message);
  }
  return result;
}

/**
 * Validates a full table read from a store: positive revision, valid pools, weights with the same
 * keys as pools, integers 0..10000 summing to 10000 (so at least one pool). Returns a deep-frozen
 * copy holding only the known fields, weights in pool order. Throws VALIDATION_FAILED.
 */
export function parseTable(input: unknown): RoutingTable {
  if (!isPlainObject(input)) {
    throw fail('VALIDATION_FAILED', 'table: must be a JSON object');
  }
  const raw = parseWithSchema(tableSchema, input, 'table');
  const pools: Record<string, PoolSpec> = {};
  for (const name of Object.keys(raw.pools)) {
    const path = `pools.${echoKey(name)}`;
    if (!isPoolName(name)) {
      throw fail('VALIDATION_FAILED', `${path}: not a valid pool name`);
    }
    const rawSpec = raw.pools[name];
    if (!isPlainObject(rawSpec)) {
      throw fail('VALIDATION_FAILED', `${path}: must be a JSON object`);
    }
    const spec = parseWithSchema(poolSpecSchema, rawSpec, path, path);
    pools[name] = parsePoolSpecFields(spec.version, spec.endpoints, path, 'VALIDATION_FAILED');
  }
  const poolNames = Object.keys(pools);
  if (poolNames.length === 0) {
    throw fail('VALIDATION_FAILED', 'pools: must hold at least one pool');
  }
  for (const name of Object.keys(raw.weights)) {
    if (!isPoolName(name) || !Object.hasOwn(pools, name)) {
      throw fail('VALIDATION_FAILED', `weights.${echoKey(name)}: no such pool`);
    }
  }
  const weights: Record<string, number> = {};
  let totalBp = 0;
  for (const name of poolNames) {
    if (!Object.hasOwn(raw.weights, name)) {
      throw fail('VALIDATION_FAILED', `weights.${name}: missing`);
    }
    const weightBp = checkBasisPoints(raw.weights[name], `weights.${name}`);
    weights[name] = weightBp;
    totalBp += weightBp;
  }
  if (totalBp !== TOTAL_BASIS_POINTS) {
    throw fail('VALIDATION_FAILED', `weights: must sum to ${TOTAL_BASIS_POINTS} (got ${totalBp})`);
  }
  const rules = raw.rules === undefined ? [] : parseRules(raw.rules);
  rules.forEach((rule, i) => {
    if (!isPoolName(rule.pool) || !Object.hasOwn(pools, rule.pool)) {
      throw fail('VALIDATION_FAILED', `rules[${i}].pool: no such pool`);
    }
  });
  const table: RoutingTable = {
    revision: raw.revision,
    pools,
    weights,
    rules,
    ...(raw.mirror === undefined || raw.mirror === null
      ? {}
      : { mirror: parseStoredMirror(raw.mirror, pools) }),
    updatedAt: raw.updatedAt,
    updatedBy: raw.updatedBy,
  };
  return freezeTable(table);
}

/** The `mirror` of a stored table, validated like a command; its pool must be in `pools`. */
function parseStoredMirror(
  input: unknown,
  pools: Readonly<Record<string, PoolSpec>>,
): TrafficMirror {
  if (!isPlainObject(input)) throw fail('VALIDATION_FAILED', 'mirror: must be a JSON object');
  for (const key of Object.keys(input)) {
    if (!['pool', 'basisPoints', 'methods', 'match'].includes(key)) {
      throw fail('VALIDATION_FAILED', `mirror.${echoKey(key)}: unknown field`);
    }
  }
  const pool = input.pool;
  if (typeof pool !== 'string' || !isPoolName(pool) || !Object.hasOwn(pools, pool)) {
    throw fail('VALIDATION_FAILED', 'mirror.pool: no such pool');
  }
  try {
    return parseMirrorFields({
      pool,
      basisPoints: input.basisPoints,
      methods: input.methods,
      match: input.match,
    });
  } catch (err) {
    if (err instanceof SwitchyardError) {
      throw new SwitchyardError(err.code, `mirror.${err.message}`);
    }
    throw err;
  }
}

/**
 * Validates one pool's version and endpoints (shared by commands, seeds and stored tables).
 * `prefix` is prepended to the field names (`pools.blue` → `pools.blue.version`); a version that
 * is not immutable (uppercase hex included) fails with `mutableCode`. Endpoints are normalised to
 * their origin.
 */
export function parsePoolSpecFields(
  version: string,
  endpoints: readonly string[],
  prefix: string,
  mutableCode: ErrorCode = 'MUTABLE_VERSION',
): PoolSpec {
  const at = prefix === '' ? '' : `${prefix}.`;
  if (typeof version !== 'string') {
    throw fail('VALIDATION_FAILED', `${at}version: must be a string`);
  }
  if (!isImmutableVersion(version)) {
    if (version.length <= MAX_ECHO_LENGTH && isImmutableVersion(version.toLowerCase())) {
      throw fail(mutableCode, `${at}version: ${JSON.stringify(version)} must be lowercase`);
    }
    throw fail(
      mutableCode,
      `${at}version: ${echo(version)} is not an immutable identifier (git SHA of 7-40 hex chars or sha256:<64 hex>)`,
    );
  }
  if (!Array.isArray(endpoints) || endpoints.length === 0 || endpoints.length > MAX_ENDPOINTS) {
    throw fail('VALIDATION_FAILED', `${at}endpoints: must list 1..${MAX_ENDPOINTS} endpoints`);
  }
  const normalised: string[] = [];
  endpoints.forEach((endpoint, index) => {
    const origin = normaliseEndpoint(endpoint, `${at}endpoints[${index}]`);
    const first = normalised.indexOf(origin);
    if (first !== -1) {
      throw fail(
        'VALIDATION_FAILED',
        `${at}endpoints[${index}]: duplicate of ${at}endpoints[${first}] (${origin})`,
      );
    }
    normalised.push(origin);
  });
  return { version, endpoints: normalised };
}

/**
 * Normalises an upstream endpoint to its origin (`http://host[:port]`, default port omitted).
 * Only absolute http(s) URLs with a host and no credentials, query, fragment or path are allowed.
 */
export function normaliseEndpoint(endpoint: unknown, field: string): string {
  if (typeof endpoint !== 'string') {
    throw fail('VALIDATION_FAILED', `${field}: must be a string`);
  }
  if (endpoint.length > MAX_ENDPOINT_LENGTH) {
    throw fail('VALIDATION_FAILED', `${field}: must be at most ${MAX_ENDPOINT_LENGTH} characters`);
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw fail('VALIDATION_FAILED', `${field}: ${echo(endpoint)} is not an absolute URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw fail('VALIDATION_FAILED', `${field}: must be an http:// or https:// URL`);
  }
  if (url.hostname === '') {
    throw fail('VALIDATION_FAILED', `${field}: must have a host`);
  }
  if (url.username !== '' || url.password !== '') {
    throw fail('VALIDATION_FAILED', `${field}: must not contain credentials`);
  }
  // The parser drops an empty `?` or `#`, so look at the raw text too.
  if (url.search !== '' || url.hash !== '' || endpoint.includes('?') || endpoint.includes('#')) {
    throw fail('VALIDATION_FAILED', `${field}: must not have a query or fragment`);
  }
  if (url.pathname !== '/' && url.pathname !== '') {
    throw fail('VALIDATION_FAILED', `${field}: must not have a path (got ${echo(url.pathname)})`);
  }
  return url.origin;
}

/** Deep-freezes a table in place (table, pools, each pool, endpoints, weights) and returns it. */
export function freezeTable(t: RoutingTable): RoutingTable {
  for (const spec of Object.values(t.pools)) {
    Object.freeze(spec.endpoints);
    Object.freeze(spec);
  }
  Object.freeze(t.pools);
  Object.freeze(t.weights);
  for (const rule of t.rules) freezeRule(rule);
  Object.freeze(t.rules);
  if (t.mirror !== undefined) freezeMirror(t.mirror);
  return Object.freeze(t);
}

// ---------------------------------------------------------------------------------------------

function freezeRule(rule: RoutingRule): void {
  for (const m of rule.match) Object.freeze(m);
  Object.freeze(rule.match);
  Object.freeze(rule);
}

function checkBasisPoints(value: unknown, path: string): number {
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 0 ||
    value > TOTAL_BASIS_POINTS
  ) {
    throw fail('VALIDATION_FAILED', `${path}: must be an integer 0..${TOTAL_BASIS_POINTS}`);
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Runs a zod schema and turns its issues into one VALIDATION_FAILED with field paths. */
function parseWithSchema<T>(schema: z.ZodType<T>, input: unknown, root: string, prefix = ''): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const messages = new Set<string>();
  for (const issue of result.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        messages.add(`${formatPath(root, prefix, [...issue.path, key])}: unknown field`);
      }
    } else {
      messages.add(`${formatPath(root, prefix, issue.path)}: ${issue.message}`);
    }
  }
  throw new SwitchyardError('VALIDATION_FAILED', [...messages].slice(0, 5).join('; '));
}

function formatPath(root: string, prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? echoKey(String(segment)) : `.${echoKey(String(segment))}`;
  }
  return out === '' ? root : out;
}

/** A key as shown in a path: untrusted keys are truncated and quoted when odd. */
function echoKey(key: string): string {
  if (/^[A-Za-z_$][\w$-]{0,63}$/.test(key)) return key;
  return echo(key);
}

/** An untrusted value as shown in a message: cut, quoted, and without credentials. */
function echo(value: string): string {
  return JSON.stringify(redactText(value, MAX_ECHO_LENGTH));
}
