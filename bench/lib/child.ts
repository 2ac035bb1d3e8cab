import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { pinnedCommand } from './pinning.js';

/** A process the bench started; `close()` terminates it (SIGTERM, then SIGKILL). */
export interface BenchChild {
  readonly pid: number;
  readonly name: string;
  /** Last lines of its output, for error messages. */
  output(): string;
  close(): Promise<void>;
}

/** Options for {@link startChild}. */
export interface StartChildOptions {
  name: string;
  command: string;
  args: readonly string[];
  cpu?: number | undefined;
  env?: NodeJS.ProcessEnv;
  /** Open an IPC channel (node children that report readiness with `process.send`). */
  ipc?: boolean;
}

const OUTPUT_LIMIT = 8192;

/** A spawned process with its recent output. */
export class SpawnedChild implements BenchChild {
  readonly #proc: ChildProcess;
  readonly name: string;
  #output = '';
  #closing: Promise<void> | undefined;
  readonly exited: Promise<number | null>;

  constructor(name: string, proc: ChildProcess) {
    this.name = name;
    this.#proc = proc;
    const keep = (chunk: Buffer): void => {
      this.#output = (this.#output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code) => resolve(code));
    });
  }

  get pid(): number {
    return this.#proc.pid ?? -1;
  }

  get process(): ChildProcess {
    return this.#proc;
  }

  output(): string {
    return this.#output;
  }

  /** Resolves with the first output line matching `pattern` (seen or yet to come). */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const found = (): RegExpExecArray | null => {
      for (const line of this.#output.split('\n')) {
        const m = pattern.exec(line);
        if (m !== null) return m;
      }
      return null;
    };
    return withDeadline(
      new Promise<RegExpExecArray>((resolve, reject) => {
        const check = (): void => {
          const m = found();
          if (m !== null) {
            this.#proc.stdout?.off('data', check);
            this.#proc.stderr?.off('data', check);
            resolve(m);
          }
        };
        this.#proc.stdout?.on('data', check);
        this.#proc.stderr?.on('data', check);
        void this.exited.then(() => reject(new Error(`${this.name} exited: ${this.#output}`)));
        check();
      }),
      timeoutMs,
      `${this.name}: no output matching ${String(pattern)}: ${this.#output}`,
    );
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#proc.exitCode !== null || this.#proc.signalCode !== null) return;
    this.#proc.kill('SIGTERM');
    const timer = setTimeout(() => this.#proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Spawns a process (pinned when `cpu` is set) without waiting for it to be ready. */
export function spawnChild(options: StartChildOptions): SpawnedChild {
  const { command, args } = pinnedCommand(options.cpu, options.command, options.args);
  const proc = spawn(command, args, {
    env: options.env ?? process.env,
    stdio: options.ipc === true ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  proc.on('error', () => {
    // reported through `exited` / readiness timeouts
  });
  return new SpawnedChild(options.name, proc);
}

/** Message a node bench child sends once it listens. */
export interface ReadyMessage {
  type: 'ready';
  port: number;
}

/** Starts a node script that reports `{type:'ready', port}` over IPC; resolves with the port. */
export async function startNodeChild(
  options: Omit<StartChildOptions, 'command' | 'ipc'> & {
    script: string;
    nodeArgs?: readonly string[];
  },
): Promise<{ child: BenchChild; port: number }> {
  const child = spawnChild({
    ...options,
    command: process.execPath,
    args: [...(options.nodeArgs ?? []), options.script, ...options.args],
    ipc: true,
  });
  const ready = new Promise<number>((resolve, reject) => {
    child.process.on('message', (msg: unknown) => {
      const m = msg as Partial<ReadyMessage>;
      if (m.type === 'ready' && typeof m.port === 'number') resolve(m.port);
    });
    void child.exited.then((code) =>
      reject(new Error(`${options.name} exited (${code}) before ready: ${child.output()}`)),
    );
  });
  const port = await withDeadline(ready, 15_000, `${options.name} not ready`);
  // Readiness is all the IPC channel is for; keep it from holding the child alive.
  child.process.channel?.unref();
  return { child, port };
}

/** Starts any process and waits until `probe` succeeds (polled) or it exits. */
export async function startProcess(
  options: StartChildOptions & { probe: () => Promise<boolean>; timeoutMs?: number },
): Promise<BenchChild> {
  const child = spawnChild(options);
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  let exited = false;
  void child.exited.then(() => {
    exited = true;
  });
  for (;;) {
    if (exited) throw new Error(`${options.name} exited before ready: ${child.output()}`);
    if (await options.probe().catch(() => false)) return child;
    if (Date.now() > deadline) {
      await child.close();
      throw new Error(`${options.name} not ready in time: ${child.output()}`);
    }
    await delay(50);
  }
}

/** Sends a message to a node child started with {@link startNodeChild}. */
export function processOf(child: BenchChild): ChildProcess {
  return (child as SpawnedChild).process;
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export async function canConnect(port: number): Promise<boolean> {
  const socket = net.connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

/**
 * A port that was free a moment ago. Only for processes we cannot ask to bind port 0 and report
 * it (nginx, haproxy, redis-server, the product's CLI); callers retry on a bind failure.
 */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves after `ms` (pacing load phases, never for synchronisation). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with `message` if `promise` has not settled within `ms`. */
export async function withDeadline<T>(
  promise: Promise<T>,
  ms: number,
  message: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Closes every child, collecting failures. */
export async function closeAll(children: Iterable<BenchChild>): Promise<void> {
  const results = await Promise.allSettled([...children].map((c) => c.close()));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0)
    throw new AggregateError(
      failed.map((f) => f.reason as unknown),
      'close failed',
    );
}
