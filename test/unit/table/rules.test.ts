import { describe, expect, it } from 'vitest';
import { applyCommand } from '../../../src/table/apply-command.js';
import { compileRules, firstMatchingRule } from '../../../src/table/rule-match.js';
import { MAX_REGEX_LENGTH, MAX_RULES, parseRules } from '../../../src/table/rules.js';
import type { RoutingRule, RoutingTable } from '../../../src/table/types.js';
import { parseCommandInput, parseTable } from '../../../src/table/validate.js';
import { readCookie, RuleRequestView } from '../../../src/data/rule-request.js';
import { expectError } from './expect-error.js';
import { appliedEntry, META, makeTable } from './make-table.js';

const BETA: RoutingRule = {
  name: 'beta',
  match: [{ header: 'x-beta', value: '1' }],
  pool: 'canary',
};

/** A request view from headers `[name, value, ...]` and a target. */
function request(target: string, headers: string[] = []) {
  const cookies: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]?.toLowerCase() === 'cookie') cookies.push(headers[i + 1] as string);
  }
  return new RuleRequestView(
    headers,
    cookies.length === 0 ? undefined : cookies.join('; '),
    target,
  );
}

/** True when the single rule built from `match` holds for the request. */
function holds(match: unknown[], target: string, headers: string[] = []): boolean {
  const rules = compileRules(parseRules([{ name: 'r', match, pool: 'canary' }]));
  return firstMatchingRule(rules, request(target, headers)) === 0;
}

describe('parseRules', () => {
  it('normalises header names to lowercase and drops invert: false', () => {
    const [rule] = parseRules([
      { name: 'beta', match: [{ header: 'X-Beta', value: '1', invert: false }], pool: 'canary' },
    ]);
    expect(rule).toEqual({
      name: 'beta',
      match: [{ header: 'x-beta', value: '1' }],
      pool: 'canary',
    });
    expect(Object.isFrozen(rule)).toBe(true);
    expect(Object.isFrozen(rule?.match[0])).toBe(true);
  });

  it.each([
    [{ rules: 'x' }, 'rules: must be an array of rules'],
    [{ rules: [1] }, 'rules[0]: must be a JSON object'],
    [{ rules: [{ ...BETA, name: 'Beta' }] }, /^rules\[0\]\.name: must match/],
    [{ rules: [{ ...BETA, extra: 1 }] }, 'rules[0].extra: unknown field'],
    [{ rules: [{ ...BETA, pool: 3 }] }, 'rules[0].pool: must be a pool name'],
    [{ rules: [{ ...BETA, match: [] }] }, 'rules[0].match: must list 1..16 matches'],
    [
      { rules: [BETA, { ...BETA, match: [{ path: true, prefix: '/a' }, { header: 'a' }] }] },
      'rules[1].match[1]: give exactly one test: value, prefix, regex or present: true',
    ],
    [
      { rules: [{ ...BETA, match: [{ header: 'a', cookie: 'b', present: true }] }] },
      'rules[0].match[0]: give exactly one subject: header, cookie, query (with a name) or path: true',
    ],
    [
      { rules: [{ ...BETA, match: [{ header: 'a', value: '1', prefix: '1' }] }] },
      'rules[0].match[0]: give exactly one test: value, prefix, regex or present: true',
    ],
    [
      { rules: [{ ...BETA, match: [{ header: 'bad name', value: '1' }] }] },
      'rules[0].match[0].header: "bad name" is not a valid header name',
    ],
    [
      { rules: [{ ...BETA, match: [{ path: false, prefix: '/' }] }] },
      'rules[0].match[0].path: must be true',
    ],
    [
      { rules: [{ ...BETA, match: [{ path: true, present: true }] }] },
      /^rules\[0\]\.match\[0\]\.present: every request has a path/,
    ],
    [
      { rules: [{ ...BETA, match: [{ query: 'q', present: false }] }] },
      'rules[0].match[0].present: must be true (test absence with "invert": true)',
    ],
    [
      { rules: [{ ...BETA, match: [{ cookie: 'c', value: 1 }] }] },
      'rules[0].match[0].value: must be a string',
    ],
    [
      { rules: [{ ...BETA, match: [{ cookie: 'c', value: '1', invert: 'yes' }] }] },
      'rules[0].match[0].invert: must be a boolean',
    ],
    [
      { rules: [BETA, { ...BETA, match: [{ path: true, regex: '(' }] }] },
      /^rules\[1\]\.match\[0\]\.regex: not a valid RE2 regular expression \(.*missing closing \)/,
    ],
    [
      { rules: [{ ...BETA, match: [{ path: true, regex: '(a)\\1' }] }] },
      /^rules\[0\]\.match\[0\]\.regex: not a valid RE2 regular expression/,
    ],
    [
      { rules: [{ ...BETA, match: [{ path: true, regex: 'a(?=b)' }] }] },
      /^rules\[0\]\.match\[0\]\.regex: not a valid RE2 regular expression/,
    ],
    [
      { rules: [{ ...BETA, match: [{ path: true, regex: 'a'.repeat(MAX_REGEX_LENGTH + 1) }] }] },
      `rules[0].match[0].regex: must be at most ${MAX_REGEX_LENGTH} characters`,
    ],
    [{ rules: [BETA, BETA] }, 'rules[1].name: "beta" is already the name of rules[0]'],
    [
      { rules: Array.from({ length: MAX_RULES + 1 }, (_, i) => ({ ...BETA, name: `r${i}` })) },
      `rules: at most ${MAX_RULES} rules (got ${MAX_RULES + 1})`,
    ],
    [{}, 'rules: must be an array of rules'],
  ])('refuses bad rule list #%#', (body, message) => {
    expectError(() => parseCommandInput({ op: 'rules', ...body }), 'VALIDATION_FAILED', message);
  });
});

