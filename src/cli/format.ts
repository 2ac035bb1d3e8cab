/** Human-readable rendering of admin API answers for the CLI (`--json` bypasses all of this). */
import type { TrafficReport } from '../admin/traffic-report.js';
import type { ReplicaInfo, StoreStatus } from '../control/control-store.js';
import type { HistoryEntry, RoutingTable } from '../table/types.js';

/** Healthy and total endpoints of one pool, as the answering replica sees them. */
export interface PoolHealth {
  healthy: number;
  total: number;
  /** Each endpoint with its health (absent from older servers). */
  endpoints?: { url: string; healthy: boolean }[];
}

/** The answer of GET /v1/state (`namespace` and `health` are absent from older servers). */
export interface StateAnswer {
  table: RoutingTable | null;
  appliedRevision: number;
  store: StoreStatus & { namespace?: string };
  build: string;
  health?: Record<string, PoolHealth>;
}

/** The answer of GET /v1/traffic (`generatedAt` is absent from older servers). */
export type TrafficAnswer = TrafficReport & { generatedAt?: string };

/** True when `body` looks like GET /v1/state's answer (and not, say, an upstream's). */
export function isStateAnswer(body: unknown): body is StateAnswer {
  if (typeof body !== 'object' || body === null) return false;
  const b = body as Partial<Record<keyof StateAnswer, unknown>>;
  return (
    typeof b.appliedRevision === 'number' &&
    typeof b.store === 'object' &&
    b.store !== null &&
    'table' in b
  );
}

/** Basis points as a percentage with two decimals: 950 -> "9.50%". */
export function formatPercent(weightBp: number): string {
  return `${(weightBp / 100).toFixed(2)}%`;
}

/** Basis points as a short percentage: 950 -> "9.5%", 10000 -> "100%". */
function shortPercent(weightBp: number): string {
  return `${weightBp / 100}%`;
}

/** Left-aligned columns separated by two spaces. */
export function columns(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows)
    row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** 12 s, 4 min, 3 h: how long ago, roughly. */
function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

/**
 * `switchyard status`: revision and store, one row per pool (weight, observed share, health,
 * endpoints), then what the observed share covers. `nowMs` is used only when the server did not
 * say what time it is (older servers); the server's clock is preferred, as it wrote `updatedAt`.
 */
export function formatStatus(
  state: StateAnswer,
  traffic: TrafficAnswer | null,
  nowMs: number,
): string {
  const { table } = state;
  const namespace =
    state.store.namespace === undefined ? '' : `, namespace ${state.store.namespace}`;
  const store = `${state.store.kind} ${state.store.up ? 'up' : 'DOWN'}${namespace}`;
  if (table === null) {
    return `no routing table yet (store: ${store}, applied revision ${state.appliedRevision})\n`;
  }
  const serverNow =
    traffic?.generatedAt === undefined ? Number.NaN : Date.parse(traffic.generatedAt);
  const now = Number.isNaN(serverNow) ? nowMs : serverNow;
  const changedMs = Date.parse(table.updatedAt);
  const sinceChange = Number.isNaN(changedMs) ? undefined : now - changedMs;
  const lines = [
    `revision ${table.revision} (applied here: ${state.appliedRevision}), store ${store}`,
    `updated ${table.updatedAt}${sinceChange === undefined ? '' : ` (${age(sinceChange)} ago)`} by ${table.updatedBy}`,
    '',
  ];
  const windowMs = traffic?.windowMs ?? 60_000;
  const windowS = Math.round(windowMs / 1000);
  const rows: string[][] = [
    ['POOL', 'VERSION', 'WEIGHT', `OBSERVED (${windowS}s)`, 'REQUESTS', 'HEALTHY', 'ENDPOINTS'],
  ];
  const warnings: string[] = [];
  for (const [name, pool] of Object.entries(table.pools)) {
    // Own keys only: a pool named `constructor` must not find Object.prototype's.
    const seen =
      traffic !== null && Object.hasOwn(traffic.pools, name) ? traffic.pools[name] : undefined;
    const observed =
      seen === undefined || traffic === null || traffic.total === 0
        ? '-'
        : `${(seen.observedShare * 100).toFixed(1)}%${seen.skewed ? ' (skewed)' : ''}`;
    const weightBp = Object.hasOwn(table.weights, name) ? (table.weights[name] ?? 0) : 0;
    const health =
      state.health !== undefined && Object.hasOwn(state.health, name)
        ? state.health[name]
        : undefined;
    if (health !== undefined && health.healthy === 0 && weightBp > 0) {
      warnings.push(
        `warning: ${name} has ${formatPercent(weightBp)} of the traffic but no healthy endpoint: its requests answer 503`,
      );
    }
    rows.push([
      name,
      pool.version,
      formatPercent(weightBp),
      observed,
      String(seen?.requests ?? 0),
      health === undefined ? '?' : `${health.healthy}/${health.total}`,
      pool.endpoints.map((url) => (isDown(health, url) ? `${url} (down)` : url)).join(', '),
    ]);
  }
  lines.push(columns(rows), '');
  lines.push(observedNote(table, traffic, windowS, sinceChange));
  if (table.mirror !== undefined)
    lines.push(`${describeMirror(table.mirror)} (copies, not counted above)`);
  lines.push(...warnings);
  return `${lines.join('\n')}\n`;
}

