/**
 * The release recipe (issue 13): deploy/ci/release.sh run as a CI step against a real app (in
 * this process) through the built `switchyard` binary, with deploy/hooks/smoke-gate.mjs as its
 * pre-rollout gate (a real child process smoke-testing the target through the override header)
 * and a fake `kubectl` on PATH that records its arguments. Needs `npm run build` first.
 */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { closeAfterEach } from '../helpers/closers.js';
import { runProcess, SWITCHYARD_MAIN, type ProcessRun } from '../helpers/cli-process.js';
import { startReference } from '../helpers/reference.js';
import { startApp, type TestApp } from '../helpers/start-app.js';

const closers = closeAfterEach();
const root = join(import.meta.dirname, '..', '..');
const RELEASE = join(root, 'deploy', 'ci', 'release.sh');
const SMOKE_GATE = join(root, 'deploy', 'hooks', 'smoke-gate.mjs');
const SECRET = 'release-webhook-secret-0123456789';
const OVERRIDE = 'release-override-token-0123456789';

/** A temp dir with `switchyard` (the built binary) and a fake `kubectl` logging to kubectl.log. */
async function binDir(): Promise<{ dir: string; kubectlLog: () => Promise<string[]> }> {
  const dir = await mkdtemp(join(tmpdir(), 'sy-release-'));
  closers.push(() => rm(dir, { recursive: true, force: true }));
  const log = join(dir, 'kubectl.log');
  await writeFile(
    join(dir, 'switchyard'),
    `#!/bin/sh\nexec "${process.execPath}" "${SWITCHYARD_MAIN}" "$@"\n`,
  );
  await writeFile(join(dir, 'kubectl'), `#!/bin/sh\necho "$*" >> "${log}"\n`);
  await chmod(join(dir, 'switchyard'), 0o755);
  await chmod(join(dir, 'kubectl'), 0o755);
  return {
    dir,
    kubectlLog: async () =>
      (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => l !== ''),
  };
}

