/**
 * `switchyard status [--watch]`: the table, endpoint health and the observed share over the
 * traffic window. `--watch` repeats it every second until interrupted, like `rollout status
 * --watch`: a TTY gets the view redrawn in place, anything else (a pipe, a log file) one plain
 * line per change, so a log shows when weights, health or the observed split moved.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { AdminAnswer, AdminClient } from './admin-client.js';
import {
  formatPercent,
  formatStatus,
  isStateAnswer,
  type StateAnswer,
  type TrafficAnswer,
} from './format.js';

/** Where status writes; `signal` ends a watch (tests; the CLI process ends by its signal). */
export interface StatusIo {
  readonly stdout: { write(text: string): unknown; isTTY?: boolean };
  readonly stderr: { write(text: string): unknown };
  readonly signal?: AbortSignal | undefined;
}

/** How often --watch reads the admin API. */
const WATCH_INTERVAL_MS = 1000;

/** What one read gave: both answers, or the refusal to report. */
type Reading =
  | { readonly ok: true; readonly state: StateAnswer; readonly traffic: TrafficAnswer }
  | { readonly ok: false; readonly refusal: AdminAnswer | null };

async function read(client: AdminClient): Promise<Reading> {
  const state = await client.call('GET', '/v1/state');
  if (state.status >= 400) return { ok: false, refusal: state };
  if (!isStateAnswer(state.body)) return { ok: false, refusal: null };
  const traffic = await client.call('GET', '/v1/traffic');
  if (traffic.status >= 400) return { ok: false, refusal: traffic };
  return { ok: true, state: state.body, traffic: traffic.body as TrafficAnswer };
}

/**
 * Runs `status`. Resolves with the refusal to report (the caller prints it like any other) or
 * null when done.
 */
export async function runStatus(
  client: AdminClient,
  io: StatusIo,
  options: { json: boolean; watch: boolean; notAdminApi: () => void },
): Promise<AdminAnswer | null | 'not-admin'> {
  const tty = io.stdout.isTTY === true && !options.json;
  let last = '';
  for (;;) {
    const reading = await read(client);
    if (!reading.ok) {
      if (reading.refusal === null) {
        options.notAdminApi();
        return 'not-admin';
      }
      return reading.refusal;
    }
    const { state, traffic } = reading;
    if (!options.watch) {
      io.stdout.write(
        options.json
          ? `${JSON.stringify({ state, traffic }, null, 2)}\n`
          : formatStatus(state, traffic, Date.now()),
      );
      return null;
    }
    if (options.json) {
      // One JSON document per line (NDJSON), each read.
      io.stdout.write(`${JSON.stringify({ state, traffic })}\n`);
    } else if (tty) {
      const view = formatStatus(state, traffic, Date.now());
      if (view !== last) {
        io.stdout.write(`\x1b[2J\x1b[H${view}\nevery 1 s; Ctrl-C to stop\n`);
        last = view;
      }
    } else {
      const line = statusLine(state, traffic);
      if (line !== last) {
        io.stdout.write(`${new Date().toISOString()} ${line}\n`);
        last = line;
      }
    }
    try {
      await delay(WATCH_INTERVAL_MS, undefined, { signal: io.signal });
    } catch {
      return null; // aborted: the watch is over
    }
  }
}

/**
 * One plain line: revision, then per pool its weight, observed share (whole percent, so the line
 * changes when the split moves, not with every request) and healthy/total endpoints.
 */
export function statusLine(state: StateAnswer, traffic: TrafficAnswer | null): string {
  const { table } = state;
  if (table === null) return `no routing table yet (applied revision ${state.appliedRevision})`;
  const parts = [`revision ${table.revision} (applied ${state.appliedRevision})`];
  const windowS = Math.round((traffic?.windowMs ?? 60_000) / 1000);
  for (const name of Object.keys(table.pools)) {
    const weightBp = Object.hasOwn(table.weights, name) ? (table.weights[name] ?? 0) : 0;
    const seen =
      traffic !== null && Object.hasOwn(traffic.pools, name) ? traffic.pools[name] : undefined;
    const observed =
      seen === undefined || traffic === null || traffic.total === 0
        ? '-'
        : `${Math.round(seen.observedShare * 100)}%${seen.skewed ? ' skewed' : ''}`;
    const health =
      state.health !== undefined && Object.hasOwn(state.health, name)
        ? state.health[name]
        : undefined;
    const healthy = health === undefined ? '?' : `${health.healthy}/${health.total} healthy`;
    parts.push(
      `${name} ${formatPercent(weightBp)} (observed ${observed} over ${windowS}s, ${healthy})`,
    );
  }
  return parts.join(' | ');
}
