/**
 * The operator CLI (SPEC §1): a client of the admin API, nothing more. Exit codes: 0 done,
 * 1 refused by the server (any 4xx/5xx), 2 usage error, 3 admin API unreachable.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { TrafficReport } from '../admin/traffic-report.js';
import type { ReplicaInfo } from '../control/control-store.js';
import { bearerTokenProblem } from '../lib/bearer-token.js';
import { runRolloutCommand } from './rollout-command.js';
import type { HistoryEntry, RoutingTable } from '../table/types.js';
import {
  AdminClient,
  AdminUnreachableError,
  hasUserinfo,
  redactUserinfo,
  type AdminAnswer,
} from './admin-client.js';
import {
  formatChange,
  formatHistory,
  formatReplicas,
  formatStatus,
  type StateAnswer,
} from './format.js';

/** The sub-commands runCli handles. */
export const CLI_COMMANDS: readonly string[] = [
  'status',
  'canary',
  'weights',
  'switch',
  'rollback',
  'set-pool',
  'history',
  'replicas',
  'rollout',
];

/** Exit codes (SPEC §1). */
export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;

/** Where the CLI writes. */
export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9090';
const DEFAULT_TIMEOUT_MS = 15_000;
/** With --wait the server may hold the answer up to its own timeout (at most 120 s). */
const WAIT_CLIENT_TIMEOUT_MS = 130_000;

export const CLI_USAGE = `usage: switchyard <command> [arguments] [options]

commands:
  status                               table, weights and observed traffic
  canary PERCENT [--pool P]            give P (default canary) PERCENT; others keep their ratio
  weights POOL=PERCENT...              set every weight (pools not named get 0)
  switch POOL [--force]                all traffic to POOL (--force: even if it has no healthy endpoint)
  rollback                             undo the most recent change not yet undone
  set-pool POOL --version SHA --endpoint URL [--endpoint URL...]
                                       create or update a pool
  history [--limit N]                  audit log, newest first
  replicas                             replicas and the revision each has applied
  rollout start|status|wait|promote|pause|resume|abort
                                       progressive rollouts (switchyard rollout --help)

options:
  --admin URL       admin API, may end in a path prefix (env SWITCHYARD_ADMIN_URL,
                    default ${DEFAULT_ADMIN_URL})
  --token T         bearer token (env SWITCHYARD_ADMIN_TOKEN)
  --json            print the server's answer as JSON
  --wait            changes: answer once every live replica has applied the change
  --timeout D       with --wait: how long (e.g. 5s; default 10s)
  --expect-revision N   changes: refuse unless the table is at revision N

exit codes: 0 done, 1 refused by the server, 2 usage error, 3 admin API unreachable
`;

class UsageError extends Error {}

const COMMON_OPTIONS = {
  admin: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const CHANGE_OPTIONS = {
  ...COMMON_OPTIONS,
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
  'expect-revision': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const COMMAND_OPTIONS: Record<string, ParseArgsConfig['options']> = {
  status: COMMON_OPTIONS,
  history: { ...COMMON_OPTIONS, limit: { type: 'string' } },
  replicas: COMMON_OPTIONS,
  canary: { ...CHANGE_OPTIONS, pool: { type: 'string' } },
  weights: CHANGE_OPTIONS,
  switch: { ...CHANGE_OPTIONS, force: { type: 'boolean' } },
  rollback: CHANGE_OPTIONS,
  'set-pool': {
    ...CHANGE_OPTIONS,
    version: { type: 'string' },
    endpoint: { type: 'string', multiple: true },
  },
};

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** A request the command makes, and how to print a successful answer. */
interface Plan {
  readonly method: 'PUT' | 'POST' | 'DELETE';
  readonly path: string;
  readonly body: Record<string, unknown>;
}

/**
 * Runs one operator command. `argv` starts with the command name. Resolves with the exit code;
 * never throws for operational problems.
 */
export async function runCli(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: CliIo,
): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'rollout') return runRolloutCommand(rest, env, io);
  const options = command === undefined ? undefined : COMMAND_OPTIONS[command];
  if (command === undefined || options === undefined) {
    io.stderr.write(`switchyard: unknown command ${JSON.stringify(command ?? '')}\n${CLI_USAGE}`);
    return EXIT_USAGE;
  }
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...rest],
      options,
      strict: true,
      allowPositionals: true,
    }));
  } catch (err) {
    io.stderr.write(`switchyard ${command}: ${(err as Error).message}\n${CLI_USAGE}`);
    return EXIT_USAGE;
  }
  if (values.help === true) {
    io.stdout.write(CLI_USAGE);
    return EXIT_OK;
  }

  let client: AdminClient;
  let query: string;
  try {
    const flagUrl = str(values.admin);
    const envUrl = nonEmpty(env.SWITCHYARD_ADMIN_URL);
    const baseUrl = flagUrl ?? envUrl ?? DEFAULT_ADMIN_URL;
    checkAdminUrl(
      baseUrl,
      flagUrl === undefined && envUrl !== undefined ? 'SWITCHYARD_ADMIN_URL' : '--admin',
    );
    const flagToken = str(values.token);
    const token = flagToken ?? nonEmpty(env.SWITCHYARD_ADMIN_TOKEN);
    const tokenProblem = token === undefined ? null : bearerTokenProblem(token);
    if (tokenProblem !== null) {
      // The same rule the proxy applies to its own token: sent as `Bearer <token>` unchanged.
      throw new UsageError(
        `${flagToken === undefined ? 'SWITCHYARD_ADMIN_TOKEN' : '--token'}: ${tokenProblem}`,
      );
    }
    query = waitQuery(values);
    client = new AdminClient({
      baseUrl,
      token,
      timeoutMs: values.wait === true ? WAIT_CLIENT_TIMEOUT_MS : DEFAULT_TIMEOUT_MS,
    });
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`switchyard ${command}: ${err.message}\n${CLI_USAGE}`);
    return EXIT_USAGE;
  }

  try {
    return await execute(command, positionals, values, query, client, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`switchyard ${command}: ${err.message}\n${CLI_USAGE}`);
      return EXIT_USAGE;
    }
    if (err instanceof AdminUnreachableError) {
      io.stderr.write(`switchyard: ${err.message}\n`);
      return EXIT_UNREACHABLE;
    }
    throw err;
  } finally {
    await client.close();
  }
}

