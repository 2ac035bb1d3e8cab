/**
 * Real redis-server processes for integration tests: each on its own free loopback port, no
 * persistence, killed in teardown. redis-server cannot bind port 0, so we pick a port, spawn,
 * wait for PING and retry on a bind failure. Never the shared 6379 instance.
 * Also: servers that require a password or ACL users, TLS-only servers (certificates from
 * tls-certs.ts), Sentinels, and redisCli. A Redis Cluster is in redis-cluster.ts.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { TlsUnavailableError, type TlsFiles } from './tls-certs.js';

/** A redis-server started by a test. */
export interface RedisServerHandle {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` (`rediss://` when TLS), without credentials. */
  readonly url: string;
  /** SIGTERM and wait for the exit; the port stays reserved for restart(). */
  stop(): Promise<void>;
  /** Sends a signal to the process (SIGKILL waits for the exit). */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** SIGSTOP: the server keeps its sockets open but answers nothing. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Stops the server if running and starts a fresh, empty one on the same port. */
  restart(): Promise<void>;
  /** Kills the server and removes its directory. Idempotent. */
  close(): Promise<void>;
  /** Runs redis-cli against this server as its admin (the default user's password, TLS). */
  cli(args: readonly string[], options?: RedisCliOptions): Promise<string>;
}

/** An ACL user created at start (`user NAME on >PASSWORD RULES...`). */
export interface RedisAclUser {
  readonly name: string;
  readonly password: string;
  /** ACL rules (default `~* &* +@all`: every key, channel and command). */
  readonly rules?: readonly string[];
}

/** Options of startRedisServer. */
export interface RedisServerOptions {
  /** Extra `--name value` arguments for redis-server. */
  args?: readonly string[];
  /** Password of the `default` user (`requirepass`). */
  password?: string;
  /** ACL users created besides `default`. */
  users?: readonly RedisAclUser[];
  /** Serve TLS only (no plain-text port) with these files; clients need not present a cert. */
  tls?: TlsFiles;
  /**
   * Picks the candidate port of each start attempt (default pickFreePort); a Redis Cluster node
   * needs its bus port, port + 10000, free as well.
   */
  pickPort?: () => Promise<number>;
}

/** Options of redisCli. */
export interface RedisCliOptions {
  /** ACL user name (the password then is that user's). */
  user?: string;
  /** Password, passed through REDISCLI_AUTH so it is never on a command line. */
  password?: string;
  /** `-c`: follow Cluster redirections. */
  cluster?: boolean;
  /** Connect with TLS and trust this CA. */
  tls?: TlsFiles;
  /**
   * Kill redis-cli and reject after this long (default 10 000 ms), so a paused or wedged server
   * fails the call with its command named instead of hanging the test until its own timeout.
   */
  timeoutMs?: number;
}

const READY_TIMEOUT_MS = 5000;
const CLI_TIMEOUT_MS = 10_000;
const START_ATTEMPTS = 5;

