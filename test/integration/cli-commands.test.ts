/**
 * The operator CLI as users run it: the real binary (`node dist/src/main.js`, built by `npm test`'s
 * pretest) against a real app with reference upstreams. Exit codes 0, 1, 2 and 3.
 */
import { existsSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { COLOUR_VERSIONS } from '../helpers/reference.js';
import { startColourApp, type TestApp } from '../helpers/start-app.js';
import { runSwitchyard, type ProcessRun } from '../helpers/cli-process.js';
import { closeAfterEach } from '../helpers/closers.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));
const { blue: BLUE, canary: CANARY } = COLOUR_VERSIONS;
const TOKEN = 'cli-admin-token-0123456789';

const closers = closeAfterEach();

beforeAll(() => {
  if (!existsSync(MAIN))
    throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm test does)`);
});

function world(config: Record<string, unknown> = {}): Promise<TestApp> {
  return startColourApp(closers, config);
}

type Run = ProcessRun;

/** Runs `switchyard ...args` (20 s bound). */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return runSwitchyard(args, env, 20_000);
}

/** A loopback port with nothing listening (bound, read, released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A reverse proxy that serves `target` under `prefix` (stripped before forwarding) and answers
 * 404 to anything else, as an ingress in front of the admin API would. Records what it forwarded.
 */
async function prefixProxy(
  target: string,
  prefix: string,
): Promise<{ url: string; forwarded: string[] }> {
  const forwarded: string[] = [];
  const server = createHttpServer((req, res) => {
    const path = req.url ?? '/';
    if (!path.startsWith(`${prefix}/`)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no route for ${path}`);
      return;
    }
    const rest = path.slice(prefix.length);
    forwarded.push(`${req.method} ${rest}`);
    const upstream = httpRequest(
      new URL(rest, target),
      { method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, forwarded };
}