async function execute(
  command: string,
  positionals: readonly string[],
  values: Values,
  query: string,
  client: AdminClient,
  io: CliIo,
): Promise<number> {
  const json = values.json === true;
  const print = (answer: AdminAnswer, human: (body: never) => string): number => {
    if (answer.status >= 400) return refused(answer, json, io);
    io.stdout.write(
      json ? `${JSON.stringify(answer.body, null, 2)}\n` : human(answer.body as never),
    );
    return EXIT_OK;
  };

  switch (command) {
    case 'status': {
      expectArgs(positionals, 0, 'status takes no arguments');
      const state = await client.call('GET', '/v1/state');
      if (state.status >= 400) return refused(state, json, io);
      const traffic = await client.call('GET', '/v1/traffic');
      if (traffic.status >= 400) return refused(traffic, json, io);
      if (json) {
        io.stdout.write(
          `${JSON.stringify({ state: state.body, traffic: traffic.body }, null, 2)}\n`,
        );
      } else {
        io.stdout.write(formatStatus(state.body as StateAnswer, traffic.body as TrafficReport));
      }
      return EXIT_OK;
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
    default: {
      const plan = planChange(command, positionals, values);
      const answer = await client.call(plan.method, `${plan.path}${query}`, plan.body);
      return print(answer, (table: RoutingTable) => formatChange(table));
    }
  }
}

function planChange(command: string, positionals: readonly string[], values: Values): Plan {
  const body: Record<string, unknown> = {};
  const expect = str(values['expect-revision']);
  if (expect !== undefined) {
    if (!/^\d+$/.test(expect))
      throw new UsageError('--expect-revision: must be a non-negative integer');
    body.expectRevision = Number(expect);
  }
  switch (command) {
    case 'canary': {
      expectArgs(positionals, 1, 'canary needs exactly one PERCENT, e.g. `switchyard canary 5`');
      const pool = str(values.pool);
      return {
        method: 'POST',
        path: '/v1/canary',
        body: {
          ...body,
          percent: parsePercent(positionals[0] as string, 'PERCENT'),
          ...(pool === undefined ? {} : { pool }),
        },
      };
    }
    case 'weights': {
      if (positionals.length === 0)
        throw new UsageError('weights needs POOL=PERCENT pairs, e.g. `blue=90 canary=10`');
      const percent: Record<string, number> = {};
      for (const pair of positionals) {
        const m = /^([^=]+)=(.+)$/.exec(pair);
        if (!m) throw new UsageError(`${JSON.stringify(pair)} is not POOL=PERCENT`);
        const name = m[1] as string;
        if (Object.hasOwn(percent, name))
          throw new UsageError(`pool ${JSON.stringify(name)} given twice`);
        percent[name] = parsePercent(m[2] as string, name);
      }
      return { method: 'PUT', path: '/v1/weights', body: { ...body, percent } };
    }
    case 'switch': {
      expectArgs(positionals, 1, 'switch needs exactly one POOL, e.g. `switchyard switch green`');
      return {
        method: 'POST',
        path: '/v1/switch',
        body: { ...body, to: positionals[0], ...(values.force === true ? { force: true } : {}) },
      };
    }
    case 'rollback':
      expectArgs(positionals, 0, 'rollback takes no arguments');
      return { method: 'POST', path: '/v1/rollback', body };
    case 'set-pool': {
      expectArgs(positionals, 1, 'set-pool needs exactly one POOL');
      const version = str(values.version);
      const endpoints = (values.endpoint ?? []) as string[];
      if (version === undefined) throw new UsageError('set-pool needs --version SHA');
      if (endpoints.length === 0)
        throw new UsageError('set-pool needs at least one --endpoint URL');
      return {
        method: 'PUT',
        path: `/v1/pools/${encodeURIComponent(positionals[0] as string)}`,
        body: { ...body, version, endpoints },
      };
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

/** Prints the server's refusal (message on stderr; the body on stdout too with --json). */
function refused(answer: AdminAnswer, json: boolean, io: CliIo): number {
  const error = (
    answer.body as {
      error?: { code?: unknown; message?: unknown; lagging?: unknown; replicasUnknown?: unknown };
    } | null
  )?.error;
  if (json) io.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
  if (error !== undefined && typeof error.code === 'string') {
    const lagging =
      error.replicasUnknown === true
        ? ' (replica list unknown)'
        : Array.isArray(error.lagging)
          ? ` (lagging: ${error.lagging.join(', ')})`
          : '';
    io.stderr.write(`switchyard: ${error.code}: ${String(error.message)}${lagging}\n`);
  } else {
    const text =
      typeof answer.body === 'string' ? answer.body.slice(0, 200) : JSON.stringify(answer.body);
    io.stderr.write(`switchyard: the admin API answered ${answer.status}: ${text}\n`);
  }
  return EXIT_REFUSED;
}

/** A percentage as typed by an operator; the server checks the range and decimals. */
function parsePercent(raw: string, what: string): number {
  const trimmed = raw.trim().replace(/%$/, '');
  if (!/^\d+(?:\.\d+)?$/.test(trimmed))
    throw new UsageError(`${what}: ${JSON.stringify(raw)} is not a percentage`);
  return Number(trimmed);
}

function waitQuery(values: Values): string {
  const timeout = str(values.timeout);
  if (values.wait !== true) {
    if (timeout !== undefined) throw new UsageError('--timeout needs --wait');
    return '';
  }
  return `?wait=all${timeout === undefined ? '' : `&timeout=${encodeURIComponent(timeout)}`}`;
}

/**
 * The admin URL may carry a path prefix (an admin API behind a reverse proxy) but no query or
 * fragment: the API paths and their query strings are appended to it. `source` is how the user
 * gave it (`--admin` or `SWITCHYARD_ADMIN_URL`). No message echoes a `user:password`: credentials
 * are refused on the text before it is parsed (an unparsable URL such as one with port 99999 would
 * otherwise be echoed whole), and every echoed URL is redacted besides.
 */
function checkAdminUrl(url: string, source: string): void {
  if (hasUserinfo(url)) {
    // The admin API takes a bearer token; the URL (and its secret) is not echoed back.
    throw new UsageError(
      `${source}: must not carry user:password; give the admin token with --token or SWITCHYARD_ADMIN_TOKEN`,
    );
  }
  const shown = JSON.stringify(redactUserinfo(url));
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${source}: ${shown} is not a URL (e.g. ${DEFAULT_ADMIN_URL})`);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    // hasUserinfo should have caught it; never echo the URL if the parser found one anyway.
    throw new UsageError(
      `${source}: must not carry user:password; give the admin token with --token or SWITCHYARD_ADMIN_TOKEN`,
    );
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UsageError(`${source}: ${shown} must be an http:// or https:// URL`);
  }
  // Checked on the text too: URL drops an empty `?` or `#`, which would still be a typo.
  if (parsed.search !== '' || parsed.hash !== '' || /[?#]/.test(url)) {
    throw new UsageError(
      `${source}: ${shown} must not have a query or fragment (a path prefix is fine, e.g. http://host:9090/switchyard)`,
    );
  }
}

function expectArgs(positionals: readonly string[], count: number, message: string): void {
  if (positionals.length !== count) throw new UsageError(message);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
