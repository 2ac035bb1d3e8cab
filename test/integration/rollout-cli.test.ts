/**
 * `switchyard rollout ...` (SPEC §9, issue 12) as a child process against an app in this process:
 * start, status, promote, abort, and `wait` exit codes (0 promoted, 1 aborted) for CI.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runSwitchyard } from '../helpers/cli-process.js';
import { closeAfterEach } from '../helpers/closers.js';
import { startLoad } from '../helpers/keepalive-load.js';
import { startReference } from '../helpers/reference.js';
import { startApp, type TestApp } from '../helpers/start-app.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));
const closers = closeAfterEach();

beforeAll(() => {
  if (!existsSync(MAIN))
    throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm test does)`);
});

async function world(canaryErrorRate = 0): Promise<TestApp> {
  const blue = await startReference({ pool: 'blue', version: '1111111' });
  closers.push(blue.close);
  const canary = await startReference({
    pool: 'canary',
    version: '3333333',
    errorRate: canaryErrorRate,
  });
  closers.push(canary.close);
  const app = await startApp({
    pools: [
      { name: 'blue', version: '1111111', endpoints: [blue.url] },
      { name: 'canary', version: '3333333', endpoints: [canary.url] },
    ],
  });
  closers.push(() => app.close());
  return app;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(app: TestApp, args: string[]): Promise<Run> {
  return runSwitchyard(['rollout', ...args, '--admin', app.adminUrl]);
}

describe('switchyard rollout', () => {
  it('starts, shows, promotes; wait exits 0 once promoted', async () => {
    const app = await world();
    const start = await cli(app, ['start', 'canary', '--steps', '10,approval,100']);
    expect(start.stderr).toBe('');
    expect(start.code).toBe(0);
    expect(start.stdout).toMatch(/^rollout r-[0-9a-f]+: canary@3333333 vs blue {2}progressing/);
    const status = await cli(app, ['status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('steps   ');
    const promote = await cli(app, ['promote', '--full']);
    expect(promote.code).toBe(0);
    const wait = await cli(app, ['wait', '--timeout', '20s']);
    expect(wait.code).toBe(0);
    expect(wait.stdout).toContain('promoted');
  });

  it('wait exits 1 when the rollout is aborted; bad --steps is a usage error', async () => {
    const app = await world(0.2);
    const load = startLoad({ origin: app.proxyUrl, clients: 4, pauseMs: 20 });
    closers.push(() => load.stop());
    const bad = await cli(app, ['start', 'canary', '--steps', '10,soon,100']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--steps: item 2 "soon"');
    expect((await cli(app, ['start', 'canary', '--steps', '20,1m,100'])).code).toBe(0);
    const wait = await cli(app, ['wait', '--timeout', '25s']);
    expect(wait.code).toBe(1);
    expect(wait.stdout).toMatch(/abort: canary 5xx/);
    const again = await cli(app, ['abort', '--reason', 'late']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('ROLLOUT_NOT_ACTIVE');
  });
});
