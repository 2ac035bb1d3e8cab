/**
 * One `commands` stream entry (SPEC §6): a field `cmd` holding JSON, decoded and handed to the
 * writer. Anything else a Redis client can write (no `cmd`, a huge value, text that is not JSON)
 * is recorded in history as a rejection, never thrown.
 */
import { fail, isSwitchyardError, type SwitchyardError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { CommandMeta } from '../table/types.js';
import { rejectedEntry } from './audit-entry.js';
import type { RedisWriter } from './redis-writer.js';

/** Largest `cmd` field parsed from the commands stream. */
export const MAX_COMMAND_BYTES = 64 * 1024;
/** Field names listed in the record of an entry without `cmd`. */
const MAX_FIELD_NAMES = 20;
const MAX_FIELD_NAME_CHARS = 64;

/** A decoded entry: the parsed `cmd`, or the problem and what to record for it. */
export type DecodedCommand =
  | { readonly ok: true; readonly input: unknown }
  | { readonly ok: false; readonly problem: SwitchyardError; readonly recorded: unknown };

/** Decodes a commands entry's flat field list (`[name, value, name, value...]`). */
export function decodeCommandEntry(fields: readonly string[]): DecodedCommand {
  const raw = fieldValue(fields, 'cmd');
  if (raw === undefined) {
    return {
      ok: false,
      recorded: { fields: fieldNames(fields) },
      problem: fail(
        'VALIDATION_FAILED',
        'cmd: missing (an entry needs a field "cmd" holding JSON)',
      ),
    };
  }
  if (Buffer.byteLength(raw) > MAX_COMMAND_BYTES) {
    return {
      ok: false,
      // The audit entry summarises (cuts and redacts) the text.
      recorded: { truncated: raw, bytes: Buffer.byteLength(raw) },
      problem: fail('BODY_TOO_LARGE', `cmd: larger than ${MAX_COMMAND_BYTES} bytes`),
    };
  }
  try {
    return { ok: true, input: JSON.parse(raw) as unknown };
  } catch {
    return { ok: false, recorded: raw, problem: fail('INVALID_JSON', 'cmd: not valid JSON') };
  }
}

/** What handleCommandEntry needs from its store. */
export interface CommandEntryDeps {
  readonly writer: RedisWriter;
  /** Revision of the table this replica holds (the `previousRevision` of a rejection). */
  readonly revision: () => number;
  readonly logger: Logger;
  /** Runs a `rollout-*` command (SPEC §9); rejects with a SwitchyardError to refuse it. */
  readonly rolloutCommand?: ((input: Record<string, unknown>) => Promise<void>) | undefined;
  /** SPEC §9: table commands while a rollout owns the weights. */
  readonly rolloutGuard?: RolloutGuard | undefined;
}

/** What the decoder needs from the rollout engine to guard table commands (SPEC §9). */
export interface RolloutGuard {
  /** Rejects ROLLOUT_IN_PROGRESS while a rollout owns the weights (as read from the store). */
  refuseWhileActive(): Promise<void>;
  /** True while a rollout owns the weights (as read from the store). */
  active(): Promise<boolean>;
  /** Aborts the active rollout (a rollback during it). */
  abort(reason: string): Promise<void>;
}

/**
 * Table commands a rollout guards (the weights it owns, the rules, which hold still while it
 * runs, and rollback, which aborts it).
 */
const GUARDED_OPS: readonly string[] = ['weights', 'canary', 'switch', 'rules', 'rollback'];

/** Ops of the commands stream handled by the rollout engine rather than applyCommand. */
export const ROLLOUT_OPS: readonly string[] = [
  'rollout-start',
  'rollout-promote',
  'rollout-pause',
  'rollout-resume',
  'rollout-abort',
];

/**
 * Decodes, applies or records one commands entry. Rejects only when Redis failed, so the
 * consumer retries the entry; a refused command is recorded and logged.
 */
export async function handleCommandEntry(
  id: string,
  fields: readonly string[],
  deps: CommandEntryDeps,
): Promise<void> {
  const meta: CommandMeta = { actor: 'redis', source: 'redis' };
  const log = deps.logger;
  const decoded = decodeCommandEntry(fields);
  if (!decoded.ok) {
    const { problem } = decoded;
    await deps.writer.recordRejection(
      rejectedEntry(decoded.recorded, meta, deps.revision(), new Date().toISOString(), problem),
      id,
    );
    log.warn(
      { command: { id }, reason: { code: problem.code, message: problem.message } },
      'redis command rejected',
    );
    return;
  }
  const input = decoded.input;
  if (
    deps.rolloutCommand !== undefined &&
    typeof input === 'object' &&
    input !== null &&
    !Array.isArray(input) &&
    ROLLOUT_OPS.includes(String((input as Record<string, unknown>).op))
  ) {
    await handleRolloutEntry(id, input as Record<string, unknown>, deps, deps.rolloutCommand);
    return;
  }
  if (
    deps.rolloutGuard !== undefined &&
    typeof input === 'object' &&
    input !== null &&
    GUARDED_OPS.includes(String((input as Record<string, unknown>).op)) &&
    (await guardedByRollout(id, input as Record<string, unknown>, deps, deps.rolloutGuard))
  ) {
    return;
  }
  try {
    const result = await deps.writer.change(decoded.input, meta, id);
    if (result?.changed === true) {
      log.info({ command: { id }, revision: result.table.revision }, 'redis command applied');
    } else if (result !== null) {
      log.info(
        { command: { id }, revision: result.table.revision },
        'redis command changed nothing',
      );
    }
  } catch (err) {
    if (isSwitchyardError(err) && err.code !== 'STORE_UNAVAILABLE') {
      log.warn(
        { command: { id }, reason: { code: err.code, message: err.message } },
        'redis command rejected',
      );
      return;
    }
    throw err;
  }
}

/**
 * A `rollout-*` entry: claimed first (the cursor moves past it, so exactly one replica runs it;
 * a replica dying in between loses it rather than running it twice), then run; a refusal is
 * recorded in history like any rejected command.
 */
async function handleRolloutEntry(
  id: string,
  input: Record<string, unknown>,
  deps: CommandEntryDeps,
  run: (input: Record<string, unknown>) => Promise<void>,
): Promise<void> {
  const meta: CommandMeta = { actor: 'redis', source: 'redis' };
  if (!(await deps.writer.claim(id))) return;
  try {
    await run(input);
    deps.logger.info({ command: { id, op: input.op } }, 'redis rollout command applied');
  } catch (err) {
    const problem = isSwitchyardError(err)
      ? err
      : fail('VALIDATION_FAILED', 'command: could not be applied', { cause: err });
    await deps.writer.recordRejection(
      rejectedEntry(input, meta, deps.revision(), new Date().toISOString(), problem),
      undefined,
    );
    deps.logger.warn(
      { command: { id, op: input.op }, reason: { code: problem.code, message: problem.message } },
      'redis command rejected',
    );
  }
}

/**
 * Runs the rollout guard for a table command; true when the entry was handled here (refused and
 * recorded, or a rollback that aborted the rollout), false when it is applied as usual.
 */
async function guardedByRollout(
  id: string,
  input: Record<string, unknown>,
  deps: CommandEntryDeps,
  guard: RolloutGuard,
): Promise<boolean> {
  const meta: CommandMeta = { actor: 'redis', source: 'redis' };
  const op = String(input.op);
  const reject = async (err: SwitchyardError, commandId: string | undefined): Promise<void> => {
    await deps.writer.recordRejection(
      rejectedEntry(input, meta, deps.revision(), new Date().toISOString(), err),
      commandId,
    );
    deps.logger.warn(
      { command: { id, op }, reason: { code: err.code, message: err.message } },
      'redis command rejected',
    );
  };
  if (op !== 'rollback') {
    try {
      await guard.refuseWhileActive();
      return false;
    } catch (err) {
      if (!isSwitchyardError(err) || err.code === 'STORE_UNAVAILABLE') throw err;
      // Recorded with the entry's id: the cursor moves past it, once for every replica.
      await reject(err, id);
      return true;
    }
  }
  if (!(await guard.active())) return false;
  // A rollback aborts the rollout: claimed first, so exactly one replica does it.
  if (!(await deps.writer.claim(id))) return true;
  try {
    await guard.abort('rolled back by a redis command');
    deps.logger.info({ command: { id, op } }, 'redis rollback aborted the rollout');
  } catch (err) {
    if (!isSwitchyardError(err)) throw err;
    await reject(err, undefined);
  }
  return true;
}

function fieldValue(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === name) return fields[i + 1];
  }
  return undefined;
}

function fieldNames(fields: readonly string[]): string[] {
  const names: string[] = [];
  for (let i = 0; i < fields.length && names.length < MAX_FIELD_NAMES; i += 2) {
    names.push((fields[i] ?? '').slice(0, MAX_FIELD_NAME_CHARS));
  }
  return names;
}
