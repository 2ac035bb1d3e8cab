/**
 * The one configuration schema (SPEC §1), defaults inside. Every key is also a flag
 * (`--kebab-case`) and an environment variable (`SWITCHYARD_UPPER_SNAKE`).
 */
import { z } from 'zod';
import { isSwitchyardError } from '../errors.js';
import { bearerTokenProblem } from '../lib/bearer-token.js';
import { isLoopbackHost } from '../lib/loopback.js';
import { isPoolName, parsePoolSpecFields } from '../table/validate.js';

/** Longest duration a Node timer honours (about 24.8 days); longer ones fire at once. */
const MAX_DURATION_MS = 2 ** 31 - 1;

/** Parses `HOST:PORT` (IPv6 as `[::1]:8080`). */
export const hostPort = z.string().transform((value, ctx) => {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not HOST:PORT (e.g. 127.0.0.1:8080)` });
    return z.NEVER;
  }
  return { host: (m[1] ?? m[2]) as string, port };
});

/** A host and port to listen on. */
export type ListenAddress = { host: string; port: number };

/** Parses a duration: `500ms`, `30s`, `2m`, or a number of milliseconds. */
export const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0 && value <= MAX_DURATION_MS) return value;
  } else {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
    if (m) {
      const n = Number(m[1]);
      const ms = m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n;
      if (Number.isFinite(ms) && ms <= MAX_DURATION_MS) return Math.round(ms);
    }
  }
  ctx.addIssue({
    code: 'custom',
    message: `${JSON.stringify(value)} is not a duration (e.g. 500ms, 30s, 2m or milliseconds, at most 24 days)`,
  });
  return z.NEVER;
});

/**
 * A pool to seed the table with. Checked with the same validators as run-time changes, so a bad
 * pool stops start-up even when the store already has a table (and would not be seeded).
 */
const poolEntry = z
  .object({
    name: z.string(),
    version: z.string(),
    endpoints: z.array(z.string()).min(1),
  })
  .transform((pool, ctx) => {
    if (!isPoolName(pool.name)) {
      ctx.addIssue({
        code: 'custom',
        message: `name: "${pool.name}" must match [a-z][a-z0-9-]{0,31}`,
      });
      return z.NEVER;
    }
    try {
      const spec = parsePoolSpecFields(pool.version, pool.endpoints, '');
      return { name: pool.name, version: spec.version, endpoints: [...spec.endpoints] };
    } catch (err) {
      if (!isSwitchyardError(err)) throw err;
      ctx.addIssue({ code: 'custom', message: `${pool.name}: ${err.message}` });
      return z.NEVER;
    }
  });

/** How the sticky request key is read: `cookie:NAME`, `header:NAME` or `client-address`. */
export const stickyKey = z
  .string()
  .regex(
    /^(cookie:[!#$%&'*+\-.^_`|~0-9A-Za-z]+|header:[!#$%&'*+\-.^_`|~0-9A-Za-z]+|client-address)$/,
    'must be cookie:NAME, header:NAME or client-address',
  )
  .transform((v) => {
    if (v === 'client-address') return { source: 'client-address' as const, name: '' };
    const [source, name] = v.split(':') as ['cookie' | 'header', string];
    return { source, name: source === 'header' ? name.toLowerCase() : name };
  });

/**
 * A name the admin API answers to besides its own addresses (`adminAllowedHosts`): a DNS name as
 * clients write it in the URL, without a port (any port matches). Lowercased.
 */
const HOST_NAME_RE =
  /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;
const allowedHostName = z.string().transform((raw, ctx) => {
  const name = raw.trim().toLowerCase();
  if (name.length > 253 || !HOST_NAME_RE.test(name)) {
    ctx.addIssue({
      code: 'custom',
      message: `${JSON.stringify(raw)} is not a host name such as admin.example.com (no scheme, port, path or wildcard)`,
    });
    return z.NEVER;
  }
  return name;
});

/** Most worker processes `workers` accepts: far above any host's cores, below a fork bomb. */
export const MAX_WORKERS = 256;

/** `workers`: a whole number 1..MAX_WORKERS or `auto` (resolved at start, see cluster/cpus.ts). */
const workersSetting = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (value === 'auto') return 'auto' as const;
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (Number.isInteger(n) && n >= 1 && n <= MAX_WORKERS) return n;
  ctx.addIssue({
    code: 'custom',
    message: `${JSON.stringify(value)} is not a worker count (1 to ${MAX_WORKERS}, or auto)`,
  });
  return z.NEVER;
});

