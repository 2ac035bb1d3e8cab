/**
 * `switchyard rules set --file rules.json` and `switchyard rules show` (SPEC §12): the pieces the
 * CLI needs, kept apart from cli.ts. The server validates the rules; the CLI only reads the file
 * and prints the answer.
 */
import { readFile } from 'node:fs/promises';
import type { RoutingRule } from '../table/types.js';
import { columns } from './format.js';

/** A rules file that cannot be used: the message names the file and the problem. */
export class RulesFileError extends Error {}

/**
 * Reads a rules file: either `{"rules":[...]}` (the PUT /v1/rules body) or a bare array of rules.
 * Returns the body to send. Throws RulesFileError when the file is unreadable or not such JSON.
 */
export async function readRulesFile(path: string): Promise<{ rules: unknown[] }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new RulesFileError(`--file: cannot read ${path} (${reason})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new RulesFileError(`--file: ${path} is not JSON (${(err as Error).message})`);
  }
  if (Array.isArray(parsed)) return { rules: parsed };
  if (
    typeof parsed === 'object' &&
    parsed !== null &&
    Array.isArray((parsed as { rules?: unknown }).rules)
  ) {
    return { rules: (parsed as { rules: unknown[] }).rules };
  }
  throw new RulesFileError(`--file: ${path} must hold {"rules":[...]} or an array of rules`);
}

/** `switchyard rules show`: one row per rule, in the order they are tried. */
export function formatRules(rules: readonly RoutingRule[]): string {
  if (rules.length === 0) return 'no routing rules: every request follows the weights\n';
  const rows = [['#', 'NAME', 'POOL', 'MATCH (all must hold)']];
  rules.forEach((rule, i) => {
    rows.push([String(i + 1), rule.name, rule.pool, rule.match.map(describeMatch).join(' and ')]);
  });
  return `${columns(rows)}\n`;
}

/** One match as text: `header x-beta = "1"`, `not cookie beta present`, `path ~ /^\/api/`. */
export function describeMatch(m: RoutingRule['match'][number]): string {
  const subject =
    m.header !== undefined
      ? `header ${m.header}`
      : m.cookie !== undefined
        ? `cookie ${m.cookie}`
        : m.query !== undefined
          ? `query ${m.query}`
          : 'path';
  const test =
    m.value !== undefined
      ? `= ${JSON.stringify(m.value)}`
      : m.prefix !== undefined
        ? `starts with ${JSON.stringify(m.prefix)}`
        : m.regex !== undefined
          ? `~ /${m.regex}/`
          : 'present';
  return `${m.invert === true ? 'not ' : ''}${subject} ${test}`;
}
