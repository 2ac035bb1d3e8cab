/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment -- JSON answers are inspected as untyped data */
/**
 * Issue 10 (hardening), admin API items, over real sockets with a raw HTTP client that sends the
 * headers a browser would (`Origin`, `Sec-Fetch-Site`, a rebound `Host`):
 * - item 2: cross-site changes and DNS rebinding against a tokenless admin API;
 * - item 11: a switch to a pool that was just added waits for its first health check;
 * - item 10: a pool endpoint that is this replica's own listener is refused.
 */
import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminClient } from '../../src/cli/admin-client.js';
import { startReference } from '../helpers/reference.js';
import { startApp, type TestApp } from '../helpers/start-app.js';

const BLUE = 'b1b1b1b';
const GREEN = 'a2a2a2a';
const TOKEN = 'hardening-admin-token-0123456789';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** An app with blue (100 %) and green (0 %) on real reference upstreams. */
async function world(config: Record<string, unknown> = {}): Promise<TestApp> {
  const blue = await startReference({ pool: 'blue', version: BLUE });
  closers.push(() => blue.close());
  const green = await startReference({ pool: 'green', version: GREEN });
  closers.push(() => green.close());
  const t = await startApp({
    pools: [
      { name: 'blue', version: BLUE, endpoints: [blue.url] },
      { name: 'green', version: GREEN, endpoints: [green.url] },
    ],
    ...config,
  });
  closers.push(() => t.close());
  return t;
}

interface Answer {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON answers under test
}

/**
 * One request with exactly these headers (node:http sends `Host` as given, so a rebound name can
 * be sent to a loopback port), on a connection of its own.
 */
function send(
  baseUrl: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Answer> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: { connection: 'close', ...headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const json = String(res.headers['content-type'] ?? '').includes('json');
          resolve({ status: res.statusCode ?? 0, body: json ? JSON.parse(text) : text });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const JSON_TYPE = { 'content-type': 'application/json' };

function revision(t: TestApp): number {
  return t.app.store.current()?.revision ?? 0;
}

function expectError(answer: Answer, status: number, code: string, text?: string): void {
  expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code });
  if (text !== undefined) expect(answer.body.error.message).toContain(text);
}

