/**
 * Validation of routing rules (SPEC §12): `[{"name","match":[...],"pool"}]`, tried in order
 * before the weighted split. Every failure is a VALIDATION_FAILED whose message starts with the
 * field path (`rules[1].match[0].regex: ...`). Pool existence is checked by the caller, which
 * knows the table. Regexes are compiled here once, on the linear-time RE2 engine, so a pattern
 * that RE2 refuses (backreferences, lookaround) is refused at the door, and none can backtrack.
 */
import { RE2JS } from 're2js';
import { fail } from '../errors.js';
import { redactText } from './redact.js';
import type { RoutingRule, RuleMatch } from './types.js';

/** Most rules in a table: bounds the per-request cost and the `rule` label of the hit counter. */
export const MAX_RULES = 64;
/** Most matches in one rule. */
export const MAX_MATCHES = 16;
/** Longest regex source: with RE2 the match time is linear in the input, this caps the factor. */
export const MAX_REGEX_LENGTH = 256;
/** Longest `value`/`prefix`, and longest header, cookie or query name. */
export const MAX_RULE_TEXT_LENGTH = 1024;
/** Rule names: like pool names, a little longer. */
export const RULE_NAME_PATTERN = /^[a-z][a-z0-9-]{0,63}$/;

/** RFC 9110 token: a header or cookie name. */
const TOKEN_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const MATCH_KEYS = new Set([
  'header',
  'cookie',
  'query',
  'path',
  'value',
  'prefix',
  'regex',
  'present',
  'invert',
]);
const SUBJECTS = ['header', 'cookie', 'query', 'path'] as const;
const TESTS = ['value', 'prefix', 'regex', 'present'] as const;
const MAX_ECHO_LENGTH = 80;

/** Compiles a validated regex source on RE2 (linear time). Throws VALIDATION_FAILED naming `field`. */
export function compileRuleRegex(source: string, field: string): RE2JS {
  try {
    return RE2JS.compile(source);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw fail('VALIDATION_FAILED', `${field}: not a valid RE2 regular expression (${reason})`);
  }
}

/**
 * Validates a rule list (the `rules` field of a command or a stored table) and returns a
 * deep-frozen normalised copy: header names in lowercase, `invert: false` dropped.
 */
export function parseRules(input: unknown, field = 'rules'): RoutingRule[] {
  if (!Array.isArray(input)) {
    throw fail('VALIDATION_FAILED', `${field}: must be an array of rules`);
  }
  if (input.length > MAX_RULES) {
    throw fail('VALIDATION_FAILED', `${field}: at most ${MAX_RULES} rules (got ${input.length})`);
  }
  const seen = new Map<string, number>();
  return input.map((raw: unknown, index) => {
    const path = `${field}[${index}]`;
    const rule = parseRule(raw, path);
    const first = seen.get(rule.name);
    if (first !== undefined) {
      throw fail(
        'VALIDATION_FAILED',
        `${path}.name: "${rule.name}" is already the name of ${field}[${first}]`,
      );
    }
    seen.set(rule.name, index);
    return rule;
  });
}

/** True when two rule lists are the same, in the same order. */
export function sameRules(a: readonly RoutingRule[], b: readonly RoutingRule[]): boolean {
  return a.length === b.length && JSON.stringify(a) === JSON.stringify(b);
}

function parseRule(raw: unknown, path: string): RoutingRule {
  if (!isObject(raw)) throw fail('VALIDATION_FAILED', `${path}: must be a JSON object`);
  for (const key of Object.keys(raw)) {
    if (key !== 'name' && key !== 'match' && key !== 'pool') {
      throw fail('VALIDATION_FAILED', `${path}.${echoKey(key)}: unknown field`);
    }
  }
  const { name, match, pool } = raw;
  if (typeof name !== 'string' || !RULE_NAME_PATTERN.test(name)) {
    throw fail('VALIDATION_FAILED', `${path}.name: must match ${RULE_NAME_PATTERN.source}`);
  }
  if (typeof pool !== 'string') {
    throw fail('VALIDATION_FAILED', `${path}.pool: must be a pool name`);
  }
  if (!Array.isArray(match) || match.length === 0 || match.length > MAX_MATCHES) {
    throw fail('VALIDATION_FAILED', `${path}.match: must list 1..${MAX_MATCHES} matches`);
  }
  const matches = match.map((m: unknown, i) => parseMatch(m, `${path}.match[${i}]`));
  return Object.freeze({ name, match: Object.freeze(matches), pool });
}

