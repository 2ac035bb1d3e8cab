/**
 * `switchyard proxy` as users start it (SPEC §1), in real processes: the demo starts whatever
 * address or timing flags are given (audit: `--listen` used to turn it off silently), and a
 * configured proxy with nothing to route says so in its log.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { spawnProxy } from '../helpers/proxy-process.js';
import { startReference } from '../helpers/reference.js';

const DEMO_BLUE = '3f2c9e1';
const NO_POOLS_WARNING = /^no pools configured/;

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** A config file with `text` in a temporary directory removed after the test. */
async function configFile(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-proxy-command-'));
  closers.push(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

describe('demo mode (no config file, no Redis, no pools)', () => {
  test('starts with --listen and --admin-listen flags: reference servers answer through the proxy', async () => {
    // spawnProxy passes --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 and only PATH.
    const proc = await spawnProxy(['--shutdown-delay', '0']);
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
    expect(proc.stderr()).not.toContain('demo');
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
    expect(proc.stderr()).not.toContain('demo');
  });
});
