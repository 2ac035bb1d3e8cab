/**
 * One teardown for every test file: what a test opens is pushed here and closed after the test,
 * newest first. Every closer runs even when one fails; the failures are then thrown together.
 */
import { afterEach } from 'vitest';

/** Something to close after the test (a server, a client, a process). */
export type Closer = () => unknown;

/**
 * Registers an afterEach that runs every closer pushed during the test, newest first, and returns
 * the list to push them to. Call once at the top of a test file.
 */
export function closeAfterEach(): Closer[] {
  const closers: Closer[] = [];
  afterEach(async () => {
    const failures: unknown[] = [];
    for (const close of closers.splice(0).reverse()) {
      try {
        await close();
      } catch (err) {
        failures.push(err);
      }
    }
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) throw new AggregateError(failures, 'closing the test world failed');
  });
  return closers;
}
