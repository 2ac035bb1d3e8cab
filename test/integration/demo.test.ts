/**
 * The demo (`npm start`, `switchyard proxy` with nothing configured) as a newcomer meets it
 * (issue 11): a cheat sheet not interleaved with JSON log lines, Ctrl-C that stops at once and
 * says so, and reference servers on the ports after the proxy's so the README's commands paste.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));
const SHEET_END = 'Ctrl-C stops the demo.';

/** A demo process with its output so far. */
interface Demo {
  readonly child: ChildProcessByStdio<null, Readable, Readable>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
}

const closers = closeAfterEach();

/** Spawns `node dist/src/main.js proxy <args>` with only PATH (and `env`) in its environment. */
function spawnDemo(args: readonly string[], env: Record<string, string> = {}): Demo {
  const child = spawn(process.execPath, [MAIN, 'proxy', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  closers.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

/** Waits for the whole cheat sheet (or the exit, which fails). */
async function sheetOf(demo: Demo): Promise<string> {
  await eventually(
    () => {
      if (demo.child.exitCode !== null) throw new Error(`demo exited: ${demo.stderr()}`);
      expect(demo.stderr()).toContain(SHEET_END);
    },
    { timeoutMs: 15_000, intervalMs: 50 },
  );
  return demo.stderr();
}

/** The `VERSION  URL  what` lines of the cheat sheet, by version. */
function upstreamUrls(sheet: string): Map<string, string> {
  const urls = new Map<string, string>();
  for (const m of sheet.matchAll(/^ {2}([0-9a-f]{7}) +(http:\/\/127\.0\.0\.1:\d+) /gm)) {
    urls.set(m[1]!, m[2]!);
  }
  return urls;
}

describe('the demo', () => {
  test('issue 11: prints the cheat sheet with no JSON log lines, and Ctrl-C exits 0 within seconds saying "stopping…"', async () => {
    const demo = spawnDemo(['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0']);
    const sheet = await sheetOf(demo);
    const proxyUrl = /proxy (http:\/\/127\.0\.0\.1:\d+), admin API/.exec(sheet)?.[1];
    expect(proxyUrl).toBeDefined();
    // Traffic and a table change: at info level each would log; the demo logs warnings only.
    const res = await fetch(`${proxyUrl}/`);
    expect(res.headers.get('x-switchyard-upstream')).toBe('blue@3f2c9e1');
    await res.arrayBuffer();
    expect(demo.stdout()).toBe('');
    expect(sheet).not.toMatch(/^\{"level"/m);

    const signalled = Date.now();
    demo.child.kill('SIGINT');
    const { code } = await demo.exited;
    const stopMs = Date.now() - signalled;
    expect(code).toBe(0);
    // No shutdown delay: the old 5 s delay made it over 6 s; generous for a busy 2-core box.
    expect(stopMs).toBeLessThan(4000);
    expect(demo.stderr()).toContain('stopping…');
    expect(demo.stdout()).toBe('');
  });

  test('LOG_LEVEL and --shutdown-delay still apply in the demo', async () => {
    const demo = spawnDemo(
      ['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--shutdown-delay', '300ms'],
      { LOG_LEVEL: 'info' },
    );
    await sheetOf(demo);
    await eventually(() => expect(demo.stdout()).toContain('"msg":"switchyard started"'));
    demo.child.kill('SIGINT');
    expect((await demo.exited).code).toBe(0);
    expect(demo.stdout()).toContain('"shutdownDelayMs":300');
  });

  test('reference servers take the ports after the proxy, falling back to free ones; the sheet prints the real commands', async () => {
    // The proxy's port comes from listen(0) (Linux hands bind(0) odd ports and keeps even ones
    // for outgoing connections, so it is rarely retaken in between), and the port right after it
    // is held so blue must fall back. If something else already holds that one, it is just as
    // blocked. Only losing the proxy's own port in the gap makes the demo exit: try again then.
    let demo: Demo | undefined;
    let blocked = 0;
    let proxyPort = 0;
    for (let attempt = 0; attempt < 5 && demo === undefined; attempt += 1) {
      const probe: Server = createServer();
      probe.listen(0, '127.0.0.1');
      await once(probe, 'listening');
      proxyPort = (probe.address() as { port: number }).port;
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      blocked = proxyPort + 1;
      const blocker: Server = createServer();
      // EADDRINUSE: someone else blocks it for us.
      const held = new Promise<void>((resolve) => {
        blocker.once('listening', resolve);
        blocker.once('error', () => resolve());
      });
      blocker.listen(blocked, '127.0.0.1');
      await held;
      closers.push(
        () =>
          new Promise<void>((resolve) =>
            blocker.listening ? blocker.close(() => resolve()) : resolve(),
          ),
      );
      const candidate = spawnDemo([
        '--listen',
        `127.0.0.1:${proxyPort}`,
        '--admin-listen',
        '127.0.0.1:0',
      ]);
      const outcome = await Promise.race([
        sheetOf(candidate).then(() => 'up' as const),
        candidate.exited.then(() => 'exited' as const),
      ]);
      if (outcome === 'up') demo = candidate;
    }
    if (demo === undefined) throw new Error('the demo lost its port in each of 5 tries');
    const sheet = demo.stderr();
    const urls = upstreamUrls(sheet);
    expect([...urls.keys()]).toEqual(['3f2c9e1', '9ab14d0', '5e7a2b8', '1c4d2e7', '7bad7e5']);
    const ports = [...urls.values()].map((u) => Number(new URL(u).port));
    expect(ports[0]).not.toBe(blocked);
    // The others got proxyPort+2.. unless someone held those too (then a free port each).
    ports.slice(1).forEach((port, i) => {
      if (port !== proxyPort + 2 + i) expect(port).not.toBe(0);
    });
    for (const url of urls.values()) expect((await fetch(`${url}/healthz`)).ok).toBe(true);
    // The deploy line of the tour names the new build and where it really listens.
    expect(sheet).toContain(
      `npx switchyard set-pool green --version 1c4d2e7 --endpoint ${urls.get('1c4d2e7')}`,
    );
    expect(sheet).toContain(`curl -i http://127.0.0.1:${proxyPort}/`);
    // The rollout line names the bad build, which really answers 30 % of requests with 500.
    const bad = urls.get('7bad7e5');
    expect(sheet).toContain(`--version 7bad7e5 --endpoint ${bad}`);
    const statuses: number[] = [];
    for (let i = 0; i < 20; i += 1) statuses.push((await fetch(`${bad}/`)).status);
    expect(statuses.filter((s) => s === 500)).toHaveLength(6);
  });
});
