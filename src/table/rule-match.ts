/**
 * Routing-rule matching (SPEC §12): rules compiled once per table into predicates over a
 * request view, so a request does no parsing of the rule list and compiles no regex.
 */
import { compileRuleRegex } from './rules.js';
import type { RoutingRule, RuleMatch } from './types.js';

/** What a rule can read of a request; each read is done only when a rule asks for it. */
export interface RuleRequest {
  /** The named header (lowercase name): every field of that name joined by `, `; undefined when absent. */
  header(name: string): string | undefined;
  /** The value of the named cookie (first one); undefined when absent. */
  cookie(name: string): string | undefined;
  /** The first value of the named query parameter, percent-decoded; undefined when absent. */
  query(name: string): string | undefined;
  /** The request path as sent, without the query (no decoding, no dot-segment removal). */
  path(): string;
}

/** A compiled rule: `test` holds when every match of the rule holds. */
export interface CompiledRule {
  readonly name: string;
  readonly pool: string;
  readonly test: (req: RuleRequest) => boolean;
}

/** Compiles validated rules (their regexes on RE2: linear time in the input). */
export function compileRules(rules: readonly RoutingRule[]): CompiledRule[] {
  return rules.map((rule, i) => {
    const tests = rule.match.map((m, j) => compileMatch(m, `rules[${i}].match[${j}]`));
    const test =
      tests.length === 1
        ? (tests[0] as (req: RuleRequest) => boolean)
        : (req: RuleRequest): boolean => {
            for (const t of tests) if (!t(req)) return false;
            return true;
          };
    return { name: rule.name, pool: rule.pool, test };
  });
}

/** Compiles a validated match list into one predicate: true when every match holds. */
export function compileMatches(
  matches: readonly RuleMatch[],
  field: string,
): (req: RuleRequest) => boolean {
  const tests = matches.map((m, j) => compileMatch(m, `${field}[${j}]`));
  if (tests.length === 1) return tests[0] as (req: RuleRequest) => boolean;
  return (req) => {
    for (const t of tests) if (!t(req)) return false;
    return true;
  };
}

/** Index of the first rule that holds for `req`, or -1. */
export function firstMatchingRule(rules: readonly CompiledRule[], req: RuleRequest): number {
  for (let i = 0; i < rules.length; i++) if ((rules[i] as CompiledRule).test(req)) return i;
  return -1;
}

function compileMatch(m: RuleMatch, field: string): (req: RuleRequest) => boolean {
  const read = subjectReader(m);
  const check = valueTest(m, field);
  const invert = m.invert === true;
  return (req) => check(read(req)) !== invert;
}

function subjectReader(m: RuleMatch): (req: RuleRequest) => string | undefined {
  if (m.header !== undefined) {
    const name = m.header;
    return (req) => req.header(name);
  }
  if (m.cookie !== undefined) {
    const name = m.cookie;
    return (req) => req.cookie(name);
  }
  if (m.query !== undefined) {
    const name = m.query;
    return (req) => req.query(name);
  }
  return (req) => req.path();
}

/** The test of a match on the subject's value (undefined: absent; only `present` holds then). */
function valueTest(m: RuleMatch, field: string): (value: string | undefined) => boolean {
  if (m.value !== undefined) {
    const expected = m.value;
    return (v) => v === expected;
  }
  if (m.prefix !== undefined) {
    const prefix = m.prefix;
    return (v) => v !== undefined && v.startsWith(prefix);
  }
  if (m.regex !== undefined) {
    const re = compileRuleRegex(m.regex, `${field}.regex`);
    return (v) => v !== undefined && re.test(v);
  }
  return (v) => v !== undefined;
}
