/**
 * A real load balancer in front (issue 5 acceptance): HAProxy on loopback health-checks each
 * replica's admin /readyz (inter 200ms, fall 1, rise 1) over two `switchyard proxy` processes.
 * One replica gets SIGTERM during keep-alive load: its /readyz turns 503 at once, HAProxy stops
 * sending it new requests within a check, the replica finishes what it has during shutdownDelay
 * and exits 0, and no request through HAProxy fails. HAProxy retries only connection failures
 * (nothing was sent), so a lost request would show.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { startLoad } from '../helpers/keepalive-load.js';
import { readMetric } from '../helpers/metrics.js';
import { spawnProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { startReference } from '../helpers/reference.js';
import { closeAfterEach } from '../helpers/closers.js';

const BLUE = '1111111';

const closers = closeAfterEach();

function haproxyBinary(): string {
  const found = ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy'].find((p) =>
    existsSync(p),
  );
  if (!found)
    throw new Error('haproxy is not installed (apt-get install haproxy); .ci/run installs it');
  return found;
}

/** A loopback port that was free a moment ago (HAProxy cannot listen on port 0). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function port(url: string): number {
  return Number(new URL(url).port);
}

function haproxyConfig(listenPort: number, replicas: ProxyProcess[]): string {
  const servers = replicas
    .map(
      (r, i) => `    server r${i + 1} 127.0.0.1:${port(r.proxyUrl)} check port ${port(r.adminUrl)}`,
    )
    .join('\n');
  return `global
    maxconn 1000

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    retries 2
    option redispatch 1

frontend public
    bind 127.0.0.1:${listenPort}
    default_backend switchyard

backend switchyard
    balance roundrobin
    # Only what provably never reached a replica is retried.
    retry-on conn-failure
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 200ms fall 1 rise 1
${servers}
`;
}

/** Starts HAProxy in the foreground; retries on another port if the bind lost a race. */
async function startHaproxy(replicas: ProxyProcess[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sy-haproxy-'));
  closers.push(() => rm(dir, { recursive: true, force: true }));
  for (let attempt = 0; attempt < 5; attempt++) {
    const listenPort = await freePort();
    const cfg = join(dir, 'haproxy.cfg');
    await writeFile(cfg, haproxyConfig(listenPort, replicas));
    const child: ChildProcess = spawn(haproxyBinary(), ['-db', '-f', cfg], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    let exited = false;
    const gone = new Promise<void>((resolve) =>
      child.once('exit', () => {
        exited = true;
        resolve();
      }),
    );
    closers.push(async () => {
      if (exited) return;
      child.kill('SIGTERM');
      await gone;
    });
    const url = `http://127.0.0.1:${listenPort}`;
    try {
      await eventually(
        async () => {
          if (exited) return;
          expect((await fetch(`${url}/`)).status).toBe(200);
        },
        { timeoutMs: 10_000, intervalMs: 50 },
      );
    } catch (err) {
      throw new Error(`haproxy did not start: ${String(err)}\n${output}`);
    }
    if (!exited) return url;
    if (!/address already in use|cannot bind/i.test(output))
      throw new Error(`haproxy exited:\n${output}`);
  }
  throw new Error('haproxy: no free port after 5 attempts');
}

describe('HAProxy in front of two replicas', () => {
  test('SIGTERM to one replica during keep-alive load: zero failed requests, the replica exits 0', async () => {
    const blue = await startReference({ pool: 'blue', version: BLUE });
    closers.push(blue.close);
    const replicas: ProxyProcess[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await spawnProxy([
        '--pool',
        `blue=${BLUE}@${blue.url}`,
        '--shutdown-delay',
        '1s',
        '--shutdown-timeout',
        '10s',
        '--health-check-interval',
        '0',
      ]);
      closers.push(() => r.kill());
      replicas.push(r);
    }
    const [r1, r2] = replicas as [ProxyProcess, ProxyProcess];
    const lb = await startHaproxy(replicas);

    const load = startLoad({
      origin: lb,
      clients: 4,
      requests: [
        { method: 'GET', path: '/' },
        { method: 'POST', path: '/echo', body: '{"order":1}' },
      ],
    });
    const began = performance.now();
    // Both replicas serve before the restart.
    await eventually(
      async () => {
        expect(await readMetric(r1.adminUrl, 'switchyard_requests_total')).toBeGreaterThan(20);
        expect(await readMetric(r2.adminUrl, 'switchyard_requests_total')).toBeGreaterThan(20);
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, 1_500 - (performance.now() - began))),
    );
    const okBefore = load.result.ok;
    const signalledAt = performance.now();
    r1.child.kill('SIGTERM');
    const { code } = await r1.exited;
    const shutdownMs = performance.now() - signalledAt;
    // Keep the load going on the survivor a little longer (about 4 s in all).
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(500, 4_000 - (performance.now() - began))),
    );
    const result = await load.stop();
    console.log(
      `HAProxy rolling restart: ${result.ok} ok (${okBefore} before SIGTERM), ${result.failed} failed; ` +
        `replica exited ${code} ${Math.round(shutdownMs)} ms after SIGTERM (shutdownDelay 1000 ms)`,
    );
    expect(result.failures).toEqual([]);
    expect(code).toBe(0);
    expect(result.ok).toBeGreaterThan(okBefore);
    expect(r1.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['shutdown started', 'bye']));
  });
});
