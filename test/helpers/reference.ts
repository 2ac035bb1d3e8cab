/**
 * Test worlds for the data plane: reference upstreams and a ProxyServer built directly (no app),
 * on loopback ephemeral ports. Everything returned has close(); call it in afterEach.
 */
import { configFrom } from '../../src/config/load.js';
import { ProxyServer, type ProxyServerOptions } from '../../src/data/proxy-server.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics, type Metrics } from '../../src/observability/metrics.js';
import {
  ReferenceServer,
  type ReferenceServerOptions,
} from '../../src/reference-server/reference-server.js';
import type { RoutingTable } from '../../src/table/types.js';

/** A running reference server. */
export interface TestReference {
  readonly server: ReferenceServer;
  readonly url: string;
  readonly close: () => Promise<void>;
}

/** Starts a reference server on 127.0.0.1:0. */
export async function startReference(
  options: Omit<ReferenceServerOptions, 'host' | 'port'>,
): Promise<TestReference> {
  const server = new ReferenceServer({ ...options, host: '127.0.0.1', port: 0 });
  await server.start();
  return { server, url: server.url(), close: () => server.close() };
}

/** The versions the three-colour worlds run: fake SHAs, one per pool. */
export const COLOUR_VERSIONS = { blue: '1111111', green: '2222222', canary: '3333333' } as const;

/** Three running reference servers, one per colour, and the pools (config keys) that name them. */
export interface TestColours {
  readonly blue: TestReference;
  readonly green: TestReference;
  readonly canary: TestReference;
  /** `pools` for startApp's config: blue, green, canary in that order (blue gets 100 %). */
  readonly pools: Array<{ name: string; version: string; endpoints: string[] }>;
}

/** Starts blue, green and canary reference servers; each close() is pushed to `closers`. */
export async function startColours(closers: Array<() => unknown>): Promise<TestColours> {
  const [blue, green, canary] = await Promise.all(
    (['blue', 'green', 'canary'] as const).map((pool) =>
      startReference({ pool, version: COLOUR_VERSIONS[pool] }),
    ),
  );
  if (!blue || !green || !canary) throw new Error('startColours: a reference server is missing');
  closers.push(blue.close, green.close, canary.close);
  const pools = [blue, green, canary].map((ref, i) => {
    const name = (['blue', 'green', 'canary'] as const)[i]!;
    return { name, version: COLOUR_VERSIONS[name], endpoints: [ref.url] };
  });
  return { blue, green, canary, pools };
}

/** A deep-frozen routing table from pools `{name: {version, endpoints, weight}}`. */
export function makeTable(
  pools: Record<string, { version: string; endpoints: string[]; weight: number }>,
  revision = 1,
): RoutingTable {
  const table: RoutingTable = {
    revision,
    pools: Object.fromEntries(
      Object.entries(pools).map(([name, p]) => [
        name,
        Object.freeze({ version: p.version, endpoints: Object.freeze([...p.endpoints]) }),
      ]),
    ),
    weights: Object.fromEntries(Object.entries(pools).map(([name, p]) => [name, p.weight])),
    rules: [],
    updatedAt: new Date(0).toISOString(),
    updatedBy: 'test',
  };
  Object.freeze(table.pools);
  Object.freeze(table.weights);
  return Object.freeze(table);
}

/** A running ProxyServer (no table applied yet unless given). */
export interface TestProxy {
  readonly proxy: ProxyServer;
  readonly metrics: Metrics;
  readonly url: string;
  readonly port: number;
  readonly close: () => Promise<void>;
}

/** Starts a ProxyServer on 127.0.0.1:0 with `config` overrides (config-file keys). */
export async function startProxy(
  config: Record<string, unknown> = {},
  table?: RoutingTable,
): Promise<TestProxy> {
  const c = configFrom({ listen: '127.0.0.1:0', drainTimeout: 2_000, drainSpread: 0, ...config });
  const options: ProxyServerOptions = {
    listen: c.listen,
    stickyKey: c.stickyKey,
    trustedProxies: c.trustedProxies,
    upstreamHeader: c.upstreamHeader,
    overrideToken: c.overrideToken,
    upstreamTimeout: c.upstreamTimeout,
    connectTimeout: c.connectTimeout,
    upstreamKeepAliveTimeout: c.upstreamKeepAliveTimeout,
    upstreamConnections: c.upstreamConnections,
    keepAliveTimeout: c.keepAliveTimeout,
    headersTimeout: c.headersTimeout,
    requestTimeout: c.requestTimeout,
    drainTimeout: c.drainTimeout,
    drainSpread: c.drainSpread,
  };
  const metrics = createMetrics({ defaultMetrics: false });
  const proxy = new ProxyServer(options, { logger: createLogger({ level: 'silent' }), metrics });
  await proxy.start();
  if (table) proxy.applyTable(table);
  const { port } = proxy.address();
  return { proxy, metrics, url: `http://127.0.0.1:${port}`, port, close: () => proxy.close() };
}
