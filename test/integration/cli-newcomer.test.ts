/**
 * Issue 11, the CLI parts ("a CLI that helps"): --version, per-command help, did you mean,
 * one-line usage errors, remove-pool, hints on refusals, lowercase pool names, shell completion,
 * the actor header, and status/history that explain themselves. The real binary
 * (`node dist/src/main.js`, built by `npm test`'s pretest) against real apps and servers.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { hostname, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/commands.js';
import { runProcess, type ProcessRun } from '../helpers/cli-process.js';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { startColourApp, type TestApp } from '../helpers/start-app.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist/src/main.js');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
};
const TOKEN = 'newcomer-admin-token-0123456789';

const closers = closeAfterEach();

beforeAll(() => {
  if (!existsSync(MAIN))
    throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm test does)`);
});

function world(config: Record<string, unknown> = {}): Promise<TestApp> {
  return startColourApp(closers, config);
}

type Run = ProcessRun;

/** Runs `switchyard ...args` as a child process with only PATH (and `env`) in its environment. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return run(process.execPath, [MAIN, ...args], env);
}

function run(file: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return runProcess(file, args, env, 20_000);
}

/** True when `name` runs (zsh, shellcheck are optional on a developer machine). */
async function installed(name: string): Promise<boolean> {
  return (await run('sh', ['-c', `command -v ${name}`])).code === 0;
}

/** Writes `text` to a temporary file; removed after the test. */
async function tempFile(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-cli-'));
  closers.push(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

/** An HTTP server that records every request's method, path and headers and answers `body`. */
async function capturingServer(body: unknown): Promise<{
  url: string;
  seen: Array<{ method: string; path: string; headers: IncomingHttpHeaders }>;
}> {
  const seen: Array<{ method: string; path: string; headers: IncomingHttpHeaders }> = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
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
  return { url: `http://127.0.0.1:${port}`, seen };
}

/** A loopback port with nothing listening (bound, read, released). */
async function closedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const OPERATOR_COMMANDS = COMMANDS.filter((c) => c.kind !== 'server').map((c) => c.name);

describe('issue 11: switchyard --version, help and usage errors', () => {
  it('--version and version print the package version from package.json', async () => {
    for (const args of [['--version'], ['version']]) {
      expect(await cli(args)).toEqual({
        code: 0,
        stdout: `switchyard ${PACKAGE.version}\n`,
        stderr: '',
      });
    }
    // The published package holds only dist/src besides package.json: the path works there too.
    const pack = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      HOME: process.env.HOME ?? tmpdir(),
    });
    expect(pack.code).toBe(0);
    const files = (
      JSON.parse(pack.stdout) as Array<{ files: Array<{ path: string }> }>
    )[0]?.files.map((f) => f.path);
    expect(files).toContain('package.json');
    expect(files).toContain('dist/src/cli/version.js');
  });

  it(
    "every command's --help prints its own usage, options and examples, not the general help",
    {
      timeout: 120_000,
    },
    async () => {
      const general = await cli(['--help']);
      expect(general.code).toBe(0);
      // Four commands at a time (two runs each, one Node start per run): quicker than one by one,
      // without starting 26 processes at once on a busy 2-core machine.
      const batches: string[][] = [];
      for (let i = 0; i < OPERATOR_COMMANDS.length; i += 4) {
        batches.push(OPERATOR_COMMANDS.slice(i, i + 4));
      }
      for (const batch of batches) await checkHelp(batch);
      async function checkHelp(names: readonly string[]): Promise<void> {
        await Promise.all(
          names.map(async (name) => {
            const [help, viaHelp] = await Promise.all([cli([name, '--help']), cli(['help', name])]);
            expect({ name, code: help.code, stderr: help.stderr }).toEqual({
              name,
              code: 0,
              stderr: '',
            });
            expect(help.stdout.startsWith(`usage: switchyard ${name}`)).toBe(true);
            expect(help.stdout).toContain('examples:');
            expect(help.stdout).not.toBe(general.stdout);
            // `help NAME` is the same text.
            expect(viaHelp.stdout).toBe(help.stdout);
          }),
        );
      }
      const canary = await cli(['canary', '-h']);
      expect(canary.stdout).toContain('--pool POOL');
      expect(canary.stdout).toContain('--actor NAME');
      expect(canary.stdout).not.toContain('--force');
      expect((await cli(['help', 'proxy'])).stdout).toMatch(/^usage: switchyard proxy/);
      // The general help lists every command and every operator option.
      for (const name of COMMANDS.map((c) => c.name)) expect(general.stdout).toContain(`  ${name}`);
      for (const flag of [
        '--admin',
        '--token',
        '--json',
        '--wait',
        '--timeout',
        '--expect-revision',
        '--actor',
      ])
        expect(general.stdout).toContain(flag);
    },
  );

  it('a mistyped command or option gets "did you mean" (exit 2)', async () => {
    const command = await cli(['stauts']);
    expect(command.code).toBe(2);
    expect(command.stderr).toBe(
      `switchyard: unknown command "stauts": did you mean "status"?\nrun 'switchyard --help' for the list of commands\n`,
    );
    expect((await cli(['rollbak'])).stderr).toContain('did you mean "rollback"?');
    expect((await cli(['frobnicate'])).stderr).toMatch(
      /^switchyard: unknown command "frobnicate"\n/,
    );

    const flag = await cli(['status', '--toekn', TOKEN]);
    expect(flag.code).toBe(2);
    expect(flag.stderr.split('\n')[0]).toBe(
      'switchyard status: unknown option --toekn: did you mean --token?',
    );
    const elsewhere = await cli(['canary', '5', '--force']);
    expect(elsewhere.code).toBe(2);
    expect(elsewhere.stderr.split('\n')[0]).toBe(
      'switchyard canary: --force is an option of switch, not of canary',
    );
    expect((await cli(['--versoin'])).stderr).toContain('did you mean --version?');
  });

  it('a usage error prints the problem, the one usage line and a hint; no page of help (exit 2)', async () => {
    const port = await closedPort();
    const admin = ['--admin', `http://127.0.0.1:${port}`];
    for (const [args, usage] of [
      [['canary'], 'usage: switchyard canary PERCENT [--pool POOL] [options]'],
      [['canary', 'five'], 'usage: switchyard canary PERCENT [--pool POOL] [options]'],
      [['weights', 'blue:90'], 'usage: switchyard weights POOL=PERCENT... [options]'],
      [['switch'], 'usage: switchyard switch POOL [--force] [options]'],
      [['remove-pool'], 'usage: switchyard remove-pool POOL [options]'],
      [['history', '--limit', 'many'], 'usage: switchyard history [--limit N] [options]'],
      [['status', '--token'], 'usage: switchyard status [options]'],
      [['rollback', '--timeout', '5s'], 'usage: switchyard rollback [options]'],
      [['completion', 'fish'], 'usage: switchyard completion bash|zsh'],
    ] as const) {
      const result = await cli([...args, ...admin]);
      const name = args[0];
      const lines = result.stderr.trimEnd().split('\n');
      expect({ args, code: result.code, lines: lines.length }).toEqual({ args, code: 2, lines: 3 });
      expect(lines[0]).toMatch(new RegExp(`^switchyard ${name}: \\S`));
      expect(lines[1]).toBe(usage);
      expect(lines[2]).toBe(`run 'switchyard ${name} --help' for its options and examples`);
      expect(result.stdout).toBe('');
    }
  });
});

