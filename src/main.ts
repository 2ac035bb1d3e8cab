#!/usr/bin/env node
/**
 * Process edge: argv, configuration, signals and exit codes. The only module that calls
 * process.exit or listens to process signals.
 */
import cluster from 'node:cluster';
import { createApp, type App } from './app.js';
import { runProxyWorker } from './cluster/proxy-worker.js';
import { CLI_USAGE, runCli } from './cli/cli.js';
import { ConfigError, loadConfig, settingsHelp } from './config/load.js';
import type { Config } from './config/schema.js';
import { demoCheatSheet, demoPoolFlags, startDemoUpstreams, type DemoUpstreams } from './demo.js';
import {
  REFERENCE_SERVER_USAGE,
  runReferenceServerCli,
} from './reference-server/reference-server.js';

const PROXY_USAGE_HEAD = `usage: switchyard proxy [--config FILE] [flags]

Runs the proxy. Precedence: flags > environment > config file (JSON or YAML) > defaults.
Durations take 500ms, 30s, 2m or milliseconds. Invalid configuration exits 2.

With no config file, no Redis and no pools it serves the demo: reference servers on loopback
seeded as pools blue, green and canary (plus a new build for the tour to deploy), on the four
ports after the proxy's; an in-memory store; the proxy on 127.0.0.1:8080 (or --listen) and the
admin API on --admin-listen. The demo logs warnings only and stops without a shutdown delay
unless LOG_LEVEL, --log-level or --shutdown-delay say otherwise.

`;

/** True when argv asks for help. A flag value cannot be `-h`: parseArgs refuses it as ambiguous. */
function wantsHelp(argv: readonly string[]): boolean {
  return argv.some((arg) => arg === '--help' || arg === '-h');
}

/**
 * True when `switchyard proxy` has nothing to route to and nowhere to get it from: no config
 * file, no Redis, no pools (SPEC §1). Decided on the loaded configuration, so flags such as
 * --listen or --drain-timeout still give the demo.
 */
function isDemo(config: Config, argv: readonly string[], env: NodeJS.ProcessEnv): boolean {
  // An empty --config never gets here (loadConfig refuses it); an empty SWITCHYARD_CONFIG means
  // unset, as every empty variable does.
  const configFile =
    Boolean(env.SWITCHYARD_CONFIG) ||
    argv.some((arg) => arg === '--config' || arg.startsWith('--config='));
  return !configFile && config.redis === undefined && config.pools.length === 0;
}

/**
 * Flags the demo sets unless the environment does (flags given by the user come later and win):
 * loopback only; no shutdown delay, as no load balancer needs time to notice; warnings only, so
 * the cheat sheet is not buried in JSON log lines.
 */
function demoDefaults(env: NodeJS.ProcessEnv): string[] {
  return [
    ...(env.SWITCHYARD_LISTEN ? [] : ['--listen', '127.0.0.1:8080']),
    ...(env.SWITCHYARD_SHUTDOWN_DELAY ? [] : ['--shutdown-delay', '0']),
    ...(env.SWITCHYARD_LOG_LEVEL || env.LOG_LEVEL ? [] : ['--log-level', 'warn']),
  ];
}

