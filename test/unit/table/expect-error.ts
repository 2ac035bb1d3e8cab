import { expect } from 'vitest';
import { SwitchyardError, type ErrorCode } from '../../../src/errors.js';

/** Asserts that `fn` throws a SwitchyardError with `code` whose message matches `message`. */
export function expectError(fn: () => unknown, code: ErrorCode, message: string | RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(SwitchyardError);
  const err = thrown as SwitchyardError;
  expect(err.code, err.message).toBe(code);
  if (typeof message === 'string') expect(err.message).toBe(message);
  else expect(err.message).toMatch(message);
}
