/**
 * `switchyard proxy` and `switchyard reference-server` as users start them (SPEC §1), in real
 * processes: the demo starts whatever address or timing flags are given (audit: `--listen` used to
 * turn it off silently), a configured proxy with nothing to route says so in its log, and
 * `--help` prints every setting and exits 0 (audit: it used to exit 2 "Unknown option").
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { eventually } from '../helpers/eventually.js';
import { spawnProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { startReference } from '../helpers/reference.js';
import { closeAfterEach } from '../helpers/closers.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));
const DEMO_BLUE = '3f2c9e1';
const NO_POOLS_WARNING = /^no pools configured/;
/** The first line of the demo's cheat sheet (src/demo.ts), written to stderr at start-up. */
const DEMO_CHEAT_SHEET = 'Switchyard demo is running';

const closers = closeAfterEach();

/** Runs `node dist/src/main.js <args>` to its exit (SIGKILLed after 10 s) with only PATH set. */
async function runMain(
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  try {
    const [code] = (await once(child, 'exit')) as [number | null];
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** A config file with `text` in a temporary directory removed after the test. */
async function configFile(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-proxy-command-'));
  closers.push(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/**
 * Everything `proc` ever wrote to stderr: it is SIGKILLed and its stderr read to the end. Call it
 * after the process answered an HTTP request sent after "switchyard started": main() writes the
 * demo cheat sheet right after that log line, before it can handle any request, and a write to a
 * pipe is synchronous on Linux, so a cheat sheet written at all is in the result.
 */
async function stderrToTheEnd(proc: ProxyProcess): Promise<string> {
  const stderr = proc.child.stderr;
  if (stderr === null) throw new Error('the proxy process has no stderr pipe');
  const ended = finished(stderr);
  await proc.kill();
  await ended;
  return proc.stderr();
}

/** The help's entries: a line starting `  --` or `  SWITCHYARD_`, then its indented details. */
function helpEntries(help: string): Array<{ head: string; details: string[] }> {
  const entries: Array<{ head: string; details: string[] }> = [];
  for (const line of help.split('\n')) {
    if (/^ {2}(--|SWITCHYARD_)/.test(line)) entries.push({ head: line.trim(), details: [] });
    else if (/^ {6}\S/.test(line)) entries.at(-1)?.details.push(line.trim());
  }
  return entries;
}

const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const envName = (k: string): string => `SWITCHYARD_${kebab(k).replace(/-/g, '_').toUpperCase()}`;

describe('demo mode (no config file, no Redis, no pools)', () => {
  test('starts with --listen and --admin-listen flags: reference servers answer through the proxy', async () => {
    // spawnProxy passes --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 and only PATH; it waits
    // for the "switchyard started" line, which the demo logs only when asked for info.
    const proc = await spawnProxy([], [], { env: { LOG_LEVEL: 'info' } });
    closers.push(() => proc.kill());

    const res = await fetch(`${proc.proxyUrl}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-switchyard-upstream')).toBe(`blue@${DEMO_BLUE}`);
    expect(res.headers.get('x-reference-pool')).toBe('blue');
    expect(((await res.json()) as { version: string }).version).toBe(DEMO_BLUE);

    expect((await fetch(`${proc.adminUrl}/readyz`)).status).toBe(200);
    const state = (await (await fetch(`${proc.adminUrl}/v1/state`)).json()) as {
      table: { pools: Record<string, unknown> };
    };
    expect(Object.keys(state.table.pools).sort()).toEqual(['blue', 'canary', 'green']);

    // The cheat sheet names the ports actually used, and points the CLI at the admin API.
    await eventually(() => {
      expect(proc.stderr()).toContain(`curl -i ${proc.proxyUrl}/`);
      expect(proc.stderr()).toContain(`export SWITCHYARD_ADMIN_URL=${proc.adminUrl}`);
    });
    // The marker the configured cases below must not print.
    expect(proc.stderr()).toContain(DEMO_CHEAT_SHEET);
    expect(proc.logs.filter((l) => NO_POOLS_WARNING.test(String(l.msg)))).toEqual([]);
  });

  test('a --pool flag is configuration: no demo, that pool only', async () => {
    const blue = await startReference({ pool: 'mine', version: 'abcdef1' });
    closers.push(blue.close);
    const proc = await spawnProxy(['--pool', `mine=abcdef1@${blue.url}`]);
    closers.push(() => proc.kill());

    const res = await fetch(`${proc.proxyUrl}/`);
    expect(res.headers.get('x-switchyard-upstream')).toBe('mine@abcdef1');
    await res.arrayBuffer();
    const state = (await (await fetch(`${proc.adminUrl}/v1/state`)).json()) as {
      table: { pools: Record<string, unknown> };
    };
    expect(Object.keys(state.table.pools)).toEqual(['mine']);
    expect(await stderrToTheEnd(proc)).not.toContain(DEMO_CHEAT_SHEET);
  });
});

describe('a configured proxy with nothing to route', () => {
  test('logs a warning that says how to add pools; requests answer 503', async () => {
    const file = await configFile('switchyard.json', '{"namespace":"empty"}\n');
    const proc = await spawnProxy(['--config', file]);
    closers.push(() => proc.kill());

    const warning = await eventually(() => {
      const line = proc.logs.find((l) => NO_POOLS_WARNING.test(String(l.msg)));
      expect(line).toBeDefined();
      return line as Record<string, unknown>;
    });
    expect(warning.level).toBe(40);
    expect(String(warning.fix)).toContain('--pool NAME=SHA@URL');
    expect(String(warning.fix)).toContain('switchyard set-pool');

    const res = await fetch(`${proc.proxyUrl}/`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { code: 'NO_HEALTHY_UPSTREAM' } });
    expect((await fetch(`${proc.adminUrl}/readyz`)).status).toBe(503);
    expect(await stderrToTheEnd(proc)).not.toContain(DEMO_CHEAT_SHEET);
  });
});

describe('--help', () => {
  test('switchyard proxy --help exits 0 listing every setting with its variable, key and default', async () => {
    const run = await runMain(['proxy', '--help']);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const entries = helpEntries(run.stdout);
    const find = (head: RegExp): { head: string; details: string[] } => {
      const entry = entries.find((e) => head.test(e.head));
      expect(entry, String(head)).toBeDefined();
      return entry as { head: string; details: string[] };
    };

    const drain = find(/^--drain-timeout /);
    expect(drain.head).toMatch(/^--drain-timeout DURATION +SWITCHYARD_DRAIN_TIMEOUT$/);
    expect(drain.details[0]).toBe('file key drainTimeout, default 30s');
    expect(find(/^--listen /).details[0]).toBe('file key listen, default 0.0.0.0:8080');
    expect(find(/^--redis /).head).toContain('REDIS_URL');
    expect(find(/^--config /).head).toContain('SWITCHYARD_CONFIG');
    expect(find(/^--pool /).head).toContain('SWITCHYARD_POOL');
    expect(find(/^--upstream-header /).head).toContain('--no-upstream-header');

    // Every schema key: flag settings with a flag, variable, file key and meaning; secrets by
    // variable only (they have no flag).
    const secrets = ['adminToken', 'overrideToken', 'webhookSecret'];
    for (const key of Object.keys(configSchema.shape)) {
      if (key === 'pools') continue;
      if (secrets.includes(key)) {
        const entry = find(new RegExp(`^${envName(key)}$`));
        expect(entry.details, key).toHaveLength(1);
        expect(
          entries.some((e) => e.head.startsWith(`--${kebab(key)} `)),
          key,
        ).toBe(false);
        continue;
      }
      const entry = find(new RegExp(`^--${kebab(key)} `));
      expect(entry.head, key).toContain(envName(key));
      expect(entry.details[0], key).toMatch(new RegExp(`^file key ${key}(, default \\S+)?$`));
      expect(entry.details, key).toHaveLength(2);
    }
  });

  test('-h works too, after other flags', async () => {
    const run = await runMain(['proxy', '--listen', '127.0.0.1:0', '-h']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^usage: switchyard proxy /);
  });

  test('switchyard reference-server --help exits 0 with its options', async () => {
    const run = await runMain(['reference-server', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^usage: switchyard reference-server /);
    for (const flag of ['--listen', '--pool', '--version', '--keep-alive-timeout']) {
      expect(run.stdout).toContain(flag);
    }
  });

  test('switchyard --help points at proxy --help; an unknown proxy flag still exits 2', async () => {
    const help = await runMain(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('switchyard proxy --help');
    // No command at all is a usage error: exit 2, usage on stderr, nothing on stdout.
    const none = await runMain([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain('usage: switchyard <command>');

    const bad = await runMain(['proxy', '--no-such-flag']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("Unknown option '--no-such-flag'");
    expect(bad.stderr).toContain('switchyard proxy --help');
  });
});
