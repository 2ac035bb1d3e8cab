/**
 * A real HAProxy on loopback in front of `switchyard proxy` processes: round robin over the
 * replicas' proxy ports, health-checking each replica's admin /readyz (inter 200ms, fall 1,
 * rise 1), retrying only connection failures (nothing was sent), so a lost request would show.
 * Needs /usr/sbin/haproxy (.ci/run installs it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Closer } from './closers.js';
import { eventually } from './eventually.js';
import type { ProxyProcess } from './proxy-process.js';

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

function haproxyConfig(listenPort: number, replicas: readonly ProxyProcess[]): string {
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

/**
 * Starts HAProxy in the foreground in front of `replicas` and resolves with its URL once it
 * answers 200; retries on another port if the bind lost a race. Its teardown goes to `closers`.
 */
export async function startHaproxy(
  replicas: readonly ProxyProcess[],
  closers: Closer[],
): Promise<string> {
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
