/** Human-readable rendering of admin API answers for the CLI (`--json` bypasses all of this). */
import type { TrafficReport } from '../admin/traffic-report.js';
import type { ReplicaInfo, StoreStatus } from '../control/control-store.js';
import type { HistoryEntry, RoutingTable } from '../table/types.js';

/** The answer of GET /v1/state. */
export interface StateAnswer {
  table: RoutingTable | null;
  appliedRevision: number;
  store: StoreStatus;
  build: string;
}

/** Basis points as a percentage with two decimals: 950 -> "9.50%". */
export function formatPercent(weightBp: number): string {
  return `${(weightBp / 100).toFixed(2)}%`;
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

/** `switchyard status`: revision line, then one row per pool with observed traffic beside weight. */
export function formatStatus(state: StateAnswer, traffic: TrafficReport | null): string {
  const { table } = state;
  const store = `${state.store.kind} ${state.store.up ? 'up' : 'DOWN'}`;
  if (table === null) {
    return `no routing table yet (store: ${store}, applied revision ${state.appliedRevision})\n`;
  }
  const lines = [
    `revision ${table.revision} (applied here: ${state.appliedRevision}), store ${store}, updated ${table.updatedAt} by ${table.updatedBy}`,
    '',
  ];
  const windowS = traffic === null ? 60 : Math.round(traffic.windowMs / 1000);
  const rows: string[][] = [
    ['POOL', 'VERSION', 'WEIGHT', `OBSERVED (${windowS}s)`, 'REQUESTS', 'ENDPOINTS'],
  ];
  for (const [name, pool] of Object.entries(table.pools)) {
    // Own keys only: a pool named `constructor` must not find Object.prototype's.
    const seen =
      traffic !== null && Object.hasOwn(traffic.pools, name) ? traffic.pools[name] : undefined;
    const observed =
      seen === undefined || traffic === null || traffic.total === 0
        ? '-'
        : `${(seen.observedShare * 100).toFixed(1)}%${seen.skewed ? ' (skewed)' : ''}`;
    rows.push([
      name,
      pool.version,
      formatPercent(Object.hasOwn(table.weights, name) ? (table.weights[name] ?? 0) : 0),
      observed,
      String(seen?.requests ?? 0),
      pool.endpoints.join(','),
    ]);
  }
  lines.push(columns(rows));
  return `${lines.join('\n')}\n`;
}

/** The answer to a change: the new revision and weights in one line. */
export function formatChange(table: RoutingTable): string {
  const weights = Object.entries(table.weights)
    .map(([name, weightBp]) => `${name} ${formatPercent(weightBp)}`)
    .join(', ');
  return `revision ${table.revision}: ${weights}\n`;
}

/** `switchyard history`. */
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
      JSON.stringify(e.command),
    ]);
  }
  return `${columns(rows)}\n`;
}

/** `switchyard replicas`. */
export function formatReplicas(replicas: readonly ReplicaInfo[]): string {
  const rows: string[][] = [['ID', 'REVISION', 'LIVE', 'HEARTBEAT']];
  for (const r of replicas)
    rows.push([r.id, String(r.revision), r.live ? 'yes' : 'no', r.heartbeatAt]);
  return `${columns(rows)}\n`;
}