describe('rule matching', () => {
  it('tests a header exactly, case-insensitively by name, and joins repeated fields', () => {
    expect(holds([{ header: 'x-beta', value: '1' }], '/', ['X-Beta', '1'])).toBe(true);
    expect(holds([{ header: 'x-beta', value: '1' }], '/', ['x-beta', '10'])).toBe(false);
    expect(holds([{ header: 'x-beta', value: '1, 2' }], '/', ['x-beta', '1', 'x-beta', '2'])).toBe(
      true,
    );
    expect(holds([{ header: 'x-beta', present: true }], '/', ['x-other', '1'])).toBe(false);
  });

  it('reads one cookie among several', () => {
    const headers = ['cookie', 'a=1; beta=yes', 'cookie', 'c=3'];
    expect(holds([{ cookie: 'beta', value: 'yes' }], '/', headers)).toBe(true);
    expect(holds([{ cookie: 'c', value: '3' }], '/', headers)).toBe(true);
    expect(holds([{ cookie: 'bet', present: true }], '/', headers)).toBe(false);
    expect(holds([{ cookie: 'beta', present: true }], '/', [])).toBe(false);
    expect(readCookie('x=1;  beta= yes ', 'beta')).toBe('yes');
    expect(readCookie('abeta=1', 'beta')).toBeUndefined();
  });

  it('reads the first query value, percent-decoded, and not the path', () => {
    expect(holds([{ query: 'preview', present: true }], '/a?x=1&preview')).toBe(true);
    expect(holds([{ query: 'preview', present: true }], '/preview')).toBe(false);
    expect(holds([{ query: 'who', value: 'a b/c' }], '/?who=a+b%2Fc&who=z')).toBe(true);
    expect(holds([{ query: 'who', value: 'z' }], '/?who=a&who=z')).toBe(false);
    expect(holds([{ query: 'bad', value: '%zz' }], '/?bad=%zz')).toBe(true);
  });

  it('tests the path without its query, by prefix, exact value or regex', () => {
    expect(holds([{ path: true, prefix: '/api/v2' }], '/api/v2/users?x=1')).toBe(true);
    expect(holds([{ path: true, prefix: '/api/v2' }], '/api/v1/users')).toBe(false);
    expect(holds([{ path: true, value: '/a' }], '/a?b')).toBe(true);
    expect(holds([{ path: true, regex: '^/users/[0-9]+$' }], '/users/42?x')).toBe(true);
    expect(holds([{ path: true, regex: '^/users/[0-9]+$' }], '/users/4a')).toBe(false);
    // Unanchored, like RegExp.test.
    expect(holds([{ path: true, regex: 'v[0-9]' }], '/api/v3/x')).toBe(true);
  });

  it('inverts a test; an inverted test on an absent subject holds', () => {
    expect(holds([{ header: 'x-beta', value: '1', invert: true }], '/', ['x-beta', '1'])).toBe(
      false,
    );
    expect(holds([{ header: 'x-beta', value: '1', invert: true }], '/', ['x-beta', '2'])).toBe(
      true,
    );
    expect(holds([{ header: 'x-beta', value: '1', invert: true }], '/', [])).toBe(true);
    expect(holds([{ cookie: 'c', present: true, invert: true }], '/', [])).toBe(true);
  });

  it('needs every match of a rule, and picks the first rule that holds', () => {
    const match = [
      { header: 'x-team', value: 'core' },
      { path: true, prefix: '/api' },
    ];
    expect(holds(match, '/api/x', ['x-team', 'core'])).toBe(true);
    expect(holds(match, '/web', ['x-team', 'core'])).toBe(false);
    const rules = compileRules(
      parseRules([
        { name: 'a', match: [{ path: true, prefix: '/x' }], pool: 'green' },
        { name: 'b', match: [{ path: true, prefix: '/' }], pool: 'canary' },
      ]),
    );
    expect(firstMatchingRule(rules, request('/x/1'))).toBe(0);
    expect(firstMatchingRule(rules, request('/y'))).toBe(1);
    expect(firstMatchingRule([], request('/y'))).toBe(-1);
  });

  it('matches catastrophic-backtracking patterns in linear time', () => {
    const input = `${'a'.repeat(8000)}!`;
    for (const regex of ['(a+)+$', '(a|aa)+$', '(.*a){20}$', '^(a|a?)+$']) {
      const started = performance.now();
      const result = holds([{ header: 'x-in', regex }], '/', ['x-in', input]);
      const ms = performance.now() - started;
      console.log(`[rules] ${regex} on ${input.length} chars: ${result} in ${ms.toFixed(1)} ms`);
      expect(typeof result).toBe('boolean');
    }
  });
});

