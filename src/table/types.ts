/**
 * Routing table domain types (SPEC §2). Pure data: no I/O, imports nothing outside table/.
 */

/** Total of all weights in a table: weights are integer basis points (1/100 of a percent). */
export const TOTAL_BASIS_POINTS = 10_000;

/** One upstream pool: an immutable version (git SHA or OCI digest) and its endpoints. */
export interface PoolSpec {
  /** Hex git SHA (7..40 chars, lowercase) or `sha256:<64 hex>`. */
  readonly version: string;
  /** Absolute `http://host:port` URLs, no path, query or credentials; at least one. */
  readonly endpoints: readonly string[];
}

/** The versioned routing table every replica routes by. Deep-frozen once built. */
export interface RoutingTable {
  /** Increases by exactly 1 with every accepted change; the first table has revision 1. */
  readonly revision: number;
  /** Pools by name (`[a-z][a-z0-9-]{0,31}`), in insertion order. */
  readonly pools: Readonly<Record<string, PoolSpec>>;
  /** Weight of every pool in basis points; same keys as `pools`; sums to 10000. */
  readonly weights: Readonly<Record<string, number>>;
  /**
   * Routing rules (SPEC §12), tried in order before the weighted split and stickiness. Every
   * rule's pool is in `pools` (a pool a rule names cannot be removed). Empty when there are none.
   */
  readonly rules: readonly RoutingRule[];
  /**
   * Traffic mirroring (SPEC §12): a share of the requests is copied to a pool, fire-and-forget.
   * Absent when no mirror is set; its pool is in `pools` (a mirror target cannot be removed).
   */
  readonly mirror?: TrafficMirror;
  /** ISO-8601 time of the change that produced this revision. */
  readonly updatedAt: string;
  /** Actor of that change, e.g. `admin:token`, `cli`, `redis:1700000000000-0`. */
  readonly updatedBy: string;
}

/**
 * One test of a routing rule, in its normalised JSON form: exactly one subject (`header` and
 * `cookie` and `query` name one, `path: true` is the request path without the query) and exactly
 * one test (`value` exact, `prefix`, `regex` unanchored on a linear-time engine, `present`).
 * Header names are stored in lowercase; `invert` is only stored when true.
 */
export interface RuleMatch {
  readonly header?: string;
  readonly cookie?: string;
  readonly query?: string;
  readonly path?: true;
  readonly value?: string;
  readonly prefix?: string;
  readonly regex?: string;
  readonly present?: true;
  readonly invert?: true;
}

/** A routing rule: requests for which every match holds go to `pool`. */
export interface RoutingRule {
  /** `[a-z][a-z0-9-]{0,63}`, unique in the table; the `rule` label of its hit counter. */
  readonly name: string;
  readonly match: readonly RuleMatch[];
  readonly pool: string;
}

/** Request methods a mirror may copy (the methods the proxy forwards). */
export const MIRROR_METHODS = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'POST', 'PATCH'] as const;

/** A method a mirror may copy. */
export type MirrorMethod = (typeof MIRROR_METHODS)[number];

/**
 * Traffic mirroring in its normalised form: copy `basisPoints` (1..10000) of the requests whose
 * method is in `methods` (and, when `match` is given, for which every match holds) to `pool`.
 */
export interface TrafficMirror {
  readonly pool: string;
  readonly basisPoints: number;
  /** Uppercase, no duplicates, at least one; `["GET","HEAD"]` unless the writer chose others. */
  readonly methods: readonly MirrorMethod[];
  /** Matches in the rule grammar; only stored when given. */
  readonly match?: readonly RuleMatch[];
}

/** Where a command came from (audit `source`). */
export type CommandSource = 'admin' | 'cli' | 'redis' | 'seed';

/** A validated change to the table. Percentages are already converted to basis points. */
export type Command =
  | {
      readonly op: 'set-pool';
      readonly pool: string;
      readonly version: string;
      readonly endpoints: readonly string[];
    }
  | { readonly op: 'remove-pool'; readonly pool: string }
  | { readonly op: 'weights'; readonly weights: Readonly<Record<string, number>> }
  | { readonly op: 'canary'; readonly basisPoints: number; readonly pool: string }
  | { readonly op: 'switch'; readonly to: string }
  | { readonly op: 'rules'; readonly rules: readonly RoutingRule[] }
  /** Sets the mirror (`pool` a name) or ends it (`pool: null`). */
  | ({ readonly op: 'mirror'; readonly pool: string } & Omit<TrafficMirror, 'pool'>)
  | { readonly op: 'mirror'; readonly pool: null }
  | { readonly op: 'rollback' };

/** The operation names accepted in `op`. */
export type CommandOp = Command['op'];

/** Who/what issued a command, and the optimistic-concurrency guard. */
export interface CommandMeta {
  readonly actor: string;
  readonly source: CommandSource;
  /** When set, the change is refused with REVISION_CONFLICT unless the table is at this revision. */
  readonly expectRevision?: number | undefined;
  /** ISO time to stamp on the new table; defaults to now. */
  readonly now?: string | undefined;
  /** Why the change was made (a rollout's reason with its numbers), kept in history. */
  readonly note?: string | undefined;
}

/** One audit log entry (SPEC §6). Rejected commands are recorded too. */
export interface HistoryEntry {
  /** Store-assigned id (memory: sequence number; Redis: stream id). */
  readonly id: string;
  /** Revision produced by the change; null when rejected. */
  readonly revision: number | null;
  /** Revision the table was at when the command was handled (0 when there was no table). */
  readonly previousRevision: number;
  readonly time: string;
  readonly actor: string;
  readonly source: CommandSource;
  /** The command as received (validated form when valid, raw input otherwise). */
  readonly command: unknown;
  readonly result: 'applied' | 'rejected';
  /** Reason of a rejection: the error code and message. */
  readonly reason?: { readonly code: string; readonly message: string } | undefined;
  /** Table before an applied change (what a rollback restores); null when there was none. */
  readonly before?: RoutingTable | null | undefined;
  /** For an applied rollback: the revision whose change it undid. */
  readonly undoes?: number | undefined;
  /** Why the change was made, when its maker said (rollouts: the reason with its numbers). */
  readonly note?: string | undefined;
}