describe('switchyard CLI (real binary)', () => {
  it('status prints a readable table of revision, pools, versions, weights and observed traffic', async () => {
    const t = await world();
    const run = await cli(['status', '--admin', t.adminUrl]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^revision 1 \(applied here: 1\), store memory up/);
    expect(run.stdout).toMatch(
      /POOL\s+VERSION\s+WEIGHT\s+OBSERVED \(60s\)\s+REQUESTS\s+HEALTHY\s+ENDPOINTS/,
    );
    expect(run.stdout).toMatch(new RegExp(`blue\\s+${BLUE}\\s+100\\.00%`));
    expect(run.stdout).toMatch(new RegExp(`canary\\s+${CANARY}\\s+0\\.00%`));

    const json = await cli(['status', '--json', '--admin', t.adminUrl]);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as {
      state: { table: { revision: number } };
      traffic: { windowMs: number };
    };
    expect(parsed.state.table.revision).toBe(1);
    expect(parsed.traffic.windowMs).toBe(60_000);
  });

  it('canary, weights, switch and rollback change the table (exit 0) as the server answers', async () => {
    const t = await world();
    const admin = ['--admin', t.adminUrl];
    const canary = await cli(['canary', '5', ...admin]);
    expect(canary).toEqual({
      code: 0,
      stdout: 'revision 2: blue 95.00%, green 0.00%, canary 5.00%\n',
      stderr: '',
    });

    const weights = await cli(['weights', 'blue=90', 'canary=10', ...admin]);
    expect(weights.stdout).toBe('revision 3: blue 90.00%, green 0.00%, canary 10.00%\n');

    const switched = await cli(['switch', 'green', '--json', ...admin]);
    expect(switched.code).toBe(0);
    expect(JSON.parse(switched.stdout)).toMatchObject({
      revision: 4,
      weights: { blue: 0, green: 10000, canary: 0 },
      updatedBy: expect.stringMatching(/^cli:/) as string,
    });

    const rolledBack = await cli(['rollback', ...admin]);
    expect(rolledBack.stdout).toBe('revision 5: blue 90.00%, green 0.00%, canary 10.00%\n');

    const setPool = await cli([
      'set-pool',
      'green',
      '--version',
      'abcdef1',
      '--endpoint',
      'http://127.0.0.1:9',
      ...admin,
    ]);
    expect(setPool.code).toBe(0);
    expect(t.app.store.current()?.pools.green).toEqual({
      version: 'abcdef1',
      endpoints: ['http://127.0.0.1:9'],
    });

    const waited = await cli([
      'canary',
      '20',
      '--pool',
      'canary',
      '--wait',
      '--timeout',
      '5s',
      ...admin,
    ]);
    expect(waited.code).toBe(0);
    expect(t.app.feed.appliedRevision()).toBe(7);

    const history = await cli(['history', '--limit', '2', '--json', ...admin]);
    const entries = (
      JSON.parse(history.stdout) as { history: Array<{ revision: number; source: string }> }
    ).history;
    expect(entries.map((e) => [e.revision, e.source])).toEqual([
      [7, 'cli'],
      [6, 'cli'],
    ]);
    const humanHistory = await cli(['history', ...admin]);
    expect(humanHistory.stdout).toMatch(/5\s+\S+\s+cli:\S+\s+cli\s+applied \(undoes 4\)/);

    const replicas = await cli(['replicas', ...admin]);
    expect(replicas.code).toBe(0);
    expect(replicas.stdout).toMatch(new RegExp(`${t.app.replicaId}\\s+7\\s+yes`));
  });

  it('exit 1 when the server refuses, with its message on stderr; nothing changes', async () => {
    const t = await world();
    const unknown = await cli(['switch', 'nope', '--admin', t.adminUrl]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^switchyard: UNKNOWN_POOL: to: unknown pool "nope"/);

    const outOfRange = await cli(['canary', '150', '--admin', t.adminUrl, '--json']);
    expect(outOfRange.code).toBe(1);
    expect(JSON.parse(outOfRange.stdout)).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });

    const live = await cli([
      'set-pool',
      'blue',
      '--version',
      'abcdef1',
      '--endpoint',
      'http://127.0.0.1:9',
      '--admin',
      t.adminUrl,
    ]);
    expect(live.code).toBe(1);
    expect(live.stderr).toContain('POOL_LIVE');
    expect(t.app.store.current()?.revision).toBe(1);
  });

  it('exit 1 on 401; the token comes from --token or SWITCHYARD_ADMIN_TOKEN (the flag wins)', async () => {
    const t = await world({ adminToken: TOKEN });
    const none = await cli(['status', '--admin', t.adminUrl]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('UNAUTHORIZED');
    expect((await cli(['status', '--admin', t.adminUrl, '--token', TOKEN])).code).toBe(0);
    expect(
      (await cli(['status'], { SWITCHYARD_ADMIN_URL: t.adminUrl, SWITCHYARD_ADMIN_TOKEN: TOKEN }))
        .code,
    ).toBe(0);
    const flagWins = await cli(['status', '--token', 'wrong-token'], {
      SWITCHYARD_ADMIN_URL: t.adminUrl,
      SWITCHYARD_ADMIN_TOKEN: TOKEN,
    });
    expect(flagWins.code).toBe(1);
  });

  it('exit 2 for a token that is not an RFC 6750 bearer token, naming --token or SWITCHYARD_ADMIN_TOKEN', async () => {
    const t = await world({ adminToken: TOKEN });
    const spaced = await cli(['status', '--admin', t.adminUrl, '--token', `${TOKEN} x`]);
    expect(spaced.code).toBe(2);
    expect(spaced.stderr).toMatch(
      /^switchyard status: --token: contains white space at character 27/,
    );
    // A newline would not even make a valid header: it must not pass for "unreachable" (exit 3).
    const newline = await cli(['status'], {
      SWITCHYARD_ADMIN_URL: t.adminUrl,
      SWITCHYARD_ADMIN_TOKEN: `${TOKEN}\n`,
    });
    expect(newline.code).toBe(2);
    expect(newline.stderr).toMatch(
      /^switchyard status: SWITCHYARD_ADMIN_TOKEN: contains white space/,
    );
    expect(newline.stderr).not.toContain(TOKEN);
  });

  it('exit 2 on usage errors, with the usage text', async () => {
    const t = await world();
    const admin = ['--admin', t.adminUrl];
    for (const args of [
      ['canary'],
      ['canary', 'five'],
      ['canary', '5', '6'],
      ['weights'],
      ['weights', 'blue:90'],
      ['switch'],
      ['set-pool', 'green', '--endpoint', 'http://127.0.0.1:9'],
      ['set-pool', 'green', '--version', 'abcdef1'],
      ['status', '--bogus'],
      ['history', '--limit', 'many'],
      ['rollback', '--timeout', '5s'],
    ]) {
      const run = await cli([...args, ...admin]);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toContain('usage: switchyard');
    }
    expect((await cli(['status', '--admin', 'not a url'])).code).toBe(2);
    expect(t.app.store.current()?.revision).toBe(1);
    const help = await cli(['status', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('exit codes');
  });

  it('--admin keeps its path prefix (admin API behind a reverse proxy), query strings included', async () => {
    const t = await world({ adminToken: TOKEN });
    const proxy = await prefixProxy(t.adminUrl, '/switchyard');
    const auth = ['--token', TOKEN];
    for (const base of [`${proxy.url}/switchyard`, `${proxy.url}/switchyard/`]) {
      const status = await cli(['status', '--admin', base, ...auth]);
      expect(status).toMatchObject({ code: 0, stderr: '' });
      expect(status.stdout).toMatch(/^revision 1 /);
    }
    const canary = await cli(['canary', '5', '--wait', '--timeout', '5s', ...auth], {
      SWITCHYARD_ADMIN_URL: `${proxy.url}/switchyard`,
    });
    expect(canary).toMatchObject({ code: 0, stderr: '' });
    const history = await cli([
      'history',
      '--limit',
      '1',
      '--json',
      '--admin',
      `${proxy.url}/switchyard`,
      ...auth,
    ]);
    expect(history.code).toBe(0);
    const entries = (JSON.parse(history.stdout) as { history: Array<{ revision: number }> })
      .history;
    expect(entries.map((e) => e.revision)).toEqual([2]);
    expect(proxy.forwarded).toEqual([
      'GET /v1/state',
      'GET /v1/traffic',
      'GET /v1/state',
      'GET /v1/traffic',
      'POST /v1/canary?wait=all&timeout=5s',
      'GET /v1/history?limit=1',
    ]);
  });

  it('exit 2 for an admin URL with a query or fragment or a non-http(s) scheme, naming its source', async () => {
    const port = await closedPort();
    for (const url of [
      `http://127.0.0.1:${port}/?x=1`,
      `http://127.0.0.1:${port}/switchyard?`,
      `http://127.0.0.1:${port}/#top`,
      `ftp://127.0.0.1:${port}`,
    ]) {
      const run = await cli(['status', '--admin', url]);
      expect({ url, code: run.code }).toEqual({ url, code: 2 });
      expect(run.stderr).toMatch(/^switchyard status: --admin: /);
      expect(run.stderr).toContain('usage: switchyard');
    }
    const fromEnv = await cli(['status'], {
      SWITCHYARD_ADMIN_URL: `http://127.0.0.1:${port}/switchyard?x=1`,
    });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toMatch(
      /^switchyard status: SWITCHYARD_ADMIN_URL: "http:\/\/127\.0\.0\.1:\d+\/switchyard\?x=1" must not have a query or fragment/,
    );
    // Credentials in the URL: refused without echoing the secret.
    const withSecret = await cli(['status', '--admin', `http://ops:s3cret-pass@127.0.0.1:${port}`]);
    expect(withSecret.code).toBe(2);
    expect(withSecret.stderr).toMatch(/^switchyard status: --admin: must not carry user:password/);
    expect(withSecret.stderr).not.toContain('s3cret-pass');
  });

  it('review: a user:password admin URL that does not parse is refused without echoing the secret', async () => {
    // Port 99999 makes the URL unparsable; the "is not a URL" message used to print it whole.
    for (const [args, env] of [
      [['status', '--admin', 'http://ops:s3cret@127.0.0.1:99999'], {}],
      [['status', '--admin', 'http://ops:s3cret@[::1'], {}],
      [['status', '--admin', 'ops:s3cret@127.0.0.1:9090'], {}],
      [['status'], { SWITCHYARD_ADMIN_URL: 'http://ops:s3cret@127.0.0.1:99999' }],
    ] as const) {
      const run = await cli([...args], env);
      expect({ args, env, code: run.code }).toEqual({ args, env, code: 2 });
      expect(run.stderr).toMatch(
        /^switchyard status: (--admin|SWITCHYARD_ADMIN_URL): must not carry user:password/,
      );
      expect(run.stderr).not.toContain('s3cret');
      expect(run.stdout).not.toContain('s3cret');
    }
  });

  it('exit 3 when the admin API cannot be reached; the flag wins over SWITCHYARD_ADMIN_URL', async () => {
    const port = await closedPort();
    const run = await cli(['status', '--admin', `http://127.0.0.1:${port}`]);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain(`cannot reach the admin API at http://127.0.0.1:${port}`);

    const t = await world();
    expect(
      (await cli(['canary', '5'], { SWITCHYARD_ADMIN_URL: `http://127.0.0.1:${port}` })).code,
    ).toBe(3);
    const flagWins = await cli(['status', '--admin', t.adminUrl], {
      SWITCHYARD_ADMIN_URL: `http://127.0.0.1:${port}`,
    });
    expect(flagWins.code).toBe(0);
  });
});
