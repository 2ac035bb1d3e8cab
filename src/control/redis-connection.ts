/**
 * Builds the store's ioredis clients from a URL:
 * - `redis://[user:pass@]host:port[/db]`, `rediss://...` (TLS) — one server;
 * - `redis+sentinel://[user:pass@]host:port/MASTER?sentinel=host2:port2&sentinelPassword=...`
 *   (`rediss+sentinel://` for TLS) — Sentinel; the URL's credentials are the master's;
 * - `redis+cluster://[user:pass@]host:port?node=host2:port2` (`rediss+cluster://`) — Cluster.
 * Every client fails fast instead of queueing (see reliability.md §3): no offline queue, no
 * resend of unfulfilled commands after a reconnect, a command timeout, RESP2 (widest support:
 * proxies and managed services that mishandle HELLO 3; replies are identical for us).
 * Credentials never reach a log line: see redactRedisError.
 */
import { Cluster, Redis } from 'ioredis';
import { stdSerializers } from 'pino';
import { fail, type SwitchyardError } from '../errors.js';
import type { RedisClient } from './redis-scripts.js';

/** What a client is used for; each role gets its own connection. */
export type RedisRole = 'writer' | 'subscriber' | 'consumer';

/** Timeouts of the store's clients. */
export interface RedisClientTimeouts {
  /** Per-command timeout in ms (a paused server never hangs a caller longer). */
  readonly commandTimeoutMs: number;
  /** TCP connect + handshake timeout in ms. */
  readonly connectTimeoutMs: number;
  /** Extra allowance for blocking reads on the consumer connection, in ms. */
  readonly blockMs: number;
}

interface HostPort {
  host: string;
  port: number;
}

/** Parsed form of the store URL. */
export type RedisTarget =
  | { readonly kind: 'standalone'; readonly url: string }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: HostPort[];
      readonly name: string;
      readonly tls: boolean;
      readonly username?: string;
      readonly password?: string;
      readonly sentinelPassword?: string;
      readonly db: number;
    }
  | {
      readonly kind: 'cluster';
      readonly nodes: HostPort[];
      readonly tls: boolean;
      readonly username?: string;
      readonly password?: string;
    };

