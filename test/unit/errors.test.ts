import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, SwitchyardError, fail, isSwitchyardError } from '../../src/errors.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The rows of the error-code table in docs/admin-api.md: `| \`CODE\` | status | when |`. */
function documentedCodes(): Map<string, string> {
  const text = readFileSync(join(root, 'docs', 'admin-api.md'), 'utf8');
  const rows = new Map<string, string>();
  for (const m of text.matchAll(/^\|\s*`([A-Z][A-Z_]+)`\s*\|\s*([^|]*?)\s*\|/gm)) {
    rows.set(m[1]!, m[2]!);
  }
  return rows;
}

describe('error catalogue', () => {
  // docs/admin-api.md is the users' copy of the contract and lives in the repository; the catalogue and
  // its table must agree both ways, with the same HTTP status.
  it('documents every code of the catalogue in the docs/admin-api.md error table, with its status', () => {
    const rows = documentedCodes();
    for (const [code, status] of Object.entries(ERROR_CODES)) {
      expect(rows.has(code), `docs/admin-api.md error table must list ${code}`).toBe(true);
      const documented = rows.get(code);
      if (code === 'INVALID_CONFIG') expect(documented).toBe('—');
      else expect(documented, `docs/admin-api.md status of ${code}`).toBe(String(status));
    }
  });

  it('has a catalogue entry for every code the docs/admin-api.md error table lists', () => {
    const rows = documentedCodes();
    expect(rows.size).toBeGreaterThanOrEqual(10);
    for (const code of rows.keys())
      expect(ERROR_CODES, `docs/admin-api.md code ${code}`).toHaveProperty(code);
  });

  it('carries code, status, details and cause, and serialises without the cause', () => {
    const cause = new Error('socket hang up');
    const err = fail('REPLICAS_LAGGING', 'replicas lag', { details: { lagging: ['r2'] }, cause });
    expect(err).toBeInstanceOf(SwitchyardError);
    expect(err.statusCode).toBe(504);
    expect(err.cause).toBe(cause);
    expect(isSwitchyardError(err, 'REPLICAS_LAGGING')).toBe(true);
    expect(isSwitchyardError(err, 'POOL_LIVE')).toBe(false);
    expect(JSON.parse(JSON.stringify(err))).toEqual({
      error: { code: 'REPLICAS_LAGGING', message: 'replicas lag', lagging: ['r2'] },
    });
  });
});
