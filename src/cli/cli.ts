/**
 * The operator CLI (SPEC §1): a client of the admin API, nothing more. Exit codes: 0 done,
 * 1 refused by the server (any 4xx/5xx), 2 usage error, 3 admin API unreachable.
 */
import type { ReplicaInfo } from '../control/control-store.js';
import { bearerTokenProblem } from '../lib/bearer-token.js';
import { runRolloutCommand } from './rollout-command.js';
import type { HistoryEntry, RoutingTable } from '../table/types.js';
import { actorProblem, defaultActor } from './actor.js';
import { AdminClient, AdminUnreachableError, type AdminAnswer } from './admin-client.js';
import {
  checkAdminUrl,
  checkPoolName,
  parseCommandArgs,
  parsePercent,
  str,
  UsageError,
  type Values,
} from './args.js';
import {
  COMMANDS,
  commandHelp,
  commandSpec,
  DEFAULT_ADMIN_URL,
  generalHelp,
  usageLine,
} from './commands.js';
import { formatChange, formatHistory, formatReplicas, isStateAnswer } from './format.js';
import { POOLS_COMMAND } from './completion.js';
import { runLocal } from './local-commands.js';
import { describeRefusal, type RefusalContext } from './refusal.js';
import { didYouMean } from './suggest.js';
import { runStatus } from './status-command.js';
import { waitDrained } from './wait-drained.js';
import { formatRules, readRulesFile, RulesFileError } from './rules-command.js';

/** Exit codes (SPEC §1). */
export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;

/** Where the CLI writes. */
export interface CliIo {
  readonly stdout: { write(text: string): unknown; isTTY?: boolean };
  readonly stderr: { write(text: string): unknown };
  /** Ends watching commands (`status --watch`) when aborted; the process's signal otherwise. */
  readonly signal?: AbortSignal | undefined;
}

const DEFAULT_TIMEOUT_MS = 15_000;
/** With --wait the server may hold the answer up to its own timeout (at most 120 s). */
const WAIT_CLIENT_TIMEOUT_MS = 130_000;

/** `switchyard --help`: every command and every option of the operator commands. */
export const CLI_USAGE = generalHelp();

/** A request the command makes. */
interface Plan {
  readonly method: 'PUT' | 'POST' | 'DELETE';
  readonly path: string;
  readonly body: Record<string, unknown>;
  /** Pool names the command names (for the UNKNOWN_POOL hint). */
  readonly pools: readonly string[];
}

/** The message of an unknown command, with a suggestion when one is close. */
export function unknownCommandMessage(command: string): string {
  if (command.startsWith('-')) {
    return `switchyard: unknown option ${command}${didYouMean(command, ['--help', '--version'], false)}\noptions of a command come after it: switchyard COMMAND [options]; run 'switchyard --help'\n`;
  }
  return `switchyard: unknown command ${JSON.stringify(command)}${didYouMean(
    command,
    COMMANDS.map((c) => c.name),
  )}\nrun 'switchyard --help' for the list of commands\n`;
}

/**
 * Runs one command of the CLI. `argv` starts with the command name. Resolves with the exit code;
 * never throws for operational problems.
 */
