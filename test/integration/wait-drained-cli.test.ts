/**
 * `switchyard wait-drained` as users run it (issue 13): the real binary (`node dist/src/main.js`,
 * built by `npm run build`) against a real app. Exit codes 0, 1, 2 and 3.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runSwitchyard } from '../helpers/cli-process.js';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { postJson, startColourApp, type TestApp } from '../helpers/start-app.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

const closers = closeAfterEach();

beforeAll(() => {
  if (!existsSync(MAIN))
    throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm test does)`);
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  tookMs: number;
  /** Date.now() when the process had exited. */
  endedAt: number;
}

/** Runs `switchyard ...args`, timing it; `endedAt` is when it had exited. */
async function cli(args: string[]): Promise<Run> {
  const started = Date.now();
  const run = await runSwitchyard(args);
  return { ...run, tookMs: Date.now() - started, endedAt: Date.now() };
}

function world(): Promise<TestApp> {
  return startColourApp(closers);
}

describe('switchyard wait-drained', () => {
  it('exits 0 once the slow request on the old pool has ended', async () => {
    const t = await world();
    const slow = fetch(`${t.proxyUrl}/slow?ms=2000`).then(async (res) => {
      await res.arrayBuffer();
      return Date.now();
    });
    await eventually(async () => {
      const res = await fetch(`${t.adminUrl}/v1/pools/blue/drain`);
      const body = (await res.json()) as { replicas: Array<{ inFlight: number }> };
      expect(body.replicas[0]?.inFlight).toBe(1);
    });
    expect((await postJson(`${t.adminUrl}/v1/switch`, { to: 'green' })).status).toBe(200);
    const run = await cli(['wait-drained', 'blue', '--admin', t.adminUrl, '--timeout', '20s']);
    const endedAt = await slow;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('blue: 1 in flight, 0 long-lived');
    expect(run.stdout).toMatch(/blue: drained after \d+\.\ds/);
    // It waited for the request: it exited after the response arrived here.
    expect(run.endedAt).toBeGreaterThanOrEqual(endedAt - 250);
    console.log(`wait-drained: exited 0 after ${run.tookMs} ms`);
  });

  it('exits 0 at once for a drained pool, with --json the answer', async () => {
    const t = await world();
    const run = await cli(['wait-drained', 'canary', '--admin', t.adminUrl, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ pool: 'canary', weight: 0, drained: true });
  });

  it('exits 1 when the pool still has traffic at the timeout', async () => {
    const t = await world();
    const run = await cli(['wait-drained', 'blue', '--admin', t.adminUrl, '--timeout', '1s']);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('blue: weight 10000 bp in the table');
    expect(run.stderr).toContain('blue not drained within 1s');
    expect(run.tookMs).toBeGreaterThanOrEqual(900);
  });

  it('exits 1 for an unknown pool, 2 for usage errors, 3 when the admin API is unreachable', async () => {
    const t = await world();
    const unknown = await cli(['wait-drained', 'nosuch', '--admin', t.adminUrl]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('UNKNOWN_POOL');
    const noPool = await cli(['wait-drained', '--admin', t.adminUrl]);
    expect(noPool.code).toBe(2);
    expect(noPool.stderr).toContain('needs exactly one POOL');
    const badTimeout = await cli(['wait-drained', 'blue', '--admin', t.adminUrl, '--timeout', 'x']);
    expect(badTimeout.code).toBe(2);
    expect(badTimeout.stderr).toContain('--timeout: "x" is not a duration');
    const unreachable = await cli(['wait-drained', 'blue', '--admin', 'http://127.0.0.1:1']);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain('cannot reach the admin API');
  });
});
