#!/usr/bin/env node
/**
 * Process edge: argv, configuration, signals and exit codes. The only module that calls
 * process.exit or listens to process signals.
 */
import { createApp, type App } from './app.js';
import { runCli, CLI_COMMANDS } from './cli/cli.js';
import { ConfigError, loadConfig } from './config/load.js';
import { startDemoUpstreams, demoCheatSheet } from './demo.js';
import { runReferenceServerCli } from './reference-server/reference-server.js';

const USAGE = `usage: switchyard <command> [options]

  proxy [--config FILE] [flags]     run the proxy (no configuration at all: the demo)
  reference-server [--listen H:P] [--pool NAME] [--version SHA]
                                    run the small reference upstream
  status | canary PERCENT | weights POOL=PERCENT... | switch POOL | rollback |
  set-pool POOL --version SHA --endpoint URL... | history | replicas
                                    operator commands (see \`switchyard status --help\`)
`;

/** True when `switchyard proxy` got no configuration from any source: serve the demo. */
function isDemo(argv: readonly string[], env: NodeJS.ProcessEnv): boolean {
  if (argv.length > 0) return false;
  return [
    'SWITCHYARD_CONFIG',
    'SWITCHYARD_REDIS',
    'REDIS_URL',
    'SWITCHYARD_POOL',
    'SWITCHYARD_POOLS',
  ].every((name) => !env[name]);
}

async function runProxy(argv: string[]): Promise<void> {
  const env = process.env;
  const demo = isDemo(argv, env) ? await startDemoUpstreams() : undefined;
  let app: App;
  try {
    const args = demo
      ? [
          ...(env.SWITCHYARD_LISTEN ? [] : ['--listen', '127.0.0.1:8080']),
          ...demo.pools.flatMap((p) => ['--pool', `${p.name}=${p.version}@${p.url}`]),
        ]
      : argv;
    app = createApp(loadConfig(args, env));
  } catch (err) {
    await demo?.close();
    if (err instanceof ConfigError) {
      process.stderr.write(`switchyard: ${err.message}\n`);
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
    const proxy = app.proxy.address();
    const admin = app.admin.address();
    process.stderr.write(
      demoCheatSheet(`http://${proxy.host}:${proxy.port}`, `http://${admin.host}:${admin.port}`),
    );
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'proxy') return runProxy(rest);
  if (command === 'reference-server') {
    let server: Awaited<ReturnType<typeof runReferenceServerCli>>;
    try {
      server = await runReferenceServerCli(rest);
    } catch (err) {
      process.stderr.write(`switchyard reference-server: ${(err as Error).message}\n`);
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
  if (command !== undefined && CLI_COMMANDS.includes(command)) {
    const code = await runCli(argv, process.env, {
      stdout: process.stdout,
      stderr: process.stderr,
    });
    process.exit(code);
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    process.exit(command === undefined ? 2 : 0);
  }
  process.stderr.write(`switchyard: unknown command "${command}"\n${USAGE}`);
  process.exit(2);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`switchyard: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
