/** Config tests: the problems a ConfigError lists. */
import { ConfigError } from '../../src/config/load.js';

/** The problems of the ConfigError `fn` throws; any other outcome fails the test. */
export function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}
