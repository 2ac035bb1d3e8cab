/**
 * `?wait=all&timeout=5s` on admin changes (SPEC §5, §6): answer only once every live replica has
 * applied the new revision, or 504 REPLICAS_LAGGING naming the ones that have not.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { duration } from '../config/schema.js';
import type { ControlStore } from '../control/control-store.js';
import { fail } from '../errors.js';

/** Default and largest `timeout` of a wait. */
export const DEFAULT_WAIT_TIMEOUT_MS = 10_000;
export const MAX_WAIT_TIMEOUT_MS = 120_000;
/** How often replicas are polled while waiting. */
const POLL_INTERVAL_MS = 25;

/**
 * Reads `wait` and `timeout` from the query. Returns null when no wait was asked for. Throws
 * VALIDATION_FAILED for a bad value, before anything is changed.
 */
export function parseWaitQuery(query: URLSearchParams): { timeoutMs: number } | null {
  const wait = query.get('wait');
  const timeout = query.get('timeout');
  if (wait === null) {
    if (timeout !== null) throw fail('VALIDATION_FAILED', 'timeout: only meaningful with wait=all');
    return null;
  }
  if (wait !== 'all') throw fail('VALIDATION_FAILED', 'wait: must be "all"');
  if (timeout === null) return { timeoutMs: DEFAULT_WAIT_TIMEOUT_MS };
  const parsed = duration.safeParse(timeout);
  if (!parsed.success || parsed.data <= 0 || parsed.data > MAX_WAIT_TIMEOUT_MS) {
    throw fail(
      'VALIDATION_FAILED',
      `timeout: must be a duration above 0 and at most ${MAX_WAIT_TIMEOUT_MS / 1000}s (e.g. 5s, 500ms)`,
    );
  }
  return { timeoutMs: parsed.data };
}

/**
 * Polls the store's replica list until every live replica is at `revision` or later. Rejects
 * with REPLICAS_LAGGING (504, `lagging`: ids) at the deadline, or when `signal` aborts. The change
 * is already stored when this runs, so a failure to read the replica list (Redis paused, a
 * damaged key) never becomes a 503 "refused": it is retried until the deadline and then reported
 * as REPLICAS_LAGGING with `replicasUnknown` (an operator who retried a 503 would apply the
 * change twice).
 */
export async function waitForReplicas(
  store: ControlStore,
  revision: number,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lagging: string[] = [];
  let unreadable: string | null = null;
  for (;;) {
    try {
      // One slow read (Redis paused: up to the command timeout) must not push the answer past
      // the deadline.
      const replicas = await withinMs(store.replicas(), Math.max(1, deadline - Date.now()));
      lagging = replicas.filter((r) => r.live && r.revision < revision).map((r) => r.id);
      // An empty registry (flushed, or just replaced) proves nothing: wait for the heartbeats.
      unreadable = replicas.some((r) => r.live) ? null : 'no live replica is registered';
      if (lagging.length === 0 && unreadable === null) return;
    } catch (err) {
      unreadable = err instanceof Error ? err.message : String(err);
    }
    const remainingMs = deadline - Date.now();
    if (remainingMs <= 0 || signal.aborted) {
      if (unreadable !== null) {
        throw fail(
          'REPLICAS_LAGGING',
          `revision ${revision} was stored, but the replica list could not be read within ${timeoutMs} ms (${unreadable}): whether every replica applied it is unknown`,
          { details: { lagging, revision, replicasUnknown: true } },
        );
      }
      throw fail(
        'REPLICAS_LAGGING',
        `revision ${revision} was stored, but ${lagging.length} live replica(s) had not applied it within ${timeoutMs} ms`,
        { details: { lagging, revision } },
      );
    }
    try {
      await delay(Math.min(POLL_INTERVAL_MS, remainingMs), undefined, { signal });
    } catch {
      // aborted: the next turn reports the lagging replicas at once
    }
  }
}

/** `promise`, or a rejection after `ms`; a late rejection of `promise` is ignored. */
function withinMs<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`replica list not read within ${ms} ms`)), ms);
  });
  promise.catch(() => undefined);
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