/** Starts smoke-gate.mjs on port 0 against `proxyUrl`; resolves with its URL. */
async function startSmokeGate(proxyUrl: string): Promise<{ url: string; lines: string[] }> {
  const child = spawn(process.execPath, [SMOKE_GATE], {
    env: {
      PATH: process.env.PATH,
      PORT: '0',
      SWITCHYARD_WEBHOOK_SECRET: SECRET,
      SWITCHYARD_OVERRIDE_TOKEN: OVERRIDE,
      SMOKE_PROXY_URL: proxyUrl,
      SMOKE_PATHS: '/ /healthz',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  );
  const lines: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('smoke-gate did not start in 10 s')), 10_000);
    child.once('exit', (code) => reject(new Error(`smoke-gate exited ${code}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      const parsed = JSON.parse(line) as { msg: string; url?: string };
      if (parsed.msg === 'listening') {
        clearTimeout(timer);
        resolve(parsed.url as string);
      }
    });
  });
  return { url, lines };
}

/** blue (live, 100 %) and green (idle) reference servers; green fails every request if asked. */
async function world(greenErrorRate = 0): Promise<{ app: TestApp; greenUrl: string }> {
  const blue = await startReference({ pool: 'blue', version: '1111111' });
  closers.push(blue.close);
  const green = await startReference({
    pool: 'green',
    version: '2222222',
    errorRate: greenErrorRate,
  });
  closers.push(green.close);
  const app = await startApp({
    pools: [
      { name: 'blue', version: '1111111', endpoints: [blue.url] },
      { name: 'green', version: '2222222', endpoints: [green.url] },
    ],
    webhookSecret: SECRET,
    overrideToken: OVERRIDE,
  });
  closers.push(() => app.close());
  return { app, greenUrl: green.url };
}

/** Runs release.sh SHA with `env` (and PATH); resolves with its exit code and output. */
function release(sha: string, env: Record<string, string>): Promise<ProcessRun> {
  return runProcess(RELEASE, [sha], env, 90_000);
}

describe('deploy/ci/release.sh with deploy/hooks/smoke-gate.mjs', () => {
  it('deploys into the idle colour, passes the smoke gate, promotes, waits for drain, scales down', async () => {
    const { app, greenUrl } = await world();
    const bin = await binDir();
    const gate = await startSmokeGate(app.proxyUrl);
    const run = await release('abc1234', {
      PATH: `${bin.dir}:${process.env.PATH}`,
      SWITCHYARD_ADMIN_URL: app.adminUrl,
      RELEASE_ENDPOINTS: greenUrl,
      RELEASE_DEPLOY: 'kubectl set image deployment/app-$COLOUR app=registry.example.com/app:$SHA',
      RELEASE_SCALE_DOWN: 'kubectl scale deployment/app-$OLD --replicas=0',
      RELEASE_STEPS: '100',
      RELEASE_WEBHOOKS: `pre-rollout=${gate.url}/`,
      RELEASE_DRAIN_TIMEOUT: '30s',
    });
    expect(run.stderr).toContain('release: live colour blue, releasing abc1234 into green');
    expect(run.stderr).toContain('release: released abc1234: green live, blue drained');
    expect(run.code).toBe(0);
    expect(await bin.kubectlLog()).toEqual([
      'set image deployment/app-green app=registry.example.com/app:abc1234',
      'scale deployment/app-blue --replicas=0',
    ]);
    const table = app.app.store.current()!;
    expect(table.weights).toEqual({ blue: 0, green: 10_000 });
    expect(table.pools.green!.version).toBe('abc1234');
    const r = app.app.rollouts.current()!;
    expect(r.phase).toBe('promoted');
    expect(r.drainedAt).not.toBeNull();
    // The gate ran the smoke test on green (through the override header) and said yes.
    const call = r.decisions.find((d) => d.webhook?.event === 'pre-rollout');
    expect(call?.webhook).toMatchObject({ status: 204, url: `${gate.url}/` });
    expect(gate.lines.map((l) => JSON.parse(l) as { msg: string })).toContainEqual(
      expect.objectContaining({ msg: 'smoke test passed', pool: 'green' }),
    );
  });

  it('a failing smoke test aborts the release: exit 1, blue keeps the traffic and is not scaled down', async () => {
    const { app, greenUrl } = await world(1);
    const bin = await binDir();
    const gate = await startSmokeGate(app.proxyUrl);
    const run = await release('def5678', {
      PATH: `${bin.dir}:${process.env.PATH}`,
      SWITCHYARD_ADMIN_URL: app.adminUrl,
      RELEASE_ENDPOINTS: greenUrl,
      RELEASE_SCALE_DOWN: 'kubectl scale deployment/app-$OLD --replicas=0',
      RELEASE_STEPS: '100',
      RELEASE_WEBHOOKS: `pre-rollout=${gate.url}/`,
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('did not promote: blue keeps the traffic and stays up');
    expect(await bin.kubectlLog()).toEqual([]);
    expect(app.app.store.current()!.weights).toEqual({ blue: 10_000, green: 0 });
    const r = app.app.rollouts.current()!;
    expect(r.phase).toBe('aborted');
    expect(r.decisions.filter((d) => d.action === 'abort').at(-1)?.reason).toMatch(
      /^pre-rollout gate failed: http:\/\/127\.0\.0\.1:\d+\/ 502$/,
    );
  });

  it('the smoke gate refuses a call without the right signature (401)', async () => {
    const { app } = await world();
    const gate = await startSmokeGate(app.proxyUrl);
    const body = JSON.stringify({ event: 'pre-rollout', rollout: { pool: 'green' } });
    const post = (signature: string | null): Promise<number> =>
      fetch(gate.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(signature === null ? {} : { 'x-switchyard-signature': signature }),
        },
        body,
      }).then(async (res) => {
        await res.text();
        return res.status;
      });
    const sign = (key: string): string =>
      `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;
    expect(await post(null)).toBe(401);
    expect(await post(sign('another-secret-0123456789'))).toBe(401);
    expect(await post(sign(SECRET))).toBe(204);
  });

  it('usage errors exit 2 naming the problem', async () => {
    const bin = await binDir();
    const env = { PATH: `${bin.dir}:${process.env.PATH}` };
    const none = await release('', env);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/SHA: "" is not a version/);
    const noEndpoints = await release('abc1234', env);
    expect(noEndpoints.code).toBe(2);
    expect(noEndpoints.stderr).toMatch(/RELEASE_ENDPOINTS: /);
  });
});
