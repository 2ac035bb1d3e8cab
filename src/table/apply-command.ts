/**
 * The one place a routing table changes: applyCommand(current, command) -> next table (SPEC §2,
 * §5). Pure: no I/O, never mutates its inputs, returns a new deep-frozen table.
 */
import { fail } from '../errors.js';
import { planRollback } from './rollback.js';
import { copyMirror, sameMirror } from './mirror.js';
import { sameRules } from './rules.js';
import type {
  Command,
  CommandMeta,
  HistoryEntry,
  PoolSpec,
  RoutingRule,
  RoutingTable,
  TrafficMirror,
} from './types.js';
import { TOTAL_BASIS_POINTS } from './types.js';
import {
  freezeTable,
  isPoolName,
  parseCommandInput,
  parseTable,
  parsePoolSpecFields,
} from './validate.js';
import { canaryWeights } from './weights.js';

/** The next table, and for a rollback the revision whose change it undid. */
export interface AppliedCommand {
  /** The next table; `current` itself when `changed` is false. */
  table: RoutingTable;
  /**
   * False when the command leaves pools, weights and rules exactly as they are: no new revision is
   * made. A rollback is always a change (it spends the revision it undoes).
   */
  changed: boolean;
  undoes?: number;
}

/** One pool of a seed (config file or `--pool` flags). */
export interface SeedPool {
  readonly name: string;
  readonly version: string;
  readonly endpoints: readonly string[];
}

/**
 * Applies a command to the current table (null when there is none yet: revision 0) and returns
 * the next table at revision + 1, stamped with `meta.actor` and `meta.now` (default: now).
 * The command is re-validated, so hand-built commands get the same checks as parsed ones.
 * `history` (newest first) is only read by `rollback`. A command that changes nothing (same pools,
 * endpoints, versions, weights, rules and mirror) returns `current` with `changed: false`. Throws REVISION_CONFLICT, UNKNOWN_POOL, POOL_LIVE, NO_STABLE_POOL,
 * NOTHING_TO_UNDO, VALIDATION_FAILED or MUTABLE_VERSION.
 */
export function applyCommand(
  current: RoutingTable | null,
  command: Command,
  meta: CommandMeta,
  history: readonly HistoryEntry[],
): AppliedCommand {
  const currentRevision = current?.revision ?? 0;
  if (meta.expectRevision !== undefined && meta.expectRevision !== currentRevision) {
    throw fail(
      'REVISION_CONFLICT',
      `expectRevision: expected revision ${meta.expectRevision} but the table is at revision ${currentRevision}`,
      { details: { expectRevision: meta.expectRevision, revision: currentRevision } },
    );
  }
  const checked = parseCommandInput(command).command;
  const stamp = {
    revision: currentRevision + 1,
    updatedAt: meta.now ?? new Date().toISOString(),
    updatedBy: meta.actor,
  };
  const pools: Record<string, PoolSpec> = { ...current?.pools };
  const weights: Record<string, number> = { ...current?.weights };
  let rules: readonly RoutingRule[] = current?.rules ?? [];
  let mirror: TrafficMirror | undefined = current?.mirror;

  switch (checked.op) {
    case 'set-pool': {
      const existing = Object.hasOwn(pools, checked.pool) ? pools[checked.pool] : undefined;
      const weightBp = weightOf(weights, checked.pool);
      if (existing !== undefined && weightBp > 0 && existing.version !== checked.version) {
        throw fail(
          'POOL_LIVE',
          `pools.${checked.pool}: cannot change the version of a pool with weight ${weightBp} basis points (${weightBp / 100} % of the traffic); deploy into an idle pool, then shift traffic`,
        );
      }
      pools[checked.pool] = { version: checked.version, endpoints: checked.endpoints };
      if (existing === undefined) {
        weights[checked.pool] = Object.keys(weights).length === 0 ? TOTAL_BASIS_POINTS : 0;
      }
      break;
    }
    case 'remove-pool': {
      requirePool(pools, checked.pool, 'pool');
      const weightBp = weightOf(weights, checked.pool);
      if (weightBp > 0) {
        throw fail(
          'POOL_LIVE',
          `pools.${checked.pool}: cannot remove a pool with weight ${weightBp} basis points (${weightBp / 100} % of the traffic); shift its traffic away first`,
        );
      }
      // A rule's pool stays in the table: the rule would route to nothing (SPEC §12). Refusing
      // keeps every table valid on its own (each rule's pool exists), so rollback and stored
      // tables need no special case.
      const rule = rules.find((r) => r.pool === checked.pool);
      if (rule !== undefined) {
        throw fail(
          'POOL_LIVE',
          `pools.${checked.pool}: routing rule "${rule.name}" sends traffic to it; change the rules first`,
        );
      }
      // The mirror's target likewise: removing it would leave the mirror copying to nothing.
      if (mirror?.pool === checked.pool) {
        throw fail(
          'POOL_LIVE',
          `pools.${checked.pool}: traffic is mirrored to it; end the mirror first (DELETE /v1/mirror)`,
        );
      }
      delete pools[checked.pool];
      delete weights[checked.pool];
      break;
    }
    case 'weights': {
      for (const name of Object.keys(checked.weights)) requirePool(pools, name, `weights.${name}`);
      for (const name of Object.keys(weights)) weights[name] = weightOf(checked.weights, name);
      break;
    }
    case 'canary': {
      requirePool(pools, checked.pool, 'pool');
      Object.assign(weights, canaryWeights(weights, checked.pool, checked.basisPoints));
      break;
    }
    case 'switch': {
      requirePool(pools, checked.to, 'to');
      for (const name of Object.keys(weights)) {
        weights[name] = name === checked.to ? TOTAL_BASIS_POINTS : 0;
      }
      break;
    }
    case 'rules': {
      checked.rules.forEach((rule, i) => requirePool(pools, rule.pool, `rules[${i}].pool`));
      rules = checked.rules;
      break;
    }
    case 'mirror': {
      if (checked.pool === null) {
        mirror = undefined;
      } else {
        requirePool(pools, checked.pool, 'pool');
        mirror = {
          pool: checked.pool,
          basisPoints: checked.basisPoints,
          methods: checked.methods,
          ...(checked.match === undefined ? {} : { match: checked.match }),
        };
      }
      break;
    }
    case 'rollback': {
      const plan = planRollback(history);
      // The restored table comes from the audit log, which may have been read from a store:
      // validate it like any stored table.
      const table = parseTable({
        ...stamp,
        pools: plan.table.pools,
        weights: plan.table.weights,
        rules: plan.table.rules,
        ...(plan.table.mirror === undefined ? {} : { mirror: plan.table.mirror }),
      });
      return { table, changed: true, undoes: plan.undoes };
    }
  }
  if (
    current !== null &&
    sameRouting(current, pools, weights) &&
    sameRules(current.rules, rules) &&
    sameMirror(current.mirror, mirror)
  ) {
    return { table: current, changed: false };
  }
  return { table: buildTable(stamp, pools, weights, rules, mirror), changed: true };
}

