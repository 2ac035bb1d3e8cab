/**
 * Argument parsing of the operator commands: node:util parseArgs driven by the command table,
 * with messages written for people (unknown options get "did you mean", an option of another
 * command says which) and the checks every command shares (pool names, percentages).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isPoolName } from '../table/validate.js';
import { hasUserinfo, redactUserinfo } from './admin-client.js';
import { COMMANDS, DEFAULT_ADMIN_URL, optionsOf, type CommandSpec } from './commands.js';
import { closest } from './suggest.js';

/** A usage error: printed with the command's usage line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Parsed option values, by option name. */
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** The parsed command line of one command. */
export interface ParsedArgs {
  readonly values: Values;
  readonly positionals: string[];
}

/** Parses `args` (the words after the command name) for `spec`; throws UsageError. */
export function parseCommandArgs(spec: CommandSpec, args: readonly string[]): ParsedArgs {
  const known = optionsOf(spec);
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const o of known) {
    options[o.name] = {
      type: o.type,
      ...(o.short === undefined ? {} : { short: o.short }),
      ...(o.multiple === true ? { multiple: true } : {}),
    };
  }
  // A lenient pass first, for its tokens: unknown options, missing values and repeats are
  // reported here by name, in our words, before parseArgs' strict messages could be.
  const { tokens } = parseArgs({
    args: [...args],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const option = known.find((o) => o.name === token.name);
    if (option === undefined) throw new UsageError(unknownOption(spec, token.rawName, token.name));
    if (
      option.type === 'string' &&
      (token.value === undefined || (token.inlineValue === false && token.value.startsWith('-')))
    ) {
      // `--token --json`: the next word is an option, not the value it needs (a value starting
      // with `-` is given as `--token=-VALUE`).
      throw new UsageError(
        `${token.rawName} needs a value (${token.rawName} ${option.value ?? 'VALUE'})`,
      );
    }
    if (option.type === 'boolean' && token.inlineValue === true) {
      throw new UsageError(`${token.rawName} takes no value`);
    }
    if (option.multiple !== true && seen.has(option.name)) {
      throw new UsageError(`--${option.name} given twice`);
    }
    seen.add(option.name);
  }
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options,
      strict: true,
      allowPositionals: true,
    });
    return { values, positionals };
  } catch (err) {
    // Whatever the lenient pass let through; parseArgs' message can span lines.
    throw new UsageError((err as Error).message.replace(/\s*\n\s*/g, ' '));
  }
}

/** `unknown option --toekn: did you mean --token?`, or which command has that option. */
function unknownOption(spec: CommandSpec, rawName: string, name: string): string {
  const mine = optionsOf(spec).map((o) => o.name);
  if (!rawName.startsWith('--')) {
    return `unknown option ${rawName}${rawName.length > 2 ? ` (long options take two dashes: --${name})` : ''}`;
  }
  const match = closest(name, mine);
  if (match !== undefined) return `unknown option ${rawName}: did you mean --${match}?`;
  const elsewhere = COMMANDS.filter((c) => c.options.some((o) => o.name === name)).map(
    (c) => c.name,
  );
  if (elsewhere.length > 0) {
    return `${rawName} is an option of ${elsewhere.join(', ')}, not of ${spec.name}`;
  }
  return `unknown option ${rawName}`;
}

/**
 * Checks a pool name typed by the operator. Uppercase is refused with the lowercase name as a
 * suggestion rather than lowercased silently: the name is an identifier shared with the audit log,
 * Redis commands and scripts, which would not fold case, so the rule is taught once, here.
 */
export function checkPoolName(name: string, where: string): string {
  if (isPoolName(name)) return name;
  const prefix = where === '' ? '' : `${where}: `;
  const lower = name.toLowerCase();
  if (isPoolName(lower)) {
    throw new UsageError(
      `${prefix}pool names are lowercase: did you mean ${JSON.stringify(lower)}?`,
    );
  }
  throw new UsageError(
    `${prefix}${JSON.stringify(name)} is not a pool name (a lowercase letter, then up to 31 lowercase letters, digits or -)`,
  );
}

/** A percentage as typed by an operator (`5`, `12.5`, `5%`); the server checks the range. */
export function parsePercent(raw: string, what: string): number {
  const trimmed = raw.trim().replace(/%$/, '');
  if (!/^\d+(?:\.\d+)?$/.test(trimmed)) {
    throw new UsageError(`${what}: ${JSON.stringify(raw)} is not a percentage (e.g. 5 or 12.5)`);
  }
  return Number(trimmed);
}

/** The value of a string option, or undefined. */
export function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * The admin URL may carry a path prefix (an admin API behind a reverse proxy) but no query or
 * fragment: the API paths and their query strings are appended to it. `source` is how the user
 * gave it (`--admin` or `SWITCHYARD_ADMIN_URL`). No message echoes a `user:password`: credentials
 * are refused on the text before it is parsed (an unparsable URL such as one with port 99999 would
 * otherwise be echoed whole), and every echoed URL is redacted besides.
 */
export function checkAdminUrl(url: string, source: string): void {
  if (hasUserinfo(url)) {
    // The admin API takes a bearer token; the URL (and its secret) is not echoed back.
    throw new UsageError(
      `${source}: must not carry user:password; give the admin token with --token or SWITCHYARD_ADMIN_TOKEN`,
    );
  }
  const shown = JSON.stringify(redactUserinfo(url));
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${source}: ${shown} is not a URL (e.g. ${DEFAULT_ADMIN_URL})`);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    // hasUserinfo should have caught it; never echo the URL if the parser found one anyway.
    throw new UsageError(
      `${source}: must not carry user:password; give the admin token with --token or SWITCHYARD_ADMIN_TOKEN`,
    );
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UsageError(`${source}: ${shown} must be an http:// or https:// URL`);
  }
  // Checked on the text too: URL drops an empty `?` or `#`, which would still be a typo.
  if (parsed.search !== '' || parsed.hash !== '' || /[?#]/.test(url)) {
    throw new UsageError(
      `${source}: ${shown} must not have a query or fragment (a path prefix is fine, e.g. http://host:9090/switchyard)`,
    );
  }
}
