/**
 * A Redis Cluster of N masters for integration tests, built from startRedisServer nodes: each on
 * a free loopback port whose Cluster bus port (port + 10000) is free too, killed in teardown.
 */
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import {
  pickFreePort,
  startRedisServer,
  type RedisCliOptions,
  type RedisServerHandle,
  type RedisServerOptions,
} from './redis-server.js';

/** A Redis Cluster started by a test: every node a master with a share of the slots. */
export interface RedisClusterHandle {
  readonly nodes: readonly RedisServerHandle[];
  /** `redis+cluster://127.0.0.1:P1?node=127.0.0.1:P2&...` (`rediss+cluster` with TLS). */
  readonly url: string;
  /** `redis-cli -c` against the first node, as admin. */
  cli(args: readonly string[], options?: RedisCliOptions): Promise<string>;
  /** Resolves once every node reports `cluster_state:ok` and knows all the others. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Kills every node and removes their directories. Idempotent. */
  close(): Promise<void>;
}

/** Options of startRedisCluster. */
export interface RedisClusterOptions extends Omit<RedisServerOptions, 'args' | 'pickPort'> {
  /** Number of masters (default 3, the minimum `redis-cli --cluster create` accepts). */
  masters?: number;
}

/** How long the nodes may take to agree that every slot is served. */
const CLUSTER_READY_TIMEOUT_MS = 10_000;

/**
 * Starts a Redis Cluster of `masters` masters and no replicas on loopback: each node on a free
 * port whose bus port (port + 10000) is free too, with its own nodes.conf in its own directory;
 * `redis-cli --cluster create` assigns the slots, and we wait for `cluster_state:ok` on every
 * node.
 */
export async function startRedisCluster(
  options: RedisClusterOptions = {},
): Promise<RedisClusterHandle> {
  const { masters = 3, ...serverOptions } = options;
  const nodeOptions: RedisServerOptions = {
    ...serverOptions,
    args: [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      'nodes.conf',
      ...(options.tls !== undefined ? ['--tls-cluster', 'yes'] : []),
    ],
    pickPort: pickClusterPort,
  };
  const started = await Promise.allSettled(
    Array.from({ length: masters }, () => startRedisServer(nodeOptions)),
  );
  const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  let closed: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closed ??= Promise.all(nodes.map((n) => n.close())).then(() => undefined);
    return closed;
  };
  const waitHealthy = async (timeoutMs = CLUSTER_READY_TIMEOUT_MS): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    const known = new RegExp(`cluster_known_nodes:${masters}\\b`);
    for (const node of nodes) {
      for (;;) {
        const info = await node.cli(['CLUSTER', 'INFO']).catch((err: unknown) => String(err));
        if (/cluster_state:ok/.test(info) && known.test(info)) break;
        if (Date.now() > deadline) throw new Error(`cluster not healthy in time: ${info}`);
        await delay(50);
      }
    }
  };
  try {
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const first = nodes[0]!;
    await first.cli([
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    await waitHealthy();
  } catch (err) {
    await close();
    throw err;
  }
  const [head, ...rest] = nodes.map((n) => `127.0.0.1:${n.port}`);
  const scheme = options.tls === undefined ? 'redis+cluster' : 'rediss+cluster';
  return {
    nodes,
    url: `${scheme}://${head}${rest.length > 0 ? `?${rest.map((r) => `node=${r}`).join('&')}` : ''}`,
    cli: (args, cliOptions) => nodes[0]!.cli(args, { cluster: true, ...cliOptions }),
    waitHealthy,
    close,
  };
}

/** Attempts to find a port whose Cluster bus port (port + 10000) is free as well. */
const CLUSTER_PORT_ATTEMPTS = 50;

/**
 * A free port whose bus port (port + 10000, fixed by Redis Cluster) was free a moment ago too;
 * a race lost on either is a bind failure the caller retries.
 */
async function pickClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < CLUSTER_PORT_ATTEMPTS; attempt += 1) {
    const port = await pickFreePort();
    if (port + 10_000 <= 65_535 && (await isPortFree(port + 10_000))) return port;
  }
  throw new Error('no free port with a free cluster bus port (port + 10000)');
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
