/**
 * The self-contained demo of `npm start` (SPEC §1): three reference servers on loopback, each
 * with its own fake SHA, seeded as the blue, green and canary pools.
 */
import { ReferenceServer } from './reference-server/reference-server.js';

/** Fake immutable versions of the demo pools. */
const DEMO_POOLS = [
  { name: 'blue', version: '3f2c9e1' },
  { name: 'green', version: '9ab14d0' },
  { name: 'canary', version: '5e7a2b8' },
] as const;

/** The running demo upstreams. */
export interface DemoUpstreams {
  readonly pools: ReadonlyArray<{ name: string; version: string; url: string }>;
  close(): Promise<void>;
}

/** Starts one reference server per demo pool on 127.0.0.1 (ephemeral ports). */
export async function startDemoUpstreams(): Promise<DemoUpstreams> {
  const servers: ReferenceServer[] = [];
  const pools: Array<{ name: string; version: string; url: string }> = [];
  for (const pool of DEMO_POOLS) {
    const server = new ReferenceServer({
      pool: pool.name,
      version: pool.version,
      host: '127.0.0.1',
      port: 0,
    });
    await server.start();
    servers.push(server);
    const { port } = server.address();
    pools.push({ ...pool, url: `http://127.0.0.1:${port}` });
  }
  return {
    pools,
    async close() {
      await Promise.allSettled(servers.map((s) => s.close()));
    },
  };
}

/** The admin URL the CLI uses when neither --admin nor SWITCHYARD_ADMIN_URL is given. */
const CLI_DEFAULT_ADMIN_URL = 'http://127.0.0.1:9090';

/** The cheat sheet printed when the demo is up. */
export function demoCheatSheet(proxyUrl: string, adminUrl: string): string {
  // On other ports (--admin-listen) the CLI lines only work once it is told where the API is.
  const cliSetup =
    adminUrl === CLI_DEFAULT_ADMIN_URL ? '' : `  export SWITCHYARD_ADMIN_URL=${adminUrl}\n`;
  return `
Switchyard demo is running: blue (100 %), green and canary pools on local reference servers.

  curl -i ${proxyUrl}/                                   # answered by blue
  curl -s ${adminUrl}/v1/state                           # the routing table
  curl -s -XPOST ${adminUrl}/v1/canary -H 'content-type: application/json' -d '{"percent":10}'
  curl -s -XPOST ${adminUrl}/v1/switch -H 'content-type: application/json' -d '{"to":"green"}'
  curl -s -XPOST ${adminUrl}/v1/rollback -H 'content-type: application/json'

${cliSetup}  npx switchyard status                                  # the same with the CLI
  npx switchyard canary 25
  npx switchyard switch green
  npx switchyard rollback

Ctrl-C stops it (graceful: readiness turns 503, in-flight requests finish).
`;
}