export async function runCli(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: CliIo,
): Promise<number> {
  const [command, ...rest] = argv;
  if (command === POOLS_COMMAND) return completePools(rest, env, io);
  // Rollouts parse their own sub-commands (start, status, wait, ...) and help.
  if (command === 'rollout') return runRolloutCommand(rest, env, io);
  const spec = command === undefined ? undefined : commandSpec(command);
  if (command === undefined || spec === undefined || spec.kind === 'server') {
    io.stderr.write(command === undefined ? CLI_USAGE : unknownCommandMessage(command));
    return EXIT_USAGE;
  }
  const usageError = (message: string): number => {
    io.stderr.write(
      `switchyard ${spec.name}: ${message}\n${usageLine(spec)}\nrun 'switchyard ${spec.name} --help' for its options and examples\n`,
    );
    return EXIT_USAGE;
  };

  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseCommandArgs(spec, rest));
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    throw err;
  }
  if (values.help === true) {
    io.stdout.write(commandHelp(spec));
    return EXIT_OK;
  }

  if (spec.kind === 'local') {
    try {
      return runLocal(spec, positionals, io);
    } catch (err) {
      if (err instanceof UsageError) return usageError(err.message);
      throw err;
    }
  }

  let client: AdminClient;
  let query: string;
  let tokenSource: RefusalContext['tokenSource'];
  try {
    const flagUrl = str(values.admin);
    const envUrl = nonEmpty(env.SWITCHYARD_ADMIN_URL);
    const baseUrl = flagUrl ?? envUrl ?? DEFAULT_ADMIN_URL;
    checkAdminUrl(
      baseUrl,
      flagUrl === undefined && envUrl !== undefined ? 'SWITCHYARD_ADMIN_URL' : '--admin',
    );
    const flagToken = str(values.token);
    const envToken = nonEmpty(env.SWITCHYARD_ADMIN_TOKEN);
    const token = flagToken ?? envToken;
    tokenSource =
      flagToken !== undefined
        ? '--token'
        : envToken !== undefined
          ? 'SWITCHYARD_ADMIN_TOKEN'
          : null;
    const tokenProblem = token === undefined ? null : bearerTokenProblem(token);
    if (tokenProblem !== null) {
      // The same rule the proxy applies to its own token: sent as `Bearer <token>` unchanged.
      throw new UsageError(`${tokenSource}: ${tokenProblem}`);
    }
    query = command === 'wait-drained' ? '' : waitQuery(values);
    client = new AdminClient({
      baseUrl,
      token,
      timeoutMs: values.wait === true ? WAIT_CLIENT_TIMEOUT_MS : DEFAULT_TIMEOUT_MS,
      actor: spec.kind === 'change' ? actorOf(values, env) : undefined,
    });
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    throw err;
  }

  try {
    return await execute(spec.name, positionals, values, query, client, io, tokenSource);
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    if (err instanceof AdminUnreachableError) {
      io.stderr.write(`switchyard: ${err.message}\n`);
      return EXIT_UNREACHABLE;
    }
    throw err;
  } finally {
    await client.close();
  }
}

/**
 * `switchyard __pools WORDS...` (for the completion scripts): the pool names of the table, one
 * per line, from the admin API that --admin and --token among WORDS (the command line being
 * completed) or the environment point at. Silent and exit 0 whatever goes wrong: a TAB key must
 * never print errors into the middle of a command line.
 */
async function completePools(
  words: readonly string[],
  env: NodeJS.ProcessEnv,
  io: CliIo,
): Promise<number> {
  const flag = (name: string): string | undefined => {
    let value: string | undefined;
    words.forEach((word, i) => {
      if (word === `--${name}`) value = words[i + 1];
      else if (word.startsWith(`--${name}=`)) value = word.slice(name.length + 3);
    });
    return value;
  };
  const baseUrl = flag('admin') ?? nonEmpty(env.SWITCHYARD_ADMIN_URL) ?? DEFAULT_ADMIN_URL;
  const token = flag('token') ?? nonEmpty(env.SWITCHYARD_ADMIN_TOKEN);
  let client: AdminClient;
  try {
    checkAdminUrl(baseUrl, '--admin');
    if (token !== undefined && bearerTokenProblem(token) !== null) return EXIT_OK;
    client = new AdminClient({ baseUrl, token, timeoutMs: 2_000 });
  } catch {
    return EXIT_OK;
  }
  try {
    const state = await client.call('GET', '/v1/state');
    const pools = isStateAnswer(state.body) ? state.body.table?.pools : undefined;
    if (state.status === 200 && pools !== undefined) {
      io.stdout.write(
        Object.keys(pools)
          .map((name) => `${name}\n`)
          .join(''),
      );
    }
  } catch {
    // Unreachable: nothing to complete.
  } finally {
    await client.close();
  }
  return EXIT_OK;
}

/** The actor of a change: --actor, SWITCHYARD_ACTOR, else user@host. */
function actorOf(values: Values, env: NodeJS.ProcessEnv): string {
  const flag = str(values.actor);
  const fromEnv = nonEmpty(env.SWITCHYARD_ACTOR);
  const actor = flag ?? fromEnv;
  if (actor === undefined) return defaultActor(env);
  const problem = actorProblem(actor);
  if (problem !== null) {
    throw new UsageError(`${flag === undefined ? 'SWITCHYARD_ACTOR' : '--actor'}: ${problem}`);
  }
  return actor.trim();
}

