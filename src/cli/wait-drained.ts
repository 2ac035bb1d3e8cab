/**
 * `switchyard wait-drained POOL [--timeout 10m]` (SPEC §10): polls GET /v1/pools/{POOL}/drain
 * until nothing flows to the pool on any live replica, printing progress when it changes. Exit
 * codes: 0 drained, 1 timeout or refused (unknown pool...), 2 usage error, 3 admin API unreachable
 * at the first poll (later unreachable polls are retried until the deadline, like a 5xx).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { duration } from '../config/schema.js';
import { AdminUnreachableError, type AdminAnswer, type AdminClient } from './admin-client.js';

/** Default `--timeout`. */
export const WAIT_DRAINED_DEFAULT_TIMEOUT_MS = 10 * 60_000;
/** Pause between polls: replicas report once a second. */
export const WAIT_DRAINED_POLL_MS = 500;

/** The command's synopsis. */
const SYNOPSIS = 'wait-drained POOL [--timeout D]';

interface Io {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

interface DrainAnswer {
  pool: string;
  weight: number;
  drained: boolean;
  replicas: Array<{
    id: string;
    live: boolean;
    weight: number | null;
    inFlight: number | null;
    longLived: number | null;
  }>;
}

/** Runs the command after the CLI parsed its options; resolves with the exit code. */
export async function waitDrained(
  positionals: readonly string[],
  values: Readonly<Record<string, unknown>>,
  client: AdminClient,
  io: Io,
  pollMs = WAIT_DRAINED_POLL_MS,
): Promise<number> {
  const usage = (message: string): number => {
    io.stderr.write(`switchyard wait-drained: ${message}\nusage: switchyard ${SYNOPSIS}\n`);
    return 2;
  };
  if (positionals.length !== 1)
    return usage('needs exactly one POOL, e.g. `switchyard wait-drained blue`');
  const pool = positionals[0] as string;
  let timeoutMs = WAIT_DRAINED_DEFAULT_TIMEOUT_MS;
  if (typeof values.timeout === 'string') {
    const parsed = duration.safeParse(values.timeout);
    if (!parsed.success || parsed.data <= 0)
      return usage(
        `--timeout: ${JSON.stringify(values.timeout)} is not a duration above 0 (e.g. 90s, 10m)`,
      );
    timeoutMs = parsed.data;
  }
  const json = values.json === true;
  const path = `/v1/pools/${encodeURIComponent(pool)}/drain`;
  const startedAt = Date.now();
  const deadline = startedAt + timeoutMs;
  let last = '';
  let lastBody: unknown = null;
  for (let attempt = 0; ; attempt++) {
    let answer: AdminAnswer | null = null;
    try {
      answer = await client.call('GET', path);
    } catch (err) {
      if (!(err instanceof AdminUnreachableError) || attempt === 0) throw err;
      report(io, `${err.message} (retrying)`, last, (line) => (last = line));
    }
    if (answer !== null) {
      if (answer.status >= 400 && answer.status < 500) return refused(answer, json, io);
      if (answer.status >= 500) {
        report(io, `the admin API answered ${answer.status} (retrying)`, last, (l) => (last = l));
      } else {
        const body = answer.body as DrainAnswer;
        lastBody = body;
        const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
        if (body.drained) {
          io.stdout.write(
            json ? `${JSON.stringify(body, null, 2)}\n` : `${pool}: drained after ${seconds}s\n`,
          );
          return 0;
        }
        if (!json) report(io, progress(body), last, (l) => (last = l));
      }
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    await delay(Math.min(pollMs, left));
  }
  if (json && lastBody !== null) io.stdout.write(`${JSON.stringify(lastBody, null, 2)}\n`);
  io.stderr.write(
    `switchyard: ${pool} not drained within ${Math.round(timeoutMs / 1000)}s${last === '' ? '' : ` (${last})`}\n`,
  );
  return 1;
}

/** Prints `line` on stdout unless it is the same as the previous one. */
function report(io: Io, line: string, last: string, remember: (line: string) => void): void {
  if (line === last) return;
  remember(line);
  io.stdout.write(`${line}\n`);
}

/** One line: the pool's weight and what each live replica still carries. */
function progress(body: DrainAnswer): string {
  const busy: string[] = [];
  let inFlight = 0;
  let longLived = 0;
  for (const r of body.replicas) {
    if (!r.live) continue;
    if (r.weight === null) busy.push(`${r.id}: no report`);
    else if (r.weight > 0) busy.push(`${r.id}: weight ${r.weight}`);
    inFlight += r.inFlight ?? 0;
    longLived += r.longLived ?? 0;
  }
  const head =
    body.weight > 0
      ? `${body.pool}: weight ${body.weight} bp in the table`
      : `${body.pool}: ${inFlight} in flight, ${longLived} long-lived`;
  return busy.length === 0 ? head : `${head}; ${busy.join(', ')}`;
}

function refused(answer: AdminAnswer, json: boolean, io: Io): number {
  if (json) io.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
  const error = (answer.body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (error !== undefined && typeof error.code === 'string')
    io.stderr.write(`switchyard: ${error.code}: ${String(error.message)}\n`);
  else io.stderr.write(`switchyard: the admin API answered ${answer.status}\n`);
  return 1;
}
