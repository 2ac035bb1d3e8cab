/** Polling helper for tests: retry an async assertion until it passes or a deadline expires. */
import { setTimeout as delay } from 'node:timers/promises';

/** Options of eventually(). */
export interface EventuallyOptions {
  /** Give up after this long (default 5000 ms); the last failure is rethrown. */
  timeoutMs?: number;
  /** Pause between attempts (default 20 ms). */
  intervalMs?: number;
}

/** Runs `fn` until it resolves without throwing; rethrows its last error at the deadline. */
export async function eventually<T>(
  fn: () => T | Promise<T>,
  options: EventuallyOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const intervalMs = options.intervalMs ?? 20;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() >= deadline) throw err;
    }
    await delay(intervalMs);
  }
}