// Processes still running when the test worker exits are killed, so a crashed test never leaves
// a redis-server behind.
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Starts an empty redis-server (no RDB, no AOF) on a free loopback port. */
export async function startRedisServer(
  options: RedisServerOptions = {},
): Promise<RedisServerHandle> {
  const tls = options.tls;
  // Read before the directory exists, so a missing CA file leaves nothing behind.
  const ca = tls === undefined ? undefined : await readFile(tls.caFile, 'utf8');
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-redis-'));
  let child: ChildProcess | null = null;
  let port = 0;
  let closed: Promise<void> | null = null;

  const spawnOn = async (candidate: number): Promise<ChildProcess | null> => {
    const listen =
      tls === undefined
        ? ['--port', String(candidate)]
        : [
            '--port',
            '0',
            '--tls-port',
            String(candidate),
            '--tls-cert-file',
            tls.certFile,
            '--tls-key-file',
            tls.keyFile,
            '--tls-ca-cert-file',
            tls.caFile,
            '--tls-auth-clients',
            'no',
          ];
    const auth = [
      ...(options.password !== undefined ? ['--requirepass', options.password] : []),
      ...(options.users ?? []).flatMap((u) => [
        '--user',
        u.name,
        'on',
        `>${u.password}`,
        ...(u.rules ?? ['~*', '&*', '+@all']),
      ]),
    ];
    const proc = spawn(
      'redis-server',
      [
        ...listen,
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        ...auth,
        ...(options.args ?? []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      return await waitStarted(proc, candidate, ca);
    } catch (err) {
      // A build without TLS refuses the tls-* directives (6.x, 7.0), or has no TLS connection
      // type to listen with (7.2+ built with TLS as a module that is not loaded).
      const message = (err as Error).message;
      if (tls !== undefined && /bad directive|not supported|\(tls\), aborting/i.test(message)) {
        throw new TlsUnavailableError(
          `this redis-server cannot serve TLS: ${message.slice(0, 300)}`,
        );
      }
      throw err;
    }
  };

  try {
    for (let attempt = 1; child === null; attempt += 1) {
      const candidate = await (options.pickPort ?? pickFreePort)();
      child = await spawnOn(candidate);
      if (child !== null) port = candidate;
      else if (attempt >= START_ATTEMPTS) {
        throw new Error(`redis-server did not start after ${START_ATTEMPTS} attempts`);
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const stopChild = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = null;
    if (proc !== null) await stopProcess(proc, signal);
  };

  const handle: RedisServerHandle = {
    get port() {
      return port;
    },
    get url() {
      return `${tls === undefined ? 'redis' : 'rediss'}://127.0.0.1:${port}`;
    },
    stop: () => stopChild('SIGTERM'),
    async kill(signal) {
      if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT') {
        await stopChild(signal);
      } else {
        child?.kill(signal);
      }
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    async restart() {
      await stopChild('SIGTERM');
      // The port may briefly be taken by someone else; retry a few times, never move ports.
      for (let attempt = 1; ; attempt += 1) {
        child = await spawnOn(port);
        if (child !== null) return;
        if (attempt >= START_ATTEMPTS) throw new Error(`redis-server could not restart on ${port}`);
        await delay(100 * attempt);
      }
    },
    close() {
      closed ??= (async () => {
        await stopChild('SIGKILL');
        await rm(dir, { recursive: true, force: true });
      })();
      return closed;
    },
    cli(args, cliOptions = {}) {
      return redisCli(port, args, {
        ...(options.password !== undefined ? { password: options.password } : {}),
        ...(tls !== undefined ? { tls } : {}),
        ...cliOptions,
      });
    },
  };
  return handle;
}

/** Options of startSentinel. */
export interface SentinelOptions {
  /** Port of the master to monitor on 127.0.0.1. */
  masterPort: number;
  /** Master name (default `mymaster`). */
  masterName?: string;
  /** Sentinels that must agree the master is down (default 1). */
  quorum?: number;
  /** How long the master must be unreachable before it is down (default 1000 ms). */
  downAfterMs?: number;
}

/** Starts one Redis Sentinel (`redis-server <conf> --sentinel`) on a free port. */
export async function startSentinel(options: SentinelOptions): Promise<RedisServerHandle> {
  const name = options.masterName ?? 'mymaster';
  const conf = [
    `sentinel monitor ${name} 127.0.0.1 ${options.masterPort} ${options.quorum ?? 1}`,
    `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1000}`,
    `sentinel failover-timeout ${name} 5000`,
    `sentinel parallel-syncs ${name} 1`,
  ].join('\n');
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-sentinel-'));
  const confPath = join(dir, 'sentinel.conf');
  let child: ChildProcess | null = null;
  let port = 0;
  let closed: Promise<void> | null = null;
  try {
    for (let attempt = 1; child === null; attempt += 1) {
      const candidate = await pickFreePort();
      // Sentinel rewrites its config file, so each attempt gets a fresh one.
      await writeFile(confPath, `${conf}\nport ${candidate}\nbind 127.0.0.1\ndir ${dir}\n`);
      const proc = spawn('redis-server', [confPath, '--sentinel'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = await waitStarted(proc, candidate);
      if (child !== null) port = candidate;
      else if (attempt >= START_ATTEMPTS) throw new Error('redis sentinel did not start');
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const stopChild = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = null;
    if (proc !== null) await stopProcess(proc, signal);
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop: () => stopChild('SIGTERM'),
    kill: (signal) => stopChild(signal),
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    restart: () => Promise.reject(new Error('sentinel restart is not supported')),
    close() {
      closed ??= (async () => {
        await stopChild('SIGKILL');
        await rm(dir, { recursive: true, force: true });
      })();
      return closed;
    },
    cli: (args, cliOptions) => redisCli(port, args, cliOptions),
  };
}

/**
 * Runs the real `redis-cli -p PORT args...` and resolves with its trimmed stdout. A password
 * goes through REDISCLI_AUTH, so it is neither on the command line nor warned about. Rejects
 * when redis-cli fails or is still running after `timeoutMs` (default 10 s; it is then killed).
 */
export function redisCli(
  port: number,
  args: readonly string[],
  options: RedisCliOptions = {},
): Promise<string> {
  const flags = [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    ...(options.cluster === true ? ['-c'] : []),
    ...(options.tls !== undefined ? ['--tls', '--cacert', options.tls.caFile] : []),
    ...(options.user !== undefined ? ['--user', options.user] : []),
  ];
  const env =
    options.password !== undefined
      ? { ...process.env, REDISCLI_AUTH: options.password }
      : undefined;
  const timeoutMs = options.timeoutMs ?? CLI_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    execFile(
      'redis-cli',
      [...flags, ...args],
      {
        maxBuffer: 64 * 1024 * 1024,
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        ...(env !== undefined ? { env } : {}),
      },
      (err, stdout, stderr) => {
        if (err === null) resolve(stdout.trim());
        else if (err.killed === true) {
          reject(
            new Error(
              `redis-cli -p ${port} ${args.join(' ')} timed out after ${timeoutMs} ms (server paused or wedged?)`,
              { cause: err },
            ),
          );
        } else reject(new Error(`redis-cli ${args.join(' ')} failed: ${stderr}`, { cause: err }));
      },
    );
  });
}

/** Sends `signal` to a process unless it already exited, and waits for the exit. */
async function stopProcess(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  // A stopped process only handles SIGTERM once continued.
  proc.kill('SIGCONT');
  proc.kill(signal);
  await exited;
}

/** Resolves with the spawned process once it answers PING, or null if it exited first. */
async function waitStarted(
  proc: ChildProcess,
  port: number,
  ca?: string,
): Promise<ChildProcess | null> {
  let output = '';
  proc.stdout?.on('data', (chunk: Buffer) => {
    if (output.length < 8192) output += chunk.toString();
  });
  proc.stderr?.on('data', (chunk: Buffer) => {
    if (output.length < 8192) output += chunk.toString();
  });
  let spawnError: NodeJS.ErrnoException | null = null;
  proc.once('error', (err: NodeJS.ErrnoException) => {
    spawnError = err;
  });
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const failure = spawnError as NodeJS.ErrnoException | null;
    if (failure !== null) {
      if (failure.code === 'ENOENT') {
        throw new Error('redis-server not found: install it with `apt-get install redis-server`');
      }
      throw failure;
    }
    if (proc.exitCode !== null || proc.signalCode !== null) {
      // Most likely the port was taken between pickFreePort() and the bind.
      if (!/Address already in use/i.test(output)) {
        throw new Error(`redis-server exited at start: ${output.slice(0, 2000)}`);
      }
      return null;
    }
    if (await ping(port, ca)) return proc;
    await delay(20);
  }
  proc.kill('SIGKILL');
  throw new Error(`redis-server on port ${port} did not answer PING: ${output.slice(0, 2000)}`);
}

/**
 * One raw RESP PING (over TLS trusting `ca` when given); true on +PONG, or on -NOAUTH from a
 * server that requires a password (it is up and answering).
 */
function ping(port: number, ca?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket =
      ca === undefined
        ? connect({ host: '127.0.0.1', port })
        : tlsConnect({ host: '127.0.0.1', port, ca });
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once(ca === undefined ? 'connect' : 'secureConnect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
    });
  });
}

/** A loopback port that was free a moment ago (the caller must handle losing the race). */
export function pickFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