describe('applyCommand: rules', () => {
  const table = makeTable();
  const withRules = (rules: unknown[]): RoutingTable =>
    applyCommand(table, parseCommandInput({ op: 'rules', rules }).command, META, []).table;

  it('replaces the rule list as a new revision', () => {
    const next = withRules([BETA]);
    expect(next.revision).toBe(2);
    expect(next.rules).toEqual([BETA]);
    expect(next.weights).toEqual(table.weights);
    expect(Object.isFrozen(next.rules)).toBe(true);
    expect(withRules([]).rules).toEqual([]);
  });

  it('refuses a rule to a pool not in the table with UNKNOWN_POOL naming the rule', () => {
    expectError(
      () => withRules([BETA, { ...BETA, name: 'x', pool: 'purple' }]),
      'UNKNOWN_POOL',
      'rules[1].pool: unknown pool "purple"',
    );
  });

  it('makes no revision when the rules are the same', () => {
    const next = withRules([BETA]);
    const again = applyCommand(next, { op: 'rules', rules: [BETA] }, META, []);
    expect(again.changed).toBe(false);
    expect(again.table).toBe(next);
    const none = applyCommand(table, { op: 'rules', rules: [] }, META, []);
    expect(none.changed).toBe(false);
    // Same rules in another order route differently: a change.
    const two = applyCommand(
      next,
      { op: 'rules', rules: [BETA, { ...BETA, name: 'b2' }] },
      META,
      [],
    );
    const swapped = applyCommand(
      two.table,
      { op: 'rules', rules: [{ ...BETA, name: 'b2' }, BETA] },
      META,
      [],
    );
    expect(swapped.changed).toBe(true);
  });

  it('keeps the rules across other changes', () => {
    const next = withRules([BETA]);
    const moved = applyCommand(next, { op: 'canary', pool: 'canary', basisPoints: 500 }, META, []);
    expect(moved.table.rules).toEqual([BETA]);
  });

  it('refuses to remove a pool a rule names, naming the rule', () => {
    const next = withRules([BETA]);
    expectError(
      () => applyCommand(next, { op: 'remove-pool', pool: 'canary' }, META, []),
      'POOL_LIVE',
      'pools.canary: routing rule "beta" sends traffic to it; change the rules first',
    );
    expect(applyCommand(next, { op: 'remove-pool', pool: 'green' }, META, []).changed).toBe(true);
  });

  it('rollback restores the previous rule set', () => {
    const r2 = withRules([BETA]);
    const r3 = applyCommand(r2, { op: 'rules', rules: [] }, META, []).table;
    const history = [
      appliedEntry(r3, r2, { op: 'rules', rules: [] }),
      appliedEntry(r2, table, { op: 'rules', rules: [BETA] }),
    ];
    const r4 = applyCommand(r3, { op: 'rollback' }, META, history);
    expect(r4.undoes).toBe(3);
    expect(r4.table.rules).toEqual([BETA]);
  });

  it('reads tables stored before rules existed, and checks stored rules', () => {
    const old = JSON.parse(JSON.stringify(table)) as Record<string, unknown>;
    delete old.rules;
    expect(parseTable(old).rules).toEqual([]);
    expectError(
      () => parseTable({ ...table, rules: [{ ...BETA, pool: 'purple' }] }),
      'VALIDATION_FAILED',
      'rules[0].pool: no such pool',
    );
    const stored = parseTable(JSON.parse(JSON.stringify({ ...table, rules: [BETA] })));
    expect(stored.rules).toEqual([BETA]);
  });
});
