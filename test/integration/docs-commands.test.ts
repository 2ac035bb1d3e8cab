/**
 * The documentation's commands, run as written (issue 11: the README tour pasted `PORT`
 * literally and the Redis section's second command failed with UNKNOWN_POOL; nothing ran them).
 *
 * A fenced ```sh block preceded by a marker is run with bash, in document order per group:
 *
 *     <!-- tested: GROUP [exit=N] [expect="text"]... [background] [retry] -->
 *
 * - GROUP names the world the block runs against (GROUPS below): a fresh demo (`switchyard
 *   proxy` with nothing configured) or a fresh redis-server. The blocks of a group share their
 *   exported variables, like commands typed into one terminal.
 * - `exit=N`: the block's expected exit status (default 0; blocks run under `set -e -o pipefail`).
 * - `expect="text"`: its output (stdout and stderr) must contain the text (`\"` for a quote).
 *   Check stable things (codes, headers, JSON fields), not the CLI's wording.
 * - `background`: the block starts servers with `&`; the test then waits until every
 *   `--listen`/`--admin-listen` address in it answers, and stops them at the end.
 * - `retry`: an idempotent block whose result shows up asynchronously; re-run until it passes.
 *
 * The only substitutions: `npx switchyard` runs `node dist/src/main.js` (the same binary without
 * npx's start-up cost; docs/cli.md says so), and every `127.0.0.1:PORT` the docs use becomes the
 * address the world really has (the demo on ports the OS picked, so that concurrent test runs
 * never collide; SWITCHYARD_ADMIN_URL points the CLI's default at the admin API the docs call
 * 127.0.0.1:9090). Ports below 1024 are left alone (the docs use `:1` as an unreachable endpoint).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { pickFreePort, startRedisServer } from '../helpers/redis-server.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const MAIN = join(ROOT, 'dist', 'src', 'main.js');

/** Which world each group of blocks runs against. A marker naming another group fails. */
const GROUPS: Readonly<Record<string, 'demo' | 'redis'>> = {
  tour: 'demo',
  'admin-api': 'demo',
  cli: 'demo',
  rules: 'demo',
  mirror: 'demo',
  redis: 'redis',
};

/** One marked block of the docs. */
interface TestedBlock {
  readonly where: string;
  readonly group: string;
  readonly exit: number;
  readonly expects: readonly string[];
  readonly background: boolean;
  readonly retry: boolean;
  readonly script: string;
}

/** README.md and docs/*.md. */
function docFiles(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => join(ROOT, 'docs', f));
  return [join(ROOT, 'README.md'), ...docs];
}

/** Every marked block of every doc file, in document order. */
function testedBlocks(): TestedBlock[] {
  const blocks: TestedBlock[] = [];
  const markerRe = /^<!-- tested: (.*?) -->\s*\n(?:\s*\n)*```sh\n([\s\S]*?)^```$/gm;
  for (const file of docFiles()) {
    const text = readFileSync(file, 'utf8');
    const markers = [...text.matchAll(/^<!-- tested:/gm)].length;
    let found = 0;
    for (const m of text.matchAll(markerRe)) {
      found += 1;
      const line = text.slice(0, m.index).split('\n').length;
      const where = `${relative(ROOT, file)}:${line}`;
      const attrs = m[1]!;
      const group = attrs.split(/\s/, 1)[0]!;
      const expects = [...attrs.matchAll(/expect="((?:[^"\\]|\\.)*)"/g)].map((e) =>
        e[1]!.replace(/\\(.)/g, '$1'),
      );
      const exit = /(?:^|\s)exit=(\d+)/.exec(attrs);
      blocks.push({
        where,
        group,
        exit: exit ? Number(exit[1]) : 0,
        expects,
        background: /(?:^|\s)background(?:\s|$)/.test(attrs),
        retry: /(?:^|\s)retry(?:\s|$)/.test(attrs),
        script: m[2]!,
      });
    }
    if (found !== markers) {
      throw new Error(`${relative(ROOT, file)}: a "tested" marker is not followed by a sh block`);
    }
  }
  return blocks;
}

