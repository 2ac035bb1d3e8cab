import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, SwitchyardError, fail, isSwitchyardError } from '../../src/errors.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Upper-snake words in SPEC.md that are not error codes. */
const NOT_CODES = new Set(['DELETE', 'OPTIONS', 'PERCENT', 'VERSION', 'SIGINT', 'SIGTERM']);

function codesIn(text: string): Set<string> {
  return new Set(
    [...text.matchAll(/\b[A-Z][A-Z_]{4,}[A-Z]\b/g)]
      .map((m) => m[0])
      .filter((w) => !w.startsWith('SWITCHYARD_') && !NOT_CODES.has(w) && !/_URL$|_LEVEL$/.test(w)),
  );
}

describe('error catalogue', () => {
  it('holds every error code SPEC.md names', () => {
    const specPath = join(root, '..', 'shared', 'SPEC.md');
    // CI lays shared/ beside the clone; SPEC.md is the contract the codes come from.
    expect(existsSync(specPath), `${specPath} must exist`).toBe(true);
    const specCodes = codesIn(readFileSync(specPath, 'utf8'));
    expect(specCodes.size).toBeGreaterThanOrEqual(10);
    for (const code of specCodes) expect(ERROR_CODES, `SPEC code ${code}`).toHaveProperty(code);
  });

  it('documents every code of the catalogue in the README error table', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    for (const code of Object.keys(ERROR_CODES)) {
      expect(readme, `README must document ${code}`).toContain(`\`${code}\``);
    }
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