/** The configuration schema with defaults. */
/**
 * Both secrets: 16+ characters an HTTP header carries unchanged (RFC 6750 b64token). A token with
 * white space (a secret file's newline) could never match, since parsers trim header values.
 */
const secretToken = z
  .string()
  .min(16, 'must be at least 16 characters')
  .superRefine((token, ctx) => {
    const problem = bearerTokenProblem(token);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
  });

export const configSchema = z
  .object({
    listen: hostPort.prefault('0.0.0.0:8080'),
    adminListen: hostPort.prefault('127.0.0.1:9090'),
    /**
     * Host names the admin API answers to besides its own addresses (IP literals, and `localhost`
     * when bound to loopback or all interfaces); other `Host` values get 421 (DNS rebinding).
     */
    adminAllowedHosts: z.array(allowedHostName).default([]),
    redis: z.string().url().optional(),
    namespace: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 _ . -')
      .default('default'),
    pools: z.array(poolEntry).default([]),
    /**
     * With Redis, the lease under which one replica drives a rollout (SPEC §9); another takes over
     * within about this long after the driver dies.
     */
    rolloutLease: duration.refine((ms) => ms >= 500, 'must be at least 500ms').default(5_000),
    drainTimeout: duration.default(30_000),
    drainSpread: duration.default(5_000),
    shutdownDelay: duration.default(5_000),
    shutdownTimeout: duration.default(30_000),
    /** Time to wait for upstream response headers before answering 504. */
    upstreamTimeout: duration.default(30_000),
    /** Time to wait for an upstream TCP connection. */
    connectTimeout: duration.default(5_000),
    /** Idle time after which the proxy closes unused upstream sockets (keep below the upstream's). */
    upstreamKeepAliveTimeout: duration.default(4_000),
    /** Max concurrent connections per upstream endpoint. */
    upstreamConnections: z.number().int().min(1).max(100_000).default(256),
    /**
     * Path of the active health check sent to every endpoint. Connection failures, timeouts and
     * 5xx fail a check; any other status passes (an app without the path still proves it is up).
     */
    healthCheckPath: z
      .string()
      .regex(/^\/[^\s]*$/, 'must be a path starting with / (no spaces)')
      .default('/healthz'),
    /** Time between two active checks of one endpoint; 0 turns active checks off. */
    healthCheckInterval: duration.default(2_000),
    /** A check not answered within this time fails. */
    healthCheckTimeout: duration.refine((ms) => ms > 0, 'must be more than 0').default(1_000),
    /** Passing checks in a row that bring a down endpoint back. */
    healthyThreshold: z.number().int().min(1).max(100).default(2),
    /** Failing checks in a row that take an endpoint down. */
    unhealthyThreshold: z.number().int().min(1).max(100).default(3),
    /** Failed requests in a row (connection failures or 5xx) that eject an endpoint; 0 = never. */
    ejectionThreshold: z.number().int().min(0).max(10_000).default(5),
    /** First ejection length; doubled on each repeat up to maxEjectionDuration. */
    ejectionDuration: duration.default(10_000),
    maxEjectionDuration: duration.default(120_000),
    /** Retries allowed per second as a percentage of a pool's requests (retry budget). */
    retryBudgetPercent: z.number().int().min(0).max(100).default(20),
    /** Retries per second a pool may always make, whatever its request rate. */
    retryBudgetMin: z.number().int().min(0).max(100_000).default(10),
    stickyKey: stickyKey.prefault('cookie:sy_id'),
    /** Addresses (exact IPs) whose incoming X-Forwarded-* headers are kept. */
    trustedProxies: z.array(z.string()).default([]),
    /** Send `x-switchyard-upstream: POOL@VERSION` on responses. */
    upstreamHeader: z.boolean().default(true),
    /** Client keep-alive timeout: keep it above the load balancer's idle timeout. */
    keepAliveTimeout: duration.default(65_000),
    headersTimeout: duration.default(20_000),
    requestTimeout: duration.default(300_000),
    /** File where the last good table is kept, to boot from when Redis is unreachable. */
    stateFile: z.string().optional(),
    /** Require the admin token on GET /metrics too. */
    metricsAuth: z.boolean().default(false),
    logLevel: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info'),
    /** Build identifier reported by /healthz (the image's git SHA). */
    buildSha: z.string().max(80).default('dev'),
    /** Mirrored requests (SPEC §12) in flight at most; a copy beyond it is dropped and counted. */
    mirrorConcurrency: z.number().int().min(1).max(10_000).default(64),
    /** Largest request body a mirror copies (held in memory); larger or unsized: not mirrored. */
    mirrorMaxBodyBytes: z
      .number()
      .int()
      .min(0)
      .max(16 * 1024 * 1024)
      .default(64 * 1024),
    /** A mirrored request still running after this is aborted (its answer is never waited for). */
    mirrorTimeout: duration.refine((ms) => ms > 0, 'must be more than 0').default(10_000),
    /** Access log: `stdout` or a file path (appended); absent: off. One JSON line per request. */
    accessLog: z.string().min(1, 'must be stdout or a file path').optional(),
    /** Share of requests written to the access log (0..1; 0.1 = one in ten). */
    accessLogSample: z
      .number()
      .min(0, 'must be a number 0..1')
      .max(1, 'must be a number 0..1')
      .default(1),
    /**
     * Proxy worker processes (SPEC §13): 1 serves in this process; N > 1 forks N workers that
     * share the proxy port; `auto` is the CPUs this process may use (cgroup-aware).
     */
    workers: workersSetting.default(1),
    /** Secret: from the environment only (SWITCHYARD_ADMIN_TOKEN). An RFC 6750 bearer token. */
    adminToken: secretToken.optional(),
    /** Secret: from the environment only (SWITCHYARD_OVERRIDE_TOKEN); sent as x-switchyard-token. */
    overrideToken: secretToken.optional(),
    /** Secret: from the environment only (SWITCHYARD_WEBHOOK_SECRET); signs release webhooks. */
    webhookSecret: z
      .string()
      .min(16, 'must be at least 16 characters (e.g. openssl rand -hex 32)')
      .max(1024)
      .optional(),
  })
  .strict()
  .superRefine(
    (config, ctx) => {
      // Checked here, before anything starts, so a refused start-up has written nothing anywhere.
      // Runs even when a field failed (so every problem is reported at once): a failed field
      // holds its raw input here, hence the shape checks.
      const admin = config.adminListen as unknown;
      const host =
        typeof admin === 'object' && admin !== null
          ? (admin as { host?: unknown }).host
          : undefined;
      if (config.adminToken === undefined && typeof host === 'string' && !isLoopbackHost(host)) {
        ctx.addIssue({
          code: 'custom',
          path: ['adminListen'],
          message: `${host} is not a loopback address: set SWITCHYARD_ADMIN_TOKEN to expose the admin API`,
        });
      }
      const pools = config.pools as unknown;
      if (!Array.isArray(pools)) return;
      const names = new Set<string>();
      pools.forEach((pool: unknown, index) => {
        const name =
          typeof pool === 'object' && pool !== null ? (pool as { name?: unknown }).name : undefined;
        if (typeof name !== 'string') return;
        if (names.has(name)) {
          ctx.addIssue({ code: 'custom', path: ['pools', index], message: `${name}: named twice` });
        }
        names.add(name);
      });
    },
    { when: () => true },
  );

/** The validated, frozen configuration. */
export type Config = z.output<typeof configSchema>;
/** What a config file, the environment or flags may contain before validation. */
export type ConfigInput = z.input<typeof configSchema>;
