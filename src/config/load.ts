/**
 * Loads configuration: flags > environment > config file > defaults (SPEC §1). Validates once,
 * reports every problem with its field path, and returns a deep-frozen Config.
 * The only module that reads process.env (it is passed in, so tests can supply their own).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { configSchema, type Config } from './schema.js';

/**
 * Thrown for invalid configuration; main.ts prints `message` and exits 2. Each problem starts
 * with the field as the user gave it: flag, environment variable or config-file key.
 */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Kind = 'string' | 'duration' | 'boolean' | 'integer' | 'number' | 'list';

/** Every settable key with its kind. Secrets are absent: they come from the environment only. */
const KEYS: Record<string, Kind> = {
  listen: 'string',
  adminListen: 'string',
  adminAllowedHosts: 'list',
  redis: 'string',
  namespace: 'string',
  rolloutLease: 'duration',
  drainTimeout: 'duration',
  drainSpread: 'duration',
  shutdownDelay: 'duration',
  shutdownTimeout: 'duration',
  upstreamTimeout: 'duration',
  connectTimeout: 'duration',
  upstreamKeepAliveTimeout: 'duration',
  upstreamConnections: 'integer',
  healthCheckPath: 'string',
  healthCheckInterval: 'duration',
  healthCheckTimeout: 'duration',
  healthyThreshold: 'integer',
  unhealthyThreshold: 'integer',
  ejectionThreshold: 'integer',
  ejectionDuration: 'duration',
  maxEjectionDuration: 'duration',
  retryBudgetPercent: 'integer',
  retryBudgetMin: 'integer',
  stickyKey: 'string',
  trustedProxies: 'list',
  upstreamHeader: 'boolean',
  keepAliveTimeout: 'duration',
  headersTimeout: 'duration',
  requestTimeout: 'duration',
  stateFile: 'string',
  metricsAuth: 'boolean',
  logLevel: 'string',
  buildSha: 'string',
  mirrorConcurrency: 'integer',
  mirrorMaxBodyBytes: 'integer',
  mirrorTimeout: 'duration',
  accessLog: 'string',
  accessLogSample: 'number',
  workers: 'string',
};

const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const envName = (k: string): string => `SWITCHYARD_${kebab(k).replace(/-/g, '_').toUpperCase()}`;

/** Parses `NAME=VERSION@URL[,URL...]`. */
export function parsePoolFlag(value: string): {
  name: string;
  version: string;
  endpoints: string[];
} {
  const m = /^([^=]+)=([^@]+)@(.+)$/.exec(value);
  const endpoints = m ? (m[3] as string).split(',').filter((s) => s !== '') : [];
  if (!m || endpoints.length === 0) throw new Error(`"${value}" is not NAME=VERSION@URL[,URL...]`);
  return { name: m[1] as string, version: m[2] as string, endpoints };
}

function coerce(kind: Kind, raw: string, field: string, problems: string[]): unknown {
  switch (kind) {
    case 'boolean':
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      problems.push(`${field}: "${raw}" is not a boolean (true or false)`);
      return undefined;
    case 'integer':
      if (/^\d+$/.test(raw)) return Number(raw);
      problems.push(`${field}: "${raw}" is not a non-negative integer`);
      return undefined;
    case 'number':
      if (/^\d+(?:\.\d+)?$/.test(raw)) return Number(raw);
      problems.push(`${field}: "${raw}" is not a non-negative number`);
      return undefined;
    case 'list':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    default:
      return raw;
  }
}

/** Converts a config file's `pools` (mapping NAME -> {version, endpoints}, or a list) to a list. */
function normaliseFilePools(pools: unknown): unknown {
  if (pools && typeof pools === 'object' && !Array.isArray(pools)) {
    return Object.entries(pools as Record<string, unknown>).map(([name, spec]) => ({
      name,
      ...(spec && typeof spec === 'object' ? spec : { version: spec }),
    }));
  }
  return pools;
}