describe('issue 10 item 2: cross-site changes to a tokenless admin API', () => {
  it('refuses a bodyless POST /v1/rollback from another site (Origin) with 403 FORBIDDEN', async () => {
    const t = await world();
    const own = new URL(t.adminUrl).host;
    expect((await send(t.adminUrl, 'POST', '/v1/switch', JSON_TYPE, '{"to":"green"}')).status).toBe(
      200,
    );
    const before = revision(t);
    // What a page on http://evil.example sends with fetch(..., {method:'POST', mode:'no-cors'}).
    const answer = await send(t.adminUrl, 'POST', '/v1/rollback', {
      host: own,
      origin: 'http://evil.example',
    });
    expectError(answer, 403, 'FORBIDDEN', 'origin');
    // Even with the JSON content type (a preflighted fetch whose preflight was never answered).
    expectError(
      await send(t.adminUrl, 'POST', '/v1/rollback', {
        ...JSON_TYPE,
        host: own,
        origin: 'http://evil.example',
      }),
      403,
      'FORBIDDEN',
    );
    for (const origin of ['null', `http://localhost:1`, `https://${own}.evil.example`]) {
      expectError(
        await send(t.adminUrl, 'POST', '/v1/rollback', { ...JSON_TYPE, host: own, origin }),
        403,
        'FORBIDDEN',
      );
    }
    expect(revision(t)).toBe(before);
  });

  it('refuses Sec-Fetch-Site cross-site and same-site (another port of localhost) with 403', async () => {
    const t = await world();
    const before = revision(t);
    for (const site of ['cross-site', 'same-site']) {
      expectError(
        await send(t.adminUrl, 'POST', '/v1/rollback', { ...JSON_TYPE, 'sec-fetch-site': site }),
        403,
        'FORBIDDEN',
        'sec-fetch-site',
      );
      // Reads too: a cross-site page learns nothing.
      expectError(
        await send(t.adminUrl, 'GET', '/v1/state', { 'sec-fetch-site': site }),
        403,
        'FORBIDDEN',
      );
    }
    expect(revision(t)).toBe(before);
  });

  it('refuses a rebound Host (DNS rebinding) with 421 on /v1 reads and changes; probes still answer', async () => {
    const t = await world();
    const port = new URL(t.adminUrl).port;
    const before = revision(t);
    // After rebinding, the page is same-origin with the admin API: only Host tells.
    const rebound = {
      host: `evil.example:${port}`,
      origin: `http://evil.example:${port}`,
      'sec-fetch-site': 'same-origin',
    };
    expectError(
      await send(t.adminUrl, 'POST', '/v1/switch', { ...JSON_TYPE, ...rebound }, '{"to":"green"}'),
      421,
      'MISDIRECTED_REQUEST',
      'adminAllowedHosts',
    );
    expectError(await send(t.adminUrl, 'GET', '/v1/state', rebound), 421, 'MISDIRECTED_REQUEST');
    expectError(
      await send(t.adminUrl, 'GET', '/v1/history', { host: 'evil.example:9090' }),
      421,
      'MISDIRECTED_REQUEST',
    );
    expectError(
      await send(t.adminUrl, 'GET', '/metrics', { host: 'evil.example' }),
      421,
      'MISDIRECTED_REQUEST',
    );
    expect(revision(t)).toBe(before);
    // Probes answer whatever the Host: a kubelet sends the pod IP, a load balancer its own name.
    for (const host of ['evil.example:9090', '10.1.2.3:9090', 'lb.internal']) {
      expect((await send(t.adminUrl, 'GET', '/healthz', { host })).status).toBe(200);
      expect((await send(t.adminUrl, 'GET', '/readyz', { host })).status).toBe(200);
    }
    // IP literals cannot be rebound: a scraper by IP (and a port mapping) works.
    expect((await send(t.adminUrl, 'GET', '/metrics', { host: '10.1.2.3:9090' })).status).toBe(200);
    expect((await send(t.adminUrl, 'GET', '/v1/state', { host: '[::1]:19090' })).status).toBe(200);
  });

  it('refuses a change without content-type: application/json, a bodyless one too (415)', async () => {
    const t = await world();
    const before = revision(t);
    expectError(
      await send(t.adminUrl, 'POST', '/v1/rollback', {}),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      'content-type',
    );
    expectError(
      await send(
        t.adminUrl,
        'POST',
        '/v1/switch',
        { 'content-type': 'text/plain' },
        '{"to":"green"}',
      ),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    expectError(
      await send(t.adminUrl, 'DELETE', '/v1/pools/green', {}),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    expect(revision(t)).toBe(before);
    // With the header, the bodyless call works.
    const ok = await send(t.adminUrl, 'POST', '/v1/switch', JSON_TYPE, '{"to":"green"}');
    expect(ok.status).toBe(200);
    const undo = await send(t.adminUrl, 'POST', '/v1/rollback', JSON_TYPE);
    expect(undo.status).toBe(200);
    expect(undo.body.weights).toEqual({ blue: 10_000, green: 0 });
  });

  it('keeps same-origin browser calls working (a dashboard on the admin listener) and the CLI', async () => {
    const t = await world();
    const port = new URL(t.adminUrl).port;
    for (const own of [`127.0.0.1:${port}`, `localhost:${port}`]) {
      const sameOrigin = {
        ...JSON_TYPE,
        host: own,
        origin: `http://${own}`,
        'sec-fetch-site': 'same-origin',
      };
      const switched = await send(t.adminUrl, 'POST', '/v1/switch', sameOrigin, '{"to":"green"}');
      expect(switched.status).toBe(200);
      const read = await send(t.adminUrl, 'GET', '/v1/state', {
        host: own,
        'sec-fetch-site': 'same-origin',
      });
      expect(read.status).toBe(200);
      const undo = await send(t.adminUrl, 'POST', '/v1/rollback', sameOrigin);
      expect(undo.status).toBe(200);
    }
    // A URL typed into the address bar.
    expect((await send(t.adminUrl, 'GET', '/v1/state', { 'sec-fetch-site': 'none' })).status).toBe(
      200,
    );
    // The CLI's client: a bodyless change (rollback) and one with a body.
    const client = new AdminClient({ baseUrl: t.adminUrl, timeoutMs: 5_000 });
    closers.push(() => client.close());
    expect((await client.call('POST', '/v1/switch', { to: 'green' })).status).toBe(200);
    const undone = await client.call('POST', '/v1/rollback');
    expect(undone).toMatchObject({ status: 200, body: { weights: { blue: 10_000, green: 0 } } });
  });

  it('answers to configured names (adminAllowedHosts), and pages served under them', async () => {
    const t = await world({ adminAllowedHosts: ['Switchyard.Example.com'] });
    const port = new URL(t.adminUrl).port;
    const named = await send(t.adminUrl, 'GET', '/v1/state', {
      host: `switchyard.example.com:${port}`,
    });
    expect(named.status).toBe(200);
    // A dashboard behind a TLS reverse proxy that rewrites Host to the upstream address.
    const proxied = await send(
      t.adminUrl,
      'POST',
      '/v1/switch',
      {
        ...JSON_TYPE,
        host: `127.0.0.1:${port}`,
        origin: 'https://switchyard.example.com',
        'sec-fetch-site': 'same-origin',
      },
      '{"to":"green"}',
    );
    expect(proxied.status).toBe(200);
    expectError(
      await send(t.adminUrl, 'GET', '/v1/state', { host: `other.example.com:${port}` }),
      421,
      'MISDIRECTED_REQUEST',
    );
  });

  it('with a token: any Host (a Service name), but cross-site and non-JSON changes are still refused', async () => {
    const t = await world({ adminToken: TOKEN });
    const auth = { authorization: `Bearer ${TOKEN}` };
    const service = { host: 'switchyard-admin.switchyard.svc.cluster.local:9090' };
    expect((await send(t.adminUrl, 'GET', '/v1/state', { ...auth, ...service })).status).toBe(200);
    expect(
      (
        await send(
          t.adminUrl,
          'POST',
          '/v1/switch',
          { ...auth, ...service, ...JSON_TYPE },
          '{"to":"green"}',
        )
      ).status,
    ).toBe(200);
    expectError(
      await send(t.adminUrl, 'POST', '/v1/rollback', {
        ...auth,
        ...JSON_TYPE,
        origin: 'http://evil.example',
      }),
      403,
      'FORBIDDEN',
    );
    expectError(
      await send(t.adminUrl, 'POST', '/v1/rollback', auth),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
  });
});
