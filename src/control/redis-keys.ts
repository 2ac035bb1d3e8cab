/**
 * Redis key layout of one namespace (SPEC §6). Every key carries the hash tag `{NS}`, so all of
 * them live in one Cluster slot and a script may touch several at once.
 */

/** The keys and channel of one namespace. */
export interface RedisKeys {
  /** STRING: the routing table as JSON. */
  readonly state: string;
  /** STREAM: the audit log (capped). */
  readonly history: string;
  /** STREAM: commands written by any Redis client (`cmd` field holds JSON). */
  readonly commands: string;
  /** Pub/sub channel: the new revision, as a hint. */
  readonly events: string;
  /** STRING: id of the newest `commands` entry handled (applied or rejected); dedupes entries. */
  readonly commandsCursor: string;
  /** HASH: replica id -> `<appliedRevision> <heartbeatMs>`. */
  readonly replicas: string;
  /**
   * HASH: replica id -> its drain report as JSON (SPEC §10), written with its heartbeat; a field
   * goes with its registry entry, the key expires an hour after the last heartbeat.
   */
  readonly drain: string;
  /** STRING: the current rollout with its engine state, as JSON (SPEC §9). */
  readonly rollout: string;
  /** LIST: past rollouts as JSON, newest first, capped. */
  readonly rollouts: string;
  /** STRING: id of the replica driving the rollout; SET NX PX, renewed while it lives. */
  readonly rolloutLease: string;
  /**
   * HASH: replica id -> `<redisTimeMs> <cumulative per-pool counts JSON>`, written every second;
   * a field not refreshed for an hour is dropped, the key expires an hour after the last write.
   */
  readonly rolloutCounts: string;
}

/** Keys of namespace `namespace` (`switchyard:{NS}:...`). */
export function redisKeys(namespace: string): RedisKeys {
  const prefix = `switchyard:{${namespace}}:`;
  return {
    state: `${prefix}state`,
    history: `${prefix}history`,
    commands: `${prefix}commands`,
    events: `${prefix}events`,
    commandsCursor: `${prefix}commands-cursor`,
    replicas: `${prefix}replicas`,
    drain: `${prefix}drain`,
    rollout: `${prefix}rollout`,
    rollouts: `${prefix}rollouts`,
    rolloutLease: `${prefix}rollout-lease`,
    rolloutCounts: `${prefix}rollout-counts`,
  };
}