/** An http URL for a listening address; unspecified hosts (0.0.0.0, ::) as loopback. */
function urlOf(address: { host: string; port: number }): string {
  const host =
    address.host === '0.0.0.0' ? '127.0.0.1' : address.host === '::' ? '::1' : address.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

async function runProxy(argv: string[]): Promise<void> {
  const env = process.env;
  if (wantsHelp(argv)) {
    process.stdout.write(`${PROXY_USAGE_HEAD}${settingsHelp()}`);
    process.exit(0);
  }
  let demo: DemoUpstreams | undefined;
  let app: App;
  try {
    let config = loadConfig(argv, env);
    if (isDemo(config, argv, env)) {
      const defaults = demoDefaults(env);
      // The demo's reference servers take the ports after the proxy's: read it with the defaults.
      const listening = loadConfig([...defaults, ...argv], env).listen;
      demo = await startDemoUpstreams(listening.port);
      // The user's flags come after the demo's defaults and win.
      config = loadConfig([...defaults, ...argv, ...demoPoolFlags(demo)], env);
    }
    app = createApp(config);
  } catch (err) {
    await demo?.close();
    if (err instanceof ConfigError) {
      process.stderr.write(
        `switchyard: ${err.message}\n\`switchyard proxy --help\` lists every setting\n`,
      );
      process.exit(2);
    }
    throw err;
  }

  let signalled = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signalled += 1;
    if (signalled > 1) {
      app.logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    app.logger.info({ signal }, 'signal received');
    // The demo logs warnings only: say that Ctrl-C was heard.
    if (demo) process.stderr.write('stopping…\n');
    app
      .shutdown()
      .then(() => demo?.close())
      .then(() => {
        app.logger.info('bye');
        app.logger.flush();
        process.exit(0);
      })
      .catch((err: unknown) => {
        app.logger.error({ err }, 'shutdown failed');
        app.logger.flush();
        process.exit(1);
      });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    await app.start();
  } catch (err) {
    app.logger.flush();
    await demo?.close();
    process.stderr.write(`switchyard: cannot start: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (demo) {
    process.stderr.write(
      demoCheatSheet(demo, urlOf((app.workers ?? app.proxy).address()), urlOf(app.admin.address())),
    );
  } else if (app.store.status().kind === 'memory' && app.store.current() === null) {
    // Nothing can ever appear in this store except through the admin API: say why every request
    // answers 503 NO_HEALTHY_UPSTREAM and /readyz 503, instead of leaving it to be guessed.
    app.logger.warn(
      {
        fix: 'add pools: --pool NAME=SHA@URL[,URL...], SWITCHYARD_POOL, pools in the config file, or at run time `switchyard set-pool NAME --version SHA --endpoint URL`',
      },
      'no pools configured and the in-memory store is empty: every request answers 503 until a pool is added',
    );
  }
}

/**
 * A proxy worker of `--workers N` (SPEC §13): its primary sends the configuration and tables,
 * and says when to close. SIGTERM and SIGINT are the primary's to act on (a terminal's Ctrl-C,
 * or systemd's KillMode=control-group, signals the workers too): heard, not obeyed.
 */
async function runWorker(worker: NonNullable<typeof cluster.worker>): Promise<void> {
  const ignore = (): void => undefined;
  process.on('SIGTERM', ignore);
  process.on('SIGINT', ignore);
  const end = await runProxyWorker(worker);
  process.exit(end === 'destroyed' ? 1 : 0);
}

async function main(argv: string[]): Promise<void> {
  if (cluster.isWorker && cluster.worker !== undefined) return runWorker(cluster.worker);
  const [command, ...rest] = argv;
  if (command === 'proxy') return runProxy(rest);
  if (command === 'reference-server') {
    if (wantsHelp(rest)) {
      process.stdout.write(REFERENCE_SERVER_USAGE);
      process.exit(0);
    }
    let server: Awaited<ReturnType<typeof runReferenceServerCli>>;
    try {
      server = await runReferenceServerCli(rest);
    } catch (err) {
      const usage = String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
      process.stderr.write(
        `switchyard reference-server: ${(err as Error).message}\n${usage ? 'see `switchyard reference-server --help`\n' : ''}`,
      );
      process.exit(2);
    }
    const stop = (): void => {
      server.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    return;
  }
  if (command === undefined) {
    // A usage error like any other: the text goes to stderr, stdout stays clean for scripts.
    process.stderr.write(CLI_USAGE);
    process.exit(2);
  }
  // `help proxy` and `help reference-server` are those commands' own --help.
  if (command === 'help' && (rest[0] === 'proxy' || rest[0] === 'reference-server')) {
    return main([rest[0], '--help']);
  }
  const top: Record<string, string> = { '--help': 'help', '-h': 'help', '--version': 'version' };
  const code = await runCli(
    [Object.hasOwn(top, command) ? (top[command] as string) : command, ...rest],
    process.env,
    { stdout: process.stdout, stderr: process.stderr },
  );
  process.exit(code);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`switchyard: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
