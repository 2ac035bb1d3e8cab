/**
 * The one narrow seam between the control plane and the data plane: it keeps the latest valid
 * table, drops duplicates and stale offers, and announces each new table once.
 */
import { EventEmitter } from 'node:events';
import type { RoutingTable } from '../table/types.js';

/** Events of TableFeed. */
export interface TableFeedEvents {
  /** A table with a different revision than the last one was accepted. */
  tableApplied: [table: RoutingTable, previous: RoutingTable | null];
}

/** Keeps the latest table; listeners apply it to the data plane synchronously. */
export class TableFeed extends EventEmitter<TableFeedEvents> {
  #current: RoutingTable | null = null;

  /** The table currently applied, or null before the first one. */
  current(): RoutingTable | null {
    return this.#current;
  }

  /** Revision currently applied (0 before the first table). */
  appliedRevision(): number {
    return this.#current?.revision ?? 0;
  }

  /**
   * Offers a table. Same revision as the current one: ignored. Otherwise it replaces the current
   * table (a lower revision is accepted too: the store is authoritative, e.g. after a re-seed).
   * Returns true when the table was applied.
   */
  offer(table: RoutingTable): boolean {
    const previous = this.#current;
    if (previous !== null && previous === table) return false;
    if (
      previous !== null &&
      previous.revision === table.revision &&
      previous.updatedAt === table.updatedAt
    ) {
      return false;
    }
    this.#current = table;
    this.emit('tableApplied', table, previous);
    return true;
  }
}
