/**
 * How the CLI reports a refusal (any 4xx/5xx answer): the server's code and message, then a hint
 * in CLI terms where the API's own wording would not help an operator at a shell (`--force`, not
 * `force: true`; which flag or variable holds the token). Hints branch on the code, never on text.
 */
import type { AdminAnswer, AdminClient } from './admin-client.js';
import { closest } from './suggest.js';

/** What the hints need to know about the command that was refused. */
export interface RefusalContext {
  readonly command: string;
  /** Where the token came from; null when none was sent. */
  readonly tokenSource: '--token' | 'SWITCHYARD_ADMIN_TOKEN' | null;
  /** Pool names the command named (for UNKNOWN_POOL's "did you mean"). */
  readonly pools: readonly string[];
  /** Reads the current pool names for UNKNOWN_POOL's hint. */
  readonly client: AdminClient;
}

interface ErrorBody {
  code?: unknown;
  message?: unknown;
  lagging?: unknown;
  replicasUnknown?: unknown;
}

/** The lines to print on stderr for a refused call (each starts with `switchyard:` or `hint:`). */
export async function describeRefusal(answer: AdminAnswer, ctx: RefusalContext): Promise<string> {
  const error = (answer.body as { error?: ErrorBody } | null)?.error;
  const lines: string[] = [];
  const code = typeof error?.code === 'string' ? error.code : undefined;
  if (code !== undefined) {
    let message = String(error?.message);
    if (code === 'POOL_UNHEALTHY') {
      // The API's hint names the body field; the CLI's is the flag, given below.
      message = message.replace(/;\s*pass force: true to switch anyway\.?$/, '');
    }
    const lagging =
      error?.replicasUnknown === true
        ? ' (replica list unknown)'
        : Array.isArray(error?.lagging)
          ? ` (lagging: ${error.lagging.join(', ')})`
          : '';
    lines.push(`switchyard: ${code}: ${message}${lagging}`);
  } else {
    const text =
      typeof answer.body === 'string' ? answer.body.slice(0, 200) : JSON.stringify(answer.body);
    lines.push(`switchyard: the admin API answered ${answer.status}: ${text}`);
  }
  const hint = await hintFor(answer.status, code, ctx);
  if (hint !== null) lines.push(`hint: ${hint}`);
  return `${lines.join('\n')}\n`;
}

async function hintFor(
  status: number,
  code: string | undefined,
  ctx: RefusalContext,
): Promise<string | null> {
  if (status === 401) {
    if (ctx.tokenSource === null) {
      return 'the admin API needs a token: pass --token or set SWITCHYARD_ADMIN_TOKEN';
    }
    return ctx.tokenSource === '--token'
      ? "the admin API refused the token given with --token: it must equal the proxy's SWITCHYARD_ADMIN_TOKEN (--token wins over the variable)"
      : "the admin API refused the token in SWITCHYARD_ADMIN_TOKEN: it must equal the proxy's SWITCHYARD_ADMIN_TOKEN";
  }
  switch (code) {
    case 'POOL_UNHEALTHY':
      return `use --force to switch anyway (switchyard switch POOL --force); 'switchyard status' shows endpoint health`;
    case 'UNKNOWN_POOL':
      return unknownPoolHint(ctx);
    case 'REVISION_CONFLICT':
      return "the table changed since: check 'switchyard status', then retry with the current --expect-revision";
    case 'REPLICAS_LAGGING':
      return "the change is stored; lagging replicas apply it when they catch up ('switchyard replicas' shows their revisions)";
    case 'NO_STABLE_POOL':
      return 'give every pool its share at once instead: switchyard weights POOL=PERCENT...';
    case 'NOTHING_TO_UNDO':
      return "'switchyard history' shows what was changed and undone";
    case 'STORE_UNAVAILABLE':
      return 'nothing was changed; retry once the control store (Redis) is reachable again';
    case 'NOT_FOUND':
    case 'METHOD_NOT_ALLOWED':
      return "this admin API does not know that call: is the proxy an older switchyard than this CLI? ('switchyard version')";
    default:
      if (status === 404 && code === undefined) {
        return 'is --admin the admin API (default 127.0.0.1:9090), not the proxy port?';
      }
      return null;
  }
}

/** `did you mean "green"? pools: blue, green, canary`, from the current table. */
async function unknownPoolHint(ctx: RefusalContext): Promise<string | null> {
  let names: string[];
  try {
    const state = await ctx.client.call('GET', '/v1/state');
    const pools = (state.body as { table?: { pools?: unknown } } | null)?.table?.pools;
    if (state.status !== 200 || typeof pools !== 'object' || pools === null) return null;
    names = Object.keys(pools);
  } catch {
    // The refusal itself is what matters; a hint that cannot be fetched is left out.
    return null;
  }
  const missing = ctx.pools.filter((p) => !names.includes(p));
  const guesses = missing.map((p) => closest(p, names)).filter((g): g is string => g !== undefined);
  const known = `the pools are ${names.join(', ')}`;
  return guesses.length > 0
    ? `did you mean ${guesses.map((g) => JSON.stringify(g)).join(', ')}? ${known}`
    : `${known}; 'switchyard set-pool' creates one`;
}
