import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { canConnect, delay, freePort, spawnChild, type BenchChild } from './child.js';

// Compiled to dist/bench/lib/: the product's entry is dist/src/main.js.
const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

/** A running reference server (the product's own upstream). */
export interface BenchUpstream {
  pool: string;
  version: string;
  url: string;
  child: BenchChild;
}

/** Starts `switchyard reference-server` on a port of its choosing and reads the URL it prints. */
export async function startReferenceServer(
  pool: string,
  version: string,
  cpu: number | undefined,
  extraArgs: readonly string[] = [],
): Promise<BenchUpstream> {
  const child = spawnChild({
    name: `reference-server ${pool}`,
    command: process.execPath,
    args: [
      MAIN,
      'reference-server',
      '--listen',
      '127.0.0.1:0',
      '--pool',
      pool,
      '--version',
      version,
      ...extraArgs,
    ],
    cpu,
  });
  try {
    const m = await child.waitForLine(/"url":"(http:\/\/[^"]+)"/, 15_000);
    return { pool, version, url: m[1] as string, child };
  } catch (err) {
    await child.close();
    throw err;
  }
}

/** A running `switchyard proxy`. */
export interface BenchProxy {
  url: string;
  adminUrl: string;
  child: BenchChild;
}

/** Options for {@link startSwitchyard}. */
export interface SwitchyardOptions {
  name?: string;
  pools: readonly BenchUpstream[];
  cpu?: number | undefined;
  redisUrl?: string;
  namespace?: string;
  extraArgs?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Write a V8 CPU profile into this directory when the proxy exits (`node --cpu-prof`). */
  cpuProfileDir?: string;
}

async function isReady(adminUrl: string): Promise<boolean> {
  try {
    const res = await request(`${adminUrl}/readyz`);
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

/**
 * Starts `switchyard proxy` as a child process. The CLI takes fixed ports, so the bench picks
 * free ones and starts again with new ports if the process exits before it is ready.
 */
export async function startSwitchyard(options: SwitchyardOptions): Promise<BenchProxy> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const adminPort = await freePort();
    const args = [
      ...(options.cpuProfileDir === undefined
        ? []
        : ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir]),
      MAIN,
      'proxy',
      '--listen',
      `127.0.0.1:${port}`,
      '--admin-listen',
      `127.0.0.1:${adminPort}`,
      ...options.pools.flatMap((p) => ['--pool', `${p.pool}=${p.version}@${p.url}`]),
      ...(options.redisUrl === undefined ? [] : ['--redis', options.redisUrl]),
      ...(options.namespace === undefined ? [] : ['--namespace', options.namespace]),
      // The bench stops proxies itself: no readiness grace period to wait out.
      '--shutdown-delay',
      '0',
      '--shutdown-timeout',
      '3s',
      '--log-level',
      'warn',
      ...(options.extraArgs ?? []),
    ];
    const child = spawnChild({
      name: options.name ?? 'switchyard',
      command: process.execPath,
      args,
      cpu: options.cpu,
      env: { ...process.env, ...options.env },
    });
    let exited = false;
    void child.exited.then(() => {
      exited = true;
    });
    const adminUrl = `http://127.0.0.1:${adminPort}`;
    const deadline = Date.now() + 20_000;
    while (!exited && Date.now() < deadline) {
      if ((await isReady(adminUrl)) && (await canConnect(port))) {
        return { url: `http://127.0.0.1:${port}`, adminUrl, child };
      }
      await delay(50);
    }
    const output = child.output();
    await child.close();
    if (!exited || attempt >= 3 || !/EADDRINUSE/.test(output)) {
      throw new Error(`switchyard proxy did not become ready: ${output}`);
    }
  }
}

/** The parts of a routing table the bench reads. */
export interface BenchTable {
  revision: number;
  weights: Record<string, number>;
}

/** Calls the admin API; throws with the server's answer on a non-2xx status. */
export async function admin<T = unknown>(
  adminUrl: string,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  body?: unknown,
): Promise<T> {
  const res = await request(`${adminUrl}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode > 299) {
    throw new Error(`${method} ${path}: ${res.statusCode} ${text}`);
  }
  return JSON.parse(text) as T;
}

/** `POST /v1/switch {to}`. */
export function switchTo(adminUrl: string, pool: string): Promise<BenchTable> {
  return admin<BenchTable>(adminUrl, 'POST', '/v1/switch', { to: pool });
}

/** `POST /v1/canary {percent}`. */
export function setCanary(adminUrl: string, percent: number): Promise<BenchTable> {
  return admin<BenchTable>(adminUrl, 'POST', '/v1/canary', { percent });
}

/** `GET /v1/state` → this replica's applied revision. */
export async function appliedRevision(adminUrl: string): Promise<number> {
  const state = await admin<{ appliedRevision: number }>(adminUrl, 'GET', '/v1/state');
  return state.appliedRevision;
}

/** Reads `x-switchyard-upstream: POOL@VERSION` from raw headers; undefined when absent. */
export function upstreamPoolOf(rawHeaders: readonly string[]): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] as string).toLowerCase() === 'x-switchyard-upstream') {
      const value = rawHeaders[i + 1] as string;
      const at = value.indexOf('@');
      return at === -1 ? value : value.slice(0, at);
    }
  }
  return undefined;
}

/** Fake immutable versions (git-SHA shaped) for the bench's pools. */
export const BENCH_VERSIONS = {
  blue: '3f2c9e1',
  green: '9ab14d0',
  canary: 'c0ffee1',
} as const;
