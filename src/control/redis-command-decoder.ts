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
}

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