describe('issue 11: switchyard against a running proxy', () => {
  it('remove-pool removes a pool with weight 0; a live one is refused in percent (exit 1)', async () => {
    const t = await world();
    const admin = ['--admin', t.adminUrl];
    const removed = await cli(['remove-pool', 'canary', ...admin]);
    expect(removed).toEqual({
      code: 0,
      stdout: 'revision 2: blue 100.00%, green 0.00%\n',
      stderr: '',
    });
    expect(Object.keys(t.app.store.current()?.pools ?? {})).toEqual(['blue', 'green']);

    const live = await cli(['remove-pool', 'blue', ...admin]);
    expect(live.code).toBe(1);
    expect(live.stderr).toContain('POOL_LIVE');
    expect(live.stderr).toContain('(100 % of the traffic)');
    const unknown = await cli(['remove-pool', 'canary', ...admin]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('UNKNOWN_POOL');
    expect(t.app.store.current()?.revision).toBe(2);
  });

  it('401 says where the token goes, and which one was refused', async () => {
    const t = await world({ adminToken: TOKEN });
    const none = await cli(['status', '--admin', t.adminUrl]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(
      'hint: the admin API needs a token: pass --token or set SWITCHYARD_ADMIN_TOKEN',
    );
    const wrongFlag = await cli(['canary', '5', '--admin', t.adminUrl, '--token', `${TOKEN}x`]);
    expect(wrongFlag.code).toBe(1);
    expect(wrongFlag.stderr).toContain('hint: the admin API refused the token given with --token');
    const wrongEnv = await cli(['status', '--admin', t.adminUrl], {
      SWITCHYARD_ADMIN_TOKEN: `${TOKEN}x`,
    });
    expect(wrongEnv.stderr).toContain(
      'hint: the admin API refused the token in SWITCHYARD_ADMIN_TOKEN',
    );
    expect(wrongEnv.stderr).not.toContain(TOKEN);
    expect((await cli(['status', '--admin', t.adminUrl, '--token', TOKEN])).code).toBe(0);
  });

  it('an upper-case pool name is refused with the lowercase one (exit 2); a typo gets the closest pool', async () => {
    const t = await world();
    const admin = ['--admin', t.adminUrl];
    for (const [args, name] of [
      [['switch', 'Green'], 'switch'],
      [['weights', 'Blue=90', 'canary=10'], 'weights'],
      [['canary', '5', '--pool', 'Canary'], 'canary'],
      [['remove-pool', 'GREEN'], 'remove-pool'],
    ] as const) {
      const result = await cli([...args, ...admin]);
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
      expect(result.stderr.split('\n')[0]).toMatch(
        new RegExp(
          `^switchyard ${name}: (--pool: )?pool names are lowercase: did you mean "(green|blue|canary)"\\?$`,
        ),
      );
    }
    expect((await cli(['switch', 'gr@en', ...admin])).stderr).toContain(
      '"gr@en" is not a pool name',
    );
    expect(t.app.store.current()?.revision).toBe(1);

    const typo = await cli(['switch', 'gren', ...admin]);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toBe(
      'switchyard: UNKNOWN_POOL: to: unknown pool "gren"\nhint: did you mean "green"? the pools are blue, green, canary\n',
    );
  });

  it('POOL_UNHEALTHY is explained in CLI terms: --force, not "force: true"', async () => {
    const port = await closedPort();
    const t = await world({ healthCheckInterval: '50ms', unhealthyThreshold: 1 });
    const admin = ['--admin', t.adminUrl];
    expect(
      (
        await cli([
          'set-pool',
          'green',
          '--version',
          'abcdef1',
          '--endpoint',
          `http://127.0.0.1:${port}`,
          ...admin,
        ])
      ).code,
    ).toBe(0);
    await eventually(() => expect(t.app.proxy.poolHealth('green').healthy).toBe(0));
    const status = await cli(['status', ...admin]);
    expect(status.stdout).toMatch(/green\s+abcdef1\s+0\.00%\s+\S+\s+0\s+0\/1\s+http/);
    // The endpoint that is out of rotation is marked.
    expect(status.stdout).toContain(`http://127.0.0.1:${port} (down)`);
    expect(status.stdout).toMatch(/blue\s+1111111\s+100\.00%\s+\S+\s+\d+\s+1\/1\s+http/);

    const refused = await cli(['switch', 'green', ...admin]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /^switchyard: POOL_UNHEALTHY: to: pool "green" has no healthy endpoint \(0 of 1\)\n/,
    );
    expect(refused.stderr).toContain('hint: use --force to switch anyway');
    expect(refused.stderr).not.toContain('force: true');
    const forced = await cli(['switch', 'green', '--force', ...admin]);
    expect(forced.code).toBe(0);
    const after = await cli(['status', ...admin]);
    expect(after.stdout).toContain(
      'warning: green has 100.00% of the traffic but no healthy endpoint: its requests answer 503',
    );
  });

  it('status says what the observed share covers and that a fresh table shares the window with older traffic', async () => {
    const t = await world();
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${t.proxyUrl}/`, { headers: { cookie: `sy_id=user-${i}` } });
      await res.arrayBuffer();
    }
    const status = await cli(['status', '--admin', t.adminUrl]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^revision 1 \(applied here: 1\), store memory up\n/);
    expect(status.stdout).toMatch(/\nupdated \S+ \(\d+ s ago\) by config\n/);
    expect(status.stdout).toMatch(/blue\s+1111111\s+100\.00%\s+100\.0%\s+5\s+1\/1\s+http/);
    expect(status.stdout).toMatch(
      /\nobserved: the 5 requests this replica routed in the last 60 s; revision 1 is \d+ s old, so some were routed by an earlier table/,
    );

    // Pointed at the proxy port by mistake: the upstream answers GET /v1/state itself.
    const wrongPort = await cli(['status', '--admin', t.proxyUrl]);
    expect(wrongPort.code).toBe(1);
    expect(wrongPort.stderr).toContain('is --admin the admin API address');
  });

  it('status names the Redis namespace the replica follows', async () => {
    const redis = await startRedisServer();
    closers.push(() => redis.close());
    const t = await world({ redis: redis.url, namespace: 'shop' });
    const status = await cli(['status', '--admin', t.adminUrl]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(
      /^revision 1 \(applied here: 1\), store redis up, namespace shop\n/,
    );
    const json = JSON.parse((await cli(['status', '--json', '--admin', t.adminUrl])).stdout) as {
      state: { store: { namespace: string }; health: Record<string, unknown> };
    };
    expect(json.state.store.namespace).toBe('shop');
    expect(json.state.health.blue).toEqual({
      healthy: 1,
      total: 1,
      endpoints: [{ url: t.app.store.current()?.pools.blue?.endpoints[0], healthy: true }],
    });
  });

  it('history shows the reason of a refused command under it, and commands in CLI words', async () => {
    const t = await world();
    const admin = ['--admin', t.adminUrl];
    expect((await cli(['canary', '10', ...admin])).code).toBe(0);
    expect((await cli(['switch', 'nope', ...admin])).code).toBe(1);
    const history = await cli(['history', ...admin]);
    expect(history.code).toBe(0);
    const lines = history.stdout.split('\n');
    const rejected = lines.findIndex((l) => /rejected UNKNOWN_POOL\s+switch nope$/.test(l));
    expect(rejected).toBeGreaterThan(0);
    expect(lines[rejected + 1]).toMatch(/^\s+reason: to: unknown pool "nope"$/);
    // The reason sits under the RESULT column.
    expect(lines[rejected + 1]?.indexOf('reason:')).toBe(lines[0]?.indexOf('RESULT'));
    expect(history.stdout).toMatch(/\n2\s+\S+\s+\S+\s+cli\s+applied\s+canary 10%\n/);
  });

  it('the actor the CLI names is the actor in history, and a change that changes nothing makes no revision', async () => {
    const t = await world();
    const admin = ['--admin', t.adminUrl];
    const first = await cli(['canary', '5', '--actor', 'alice', ...admin]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^revision 2: /);
    const again = await cli(['canary', '5', ...admin], { SWITCHYARD_ACTOR: 'bob' });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^unchanged, still revision 2: /);
    const json = await cli(['canary', '5', '--json', ...admin]);
    expect(JSON.parse(json.stdout)).toMatchObject({ revision: 2, changed: false });
    const history = await cli(['history', '--json', ...admin]);
    const entries = (JSON.parse(history.stdout) as { history: Array<Record<string, unknown>> })
      .history;
    // One entry for the change (by alice), none for the no-ops, then the seed.
    expect(entries.map((e) => [e.revision, e.actor, e.source])).toEqual([
      [2, 'cli:alice', 'cli'],
      [1, 'config', 'seed'],
    ]);
    // Rollback undoes alice's change, not a no-op.
    const rollback = await cli(['rollback', ...admin]);
    expect(rollback.code).toBe(0);
    const state = (await (await fetch(`${t.adminUrl}/v1/state`)).json()) as {
      table: { revision: number; weights: Record<string, number> };
    };
    expect(state.table.revision).toBe(3);
    expect(state.table.weights).toEqual({ blue: 10_000, green: 0, canary: 0 });
  });
});

describe('issue 11: actor header and shell completion', () => {
  it('every change sends x-switchyard-actor: --actor, else SWITCHYARD_ACTOR, else user@host; reads send none', async () => {
    const table = {
      revision: 2,
      pools: { blue: { version: '1111111', endpoints: ['http://127.0.0.1:9'] } },
      weights: { blue: 10000 },
      updatedAt: new Date().toISOString(),
      updatedBy: 'cli',
    };
    const server = await capturingServer(table);
    const admin = ['--admin', server.url];
    expect((await cli(['canary', '5', '--actor', 'alice', ...admin])).code).toBe(0);
    expect((await cli(['rollback', ...admin], { SWITCHYARD_ACTOR: 'bob@laptop' })).code).toBe(0);
    expect(
      (await cli(['switch', 'blue', '--actor', 'carol', ...admin], { SWITCHYARD_ACTOR: 'bob' }))
        .code,
    ).toBe(0);
    expect((await cli(['remove-pool', 'green', ...admin])).code).toBe(0);
    // Not an admin API's answer to a read: refused with a hint, and a read carries no actor.
    expect((await cli(['replicas', ...admin])).stderr).toContain('is --admin the admin API');
    expect(
      server.seen.map((r) => [
        r.method,
        r.path,
        r.headers['x-switchyard-actor'],
        r.headers['content-type'],
      ]),
    ).toEqual([
      ['POST', '/v1/canary', 'alice', 'application/json'],
      ['POST', '/v1/rollback', 'bob@laptop', 'application/json'],
      ['POST', '/v1/switch', 'carol', 'application/json'],
      ['DELETE', '/v1/pools/green', `${userInfo().username}@${hostname()}`, 'application/json'],
      ['GET', '/v1/replicas', undefined, undefined],
    ]);
    for (const r of server.seen) expect(r.headers['x-switchyard-source']).toBe('cli');

    // An actor that cannot travel in a header is a usage error, never "unreachable".
    const bad = await cli(['canary', '5', ...admin], { SWITCHYARD_ACTOR: 'al\u00e9x' });
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n')[0]).toBe(
      'switchyard canary: SWITCHYARD_ACTOR: must be printable ASCII (character 3 is "é")',
    );
    expect((await cli(['canary', '5', '--actor', ' ', ...admin])).stderr).toContain(
      '--actor: must not be empty',
    );
    expect(server.seen).toHaveLength(5);
  });

  it('completion bash passes bash -n and shellcheck, and completes commands and options', async () => {
    const script = await cli(['completion', 'bash']);
    expect(script.code).toBe(0);
    const file = await tempFile('switchyard.bash', script.stdout);
    expect(await run('bash', ['-n', file])).toMatchObject({ code: 0, stderr: '' });
    if (await installed('shellcheck')) {
      expect(await run('shellcheck', ['-s', 'bash', file])).toMatchObject({ code: 0 });
    }
    const complete = async (...words: string[]): Promise<string> => {
      const program = `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _switchyard; echo "\${COMPREPLY[*]}"`;
      return (
        await run('bash', ['-c', program, 'bash', file, 'switchyard', ...words])
      ).stdout.trim();
    };
    expect(await complete('sta')).toBe('status');
    expect(await complete('re')).toBe('reference-server remove-pool replicas');
    expect(await complete('canary', '--p')).toBe('--pool');
    expect(await complete('switch', '--f')).toBe('--force');
    expect(await complete('completion', '')).toBe('bash zsh --help');
    expect(await complete('proxy', '--drain-t')).toBe('--drain-timeout');
    expect(await complete('status', '--admin', '')).toBe('');
  });

  it('completion completes pool names from the admin API the command line points at', async () => {
    const t = await world({ adminToken: TOKEN });
    const file = await tempFile('switchyard.bash', (await cli(['completion', 'bash'])).stdout);
    // The script runs the command as typed (here a wrapper, as `switchyard` on PATH would be).
    const wrapper = await tempFile(
      'switchyard',
      `#!/bin/sh\nexec "${process.execPath}" "${MAIN}" "$@"\n`,
    );
    await run('chmod', ['+x', wrapper]);
    const complete = async (...words: string[]): Promise<string> => {
      const program = `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; _switchyard; echo "\${COMPREPLY[*]}"`;
      return (await run('bash', ['-c', program, 'bash', file, wrapper, ...words])).stdout.trim();
    };
    const auth = ['--admin', t.adminUrl, '--token', TOKEN];
    expect(await complete('switch', ...auth, 'g')).toBe('green');
    expect(await complete('remove-pool', ...auth, '')).toBe('blue green canary');
    expect(await complete('canary', '5', ...auth, '--pool', 'c')).toBe('canary');
    expect(await complete('switch', ...auth, '--f')).toBe('--force');
    // Unreachable or refused: nothing, and nothing printed.
    expect(await complete('switch', '--admin', t.adminUrl, 'g')).toBe('');
    const port = await closedPort();
    const silent = await cli(['__pools', 'switch', '--admin', `http://127.0.0.1:${port}`]);
    expect(silent).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('completion zsh passes zsh -n and registers _switchyard (when zsh is installed)', async () => {
    const script = await cli(['completion', 'zsh']);
    expect(script.code).toBe(0);
    expect(script.stdout.startsWith('#compdef switchyard\n')).toBe(true);
    if (!(await installed('zsh'))) return;
    const file = await tempFile('_switchyard', script.stdout);
    expect(await run('zsh', ['-n', file])).toMatchObject({ code: 0, stderr: '' });
    const loaded = await run('zsh', [
      '-f',
      '-c',
      `autoload -U compinit && compinit -u -D && source "$1" && print -r -- "\${_comps[switchyard]}"`,
      'zsh',
      file,
    ]);
    expect(loaded.stdout.trim()).toBe('_switchyard');
  });
});
