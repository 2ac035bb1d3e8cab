/**
 * Rollback planning over the audit log (SPEC §5: "undo the most recent change not yet undone").
 */
import { fail } from '../errors.js';
import type { HistoryEntry, RoutingTable } from './types.js';

/** What a rollback restores: the table from before the change it undoes, and that revision. */
export interface RollbackPlan {
  /** The `before` table of the undone change, as stored (the caller restamps it). */
  table: RoutingTable;
  /** Revision of the change being undone. */
  undoes: number;
}

/**
 * Picks the change a rollback undoes. `history` is the audit log (newest first, though only
 * revisions are relied on). The rule:
 * - only applied entries count (rejected ones changed nothing);
 * - rollback entries (`undoes` set, or command `op: "rollback"`) are never undone themselves, and
 *   every revision one of them undid is spent;
 * - the target is the applied, non-rollback entry with the highest revision that is not spent;
 *   its `before` table is restored.
 * So repeated rollbacks walk further back and never re-apply what an earlier rollback undid;
 * a new change made after a rollback is the next thing undone. Example: r1 seed, r2 canary 5 %,
 * r3 canary 50 %, r4 rollback (undoes r3, restores r2's table), r5 rollback (undoes r2, restores
 * r1's table), r6 rollback: r1 has no `before` → NOTHING_TO_UNDO.
 * Throws NOTHING_TO_UNDO (409) when there is no target or its `before` is null or missing (the
 * first change of the history, or an entry recorded without it).
 */
export function planRollback(history: readonly HistoryEntry[]): RollbackPlan {
  const spent = new Set<number>();
  for (const entry of history) {
    if (entry.result === 'applied' && entry.undoes !== undefined) spent.add(entry.undoes);
  }
  let target: HistoryEntry | undefined;
  for (const entry of history) {
    if (entry.result !== 'applied' || entry.revision === null) continue;
    if (isRollbackEntry(entry) || spent.has(entry.revision)) continue;
    if (target?.revision == null || entry.revision > target.revision) target = entry;
  }
  if (target?.revision == null) {
    throw fail('NOTHING_TO_UNDO', 'rollback: nothing left to undo');
  }
  if (target.before == null) {
    throw fail(
      'NOTHING_TO_UNDO',
      `rollback: nothing left to undo (revision ${target.revision} has no earlier table)`,
    );
  }
  return { table: target.before, undoes: target.revision };
}

function isRollbackEntry(entry: HistoryEntry): boolean {
  if (entry.undoes !== undefined) return true;
  const command: unknown = entry.command;
  return (
    typeof command === 'object' &&
    command !== null &&
    (command as { op?: unknown }).op === 'rollback'
  );
}