/** True when the server says `url` is out of rotation (health checks or passive ejection). */
function isDown(health: PoolHealth | undefined, url: string): boolean {
  return health?.endpoints?.some((e) => e.url === url && !e.healthy) ?? false;
}

/** What the OBSERVED column covers, and whether it still mixes in the previous table. */
function observedNote(
  table: RoutingTable,
  traffic: TrafficAnswer | null,
  windowS: number,
  sinceChangeMs: number | undefined,
): string {
  if (traffic === null || traffic.total === 0) {
    return `observed: no requests routed by this replica in the last ${windowS} s`;
  }
  const count = traffic.total.toLocaleString('en-US');
  const head = `observed: the ${count} request${traffic.total === 1 ? '' : 's'} this replica routed in the last ${windowS} s`;
  if (sinceChangeMs !== undefined && sinceChangeMs < windowS * 1000) {
    return `${head}; revision ${table.revision} is ${age(sinceChangeMs)} old, so some were routed by an earlier table and OBSERVED lags WEIGHT until ${windowS} s have passed`;
  }
  return head;
}

/** The answer to a change: the new revision and weights in one line. */
export function formatChange(table: RoutingTable & { changed?: boolean }): string {
  const weights = Object.entries(table.weights)
    .map(([name, weightBp]) => `${name} ${formatPercent(weightBp)}`)
    .join(', ');
  const mirror = table.mirror === undefined ? '' : `; ${describeMirror(table.mirror)}`;
  // A command that changed nothing made no revision (and nothing for rollback to undo): say so.
  if (table.changed === false)
    return `unchanged, still revision ${table.revision}: ${weights}${mirror}\n`;
  return `revision ${table.revision}: ${weights}${mirror}\n`;
}

/** `mirror canary 10 % (GET, HEAD)`, with `matching` when the mirror has a match. */
export function describeMirror(mirror: NonNullable<RoutingTable['mirror']>): string {
  const match = mirror.match === undefined ? '' : ', matching';
  return `mirror ${mirror.pool} ${formatPercent(mirror.basisPoints)} (${mirror.methods.join(', ')}${match})`;
}