async function execute(
  command: string,
  positionals: readonly string[],
  values: Values,
  query: string,
  client: AdminClient,
  io: CliIo,
  tokenSource: RefusalContext['tokenSource'],
): Promise<number> {
  const json = values.json === true;
  const refused = async (answer: AdminAnswer, pools: readonly string[] = []): Promise<number> => {
    if (json) io.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
    io.stderr.write(await describeRefusal(answer, { command, tokenSource, pools, client }));
    return EXIT_REFUSED;
  };
  const print = async (
    answer: AdminAnswer,
    human: (body: never) => string,
    pools: readonly string[] = [],
  ): Promise<number> => {
    if (answer.status >= 400) return refused(answer, pools);
    if (json) {
      io.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
      return EXIT_OK;
    }
    let text: string;
    try {
      text = human(answer.body as never);
    } catch {
      // A 200 from something else than the admin API (see status below).
      io.stderr.write(
        `switchyard: the answer was not a switchyard admin API's: is --admin the admin API address (default ${DEFAULT_ADMIN_URL}) and not the proxy's?\n`,
      );
      return EXIT_REFUSED;
    }
    io.stdout.write(text);
    return EXIT_OK;
  };

  switch (command) {
    case 'status': {
      expectArgs(positionals, 0, 'status takes no arguments');
      const outcome = await runStatus(client, io, {
        json,
        watch: values.watch === true,
        notAdminApi: () =>
          // A 200 that is not the admin API's: typically --admin pointing at the proxy port,
          // whose upstream answered GET /v1/state itself.
          io.stderr.write(
            `switchyard: GET /v1/state did not answer like a switchyard admin API: is --admin the admin API address (default ${DEFAULT_ADMIN_URL}) and not the proxy's?\n`,
          ),
      });
      if (outcome === 'not-admin') return EXIT_REFUSED;
      return outcome === null ? EXIT_OK : refused(outcome);
    }
    case 'history': {
      expectArgs(positionals, 0, 'history takes no arguments');
      const limit = str(values.limit);
      if (limit !== undefined && !/^[1-9]\d{0,3}$/.test(limit))
        throw new UsageError('--limit: must be an integer from 1 to 1000');
      const answer = await client.call(
        'GET',
        `/v1/history${limit === undefined ? '' : `?limit=${limit}`}`,
      );
      return print(answer, (body: { history: HistoryEntry[] }) => formatHistory(body.history));
    }
    case 'replicas': {
      expectArgs(positionals, 0, 'replicas takes no arguments');
      const answer = await client.call('GET', '/v1/replicas');
      return print(answer, (body: { replicas: ReplicaInfo[] }) => formatReplicas(body.replicas));
    }
    case 'wait-drained':
      return waitDrained(positionals, values, client, io);
    case 'rules': {
      expectArgs(positionals, 0, 'rules takes no arguments');
      const answer = await client.call('GET', '/v1/state');
      return print(answer, (body: { table: RoutingTable | null }) =>
        formatRules(body.table?.rules ?? []),
      );
    }
    case 'set-rules': {
      expectArgs(positionals, 0, 'set-rules takes no arguments: the rules come from --file');
      const file = str(values.file);
      if (file === undefined) throw new UsageError('set-rules needs --file FILE');
      let rules: { rules: unknown[] };
      try {
        rules = await readRulesFile(file);
      } catch (err) {
        if (err instanceof RulesFileError) throw new UsageError(err.message);
        throw err;
      }
      const answer = await client.call('PUT', `/v1/rules${query}`, {
        ...envelope(values),
        ...rules,
      });
      return print(answer, (table: RoutingTable) => formatChange(table), []);
    }
    default: {
      const plan = planChange(command, positionals, values);
      const answer = await client.call(plan.method, `${plan.path}${query}`, plan.body);
      return print(answer, (table: RoutingTable) => formatChange(table), plan.pools);
    }
  }
}

/** The fields every change body may carry: `expectRevision` from --expect-revision. */
function envelope(values: Values): Record<string, unknown> {
  const expect = str(values['expect-revision']);
  if (expect === undefined) return {};
  if (!/^\d+$/.test(expect))
    throw new UsageError('--expect-revision: must be a non-negative integer');
  return { expectRevision: Number(expect) };
}

