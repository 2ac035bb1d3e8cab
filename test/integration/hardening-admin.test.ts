/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment -- JSON answers are inspected as untyped data */
/**
 * Issue 10 (hardening), admin API items, over real sockets with a raw HTTP client that sends the
 * headers a browser would (`Origin`, `Sec-Fetch-Site`, a rebound `Host`):
 * - item 2: cross-site changes and DNS rebinding against a tokenless admin API;
 * - item 11: a switch to a pool that was just added waits for its first health check;
 * - item 10: a pool endpoint that is this replica's own listener is refused.
 */
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { closeAfterEach } from '../helpers/closers.js';
import { AdminClient } from '../../src/cli/admin-client.js';
import { startReference } from '../helpers/reference.js';
import { startApp, type TestApp } from '../helpers/start-app.js';

const BLUE = 'b1b1b1b';
const GREEN = 'a2a2a2a';
const TOKEN = 'hardening-admin-token-0123456789';

const closers = closeAfterEach();

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

/** A loopback URL nothing listens on (connections are refused). */
async function deadUrl(): Promise<string> {
  const srv = createNetServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** A loopback URL that accepts connections and never answers. */
async function silentUrl(): Promise<string> {
  const sockets = new Set<Socket>();
  const srv = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  closers.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  return `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
}

async function history(t: TestApp): Promise<Array<Record<string, unknown>>> {
  const answer = await send(t.adminUrl, 'GET', '/v1/history?limit=5', {});
  expect(answer.status).toBe(200);
  return answer.body.history as Array<Record<string, unknown>>;
}

describe('issue 10 item 11: switching to a pool that was just added', () => {
  // Checks every 2 s (the default), so only the immediate first check can answer in time.
  const health = { healthCheckInterval: '2s', healthCheckTimeout: '1s' };

  it('set-pool with a dead endpoint then an immediate switch is refused with 409 POOL_UNHEALTHY', async () => {
    const t = await world(health);
    const dead = await deadUrl();
    const put = await send(
      t.adminUrl,
      'PUT',
      '/v1/pools/dead',
      JSON_TYPE,
      JSON.stringify({ version: 'dddddd1', endpoints: [dead] }),
    );
    expect(put.status).toBe(200);
    const switched = await send(t.adminUrl, 'POST', '/v1/switch', JSON_TYPE, '{"to":"dead"}');
    expectError(switched, 409, 'POOL_UNHEALTHY', 'pool "dead" has no healthy endpoint (0 of 1)');
    expect(t.app.store.current()?.weights).toEqual({ blue: 10_000, green: 0, dead: 0 });
    // Traffic stays where it was.
    const r = await send(t.proxyUrl, 'GET', '/', {});
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ pool: 'blue' });
    // Recorded like every refusal.
    expect((await history(t))[0]).toMatchObject({
      result: 'rejected',
      command: { op: 'switch', to: 'dead' },
      reason: { code: 'POOL_UNHEALTHY' },
    });
  });

  it('an endpoint that never answers its first check is refused once the check times out', async () => {
    const t = await world({ healthCheckInterval: '2s', healthCheckTimeout: '300ms' });
    const silent = await silentUrl();
    expect(
      (
        await send(
          t.adminUrl,
          'PUT',
          '/v1/pools/silent',
          JSON_TYPE,
          JSON.stringify({ version: 'dddddd2', endpoints: [silent] }),
        )
      ).status,
    ).toBe(200);
    expectError(
      await send(t.adminUrl, 'POST', '/v1/switch', JSON_TYPE, '{"to":"silent"}'),
      409,
      'POOL_UNHEALTHY',
    );
  });

  it('a healthy new endpoint then an immediate switch is accepted without waiting out the bound', async () => {
    // A long check timeout makes the guard's bound 5 s: an answer well before it shows the
    // guard waited for the check's answer, not for the bound.
    const t = await world({ healthCheckInterval: '2s', healthCheckTimeout: '10s' });
    const fresh = await startReference({ pool: 'fresh', version: 'eeeeee1' });
    closers.push(() => fresh.close());
    expect(
      (
        await send(
          t.adminUrl,
          'PUT',
          '/v1/pools/fresh',
          JSON_TYPE,
          JSON.stringify({ version: 'eeeeee1', endpoints: [fresh.url] }),
        )
      ).status,
    ).toBe(200);
    const started = Date.now();
    const switched = await send(t.adminUrl, 'POST', '/v1/switch', JSON_TYPE, '{"to":"fresh"}');
    const tookMs = Date.now() - started;
    expect(switched.status).toBe(200);
    expect(switched.body.weights).toMatchObject({ fresh: 10_000 });
    expect(tookMs).toBeLessThan(4_000);
    const r = await send(t.proxyUrl, 'GET', '/', {});
    expect(r.body).toMatchObject({ pool: 'fresh' });
  });
});

describe("issue 10 item 10: a pool endpoint may not be this replica's own listener", () => {
  it('refuses the proxy and admin ports (loopback, localhost, 0.0.0.0) with 400, recorded in history', async () => {
    const t = await world();
    const proxyPort = new URL(t.proxyUrl).port;
    const adminPort = new URL(t.adminUrl).port;
    const before = revision(t);
    const cases: Array<[string[], string]> = [
      [
        [t.proxyUrl],
        `endpoints[0]: http://127.0.0.1:${proxyPort} is this replica's own proxy listener`,
      ],
      [
        ['http://127.0.0.1:1', `http://localhost:${proxyPort}/app`],
        `endpoints[1]: http://localhost:${proxyPort} is this replica's own proxy listener`,
      ],
      [
        [`http://0.0.0.0:${proxyPort}`],
        `endpoints[0]: http://0.0.0.0:${proxyPort} is this replica's own proxy listener`,
      ],
      [
        [`http://ops:secret@127.0.0.1:${adminPort}`],
        `endpoints[0]: http://127.0.0.1:${adminPort} is this replica's own admin listener`,
      ],
    ];
    for (const [endpoints, message] of cases) {
      const answer = await send(
        t.adminUrl,
        'PUT',
        '/v1/pools/loop',
        JSON_TYPE,
        JSON.stringify({ version: 'fffffff', endpoints }),
      );
      expectError(answer, 400, 'VALIDATION_FAILED', message);
      expect(answer.body.error.message).not.toContain('secret');
    }
    expect(revision(t)).toBe(before);
    expect(t.app.store.current()?.pools).not.toHaveProperty('loop');
    expect((await history(t))[0]).toMatchObject({
      result: 'rejected',
      command: { op: 'set-pool', pool: 'loop' },
      reason: { code: 'VALIDATION_FAILED', message: expect.stringContaining('admin listener') },
    });
    // Another port on loopback is an ordinary upstream.
    const other = await startReference({ pool: 'other', version: 'fffffff' });
    closers.push(() => other.close());
    const ok = await send(
      t.adminUrl,
      'PUT',
      '/v1/pools/other',
      JSON_TYPE,
      JSON.stringify({ version: 'fffffff', endpoints: [other.url] }),
    );
    expect(ok.status).toBe(200);
  });
});
