/**
 * Issue 10 item 8: a cutover must not fail a request whose endpoint was picked before a wait
 * (a held PUT body behind `Expect: 100-continue`, a retry) and that left the table during it.
 * Real sockets: the client is raw TCP, so the test knows exactly when the proxy has routed.
 */
import { createServer, type Server, type Socket, type AddressInfo } from 'node:net';
import { describe, expect, test } from 'vitest';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { parseResponse, rawConnect, readUntil } from '../helpers/raw-http.js';
import { makeTable, startProxy, startReference, type TestReference } from '../helpers/reference.js';
import { readMetric } from '../helpers/metrics.js';

const BLUE = '1111111';

const closers = closeAfterEach();

async function reference(): Promise<TestReference> {
  const ref = await startReference({ pool: 'blue', version: BLUE });
  closers.push(ref.close);
  return ref;
}

describe('issue 10 item 8: cutover while a request waits', () => {
  test('a held PUT whose endpoint left the table during the wait goes to the current endpoints', async () => {
    const old = [await reference(), await reference()];
    const next = await reference();
    const p = await startProxy();
    closers.push(p.close);
    p.proxy.applyTable(
      makeTable({ blue: { version: BLUE, endpoints: old.map((r) => r.url), weight: 10000 } }),
    );
    // Two PUTs, so each old endpoint is picked once (least outstanding, round robin).
    const clients: Socket[] = [];
    for (let i = 0; i < 2; i++) {
      const s = await rawConnect(p.port);
      closers.push(() => Promise.resolve(void s.destroy()));
      const continued = readUntil(s, '100 Continue\r\n\r\n');
      s.write(
        'PUT /upload-hash HTTP/1.1\r\nHost: public.example\r\nContent-Length: 5\r\n' +
          'Expect: 100-continue\r\nConnection: close\r\n\r\n',
      );
      // The proxy routes in the same turn as it writes the 100: the endpoint is picked now.
      await continued;
      clients.push(s);
    }
    // The pool scales down to another endpoint while both bodies are held.
    p.proxy.applyTable(
      makeTable({ blue: { version: BLUE, endpoints: [next.url], weight: 10000 } }, 2),
    );
    for (const s of clients) {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      const closed = new Promise((resolve) => s.once('close', resolve));
      s.write('hello');
      await closed;
      const res = parseResponse(Buffer.concat(chunks).toString('latin1'));
      expect(res.status).toBe(200);
      expect((JSON.parse(res.body) as { bytes: number }).bytes).toBe(5);
    }
    expect(next.server.stats().requests).toBe(2);
    expect(old[0]!.server.stats().requests + old[1]!.server.stats().requests).toBe(0);
    expect(await readMetric(p.metrics, 'switchyard_upstream_errors_total')).toBe(0);
  });

  test('a retry after a reset, once the table dropped the other endpoints, goes to the current ones', async () => {
    // `resetting` takes the request, tells the test, and resets the connection when told to.
    let held: Socket | undefined;
    let got: () => void = () => undefined;
    const arrived = new Promise<void>((resolve) => (got = resolve));
    const resetting: Server = createServer((s) => {
      s.once('data', () => {
        held = s;
        got();
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => resetting.listen(0, '127.0.0.1', resolve));
    closers.push(
      () =>
        new Promise<void>((resolve) => {
          held?.destroy();
          resetting.close(() => resolve());
        }),
    );
    const resettingUrl = `http://127.0.0.1:${(resetting.address() as AddressInfo).port}`;
    const other = await reference();
    const next = await reference();
    const p = await startProxy();
    closers.push(p.close);
    // The first pick of a fresh pool is its first endpoint: `resetting`.
    p.proxy.applyTable(
      makeTable({ blue: { version: BLUE, endpoints: [resettingUrl, other.url], weight: 10000 } }),
    );
    const s = await rawConnect(p.port);
    closers.push(() => Promise.resolve(void s.destroy()));
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise((resolve) => s.once('close', resolve));
    s.write('GET / HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n');
    await arrived;
    p.proxy.applyTable(
      makeTable({ blue: { version: BLUE, endpoints: [next.url], weight: 10000 } }, 2),
    );
    // The reset is a retryable failure: the retry must not go to `other`, which left the table.
    held?.resetAndDestroy();
    await closed;
    const res = parseResponse(Buffer.concat(chunks).toString('latin1'));
    expect(res.status).toBe(200);
    expect(next.server.stats().requests).toBe(1);
    expect(other.server.stats().requests).toBe(0);
    await eventually(async () =>
      expect(await readMetric(p.metrics, 'switchyard_retries_total')).toBe(1),
    );
  });
});