/** Replaces the documented addresses by the world's; unknown ports >= 1024 are an error. */
function substitute(script: string, ports: ReadonlyMap<number, number>, where: string): string {
  return script
    .replace(/\bnpx switchyard\b/g, `node ${MAIN}`)
    .replace(/127\.0\.0\.1:(\d+)/g, (all, port: string) => {
      const n = Number(port);
      const mapped = ports.get(n);
      if (mapped !== undefined) return `127.0.0.1:${mapped}`;
      if (n < 1024) return all;
      throw new Error(`${where}: port ${n} is not an address of this group's world`);
    });
}

/** What a bash run of a block did. */
interface BlockRun {
  readonly code: number | null;
  readonly output: string;
}

/** A world: where the docs' addresses really are, and how to stop it. */
interface World {
  readonly ports: Map<number, number>;
  readonly env: Record<string, string>;
  /** Process groups of blocks (background servers), stopped at the end. */
  readonly groups: number[];
  readonly stateFile: string;
}

const closers = closeAfterEach();

/**
 * Runs one block with bash in its own process group; the exported variables of earlier blocks
 * of the group are loaded first and this block's are saved after it, as in one terminal.
 */
function runBash(world: World, script: string): Promise<BlockRun> {
  const wrapped = [
    `[ -f "${world.stateFile}" ] && . "${world.stateFile}"`,
    `trap 'export -p > "${world.stateFile}"' EXIT`,
    'set -e -o pipefail',
    script,
  ].join('\n');
  const child = spawn('bash', ['-c', wrapped], {
    cwd: ROOT,
    env: world.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid !== undefined) world.groups.push(child.pid);
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  // 'exit', not 'close': servers started with & keep the pipes open.
  return new Promise((resolveRun) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolveRun({ code, output });
    }),
  );
}

