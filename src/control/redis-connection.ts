/**
 * Builds the store's ioredis clients from a URL:
 * - `redis://[user:pass@]host:port[/db]`, `rediss://...` (TLS) — one server;
 * - `redis+sentinel://[user:pass@]host:port/MASTER?sentinel=host2:port2&sentinelPassword=...`
 *   (`rediss+sentinel://` for TLS) — Sentinel; the URL's credentials are the master's;
 * - `redis+cluster://[user:pass@]host:port?node=host2:port2` (`rediss+cluster://`) — Cluster.
 * Every client fails fast instead of queueing (see reliability.md §3): no offline queue, no
 * resend of unfulfilled commands after a reconnect, a command timeout, RESP2 (widest support:
 * proxies and managed services that mishandle HELLO 3; replies are identical for us).
 */
import { Cluster, Redis } from 'ioredis';
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

/** True when the client can take commands now. */
export function isClientReady(client: RedisClient): boolean {
  return client.status === 'ready';
}

function hostPort(text: string): HostPort {
  const match = /^\[?([^\]]*)\]?:(\d{1,5})$/.exec(text);
  if (match === null || match[1] === undefined || match[2] === undefined) {
    throw new Error(`expected host:port, got ${JSON.stringify(text)}`);
  }
  return { host: match[1], port: Number(match[2]) };
}
