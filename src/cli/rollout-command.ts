/**
 * `switchyard rollout start|status|wait|promote|pause|resume|abort` (SPEC §9): a client of the
 * rollout routes of the admin API, nothing more. `wait` exits 0 when the rollout is promoted and
 * 1 when it is aborted, so a CI job can gate on it.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { bearerTokenProblem } from '../lib/bearer-token.js';
import { commandHelp, commandSpec, usageLine, type CommandSpec } from './commands.js';
import {
  AdminClient,
  AdminUnreachableError,
  hasUserinfo,
  type AdminAnswer,
} from './admin-client.js';

/** Where the command writes (the CLI's CliIo). */
export interface RolloutIo {
  readonly stdout: { write(text: string): unknown; isTTY?: boolean };
  readonly stderr: { write(text: string): unknown };
}

const EXIT_OK = 0;
const EXIT_REFUSED = 1;
const EXIT_USAGE = 2;
const EXIT_UNREACHABLE = 3;
const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9090';
const POLL_MS = 1000;

const ROLLOUT_SPEC = commandSpec('rollout') as CommandSpec;
/** `switchyard rollout --help`: the command table's help, like every other command's. */
export const ROLLOUT_USAGE = commandHelp(ROLLOUT_SPEC);

class UsageError extends Error {}

interface Rollout {
  id: string;
  pool: string;
  baseline: string;
  version: string | null;
  phase: string;
  step: number;
  steps: Array<{ basisPoints?: number; pause?: string }>;
  targetWeightBp: number;
  /** The replica driving it (absent from older servers). */
  driver?: string;
  /** Why it is not moving on (replicas lagging, the control store unreachable). */
  waiting?: string | null;
  judgement: {
    verdict: string;
    reason: string;
    evidence: { have: number; need: number };
  } | null;
  decisions: Array<{ time: string; action: string; reason: string; dryRun?: boolean }>;
}

const FINAL = new Set(['promoted', 'aborted']);

/** Parses `5,1m,25,approval,100` into the steps of POST /v1/rollouts. */
export function parseStepsFlag(text: string): Array<Record<string, unknown>> {
  return text.split(',').map((raw, i) => {
    const item = raw.trim();
    if (item === 'approval') return { pause: 'approval' };
    if (/^\d+(\.\d+)?(ms|s|m|h)$/.test(item)) return { pause: item };
    if (/^\d+(\.\d+)?%?$/.test(item)) return { weight: Number(item.replace('%', '')) };
    throw new UsageError(
      `--steps: item ${i + 1} ${JSON.stringify(item)} is not a percentage, a duration (30s, 5m) or "approval"`,
    );
  });
}

/**
 * Parses `--webhook EVENTS=URL` (`pre-rollout,promoted=https://ci/hook`) into a webhook of
 * POST /v1/rollouts; the server checks the events and the URL and names the field.
 */
export function parseWebhookFlag(
  text: string,
  timeout: string | undefined,
): Record<string, unknown> {
  const m = /^([a-z-]+(?:,[a-z-]+)*)=(.+)$/.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `--webhook: ${JSON.stringify(text)} is not EVENTS=URL (e.g. pre-rollout,promoted=https://ci.example.com/hook)`,
    );
  }
  return {
    url: m[2],
    events: (m[1] as string).split(','),
    ...(timeout === undefined ? {} : { timeout }),
  };
}

