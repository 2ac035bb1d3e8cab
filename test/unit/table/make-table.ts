import { freezeTable } from '../../../src/table/validate.js';
import type { CommandMeta, HistoryEntry, RoutingTable } from '../../../src/table/types.js';

export const SHA_BLUE = '3f2c9e1';
export const SHA_GREEN = '9ab14d0';
export const SHA_CANARY = '9ab14d0aa';

/** A valid three-pool table (blue 100 %), with overrides. */
export function makeTable(overrides: Partial<RoutingTable> = {}): RoutingTable {
  return freezeTable({
    revision: 1,
    pools: {
      blue: { version: SHA_BLUE, endpoints: ['http://10.0.0.11:3000'] },
      green: { version: SHA_GREEN, endpoints: ['http://10.0.0.21:3000'] },
      canary: { version: SHA_CANARY, endpoints: ['http://10.0.0.31:3000'] },
    },
    weights: { blue: 10000, green: 0, canary: 0 },
    rules: [],
    updatedAt: '2026-01-01T00:00:00.000Z',
    updatedBy: 'test',
    ...overrides,
  });
}

export const META: CommandMeta = {
  actor: 'test',
  source: 'admin',
  now: '2026-01-02T00:00:00.000Z',
};

/** An applied audit entry for `table`, made from `before`. */
export function appliedEntry(
  table: RoutingTable,
  before: RoutingTable | null,
  command: unknown,
  undoes?: number,
): HistoryEntry {
  return {
    id: String(table.revision),
    revision: table.revision,
    previousRevision: before?.revision ?? 0,
    time: table.updatedAt,
    actor: table.updatedBy,
    source: 'admin',
    command,
    result: 'applied',
    before,
    ...(undoes === undefined ? {} : { undoes }),
  };
}