/** A command of the audit log as CLI words: `canary 10%`, `switch green --force`. */
export function describeCommand(command: unknown): string {
  const raw = JSON.stringify(command) ?? String(command);
  if (typeof command !== 'object' || command === null) return raw;
  const c = command as Record<string, unknown>;
  const name = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const num = (v: unknown): number | undefined =>
    typeof v === 'number' && Number.isFinite(v) ? v : undefined;
  const share = (): string | undefined => {
    const bp = num(c.basisPoints);
    if (bp !== undefined) return shortPercent(bp);
    const percent = num(c.percent);
    return percent === undefined ? undefined : `${percent}%`;
  };
  const map = (v: unknown, toPercent: (n: number) => string): string | undefined => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    const parts: string[] = [];
    for (const [k, n] of Object.entries(v as Record<string, unknown>)) {
      if (typeof n !== 'number') return undefined;
      parts.push(`${k}=${toPercent(n)}`);
    }
    return parts.join(' ');
  };
  let words: string | undefined;
  switch (c.op) {
    case 'set-pool': {
      const endpoints = Array.isArray(c.endpoints) ? c.endpoints.map(String).join(',') : undefined;
      if (name(c.pool) !== undefined && name(c.version) !== undefined && endpoints !== undefined)
        words = `set-pool ${name(c.pool)} ${name(c.version)} ${endpoints}`;
      break;
    }
    case 'remove-pool':
      if (name(c.pool) !== undefined) words = `remove-pool ${name(c.pool)}`;
      break;
    case 'weights': {
      const given =
        c.weights !== undefined ? map(c.weights, shortPercent) : map(c.percent, (n) => `${n}%`);
      if (given !== undefined) words = `weights ${given}`;
      break;
    }
    case 'canary': {
      const pct = share();
      const pool = name(c.pool);
      if (pct !== undefined)
        words = `canary ${pct}${pool === undefined || pool === 'canary' ? '' : ` --pool ${pool}`}`;
      break;
    }
    case 'switch':
      if (name(c.to) !== undefined)
        words = `switch ${name(c.to)}${c.force === true ? ' --force' : ''}`;
      break;
    case 'rollback':
      words = 'rollback';
      break;
    case 'mirror': {
      const pct = share();
      if (c.pool === null) words = 'mirror off';
      else if (name(c.pool) !== undefined && pct !== undefined)
        words = `mirror ${name(c.pool)} --percent ${pct.replace(/%$/, '')}${Array.isArray(c.methods) ? ` --methods ${c.methods.map(String).join(',')}` : ''}`;
      break;
    }
    case 'seed': {
      // The table a store was created with (config or --pool), recorded as revision 1.
      const pools = Array.isArray(c.pools)
        ? c.pools.map((p) => name((p as { name?: unknown } | null)?.name) ?? '?')
        : undefined;
      if (pools !== undefined) words = `seed pools ${pools.join(', ')}`;
      break;
    }
    case 'reseed':
      // Redis came back empty and a replica re-created the state from its last good table.
      if (num(c.revision) !== undefined) words = `re-seed from revision ${num(c.revision)}`;
      break;
  }
  if (words === undefined) return raw.length > 160 ? `${raw.slice(0, 157)}...` : raw;
  return c.expectRevision === undefined
    ? words
    : `${words} (expect revision ${JSON.stringify(c.expectRevision)})`;
}

/** `switchyard history`: one row per entry; a refusal's reason on the line below it. */
export function formatHistory(entries: readonly HistoryEntry[]): string {
  const rows: string[][] = [['REVISION', 'TIME', 'ACTOR', 'SOURCE', 'RESULT', 'COMMAND']];
  for (const e of entries) {
    const result =
      e.result === 'applied'
        ? e.undoes === undefined
          ? 'applied'
          : `applied (undoes ${e.undoes})`
        : `rejected ${e.reason?.code ?? ''}`.trim();
    rows.push([
      e.revision === null ? '-' : String(e.revision),
      e.time,
      e.actor,
      e.source,
      result,
      describeCommand(e.command),
    ]);
  }
  const table = columns(rows).split('\n');
  const indent = ' '.repeat(Math.max(0, (table[0] ?? '').indexOf('RESULT')));
  const out: string[] = [table[0] ?? ''];
  entries.forEach((e, i) => {
    out.push(table[i + 1] ?? '');
    if (e.result === 'rejected' && e.reason !== undefined) {
      out.push(`${indent}reason: ${e.reason.message}`);
    }
  });
  return `${out.join('\n')}\n`;
}

/** `switchyard replicas`. */
export function formatReplicas(replicas: readonly ReplicaInfo[]): string {
  const rows: string[][] = [['ID', 'REVISION', 'LIVE', 'HEARTBEAT']];
  for (const r of replicas)
    rows.push([r.id, String(r.revision), r.live ? 'yes' : 'no', r.heartbeatAt]);
  return `${columns(rows)}\n`;
}