/** Runs `switchyard rollout ...` (`argv` after `rollout`); resolves with the exit code. */
export async function runRolloutCommand(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: RolloutIo,
): Promise<number> {
  let client: AdminClient | null = null;
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: {
        admin: { type: 'string' },
        token: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'string' },
        endpoint: { type: 'string', multiple: true },
        steps: { type: 'string' },
        baseline: { type: 'string' },
        strategy: { type: 'string' },
        'dry-run': { type: 'boolean' },
        webhook: { type: 'string', multiple: true },
        'webhook-timeout': { type: 'string' },
        watch: { type: 'boolean' },
        timeout: { type: 'string' },
        full: { type: 'boolean' },
        reason: { type: 'string' },
      },
      strict: true,
      allowPositionals: true,
    });
    if (values.help === true) {
      io.stdout.write(ROLLOUT_USAGE);
      return EXIT_OK;
    }
    const [sub, ...args] = positionals;
    const baseUrl = values.admin ?? nonEmpty(env.SWITCHYARD_ADMIN_URL) ?? DEFAULT_ADMIN_URL;
    if (hasUserinfo(baseUrl)) {
      throw new UsageError('--admin: must not carry user:password; give the token with --token');
    }
    if (!/^https?:\/\/[^?#]+$/.test(baseUrl)) {
      throw new UsageError('--admin: must be an http:// or https:// URL without query');
    }
    const token = values.token ?? nonEmpty(env.SWITCHYARD_ADMIN_TOKEN);
    const problem = token === undefined ? null : bearerTokenProblem(token);
    if (problem !== null) throw new UsageError(`--token: ${problem}`);
    client = new AdminClient({ baseUrl, token, timeoutMs: 15_000 });
    const json = values.json === true;
    const show = (answer: AdminAnswer): number => {
      if (answer.status >= 400) return refused(answer, io);
      io.stdout.write(
        json ? `${JSON.stringify(answer.body, null, 2)}\n` : formatRollout(answer.body as Rollout),
      );
      return EXIT_OK;
    };
    const noArgs = (): void => {
      if (args.length > 0) throw new UsageError(`rollout ${String(sub)} takes no arguments`);
    };
    switch (sub) {
      case 'start': {
        const [pool, ...extra] = args;
        if (pool === undefined || extra.length > 0)
          throw new UsageError('rollout start takes one POOL');
        const body: Record<string, unknown> = { pool };
        if (values.version !== undefined) body.version = values.version;
        if (values.endpoint !== undefined) body.endpoints = values.endpoint;
        if (values.steps !== undefined) body.steps = parseStepsFlag(values.steps);
        if (values.baseline !== undefined) body.baseline = values.baseline;
        if (values.strategy !== undefined) body.strategy = values.strategy;
        if (values['dry-run'] === true) body.analysis = { dryRun: true };
        if (values.webhook !== undefined) {
          body.webhooks = values.webhook.map((w) => parseWebhookFlag(w, values['webhook-timeout']));
        } else if (values['webhook-timeout'] !== undefined) {
          throw new UsageError('--webhook-timeout: only with --webhook EVENTS=URL');
        }
        return show(await client.call('POST', '/v1/rollouts', body));
      }
      case 'status': {
        noArgs();
        if (values.watch !== true) return show(await client.call('GET', '/v1/rollouts/current'));
        return await follow(client, io, json, false, Number.POSITIVE_INFINITY);
      }
      case 'wait': {
        noArgs();
        const timeoutMs =
          values.timeout === undefined ? Number.POSITIVE_INFINITY : parseDuration(values.timeout);
        return await follow(client, io, json, true, timeoutMs);
      }
      case 'promote':
        noArgs();
        return show(
          await client.call(
            'POST',
            '/v1/rollouts/current/promote',
            values.full === true ? { full: true } : {},
          ),
        );
      case 'pause':
      case 'resume':
        noArgs();
        return show(await client.call('POST', `/v1/rollouts/current/${sub}`, {}));
      case 'abort':
        noArgs();
        return show(
          await client.call(
            'POST',
            '/v1/rollouts/current/abort',
            values.reason === undefined ? {} : { reason: values.reason },
          ),
        );
      default:
        throw new UsageError(`unknown rollout subcommand ${JSON.stringify(sub ?? '')}`);
    }
  } catch (err) {
    if (err instanceof UsageError || (err instanceof TypeError && 'code' in err)) {
      // Like every usage error: the problem, the usage line and a hint, not the whole help.
      io.stderr.write(
        `switchyard rollout: ${err.message}\n${usageLine(ROLLOUT_SPEC)}\n` +
          "run 'switchyard rollout --help' for its sub-commands and options\n",
      );
      return EXIT_USAGE;
    }
    if (err instanceof AdminUnreachableError) {
      io.stderr.write(`switchyard: ${err.message}\n`);
      return EXIT_UNREACHABLE;
    }
    throw err;
  } finally {
    await client?.close();
  }
}

/**
 * Polls the current rollout once a second, printing it when it changes (a TTY gets a redrawn
 * view, anything else plain lines), until it is promoted or aborted. `gate`: exit 0 promoted,
 * 1 aborted (`wait`); past `timeoutMs` exit 1.
 */
async function follow(
  client: AdminClient,
  io: RolloutIo,
  json: boolean,
  gate: boolean,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const answer = await client.call('GET', '/v1/rollouts/current');
    if (answer.status >= 400) return refused(answer, io);
    const r = answer.body as Rollout;
    const text = json ? `${JSON.stringify(r)}\n` : formatRollout(r);
    if (text !== last) {
      if (io.stdout.isTTY === true && !json) io.stdout.write('\x1b[2J\x1b[H');
      io.stdout.write(text);
      last = text;
    }
    if (FINAL.has(r.phase)) return !gate || r.phase === 'promoted' ? EXIT_OK : EXIT_REFUSED;
    if (Date.now() >= deadline) {
      io.stderr.write(`switchyard: rollout ${r.id} still ${r.phase} after the timeout\n`);
      return EXIT_REFUSED;
    }
    await delay(Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
  }
}

/** A compact view: header, evidence meter, verdict, the last decisions. */
export function formatRollout(r: Rollout): string {
  const steps = r.steps
    .map((s, i) => {
      const label = s.basisPoints === undefined ? String(s.pause) : `${s.basisPoints / 100}%`;
      return i === r.step ? `[${label}]` : label;
    })
    .join(' ');
  const lines = [
    `rollout ${r.id}: ${r.pool}${r.version === null ? '' : `@${r.version}`} vs ${r.baseline}  ${r.phase}`,
    `steps   ${steps}`,
    `weight  ${r.pool} ${r.targetWeightBp / 100} %${r.driver === undefined ? '' : `  (driven by ${r.driver})`}`,
  ];
  if (typeof r.waiting === 'string' && r.waiting !== '') lines.push(`waiting ${r.waiting}`);
  if (r.judgement !== null) {
    const { have, need } = r.judgement.evidence;
    const filled = Math.min(20, Math.floor((20 * have) / Math.max(1, need)));
    lines.push(`evidence [${'#'.repeat(filled)}${'.'.repeat(20 - filled)}] ${have}/${need}`);
    const { verdict, reason } = r.judgement;
    lines.push(`verdict ${reason.startsWith(verdict) ? reason : `${verdict}: ${reason}`}`);
  }
  for (const d of r.decisions.slice(-5)) {
    lines.push(`  ${d.time} ${d.action}${d.dryRun === true ? ' (dry run)' : ''}: ${d.reason}`);
  }
  return `${lines.join('\n')}\n`;
}

function refused(answer: AdminAnswer, io: RolloutIo): number {
  const error = (answer.body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (error !== undefined && typeof error.code === 'string') {
    io.stderr.write(`switchyard: ${error.code}: ${String(error.message)}\n`);
  } else {
    io.stderr.write(`switchyard: the admin API answered ${answer.status}\n`);
  }
  return EXIT_REFUSED;
}

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!m) throw new UsageError(`--timeout: ${JSON.stringify(text)} is not a duration (e.g. 30m)`);
  const unit = m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 3_600_000;
  return Number(m[1]) * unit;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
