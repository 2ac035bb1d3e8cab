/**
 * A real `switchyard proxy` process (`node dist/src/main.js proxy`, built by `npm test`'s pretest
 * or `npm run build`) on loopback ports chosen by the OS, for signal, shutdown and memory tests.
 * Always call kill() in afterEach: it is idempotent and waits for the exit. runProxy() is for a
 * process expected to fail at start: it waits for the exit and returns the output.
 */
import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

/** A running proxy process. */
export interface ProxyProcess {
  readonly child: ChildProcess;
  readonly proxyUrl: string;
  readonly adminUrl: string;
  /** Parsed JSON log lines so far. */
  readonly logs: Array<Record<string, unknown>>;
  /** Resolves with the exit code (null when killed by a signal) once the process exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILLs the process if still running and waits for it. */
  kill(): Promise<void>;
  /** What the process wrote to stdout so far (JSON log lines and anything else). */
  stdout(): string;
  /** What the process wrote to stderr so far. */
  stderr(): string;
}

/** Options of spawnProxy and runProxy. */
export interface ProxyProcessOptions {
  /**
   * Extra environment variables over `{ PATH }`, the only variable the child gets otherwise
   * (e.g. NODE_EXTRA_CA_CERTS, which Node reads once at process start, or LOG_LEVEL).
   */
  env?: Readonly<Record<string, string>>;
  /**
   * A command the proxy is started through, which must exec its arguments (the node command
   * line), e.g. `['sh', '-c', 'echo $$ > CGROUP/cgroup.procs && exec "$0" "$@"']` to start it
   * inside a cgroup.
   */
  prefix?: readonly string[];
}

/** How a proxy process ended, and everything it wrote. */
export interface ProxyExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Spawns `node [nodeArgs] dist/src/main.js proxy --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0
 * <args>` with stdout and stderr piped.
 */
function spawnMain(
  args: readonly string[],
  nodeArgs: readonly string[],
  options: ProxyProcessOptions,
): ChildProcessByStdio<null, Readable, Readable> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
  const [command, ...prefixArgs] = options.prefix ?? [];
  return spawn(
    command ?? process.execPath,
    [
      ...prefixArgs,
      ...(command === undefined ? [] : [process.execPath]),
      ...nodeArgs,
      MAIN,
      'proxy',
      '--listen',
      '127.0.0.1:0',
      '--admin-listen',
      '127.0.0.1:0',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', ...options.env } },
  );
}

/**
 * Runs the proxy until it exits on its own (a start-up failure) and resolves with its exit code
 * and output. A proxy still running after 15 s (it started after all) is SIGKILLed, so the
 * result then has signal `SIGKILL`.
 */
export async function runProxy(
  args: readonly string[],
  options: ProxyProcessOptions = {},
): Promise<ProxyExit> {
  const child = spawnMain(args, [], options);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  try {
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    return { code, signal, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Spawns `node [nodeArgs] dist/src/main.js proxy <args>` and waits for "switchyard started". */
export async function spawnProxy(
  args: readonly string[],
  nodeArgs: readonly string[] = [],
  options: ProxyProcessOptions = {},
): Promise<ProxyProcess> {
  const child = spawnMain(args, nodeArgs, options);
  const logs: Array<Record<string, unknown>> = [];
  let stdout = '';
  let stderr = '';
  let pending = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let done = false;
  void exited.then(() => (done = true));
  const started = new Promise<Record<string, unknown>>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      pending += c.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.trim() === '') continue;
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.msg === 'switchyard started') resolve(entry);
        } catch {
          // not JSON: ignore
        }
      }
    });
    void exited.then(({ code }) => reject(new Error(`proxy exited with ${code}: ${stderr}`)));
  });
  const kill = async (): Promise<void> => {
    if (done) return;
    child.kill('SIGKILL');
    await exited;
  };
  let entry: Record<string, unknown>;
  let timer: NodeJS.Timeout | undefined;
  try {
    entry = await Promise.race([
      started,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`proxy did not start in 15 s: ${stderr}`)),
          15_000,
        );
      }),
    ]);
  } catch (err) {
    await kill();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  const listen = entry.listen as { port: number };
  const admin = entry.admin as { port: number };
  return {
    child,
    proxyUrl: `http://127.0.0.1:${listen.port}`,
    adminUrl: `http://127.0.0.1:${admin.port}`,
    logs,
    exited,
    kill,
    stdout: () => stdout,
    stderr: () => stderr,
  };
}

/**
 * Runs a full garbage collection in the proxy process through the V8 inspector
 * (`HeapProfiler.collectGarbage`), so a memory reading measures what is live rather than when the
 * last collection happened. The process must have been spawned with `--inspect=127.0.0.1:0`.
 */
export async function collectGarbage(proc: ProxyProcess): Promise<void> {
  const url = /Debugger listening on (ws:\/\/\S+)/.exec(proc.stderr())?.[1];
  if (url === undefined)
    throw new Error('no inspector: spawn the proxy with --inspect=127.0.0.1:0');
  const ws = new WebSocket(url);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    await new Promise<void>((resolve, reject) => {
      ws.on('message', (data: Buffer) => {
        const reply = JSON.parse(data.toString()) as { id?: number; error?: { message: string } };
        if (reply.id !== 1) return;
        if (reply.error) reject(new Error(`collectGarbage: ${reply.error.message}`));
        else resolve();
      });
      ws.once('error', reject);
      ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
    });
  } finally {
    ws.terminate();
  }
}

/**
 * `count` proxy processes started one after the other with the same `args` (replicas behind one
 * load balancer); each is SIGKILLed after the test through `closers` if still running.
 */
export async function spawnReplicas(
  count: number,
  args: readonly string[],
  closers: Array<() => unknown>,
): Promise<ProxyProcess[]> {
  const replicas: ProxyProcess[] = [];
  for (let i = 0; i < count; i++) {
    const r = await spawnProxy(args);
    closers.push(() => r.kill());
    replicas.push(r);
  }
  return replicas;
}
