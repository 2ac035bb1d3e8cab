/**
 * One teardown for every test file: what a test opens is pushed here and closed after the test,
 * newest first. Every closer runs even when one fails; the failures are then thrown together.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
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

/**
 * Listens on 127.0.0.1 (a free port), closes the server and every connection it holds after the
 * test, and resolves with its origin, `http://127.0.0.1:<port>`.
 */
export async function listenOnLoopback(server: Server, closers: Closer[]): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
