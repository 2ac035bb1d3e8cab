/**
 * Audit entries (SPEC §6), built the same way by every store. The command is never kept as
 * received: it is stored as a bounded, JSON-serialisable summary with secrets redacted, so a
 * hostile or careless body can neither exhaust memory (issue 10 item 4: 171 rejected 1 MiB
 * bodies took the heap to 4.2 GB), break `GET /v1/history` (a 100k-deep body made it answer 500)
 * nor leak a password into the audit log (item 5).
 */
import type { SwitchyardError } from '../errors.js';
import { redactText } from '../table/redact.js';
import type { CommandSource, HistoryEntry, RoutingTable } from '../table/types.js';

/** An audit entry before its store gives it an id. */
export type PendingEntry = Omit<HistoryEntry, 'id'>;

/** Who issued a command. */
export interface EntryAuthor {
  readonly actor: string;
  readonly source: CommandSource;
}

/** Nesting kept in a summary; deeper values become `…`. */
const MAX_DEPTH = 8;
/** Characters kept of a string (keys: MAX_KEY_CHARS). */
const MAX_STRING_CHARS = 256;
const MAX_KEY_CHARS = 64;
/** Array items and object keys kept per level. */
const MAX_ITEMS = 64;
/** Approximate JSON size of a summary, in characters: a few KiB whatever the input. */
const MAX_SUMMARY_CHARS = 4096;
/** Characters kept of a rejection message. */
const MAX_REASON_CHARS = 1024;
const ELLIPSIS = '…';
const REDACTED = '[redacted]';

/** Keys whose values are secrets whatever they hold. */
const SECRET_KEY =
  /passw|^pass$|^pwd$|secret|token|authori[sz]ation|api[-_]?key|credential|private[-_]?key|cookie/i;

/**
 * The actor recorded for a caller that named itself (the `actor` of a command, the admin API's
 * `x-switchyard-actor`): `<source>:<name>`, e.g. `cli:alice@laptop`, `redis:deploy-bot`. The
 * source prefix keeps a self-declared name from passing for another source (`rollout:<id>`).
 */
export function namedActor(source: CommandSource, name: string): string {
  return `${source}:${name}`;
}

/** The audit entry of an applied change (or a seed), for every store. */
export function appliedEntry(
  command: unknown,
  by: EntryAuthor,
  change: {
    readonly revision: number;
    readonly previousRevision: number;
    readonly time: string;
    /** Table before the change (what a rollback restores); null when there was none. */
    readonly before: RoutingTable | null;
    /** For a rollback: the revision whose change it undid. */
    readonly undoes?: number | undefined;
    /** Why the change was made (CommandMeta.note). */
    readonly note?: string | undefined;
  },
): PendingEntry {
  const entry: PendingEntry = {
    revision: change.revision,
    previousRevision: change.previousRevision,
    time: change.time,
    actor: by.actor,
    source: by.source,
    command: summariseCommand(command),
    result: 'applied',
    before: change.before,
  };
  const withUndoes = change.undoes === undefined ? entry : { ...entry, undoes: change.undoes };
  return change.note === undefined
    ? withUndoes
    : { ...withUndoes, note: summariseText(change.note, MAX_REASON_CHARS) };
}

/** The audit entry of a refused command (SPEC §6: `rejected`, with its reason), for every store. */
export function rejectedEntry(
  command: unknown,
  by: EntryAuthor,
  previousRevision: number,
  time: string,
  error: SwitchyardError,
): PendingEntry {
  return {
    revision: null,
    previousRevision,
    time,
    actor: by.actor,
    source: by.source,
    command: summariseCommand(command),
    result: 'rejected',
    reason: { code: error.code, message: summariseText(error.message, MAX_REASON_CHARS) },
  };
}

/**
 * A bounded, JSON-serialisable copy of `command` for the audit log: at most MAX_DEPTH levels,
 * MAX_ITEMS items or keys per level, strings cut at MAX_STRING_CHARS and about
 * MAX_SUMMARY_CHARS in all (what was left out is marked with `…`); values of secret-looking keys
 * and URL userinfo are redacted. Small, ordinary commands come back equal to the input.
 * Never throws.
 */
export function summariseCommand(command: unknown): unknown {
  try {
    return summarise(command, 0, { budget: MAX_SUMMARY_CHARS });
  } catch {
    // A getter or proxy that throws (only a programmer could hand one in).
    return { unserialisable: true };
  }
}

/** `text` cut at `maxChars` with URL userinfo and HTTP credentials redacted. */
export function summariseText(text: string, maxChars = MAX_STRING_CHARS): string {
  return redactText(text, maxChars);
}

interface Budget {
  budget: number;
}

function summarise(value: unknown, depth: number, state: Budget): unknown {
  switch (typeof value) {
    case 'string': {
      const text = summariseText(value);
      state.budget -= text.length + 2;
      return text;
    }
    case 'number':
      state.budget -= 8;
      return Number.isFinite(value) ? value : null;
    case 'boolean':
      state.budget -= 5;
      return value;
    case 'bigint':
      return summarise(value.toString(), depth, state);
    case 'object':
      break;
    default:
      // undefined, functions, symbols: what JSON.stringify would drop.
      return undefined;
  }
  if (value === null) {
    state.budget -= 4;
    return null;
  }
  if (depth >= MAX_DEPTH) {
    state.budget -= 3;
    return ELLIPSIS;
  }
  if (Array.isArray(value)) {
    const items = value as unknown[];
    const out: unknown[] = [];
    for (let i = 0; i < items.length; i += 1) {
      if (out.length >= MAX_ITEMS || state.budget <= 0) {
        out.push(`${ELLIPSIS} ${items.length - i} more`);
        break;
      }
      state.budget -= 1;
      out.push(summarise(items[i], depth + 1, state) ?? null);
    }
    return out;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  const out: Record<string, unknown> = {};
  let kept = 0;
  for (let i = 0; i < keys.length; i += 1) {
    const key = keys[i] as string;
    if (kept >= MAX_ITEMS || state.budget <= 0) {
      out[ELLIPSIS] = `${keys.length - i} more`;
      break;
    }
    const shownKey = summariseText(key, MAX_KEY_CHARS);
    state.budget -= shownKey.length + 4;
    const shown = SECRET_KEY.test(key) ? REDACTED : summarise(record[key], depth + 1, state);
    if (shown === undefined) continue;
    // defineProperty: a key such as `__proto__` stays a plain data key.
    Object.defineProperty(out, shownKey, {
      value: shown,
      enumerable: true,
      writable: true,
      configurable: true,
    });
    kept += 1;
  }
  return out;
}
