/**
 * Audit entries in the `history` stream: one field per HistoryEntry property, so
 * `redis-cli XREVRANGE 'switchyard:{NS}:history' + - COUNT 5` is readable. Decoding is tolerant:
 * anything a human appended by hand becomes a best-effort entry and never throws.
 */
import type { CommandSource, HistoryEntry, RoutingTable } from '../table/types.js';
import { parseTable } from '../table/validate.js';
import { summariseCommand, summariseText } from './audit-entry.js';

/**
 * Largest field parsed as JSON when read back. Entries we write hold summaries of a few KiB and
 * tables; anything bigger was appended by hand and is shown as a cut string.
 */
const MAX_PARSED_FIELD_CHARS = 1024 * 1024;
const SOURCES: ReadonlySet<string> = new Set(['admin', 'cli', 'redis', 'seed']);

/** Flattens an entry (without id) into XADD field/value pairs. */
export function encodeHistoryFields(entry: Omit<HistoryEntry, 'id'>): string[] {
  const fields = [
    'revision',
    entry.revision === null ? '' : String(entry.revision),
    'previousRevision',
    String(entry.previousRevision),
    'time',
    entry.time,
    'actor',
    entry.actor,
    'source',
    entry.source,
    'result',
    entry.result,
    'command',
    encodeCommand(entry.command),
  ];
  if (entry.reason !== undefined) fields.push('reason', JSON.stringify(entry.reason));
  if (entry.before !== undefined) fields.push('before', JSON.stringify(entry.before));
  if (entry.undoes !== undefined) fields.push('undoes', String(entry.undoes));
  if (entry.note !== undefined) fields.push('note', entry.note);
  return fields;
}

/** Builds an entry from a stream entry (id + flat field list). */
export function decodeHistoryEntry(id: string, flat: readonly string[]): HistoryEntry {
  const fields = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i];
    const value = flat[i + 1];
    if (name !== undefined && value !== undefined && !fields.has(name)) fields.set(name, value);
  }
  const revision = toInteger(fields.get('revision'));
  const source = fields.get('source') ?? '';
  const entry: {
    -readonly [K in keyof HistoryEntry]: HistoryEntry[K];
  } = {
    id,
    revision,
    previousRevision: toInteger(fields.get('previousRevision')) ?? 0,
    time: fields.get('time') ?? '',
    actor: fields.get('actor') ?? '',
    source: (SOURCES.has(source) ? source : 'redis') as CommandSource,
    // Summarised again: an entry appended by hand may hold anything (a 100k-deep array).
    command: summariseCommand(parseJson(fields.get('command'))),
    result: fields.get('result') === 'applied' && revision !== null ? 'applied' : 'rejected',
  };
  const reason = parseJson(fields.get('reason'));
  if (isReason(reason)) {
    entry.reason = { code: summariseText(reason.code), message: summariseText(reason.message) };
  }
  if (fields.has('before')) entry.before = decodeTable(fields.get('before'));
  const undoes = toInteger(fields.get('undoes'));
  if (undoes !== null) entry.undoes = undoes;
  const note = fields.get('note');
  if (note !== undefined) entry.note = summariseText(note);
  return entry;
}

/** Turns an XRANGE/XREVRANGE reply into entries, skipping malformed items. */
export function decodeHistoryReply(reply: unknown): HistoryEntry[] {
  if (!Array.isArray(reply)) return [];
  const entries: HistoryEntry[] = [];
  for (const item of reply as unknown[]) {
    if (!Array.isArray(item) || typeof item[0] !== 'string' || !Array.isArray(item[1])) continue;
    const flat = (item[1] as unknown[]).map((v) => String(v));
    entries.push(decodeHistoryEntry(item[0], flat));
  }
  return entries;
}

/** The command of an entry: already a bounded summary (see audit-entry.ts). */
function encodeCommand(command: unknown): string {
  return JSON.stringify(command) ?? 'null';
}

/** A stored `before` table, validated like any table read from Redis (null when unusable). */
function decodeTable(raw: string | undefined): RoutingTable | null {
  const value = parseJson(raw);
  if (value === null || value === undefined) return null;
  try {
    return parseTable(value);
  } catch {
    return null;
  }
}

function parseJson(raw: string | undefined): unknown {
  if (raw === undefined) return undefined;
  if (raw.length > MAX_PARSED_FIELD_CHARS) return summariseText(raw);
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return summariseText(raw);
  }
}

function toInteger(raw: string | undefined): number | null {
  if (raw === undefined || !/^\d{1,15}$/.test(raw)) return null;
  return Number(raw);
}

function isReason(value: unknown): value is { code: string; message: string } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'string' &&
    typeof (value as { message?: unknown }).message === 'string'
  );
}