/**
 * Validates a match list on its own (the `match` of a mirror, SPEC §12): 1..MAX_MATCHES matches
 * in the rule grammar. Returns a frozen normalised copy; throws VALIDATION_FAILED naming `field`.
 */
export function parseRuleMatches(input: unknown, field: string): readonly RuleMatch[] {
  if (!Array.isArray(input) || input.length === 0 || input.length > MAX_MATCHES) {
    throw fail('VALIDATION_FAILED', `${field}: must list 1..${MAX_MATCHES} matches`);
  }
  return Object.freeze(input.map((m: unknown, i) => parseMatch(m, `${field}[${i}]`)));
}

function parseMatch(raw: unknown, path: string): RuleMatch {
  if (!isObject(raw)) throw fail('VALIDATION_FAILED', `${path}: must be a JSON object`);
  for (const key of Object.keys(raw)) {
    if (!MATCH_KEYS.has(key)) {
      throw fail('VALIDATION_FAILED', `${path}.${echoKey(key)}: unknown field`);
    }
  }
  const subjects = SUBJECTS.filter((key) => raw[key] !== undefined);
  if (subjects.length !== 1) {
    throw fail(
      'VALIDATION_FAILED',
      `${path}: give exactly one subject: header, cookie, query (with a name) or path: true`,
    );
  }
  const tests = TESTS.filter((key) => raw[key] !== undefined);
  if (tests.length !== 1) {
    throw fail(
      'VALIDATION_FAILED',
      `${path}: give exactly one test: value, prefix, regex or present: true`,
    );
  }
  const subject = subjects[0] as (typeof SUBJECTS)[number];
  const test = tests[0] as (typeof TESTS)[number];
  const out: {
    -readonly [K in keyof RuleMatch]: RuleMatch[K];
  } = {};

  if (subject === 'path') {
    if (raw.path !== true) throw fail('VALIDATION_FAILED', `${path}.path: must be true`);
    if (test === 'present') {
      throw fail(
        'VALIDATION_FAILED',
        `${path}.present: every request has a path; test it with value, prefix or regex`,
      );
    }
    out.path = true;
  } else {
    const name = raw[subject];
    const field = `${path}.${subject}`;
    if (typeof name !== 'string' || name === '') {
      throw fail('VALIDATION_FAILED', `${field}: must be a non-empty string`);
    }
    if (name.length > MAX_RULE_TEXT_LENGTH) {
      throw fail(
        'VALIDATION_FAILED',
        `${field}: must be at most ${MAX_RULE_TEXT_LENGTH} characters`,
      );
    }
    if (subject !== 'query' && !TOKEN_PATTERN.test(name)) {
      throw fail('VALIDATION_FAILED', `${field}: ${echo(name)} is not a valid ${subject} name`);
    }
    out[subject] = subject === 'header' ? name.toLowerCase() : name;
  }

  const field = `${path}.${test}`;
  const value = raw[test];
  if (test === 'present') {
    if (value !== true) {
      throw fail('VALIDATION_FAILED', `${field}: must be true (test absence with "invert": true)`);
    }
    out.present = true;
  } else {
    if (typeof value !== 'string') throw fail('VALIDATION_FAILED', `${field}: must be a string`);
    const max = test === 'regex' ? MAX_REGEX_LENGTH : MAX_RULE_TEXT_LENGTH;
    if (value.length > max) {
      throw fail('VALIDATION_FAILED', `${field}: must be at most ${max} characters`);
    }
    if (test === 'regex') {
      if (value === '') throw fail('VALIDATION_FAILED', `${field}: must not be empty`);
      compileRuleRegex(value, field);
    }
    out[test] = value;
  }

  if (raw.invert !== undefined) {
    if (typeof raw.invert !== 'boolean') {
      throw fail('VALIDATION_FAILED', `${path}.invert: must be a boolean`);
    }
    if (raw.invert) out.invert = true;
  }
  return Object.freeze(out);
}

function isObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function echoKey(key: string): string {
  if (/^[A-Za-z_$][\w$-]{0,63}$/.test(key)) return key;
  return echo(key);
}

function echo(value: string): string {
  return JSON.stringify(redactText(value, MAX_ECHO_LENGTH));
}