function readConfigFile(path: string, problems: string[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`config: cannot read ${path}: ${(err as Error).message}`);
    return {};
  }
  try {
    const parsed: unknown = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
    if (parsed === null || parsed === undefined) return {};
    if (typeof parsed !== 'object' || Array.isArray(parsed)) {
      problems.push(`config: ${path} must hold a mapping of settings`);
      return {};
    }
    const out = { ...(parsed as Record<string, unknown>) };
    if ('pools' in out) out.pools = normaliseFilePools(out.pools);
    for (const secret of ['adminToken', 'overrideToken', 'webhookSecret']) {
      if (secret in out) {
        problems.push(`${secret}: secrets come from the environment only, not from ${path}`);
        delete out[secret];
      }
    }
    return out;
  } catch (err) {
    problems.push(`config: ${path} is not valid JSON/YAML: ${(err as Error).message}`);
    return {};
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Builds the configuration for `switchyard proxy` from argv (after the sub-command), the
 * environment and the config file it names. Throws ConfigError listing every problem.
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Config {
  const problems: string[] = [];
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {
    config: { type: 'string' },
    pool: { type: 'string', multiple: true },
  };
  for (const [key, kind] of Object.entries(KEYS)) {
    options[kebab(key)] = { type: 'string' };
    if (kind === 'boolean') options[`no-${kebab(key)}`] = { type: 'boolean' };
  }
  let values: Record<string, string | boolean | Array<string | boolean> | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new ConfigError([`flags: ${(err as Error).message}`]);
  }

  const configFlag = values.config as string | undefined;
  if (configFlag === '') {
    // An empty flag is a mistake (an unset shell variable in `--config=$FILE`), not "no file":
    // reading nothing would silently start a different proxy (the demo, or no pools).
    problems.push('--config: needs a file path');
  }
  // An empty SWITCHYARD_CONFIG means unset, as for every other variable.
  const configEnv = env.SWITCHYARD_CONFIG === '' ? undefined : env.SWITCHYARD_CONFIG;
  const configPath = configFlag === '' ? undefined : (configFlag ?? configEnv);
  const merged: Record<string, unknown> =
    configPath === undefined ? {} : readConfigFile(configPath, problems);
  // Where each key's value came from when the user gave it as a flag or environment variable, so
  // a problem names what they wrote (`--drain-timeout`), not the schema key. File values have no
  // entry: their file key is what the user wrote.
  const sources = new Map<string, string>();
  const set = (key: string, value: unknown, source: string): void => {
    merged[key] = value;
    sources.set(key, source);
  };

  // environment
  for (const [key, kind] of Object.entries(KEYS)) {
    const raw = env[envName(key)];
    if (raw !== undefined && raw !== '') {
      set(key, coerce(kind, raw, envName(key), problems), envName(key));
    }
  }
  if (env.REDIS_URL && !env.SWITCHYARD_REDIS) set('redis', env.REDIS_URL, 'REDIS_URL');
  if (env.LOG_LEVEL && !env.SWITCHYARD_LOG_LEVEL) set('logLevel', env.LOG_LEVEL, 'LOG_LEVEL');
  // SWITCHYARD_POOL follows the flag-to-env rule of SPEC §1; SWITCHYARD_POOLS is an alias.
  // Either holds one or more NAME=VERSION@URL[,URL...] separated by white space.
  for (const name of ['SWITCHYARD_POOL', 'SWITCHYARD_POOLS'] as const) {
    const raw = env[name];
    if (raw) {
      set('pools', poolFlags(raw.split(/\s+/).filter(Boolean), name, problems), name);
    }
  }
  if (env.SWITCHYARD_ADMIN_TOKEN) {
    set('adminToken', env.SWITCHYARD_ADMIN_TOKEN, 'SWITCHYARD_ADMIN_TOKEN');
  }
  if (env.SWITCHYARD_OVERRIDE_TOKEN) {
    set('overrideToken', env.SWITCHYARD_OVERRIDE_TOKEN, 'SWITCHYARD_OVERRIDE_TOKEN');
  }
  if (env.SWITCHYARD_WEBHOOK_SECRET) {
    set('webhookSecret', env.SWITCHYARD_WEBHOOK_SECRET, 'SWITCHYARD_WEBHOOK_SECRET');
  }

  // flags
  for (const [key, kind] of Object.entries(KEYS)) {
    const flag = `--${kebab(key)}`;
    const raw = values[kebab(key)];
    if (typeof raw === 'string') set(key, coerce(kind, raw, flag, problems), flag);
    if (kind === 'boolean' && values[`no-${kebab(key)}`] === true) {
      set(key, false, `--no-${kebab(key)}`);
    }
  }
  const poolValues = values.pool as string[] | undefined;
  if (poolValues && poolValues.length > 0) {
    set('pools', poolFlags(poolValues, '--pool', problems), '--pool');
  }

  const result = configSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        // Only a config file can hold an unknown key: flags and variables are read by name.
        const where =
          issue.path.length > 0 ? fieldName(issue.path, sources) : `config file ${configPath}`;
        const known = issue.path.length === 0 ? Object.keys(configSchema.shape) : [];
        for (const key of issue.keys) {
          const near = closestKey(key, known);
          problems.push(
            `${where}: unknown setting "${key}"${near === undefined ? '' : ` (did you mean "${near}"?)`}`,
          );
        }
        continue;
      }
      problems.push(`${fieldName(issue.path, sources)}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  return deepFreeze(result.data);
}

/**
 * Names the field of a schema issue as the user wrote it: the flag or environment variable that
 * set its top-level key, else the file key path (`pools.0`). A pool's position in a flag or
 * variable is left out: every pool problem names the pool or its value.
 */
function fieldName(path: readonly PropertyKey[], sources: ReadonlyMap<string, string>): string {
  const [key, ...rest] = path;
  if (key === undefined) return '(root)';
  const source = sources.get(String(key));
  if (source === undefined) return path.map(String).join('.');
  const tail = key === 'pools' ? rest.slice(1) : rest;
  return [source, ...tail.map(String)].join(': ');
}

/**
 * The known key a mistyped one most likely meant: the same apart from case, `-` and `_`
 * (`drain-timeout`, `drain_timeout`), else at most two edits away. undefined when none is close.
 */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const plain = (k: string): string => k.replace(/[-_]/g, '').toLowerCase();
  const exact = known.find((k) => plain(k) === plain(key));
  if (exact !== undefined) return exact;
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(plain(k), plain(key));
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance (small strings: config keys). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(
        (prev[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (prev[j - 1] as number) + cost,
      );
    }
    prev = row;
  }
  return prev[b.length] as number;
}

/** Parses pool flags; a malformed one is reported and left out (not reported again by the schema). */
function poolFlags(values: readonly string[], field: string, problems: string[]): unknown[] {
  return values.flatMap((value) => {
    try {
      return [parsePoolFlag(value)];
    } catch (err) {
      problems.push(`${field}: ${(err as Error).message}`);
      return [];
    }
  });
}

/** Builds a Config from an object (tests, the demo), with defaults applied. */
export function configFrom(input: Record<string, unknown>): Config {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
    );
  }
  return deepFreeze(result.data);
}

/** Value placeholders in `switchyard proxy --help`; other keys show their kind's. */
const HELP_VALUE: Readonly<Record<string, string>> = {
  listen: 'HOST:PORT',
  adminListen: 'HOST:PORT',
  adminAllowedHosts: 'NAME[,NAME...]',
  redis: 'URL',
  namespace: 'NS',
  healthCheckPath: 'PATH',
  stickyKey: 'cookie:NAME|header:NAME|client-address',
  trustedProxies: 'IP[,IP...]',
  stateFile: 'FILE',
  logLevel: 'LEVEL',
  buildSha: 'SHA',
  accessLog: 'stdout|FILE',
  accessLogSample: '0..1',
  workers: 'N|auto',
};
const KIND_VALUE: Readonly<Record<Kind, string>> = {
  string: 'VALUE',
  duration: 'DURATION',
  boolean: 'true|false',
  integer: 'N',
  number: 'N',
  list: 'A[,B...]',
};

/** Environment variables read besides `SWITCHYARD_<KEY>` (which wins over them). */
const HELP_ENV_ALIASES: Readonly<Record<string, string>> = {
  redis: 'REDIS_URL',
  logLevel: 'LOG_LEVEL',
};

/**
 * The character rule of both tokens, checked at start-up: a token with other characters (which
 * earlier versions took) exits 2, so it has to be rotated before upgrading.
 */
const TOKEN_RULE =
  '16+ characters of A-Z a-z 0-9 - . _ ~ + /, optionally ending in = (RFC 6750 b64token); others exit 2';

/** One line per setting for `switchyard proxy --help`; a setting missing here is still listed. */
const HELP_MEANING: Readonly<Record<string, string>> = {
  listen: 'proxy address (IPv6 as [::1]:8080)',
  adminListen: 'admin API address; a non-loopback one needs SWITCHYARD_ADMIN_TOKEN',
  adminAllowedHosts:
    'names the admin API answers to besides its own addresses (others: 421, DNS rebinding)',
  redis: 'control store shared by replicas (absent: in-memory store)',
  namespace: 'replicas with the same namespace share one table',
  rolloutLease: 'with Redis, one replica drives a rollout under this lease; another takes over',
  drainTimeout: 'long-lived connections to a retired endpoint stay open at least this long',
  drainSpread: '...then close at a random moment within this window',
  shutdownDelay: 'after SIGTERM, keep serving (with /readyz 503) this long',
  shutdownTimeout: 'hard deadline of a graceful shutdown',
  upstreamTimeout: 'wait for upstream response headers, then 504 UPSTREAM_TIMEOUT',
  connectTimeout: 'wait for an upstream TCP connection',
  upstreamKeepAliveTimeout: "idle upstream sockets are closed after this (keep below the app's)",
  upstreamConnections: 'cap on concurrent connections per upstream endpoint',
  healthCheckPath: 'active health check path on every endpoint',
  healthCheckInterval: 'time between checks of one endpoint; 0 turns active checks off',
  healthCheckTimeout: 'a check that takes longer fails',
  healthyThreshold: 'passing checks in a row that bring a down endpoint back',
  unhealthyThreshold: 'failing checks in a row that take an endpoint down',
  ejectionThreshold: 'failed requests in a row that eject an endpoint; 0 never',
  ejectionDuration: 'first ejection; doubles on each repeat...',
  maxEjectionDuration: '...up to this',
  retryBudgetPercent: "retries per second as a percentage of a pool's requests...",
  retryBudgetMin: '...or this many per second, whichever is larger',
  stickyKey: 'where the sticky request key is read',
  trustedProxies: 'peers whose incoming X-Forwarded-* headers are kept (exact IPs)',
  upstreamHeader: 'send x-switchyard-upstream: POOL@VERSION on responses',
  keepAliveTimeout: "client keep-alive; keep it above the load balancer's idle timeout",
  headersTimeout: 'a client must send its request headers within this',
  requestTimeout: 'a client must send its whole request within this',
  stateFile: 'with Redis: last good table kept here, booted from when Redis is unreachable',
  metricsAuth: 'require the admin token on /metrics too',
  logLevel: 'fatal, error, warn, info, debug, trace or silent',
  buildSha: 'reported by /healthz and /v1/state',
  mirrorConcurrency: 'mirrored requests in flight at most; more are dropped and counted',
  mirrorMaxBodyBytes: 'requests with a larger (or unsized) body are not mirrored',
  mirrorTimeout: 'a mirrored request still running after this is aborted',
  accessLog: 'one JSON line per request to stdout or a file path (default: off)',
  accessLogSample: 'share of requests written to the access log, 0..1',
  workers: 'proxy worker processes sharing the port; auto = CPUs available (cgroup-aware)',
  adminToken: `admin API bearer token, needed for a non-loopback --admin-listen; ${TOKEN_RULE}`,
  overrideToken: `enables the x-switchyard-pool override header for requests carrying it; ${TOKEN_RULE}`,
  webhookSecret:
    'signs release webhooks: X-Switchyard-Signature: sha256=<HMAC-SHA256 of the body>; 16+ characters',
};

/** A schema key's default as a user would write it (`30s`, `0.0.0.0:8080`); undefined: none. */
function helpDefault(key: string, kind: Kind | undefined): string | undefined {
  const field = (configSchema.shape as Readonly<Record<string, z.ZodType>>)[key];
  let value: unknown;
  if (field instanceof z.ZodDefault || field instanceof z.ZodPrefault) {
    value = (field.def as { defaultValue: unknown }).defaultValue;
  }
  if (value === undefined || (Array.isArray(value) && value.length === 0)) return undefined;
  if (kind === 'duration' && typeof value === 'number') {
    if (value > 0 && value % 60_000 === 0) return `${value / 60_000}m`;
    if (value > 0 && value % 1000 === 0) return `${value / 1000}s`;
    return `${value}ms`;
  }
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    return String(value);
  }
  return JSON.stringify(value);
}

/**
 * The settings part of `switchyard proxy --help`: every flag with its environment variable,
 * config-file key and default, generated from the table loadConfig reads, then the env-only
 * secrets (schema keys that have no flag).
 */
export function settingsHelp(): string {
  const out: string[] = [];
  // Flag and environment variable on one line, so `--help | grep` finds both.
  const entry = (flag: string, env: string, details: readonly string[]): void => {
    out.push(`  ${flag.padEnd(38)}  ${env}`.trimEnd(), ...details.map((d) => `      ${d}`));
  };
  out.push('settings: flag, environment variable; config-file key, default; meaning', '');
  entry('--config FILE', 'SWITCHYARD_CONFIG', ['config file, JSON or YAML']);
  entry('--pool NAME=VERSION@URL[,URL...]', 'SWITCHYARD_POOL', [
    'repeatable; the variable holds several separated by spaces (alias SWITCHYARD_POOLS)',
    'file key pools',
    'seeds the table when the store has none; the first pool gets 100 %',
  ]);
  for (const [key, kind] of Object.entries(KEYS)) {
    const flag = `--${kebab(key)} ${HELP_VALUE[key] ?? KIND_VALUE[kind]}`;
    const alias = HELP_ENV_ALIASES[key];
    const def = helpDefault(key, kind);
    const meaning = HELP_MEANING[key];
    entry(
      kind === 'boolean' ? `${flag}, --no-${kebab(key)}` : flag,
      alias === undefined ? envName(key) : `${envName(key)} or ${alias}`,
      [
        `file key ${key}${def === undefined ? '' : `, default ${def}`}`,
        ...(meaning === undefined ? [] : [meaning]),
      ],
    );
  }
  out.push('', 'secrets: environment only', '');
  for (const key of Object.keys(configSchema.shape)) {
    if (key in KEYS || key === 'pools') continue;
    const meaning = HELP_MEANING[key];
    entry(envName(key), '', meaning === undefined ? [] : [meaning]);
  }
  return `${out.join('\n')}\n`;
}
