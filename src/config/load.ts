/**
 * Loads configuration: flags > environment > config file > defaults (SPEC §1). Validates once,
 * reports every problem with its field path, and returns a deep-frozen Config.
 * The only module that reads process.env (it is passed in, so tests can supply their own).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
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
