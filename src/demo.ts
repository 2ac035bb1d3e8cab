/**
 * The self-contained demo of `npm start` (SPEC §1): reference servers on loopback, each with its
 * own fake SHA, seeded as the blue, green and canary pools, plus two builds that no pool runs yet:
 * a good one for the README tour's deploy step and a bad one (30 % of its answers are 500) for
 * its rollout, which the judge aborts.
 *
 * The reference servers listen on the five ports after the proxy's (8081-8085 with the default
 * 127.0.0.1:8080), so the README's commands can be pasted as written. A port that is taken falls
 * back to one the OS picks, and the cheat sheet always prints the commands with the real ports.
 */
import { ReferenceServer } from './reference-server/reference-server.js';

/** One demo upstream: a pool of the seeded table, or a new build (`pool` undefined). */
export interface DemoUpstream {
  /** The pool it is seeded as; undefined for a new build that no pool runs yet. */
  readonly pool: string | undefined;
  readonly version: string;
  readonly url: string;
  /** Share of its answers that are 500 (the bad build); 0 for the others. */
  readonly errorRate: number;
}

/** The share of the bad build's answers that are 500: well past the judge's 20 % hard limit. */
export const DEMO_BAD_ERROR_RATE = 0.3;

/**
 * Fake immutable versions: the seeded pools, the new build the tour deploys into green, then the
 * bad build its rollout tries.
 */
const DEMO_UPSTREAMS = [
  { pool: 'blue', version: '3f2c9e1', errorRate: 0 },
  { pool: 'green', version: '9ab14d0', errorRate: 0 },
  { pool: 'canary', version: '5e7a2b8', errorRate: 0 },
  { pool: undefined, version: '1c4d2e7', errorRate: 0 },
  { pool: undefined, version: '7bad7e5', errorRate: DEMO_BAD_ERROR_RATE },
] as const;

/** The running demo upstreams. */
export interface DemoUpstreams {
  /** In DEMO_UPSTREAMS order: blue, green, canary, the new build, the bad build. */
  readonly upstreams: readonly DemoUpstream[];
  close(): Promise<void>;
}

/**
 * Starts the demo's reference servers on 127.0.0.1, on ports proxyPort+1 ... proxyPort+5 (any
 * free port when proxyPort is 0, when one is taken, or past 65535).
 */
export async function startDemoUpstreams(proxyPort: number): Promise<DemoUpstreams> {
  const servers: ReferenceServer[] = [];
  const upstreams: DemoUpstream[] = [];
  try {
    for (const [index, upstream] of DEMO_UPSTREAMS.entries()) {
      const wanted = proxyPort === 0 ? 0 : proxyPort + 1 + index;
      const server = await listenWithFallback(
        upstream.pool ?? 'green',
        upstream.version,
        upstream.errorRate,
        wanted <= 65535 ? wanted : 0,
      );
      servers.push(server);
      upstreams.push({ ...upstream, url: `http://127.0.0.1:${server.address().port}` });
    }
  } catch (err) {
    await Promise.allSettled(servers.map((s) => s.close()));
    throw err;
  }
  return {
    upstreams,
    async close() {
      await Promise.allSettled(servers.map((s) => s.close()));
    },
  };
}

/** A reference server on `port`, or on a port the OS picks when that one is in use. */
async function listenWithFallback(
  pool: string,
  version: string,
  errorRate: number,
  port: number,
): Promise<ReferenceServer> {
  const server = new ReferenceServer({ pool, version, errorRate, host: '127.0.0.1', port });
  try {
    await server.start();
    return server;
  } catch (err) {
    if (port === 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
  }
  const fallback = new ReferenceServer({ pool, version, errorRate, host: '127.0.0.1', port: 0 });
  await fallback.start();
  return fallback;
}

/** `--pool NAME=VERSION@URL` flags seeding the table with the demo's pools. */
export function demoPoolFlags(demo: DemoUpstreams): string[] {
  return demo.upstreams.flatMap((u) =>
    u.pool === undefined ? [] : ['--pool', `${u.pool}=${u.version}@${u.url}`],
  );
}

/** The admin URL the CLI uses when neither --admin nor SWITCHYARD_ADMIN_URL is given. */
const CLI_DEFAULT_ADMIN_URL = 'http://127.0.0.1:9090';

/**
 * The cheat sheet printed when the demo is up: where everything listens and the README tour's
 * commands with the real addresses, so each line can be pasted as printed.
 */
export function demoCheatSheet(demo: DemoUpstreams, proxyUrl: string, adminUrl: string): string {
  // On other ports (--admin-listen) the CLI lines only work once it is told where the API is.
  const cliSetup =
    adminUrl === CLI_DEFAULT_ADMIN_URL ? '' : `  export SWITCHYARD_ADMIN_URL=${adminUrl}\n`;
  const seeded = demo.upstreams.map((u) => {
    const what =
      u.pool !== undefined
        ? `pool ${u.pool}`
        : u.errorRate > 0
          ? `bad build (${u.errorRate * 100} % 500s), for the rollout`
          : 'new build, in no pool yet';
    const share = u.pool === 'blue' ? ', 100 % of the traffic' : '';
    return `  ${u.version}  ${u.url.padEnd(24)}  ${what}${share}`;
  });
  const next = demo.upstreams.find((u) => u.pool === undefined && u.errorRate === 0);
  const bad = demo.upstreams.find((u) => u.errorRate > 0);
  const rollout =
    bad === undefined
      ? ''
      : `  npx switchyard rollout start green --version ${bad.version} --endpoint ${bad.url} --steps 20,30s,100\n`;
  const deploy =
    next === undefined
      ? ''
      : `  npx switchyard set-pool green --version ${next.version} --endpoint ${next.url}\n`;
  return `
Switchyard demo is running: proxy ${proxyUrl}, admin API ${adminUrl}
${seeded.join('\n')}

The README tour, with these addresses (in another terminal):

${cliSetup}  curl -i ${proxyUrl}/                         # answered by blue
  npx switchyard status
${deploy}  npx switchyard canary 5
  curl -s -XPOST ${adminUrl}/v1/canary -H 'content-type: application/json' -d '{"percent":50}'
  npx switchyard switch green
  npx switchyard rollback
  npx switchyard history
${rollout}
Logs: warnings and errors only (LOG_LEVEL=info for every table change). Ctrl-C stops the demo.
`;
}