/** True while a process group has a member. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERMs every process group the blocks left behind, then SIGKILLs what is left after 10 s. */
async function stopGroups(groups: readonly number[]): Promise<void> {
  for (const pgid of groups) if (groupAlive(pgid)) process.kill(-pgid, 'SIGTERM');
  try {
    await eventually(() => expect(groups.filter(groupAlive)).toEqual([]), {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
  } catch {
    for (const pgid of groups) if (groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
  }
}

/** Waits until every `--listen`/`--admin-listen` address of a background block answers HTTP. */
async function waitListening(script: string): Promise<void> {
  for (const m of script.matchAll(/--(admin-)?listen (127\.0\.0\.1:\d+)/g)) {
    const url = `http://${m[2]!}${m[1] === undefined ? '/healthz' : '/readyz'}`;
    await eventually(
      async () => {
        const res = await fetch(url);
        await res.arrayBuffer();
        expect(res.ok, url).toBe(true);
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
  }
}

/** Runs a group's blocks in order and checks each one's exit status and output. */
async function runGroup(world: World, blocks: readonly TestedBlock[]): Promise<void> {
  for (const block of blocks) {
    const script = substitute(block.script, world.ports, block.where);
    const check = async (): Promise<void> => {
      const run = await runBash(world, script);
      expect(run.code, `${block.where} exit status; output:\n${run.output}`).toBe(block.exit);
      for (const text of block.expects) {
        expect(run.output, `${block.where} output`).toContain(text);
      }
    };
    if (block.retry) await eventually(check, { timeoutMs: 10_000, intervalMs: 200 });
    else await check();
    if (block.background) await waitListening(script);
  }
}

/** A fresh world's common parts: a state file for exports, and cleanup. */
async function newWorld(ports: Map<number, number>): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-docs-'));
  const world: World = {
    ports,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? dir,
      USER: process.env.USER ?? 'docs-test',
    },
    groups: [],
    stateFile: join(dir, 'exports.sh'),
  };
  closers.push(async () => {
    await stopGroups(world.groups);
    await rm(dir, { recursive: true, force: true });
  });
  return world;
}

/** The demo on OS-picked ports; the docs' 8080, 9090 and 8081-8085 mapped to its addresses. */
async function demoWorld(): Promise<World> {
  const child = spawn(process.execPath, [MAIN, 'proxy'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      SWITCHYARD_LISTEN: '127.0.0.1:0',
      SWITCHYARD_ADMIN_LISTEN: '127.0.0.1:0',
    },
  });
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  closers.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  await eventually(
    () => {
      if (child.exitCode !== null) throw new Error(`demo exited: ${stderr}`);
      expect(stderr).toContain('Ctrl-C stops the demo.');
    },
    { timeoutMs: 15_000, intervalMs: 50 },
  );
  const portOf = (re: RegExp): number => {
    const m = re.exec(stderr);
    if (m === null) throw new Error(`${String(re)} not in the cheat sheet:\n${stderr}`);
    return Number(m[1]);
  };
  // The README: blue on :8081, green on :8082, canary on :8083, the new build on :8084, the bad
  // build on :8085.
  const ports = new Map<number, number>([
    [8080, portOf(/proxy http:\/\/127\.0\.0\.1:(\d+),/)],
    [9090, portOf(/admin API http:\/\/127\.0\.0\.1:(\d+)/)],
    [8081, portOf(/^ {2}3f2c9e1 +http:\/\/127\.0\.0\.1:(\d+) /m)],
    [8082, portOf(/^ {2}9ab14d0 +http:\/\/127\.0\.0\.1:(\d+) /m)],
    [8083, portOf(/^ {2}5e7a2b8 +http:\/\/127\.0\.0\.1:(\d+) /m)],
    [8084, portOf(/^ {2}1c4d2e7 +http:\/\/127\.0\.0\.1:(\d+) /m)],
    [8085, portOf(/^ {2}7bad7e5 +http:\/\/127\.0\.0\.1:(\d+) /m)],
  ]);
  const world = await newWorld(ports);
  world.env.SWITCHYARD_ADMIN_URL = `http://127.0.0.1:${ports.get(9090)}`;
  return world;
}

/**
 * A fresh redis-server for the docs' 127.0.0.1:6379, and a free port for every other address
 * the group's blocks use (servers the blocks start: they cannot take port 0, since later
 * commands name their address; a port taken in between fails the test loudly, not silently).
 */
async function redisWorld(blocks: readonly TestedBlock[]): Promise<World> {
  const redis = await startRedisServer();
  closers.push(() => redis.close());
  const ports = new Map<number, number>([[6379, redis.port]]);
  for (const block of blocks) {
    for (const m of block.script.matchAll(/127\.0\.0\.1:(\d+)/g)) {
      const port = Number(m[1]);
      if (port >= 1024 && !ports.has(port)) ports.set(port, await pickFreePort());
    }
  }
  const world = await newWorld(ports);
  const admin = ports.get(9090);
  if (admin !== undefined) world.env.SWITCHYARD_ADMIN_URL = `http://127.0.0.1:${admin}`;
  return world;
}

const ALL_BLOCKS = testedBlocks();

describe('the documentation, run as written', () => {
  test('every marker names a known group, and each group lives in one file', () => {
    expect(ALL_BLOCKS.length).toBeGreaterThanOrEqual(10);
    const fileOf = new Map<string, string>();
    for (const block of ALL_BLOCKS) {
      expect(Object.keys(GROUPS), block.where).toContain(block.group);
      const file = block.where.split(':')[0]!;
      expect(fileOf.get(block.group) ?? file, `group ${block.group}`).toBe(file);
      fileOf.set(block.group, file);
    }
  });

  for (const [group, kind] of Object.entries(GROUPS)) {
    const blocks = ALL_BLOCKS.filter((b) => b.group === group);
    test(`issue 11: ${group} (${blocks.length} blocks against a fresh ${kind})`, async () => {
      expect(blocks.length).toBeGreaterThan(0);
      const world = kind === 'demo' ? await demoWorld() : await redisWorld(blocks);
      await runGroup(world, blocks);
    }, 120_000);
  }

  test('npx switchyard, as the tour writes it, runs this package', async () => {
    const world = await demoWorld();
    const run = await runBash(world, 'npx switchyard replicas');
    expect(run.code, run.output).toBe(0);
  }, 60_000);
});
