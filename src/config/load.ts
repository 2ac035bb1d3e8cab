/**
 * Loads configuration: flags > environment > config file > defaults (SPEC §1). Validates once,
 * reports every problem with its field path, and returns a deep-frozen Config.
 * The only module that reads process.env (it is passed in, so tests can supply their own).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { configSchema, type Config } from './schema.js';

/** Thrown for invalid configuration; main.ts prints `message` and exits 2. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Kind = 'string' | 'duration' | 'boolean' | 'integer' | 'list';

/** Every settable key with its kind. Secrets are absent: they come from the environment only. */
const KEYS: Record<string, Kind> = {
  listen: 'string',
  adminListen: 'string',
  redis: 'string',
  namespace: 'string',
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
  if (!m) throw new Error(`"${value}" is not NAME=VERSION@URL[,URL...]`);
  return {
    name: m[1] as string,
    version: m[2] as string,
    endpoints: (m[3] as string).split(',').filter((s) => s !== ''),
  };
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
    for (const secret of ['adminToken', 'overrideToken']) {
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

  const configPath = (values.config as string | undefined) ?? env.SWITCHYARD_CONFIG;
  const merged: Record<string, unknown> = configPath ? readConfigFile(configPath, problems) : {};

  // environment
  for (const [key, kind] of Object.entries(KEYS)) {
    const raw = env[envName(key)];
    if (raw !== undefined && raw !== '') merged[key] = coerce(kind, raw, envName(key), problems);
  }
  if (env.REDIS_URL && !env.SWITCHYARD_REDIS) merged.redis = env.REDIS_URL;
  if (env.LOG_LEVEL && !env.SWITCHYARD_LOG_LEVEL) merged.logLevel = env.LOG_LEVEL;
  // SWITCHYARD_POOL follows the flag-to-env rule of SPEC §1; SWITCHYARD_POOLS is an alias.
  // Either holds one or more NAME=VERSION@URL[,URL...] separated by white space.
  for (const name of ['SWITCHYARD_POOL', 'SWITCHYARD_POOLS'] as const) {
    const raw = env[name];
    if (raw) {
      merged.pools = raw
        .split(/\s+/)
        .filter(Boolean)
        .map((p) => poolFlag(p, name, problems));
    }
  }
  if (env.SWITCHYARD_ADMIN_TOKEN) merged.adminToken = env.SWITCHYARD_ADMIN_TOKEN;
  if (env.SWITCHYARD_OVERRIDE_TOKEN) merged.overrideToken = env.SWITCHYARD_OVERRIDE_TOKEN;

  // flags
  for (const [key, kind] of Object.entries(KEYS)) {
    const raw = values[kebab(key)];
    if (typeof raw === 'string') merged[key] = coerce(kind, raw, `--${kebab(key)}`, problems);
    if (kind === 'boolean' && values[`no-${kebab(key)}`] === true) merged[key] = false;
  }
  const poolFlags = values.pool as string[] | undefined;
  if (poolFlags && poolFlags.length > 0) {
    merged.pools = poolFlags.map((p) => poolFlag(p, '--pool', problems));
  }

  const result = configSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const path = issue.path.length > 0 ? issue.path.join('.') : '(root)';
      problems.push(`${path}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  return deepFreeze(result.data);
}

function poolFlag(value: string, field: string, problems: string[]): unknown {
  try {
    return parsePoolFlag(value);
  } catch (err) {
    problems.push(`${field}: ${(err as Error).message}`);
    return undefined;
  }
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