/** Parses a store URL (see the file comment). Throws on an unsupported scheme. */
export function parseRedisUrl(url: string): RedisTarget {
  const parsed = new URL(url);
  const scheme = parsed.protocol.replace(/:$/, '');
  if (scheme === 'redis' || scheme === 'rediss') return { kind: 'standalone', url };
  const tls = scheme.startsWith('rediss+');
  const credentials = {
    ...(parsed.username !== '' ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password !== '' ? { password: decodeURIComponent(parsed.password) } : {}),
  };
  const first = hostPort(`${parsed.hostname}:${parsed.port || '26379'}`);
  if (scheme === 'redis+sentinel' || scheme === 'rediss+sentinel') {
    const [name = '', db = '0'] = parsed.pathname.replace(/^\//, '').split('/');
    if (name === '') throw new Error('redis+sentinel URL must name the master: .../MASTER');
    const sentinelPassword = parsed.searchParams.get('sentinelPassword');
    return {
      kind: 'sentinel',
      sentinels: [first, ...parsed.searchParams.getAll('sentinel').map(hostPort)],
      name,
      tls,
      db: Number(db) || 0,
      ...credentials,
      ...(sentinelPassword !== null ? { sentinelPassword } : {}),
    };
  }
  if (scheme === 'redis+cluster' || scheme === 'rediss+cluster') {
    const nodes = [
      hostPort(`${parsed.hostname}:${parsed.port || '6379'}`),
      ...parsed.searchParams.getAll('node').map(hostPort),
    ];
    return { kind: 'cluster', nodes, tls, ...credentials };
  }
  throw new Error(`unsupported Redis URL scheme ${scheme}:`);
}

/** Creates one client for `role`; it starts connecting at once. */
export function createRedisClient(
  target: RedisTarget,
  role: RedisRole,
  timeouts: RedisClientTimeouts,
  connectionName: string,
): RedisClient {
  const common = {
    protocol: 2 as const,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    maxRetriesPerRequest: 0,
    commandTimeout:
      role === 'consumer'
        ? timeouts.commandTimeoutMs + timeouts.blockMs
        : timeouts.commandTimeoutMs,
    connectTimeout: timeouts.connectTimeoutMs,
    // A demoted primary answers READONLY: reconnect (Sentinel finds the new one), never resend.
    reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 1 : false),
    connectionName,
  };
  const options = {
    ...common,
    enableOfflineQueue: false,
    // Fast first retries so a killed connection is back well within a second; capped at 2 s.
    retryStrategy: (times: number) =>
      Math.min(25 * 2 ** Math.min(times, 10), 2000) + Math.floor(Math.random() * 50),
  };
  switch (target.kind) {
    case 'standalone':
      return new Redis(target.url, options);
    case 'sentinel':
      return new Redis({
        ...options,
        sentinels: target.sentinels,
        name: target.name,
        db: target.db,
        failoverDetector: true,
        ...(target.username !== undefined ? { username: target.username } : {}),
        ...(target.password !== undefined ? { password: target.password } : {}),
        ...(target.sentinelPassword !== undefined
          ? { sentinelPassword: target.sentinelPassword }
          : {}),
        ...(target.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
        sentinelRetryStrategy: (times: number) => Math.min(100 * times, 2000),
      });
    case 'cluster':
      return new Cluster(target.nodes, {
        enableOfflineQueue: false,
        maxRedirections: 16,
        clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
        redisOptions: {
          ...common,
          ...(target.username !== undefined ? { username: target.username } : {}),
          ...(target.password !== undefined ? { password: target.password } : {}),
          ...(target.tls ? { tls: {} } : {}),
        },
      });
  }
}

/** Commands whose arguments carry credentials (AUTH user pass, HELLO 3 AUTH user pass). */
const CREDENTIAL_COMMANDS = new Set(['auth', 'hello']);

/**
 * `err` without credentials. ioredis attaches the failed command and its arguments to a reply
 * error (`err.command.args`), so a refused AUTH carries the password in clear, and a Cluster
 * error nests such an error under `lastNodeError`. Returns a copy with those arguments replaced
 * by `[redacted]` (nested errors too), or `err` itself when it holds none.
 */
export function redactRedisError<T>(err: T): T {
  return redact(err, 0);
}

function redact<T>(err: T, depth: number): T {
  if (typeof err !== 'object' || err === null || depth > 4) return err;
  const source = err as Record<string, unknown>;
  const replaced = new Map<string, unknown>();
  const command = source['command'];
  if (typeof command === 'object' && command !== null) {
    const { name, args } = command as { name?: unknown; args?: unknown };
    if (
      typeof name === 'string' &&
      CREDENTIAL_COMMANDS.has(name.toLowerCase()) &&
      Array.isArray(args) &&
      args.length > 0
    ) {
      replaced.set('command', { name, args: ['[redacted]'] });
    }
  }
  for (const key of ['lastNodeError', 'cause']) {
    const nested = source[key];
    const clean = redact(nested, depth + 1);
    if (clean !== nested) replaced.set(key, clean);
  }
  const errors = source['errors'];
  if (Array.isArray(errors)) {
    const clean = errors.map((e: unknown) => redact(e, depth + 1));
    if (clean.some((e, i) => e !== errors[i])) replaced.set('errors', clean);
  }
  if (replaced.size === 0) return err;
  const copy = Object.create(Object.getPrototypeOf(err) as object | null) as T;
  for (const key of Reflect.ownKeys(err)) {
    const descriptor = Object.getOwnPropertyDescriptor(err, key);
    if (descriptor === undefined) continue;
    if (typeof key === 'string' && replaced.has(key)) descriptor.value = replaced.get(key);
    Object.defineProperty(copy, key, descriptor);
  }
  return copy;
}

/** pino's error serializer after redactRedisError, for every logger of the Redis store. */
export function serializeRedisError(err: unknown): unknown {
  return stdSerializers.err(redactRedisError(err) as Error);
}

/**
 * Redis's reason when `err` says it refused our credentials (wrong password, unknown or
 * disabled user, a password required but none given), else null. Looks into a Cluster error's
 * `lastNodeError`. The reason is Redis's reply text, which never holds the password.
 */
export function credentialsRefused(err: unknown): string | null {
  for (let e = err, depth = 0; typeof e === 'object' && e !== null && depth < 4; depth += 1) {
    const message = (e as { message?: unknown }).message;
    if (
      typeof message === 'string' &&
      /\b(WRONGPASS|NOAUTH)\b|ERR invalid password/.test(message)
    ) {
      return message;
    }
    e = (e as { lastNodeError?: unknown }).lastNodeError;
  }
  return null;
}

/** True when the client can take commands now. */
export function isClientReady(client: RedisClient): boolean {
  return client.status === 'ready';
}

/** STORE_UNAVAILABLE (503) for a failed Redis call; `cause` is kept without credentials. */
export function storeUnavailable(cause?: unknown, readOnly = false): SwitchyardError {
  const message = readOnly
    ? 'control store unavailable'
    : 'control store unavailable: the change was not applied';
  // The cause reaches other components' logs: without credentials.
  return fail('STORE_UNAVAILABLE', message, { cause: redactRedisError(cause) });
}

/** How the first connection went: ready, credentials refused, or no answer in time. */
export type FirstConnection =
  | { readonly outcome: 'ready' }
  | { readonly outcome: 'refused'; readonly reason: string }
  | { readonly outcome: 'timeout'; readonly lastError: string | undefined };

/**
 * Resolves once `client` is ready, after `timeoutMs` (with the last connection error), or with
 * Redis's reason as soon as it refuses the credentials.
 */
export function waitReady(client: RedisClient, timeoutMs: number): Promise<FirstConnection> {
  if (client.status === 'ready') return Promise.resolve({ outcome: 'ready' });
  return new Promise((resolve) => {
    let lastError: string | undefined;
    const finish = (result: FirstConnection): void => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onError);
      resolve(result);
    };
    const timer = setTimeout(() => finish({ outcome: 'timeout', lastError }), timeoutMs);
    timer.unref();
    const onReady = (): void => finish({ outcome: 'ready' });
    const onError = (err: unknown): void => {
      const refused = credentialsRefused(err);
      if (refused !== null) finish({ outcome: 'refused', reason: refused });
      // ioredis messages name the address and the errno (ECONNREFUSED, ETIMEDOUT), never the URL.
      else lastError = err instanceof Error ? err.message : String(err);
    };
    client.once('ready', onReady);
    client.on('error', onError);
  });
}

function hostPort(text: string): HostPort {
  const match = /^\[?([^\]]*)\]?:(\d{1,5})$/.exec(text);
  if (match === null || match[1] === undefined || match[2] === undefined) {
    throw new Error(`expected host:port, got ${JSON.stringify(text)}`);
  }
  return { host: match[1], port: Number(match[2]) };
}
