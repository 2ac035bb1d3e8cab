/**
 * Fault injection in the reference server (issue 12): `--error-rate` answers an exact, evenly
 * spread share of requests with 500 and `--latency` delays answers, while `/healthz` stays a fast
 * 200; bad values stop the command with exit 2 and a message naming the flag. Real HTTP, real
 * processes for the command line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { describe, expect, test } from 'vitest';
import { closeAfterEach } from '../helpers/closers.js';
import { ReferenceServer } from '../../src/reference-server/reference-server.js';
import { eventually } from '../helpers/eventually.js';
import { startReference } from '../helpers/reference.js';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

const closers = closeAfterEach();

/** GETs `url` and returns the status, the fault header and the elapsed milliseconds. */
async function get(url: string): Promise<{ status: number; fault: unknown; ms: number }> {
  const started = performance.now();
  const res = await request(url);
  await res.body.text();
  return {
    status: res.statusCode,
    fault: res.headers['x-reference-fault'],
    ms: performance.now() - started,
  };
}

/** Runs `node dist/src/main.js reference-server <args>` to its exit (SIGKILLed after 10 s). */
async function runReferenceCommand(
  args: readonly string[],
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, 'reference-server', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: process.env.PATH ?? '' },
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  try {
    const [code] = (await once(child, 'exit')) as [number | null];
    return { code, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Starts the reference-server command and resolves with its URL from the first stdout line. */
async function spawnReference(args: readonly string[]): Promise<{ url: string; log: object }> {
  const child: ChildProcess = spawn(
    process.execPath,
    [MAIN, 'reference-server', '--listen', '127.0.0.1:0', ...args],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { PATH: process.env.PATH ?? '' } },
  );
  closers.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
  });
  if (child.stdout === null) throw new Error('no stdout pipe');
  const lines = createInterface({ input: child.stdout });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(() => {
      throw new Error('reference-server exited before listening');
    }),
  ])) as [string];
  const log = JSON.parse(line) as { url: string };
  return { url: log.url, log };
}

describe('reference server faults', () => {
  test('errorRate 0.2 answers exactly every fifth request with 500; /healthz stays 200', async () => {
    const ref = await startReference({ pool: 'canary', version: '5e7a2b8', errorRate: 0.2 });
    closers.push(ref.close);
    const statuses: number[] = [];
    for (let i = 0; i < 100; i += 1) {
      const res = await get(`${ref.url}/some/path`);
      statuses.push(res.status);
      if (res.status === 500) expect(res.fault).toBe('error-rate');
      // Interleaved health checks are neither failed nor counted in the share.
      expect((await get(`${ref.url}/healthz`)).status).toBe(200);
    }
    expect(statuses.filter((s) => s === 500)).toHaveLength(20);
    // Evenly spread: exactly one failure in every run of five.
    for (let i = 0; i < 100; i += 5) {
      expect(statuses.slice(i, i + 5).filter((s) => s === 500)).toHaveLength(1);
    }
    expect(ref.server.stats().injectedErrors).toBe(20);
  });

  test('an error rate of 1 fails every request but /healthz, 0 fails none', async () => {
    const all = await startReference({ pool: 'canary', version: '5e7a2b8', errorRate: 1 });
    closers.push(all.close);
    const none = await startReference({ pool: 'blue', version: '3f2c9e1', errorRate: 0 });
    closers.push(none.close);
    for (let i = 0; i < 10; i += 1) {
      expect((await get(`${all.url}/`)).status).toBe(500);
      expect((await get(`${none.url}/`)).status).toBe(200);
    }
    expect((await get(`${all.url}/healthz`)).status).toBe(200);
  });

  test('latencyMs delays every answer but /healthz', async () => {
    const ref = await startReference({ pool: 'canary', version: '5e7a2b8', latencyMs: 150 });
    closers.push(ref.close);
    for (let i = 0; i < 3; i += 1) {
      const res = await get(`${ref.url}/`);
      expect(res.status).toBe(200);
      // A timer never fires early; the upper side is left loose for a busy machine.
      expect(res.ms).toBeGreaterThanOrEqual(149);
    }
    // Health checks answer at once: well under the injected delay even on a busy box.
    expect((await get(`${ref.url}/healthz`)).ms).toBeLessThan(150);
  });

  test('latency jitter adds a random delay up to its bound', async () => {
    const ref = await startReference({
      pool: 'canary',
      version: '5e7a2b8',
      latencyMs: 20,
      latencyJitterMs: 80,
    });
    closers.push(ref.close);
    const times: number[] = [];
    for (let i = 0; i < 10; i += 1) times.push((await get(`${ref.url}/`)).ms);
    for (const ms of times) expect(ms).toBeGreaterThanOrEqual(19);
  });

  test('closing the server clears delayed answers', async () => {
    const ref = await startReference({ pool: 'canary', version: '5e7a2b8', latencyMs: 60_000 });
    const pending = get(`${ref.url}/`).catch((err: unknown) => err);
    // The request is in: it has been counted by the server.
    await eventually(() => expect(ref.server.stats().requests).toBe(1));
    const started = performance.now();
    await ref.close();
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(await pending).toBeInstanceOf(Error);
  });

  test('bad options are refused with a message naming the field', () => {
    expect(() => new ReferenceServer({ pool: 'a', version: 'b', errorRate: 1.5 })).toThrow(
      /errorRate: 1.5 must be a share between 0 and 1/,
    );
    expect(() => new ReferenceServer({ pool: 'a', version: 'b', latencyMs: -1 })).toThrow(
      /latencyMs/,
    );
    expect(
      () => new ReferenceServer({ pool: 'a', version: 'b', latencyJitterMs: Number.NaN }),
    ).toThrow(/latencyJitterMs/);
  });
});

describe('switchyard reference-server fault flags', () => {
  test('--error-rate and --latency apply and are logged at start', async () => {
    const { url, log } = await spawnReference([
      '--pool',
      'canary',
      '--error-rate',
      '0.5',
      '--latency',
      '40ms',
    ]);
    expect(log).toMatchObject({ errorRate: 0.5, latencyMs: 40, latencyJitterMs: 0 });
    const results = [];
    for (let i = 0; i < 10; i += 1) results.push(await get(`${url}/`));
    expect(results.filter((r) => r.status === 500)).toHaveLength(5);
    for (const r of results) expect(r.ms).toBeGreaterThanOrEqual(39);
    expect((await get(`${url}/healthz`)).status).toBe(200);
  });

  test.each([
    [['--error-rate', '20%'], '--error-rate: "20%" is not a share between 0 and 1'],
    [['--error-rate', '1.2'], '--error-rate: "1.2" is not a share between 0 and 1'],
    [['--error-rate', '-0.1'], '--error-rate'],
    [['--latency', 'fast'], '--latency: "fast" is not a duration'],
    [['--latency', '11m'], '--latency: "11m" is not a duration up to 10m'],
    [['--latency-jitter', '5h'], '--latency-jitter: "5h" is not a duration'],
  ])('%j exits 2 naming the flag', async (args, message) => {
    const run = await runReferenceCommand(['--listen', '127.0.0.1:0', ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
  });

  test('--help lists the fault flags', async () => {
    const child = spawn(process.execPath, [MAIN, 'reference-server', '--help'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
    for (const flag of ['--error-rate', '--latency', '--latency-jitter'])
      expect(out).toContain(flag);
  });
});