/**
 * Builds the first table (revision 1) from seed pools; the first pool gets all the traffic.
 * Pools are validated like `set-pool` commands (VALIDATION_FAILED, MUTABLE_VERSION).
 */
export function createSeedTable(
  pools: ReadonlyArray<SeedPool>,
  meta: Pick<CommandMeta, 'actor' | 'now'>,
): RoutingTable {
  if (pools.length === 0) {
    throw fail('VALIDATION_FAILED', 'pools: at least one pool is required');
  }
  const specs: Record<string, PoolSpec> = {};
  const weights: Record<string, number> = {};
  pools.forEach((pool, index) => {
    if (typeof pool.name !== 'string' || !isPoolName(pool.name)) {
      throw fail('VALIDATION_FAILED', `pools[${index}].name: not a valid pool name`);
    }
    if (Object.hasOwn(specs, pool.name)) {
      throw fail('VALIDATION_FAILED', `pools.${pool.name}: named twice`);
    }
    specs[pool.name] = parsePoolSpecFields(pool.version, pool.endpoints, `pools.${pool.name}`);
    weights[pool.name] = index === 0 ? TOTAL_BASIS_POINTS : 0;
  });
  return buildTable(
    { revision: 1, updatedAt: meta.now ?? new Date().toISOString(), updatedBy: meta.actor },
    specs,
    weights,
    [],
  );
}

function requirePool(pools: Readonly<Record<string, PoolSpec>>, name: string, field: string): void {
  if (!Object.hasOwn(pools, name)) {
    throw fail('UNKNOWN_POOL', `${field}: unknown pool "${name}"`);
  }
}

/**
 * The weight of `name` in basis points, 0 when it has none. Pool names may be `constructor` and
 * the like, so plain indexing (`weights[name] ?? 0`) would return an `Object.prototype` member.
 */
function weightOf(weights: Readonly<Record<string, number>>, name: string): number {
  return Object.hasOwn(weights, name) ? (weights[name] ?? 0) : 0;
}

/**
 * True when `pools` and `weights` route exactly like `table`: the same pool names (in any order)
 * with the same version, the same endpoints in the same order, and the same weights.
 */
function sameRouting(
  table: RoutingTable,
  pools: Readonly<Record<string, PoolSpec>>,
  weights: Readonly<Record<string, number>>,
): boolean {
  const names = Object.keys(pools);
  if (names.length !== Object.keys(table.pools).length) return false;
  for (const name of names) {
    if (!Object.hasOwn(table.pools, name)) return false;
    const before = table.pools[name];
    const after = pools[name];
    if (before === undefined || after === undefined || before.version !== after.version) {
      return false;
    }
    if (before.endpoints.length !== after.endpoints.length) return false;
    if (before.endpoints.some((endpoint, i) => endpoint !== after.endpoints[i])) return false;
    if (weightOf(table.weights, name) !== weightOf(weights, name)) return false;
  }
  return true;
}

/** A fresh deep-frozen table: pools and their endpoints are copied, weights follow pool order. */
function buildTable(
  stamp: { revision: number; updatedAt: string; updatedBy: string },
  pools: Readonly<Record<string, PoolSpec>>,
  weights: Readonly<Record<string, number>>,
  rules: readonly RoutingRule[],
  mirror?: TrafficMirror,
): RoutingTable {
  const ownPools: Record<string, PoolSpec> = {};
  const ownWeights: Record<string, number> = {};
  for (const [name, spec] of Object.entries(pools)) {
    ownPools[name] = { version: spec.version, endpoints: [...spec.endpoints] };
    ownWeights[name] = weightOf(weights, name);
  }
  const ownRules = rules.map((rule) => ({
    name: rule.name,
    match: rule.match.map((m) => ({ ...m })),
    pool: rule.pool,
  }));
  return freezeTable({
    ...stamp,
    pools: ownPools,
    weights: ownWeights,
    rules: ownRules,
    ...(mirror === undefined ? {} : { mirror: copyMirror(mirror) }),
  });
}