function planChange(command: string, positionals: readonly string[], values: Values): Plan {
  const body = envelope(values);
  switch (command) {
    case 'canary': {
      expectArgs(positionals, 1, 'canary needs exactly one PERCENT, e.g. `switchyard canary 5`');
      const flagPool = str(values.pool);
      const pool = flagPool === undefined ? undefined : checkPoolName(flagPool, '--pool');
      return {
        method: 'POST',
        path: '/v1/canary',
        body: {
          ...body,
          percent: parsePercent(positionals[0] as string, 'PERCENT'),
          ...(pool === undefined ? {} : { pool }),
        },
        pools: [pool ?? 'canary'],
      };
    }
    case 'weights': {
      if (positionals.length === 0)
        throw new UsageError('weights needs POOL=PERCENT pairs, e.g. `blue=90 canary=10`');
      const percent: Record<string, number> = {};
      for (const pair of positionals) {
        const m = /^([^=]+)=(.*)$/.exec(pair);
        if (!m) throw new UsageError(`${JSON.stringify(pair)} is not POOL=PERCENT`);
        const name = checkPoolName(m[1] as string, '');
        if (Object.hasOwn(percent, name))
          throw new UsageError(`pool ${JSON.stringify(name)} given twice`);
        percent[name] = parsePercent(m[2] as string, name);
      }
      return {
        method: 'PUT',
        path: '/v1/weights',
        body: { ...body, percent },
        pools: Object.keys(percent),
      };
    }
    case 'switch': {
      expectArgs(positionals, 1, 'switch needs exactly one POOL, e.g. `switchyard switch green`');
      const to = checkPoolName(positionals[0] as string, '');
      return {
        method: 'POST',
        path: '/v1/switch',
        body: { ...body, to, ...(values.force === true ? { force: true } : {}) },
        pools: [to],
      };
    }
    case 'rollback':
      expectArgs(positionals, 0, 'rollback takes no arguments');
      return { method: 'POST', path: '/v1/rollback', body, pools: [] };
    case 'set-pool': {
      expectArgs(positionals, 1, 'set-pool needs exactly one POOL');
      const pool = checkPoolName(positionals[0] as string, '');
      const version = str(values.version);
      const endpoints = (values.endpoint ?? []) as string[];
      if (version === undefined) throw new UsageError('set-pool needs --version SHA');
      if (endpoints.length === 0)
        throw new UsageError('set-pool needs at least one --endpoint URL');
      return {
        method: 'PUT',
        path: `/v1/pools/${encodeURIComponent(pool)}`,
        body: { ...body, version, endpoints },
        pools: [],
      };
    }
    case 'mirror': {
      expectArgs(
        positionals,
        1,
        'mirror needs exactly one POOL (or off), e.g. `switchyard mirror canary --percent 10`',
      );
      const percent = str(values.percent);
      const methods = str(values.methods);
      if (positionals[0] === 'off') {
        if (percent !== undefined || methods !== undefined)
          throw new UsageError('mirror off takes no --percent or --methods');
        return { method: 'DELETE', path: '/v1/mirror', body, pools: [] };
      }
      const pool = checkPoolName(positionals[0] as string, '');
      if (percent === undefined) throw new UsageError('mirror needs --percent N');
      return {
        method: 'PUT',
        path: '/v1/mirror',
        body: {
          ...body,
          pool,
          percent: parsePercent(percent, '--percent'),
          ...(methods === undefined
            ? {}
            : { methods: methods.split(',').map((m) => m.trim().toUpperCase()) }),
        },
        pools: [pool],
      };
    }
    case 'remove-pool': {
      expectArgs(
        positionals,
        1,
        'remove-pool needs exactly one POOL, e.g. `switchyard remove-pool canary`',
      );
      const pool = checkPoolName(positionals[0] as string, '');
      return {
        method: 'DELETE',
        path: `/v1/pools/${encodeURIComponent(pool)}`,
        body,
        pools: [pool],
      };
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

function waitQuery(values: Values): string {
  const timeout = str(values.timeout);
  if (values.wait !== true) {
    if (timeout !== undefined) throw new UsageError('--timeout needs --wait');
    return '';
  }
  return `?wait=all${timeout === undefined ? '' : `&timeout=${encodeURIComponent(timeout)}`}`;
}

function expectArgs(positionals: readonly string[], count: number, message: string): void {
  if (positionals.length !== count) throw new UsageError(message);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
