/**
 * Traffic mirroring (SPEC §12, issue 15) end to end over real sockets: PUT/DELETE /v1/mirror and
 * the Redis op `mirror` change the table; the proxy copies a share of the requests to the mirror
 * pool fire-and-forget, with `x-switchyard-mirror: 1`, and counts the copies apart.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, test } from 'vitest';
import { runSwitchyard } from '../helpers/cli-process.js';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { readMetric } from '../helpers/metrics.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { COLOUR_VERSIONS, startReference } from '../helpers/reference.js';
import { startApp, type TestApp } from '../helpers/start-app.js';

const closers = closeAfterEach();

interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A mirror target that records every request and answers after `delayMs`. */
async function startRecorder(delayMs = 0): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      const answer = (): void => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('mirror answer');
      };
      if (delayMs === 0) answer();
      else {
        const t = setTimeout(() => {
          timers.delete(t);
          answer();
        }, delayMs);
        timers.add(t);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(async () => {
    for (const t of timers) clearTimeout(t);
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/** An app with blue (a reference server, 100 %) and canary/green (recorders) idle. */
async function world(
  config: Record<string, unknown> = {},
  canaryDelayMs = 0,
): Promise<{ app: TestApp; canary: { url: string; seen: Seen[] }; green: { seen: Seen[] } }> {
  const blue = await startReference({ pool: 'blue', version: COLOUR_VERSIONS.blue });
  closers.push(blue.close);
  const canary = await startRecorder(canaryDelayMs);
  const green = await startRecorder();
  const app = await startApp({
    pools: [
      { name: 'blue', version: COLOUR_VERSIONS.blue, endpoints: [blue.url] },
      { name: 'green', version: COLOUR_VERSIONS.green, endpoints: [green.url] },
      { name: 'canary', version: COLOUR_VERSIONS.canary, endpoints: [canary.url] },
    ],
    // No health checks: the recorders see only proxied requests.
    healthCheckInterval: 0,
    ...config,
  });
  closers.push(() => app.close());
  return { app, canary, green };
}

async function send(
  url: string,
  method: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** One proxied request: status, the pool that answered, the body and the time it took. */
async function proxied(
  app: TestApp,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; pool: string; body: string; ms: number }> {
  const started = performance.now();
  const res = await fetch(`${app.proxyUrl}${path}`, init);
  const body = await res.text();
  return {
    status: res.status,
    pool: (res.headers.get('x-switchyard-upstream') ?? '').split('@')[0] ?? '',
    body,
    ms: performance.now() - started,
  };
}

describe('traffic mirroring', () => {
  test('a 100 % GET mirror copies every request while clients see only the primary', async () => {
    const { app, canary } = await world();
    const put = await send(`${app.adminUrl}/v1/mirror`, 'PUT', { pool: 'canary', percent: 100 });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({
      revision: 2,
      changed: true,
      mirror: { pool: 'canary', basisPoints: 10000, methods: ['GET', 'HEAD'] },
    });
    const state = await send(`${app.adminUrl}/v1/state`, 'GET');
    expect((state.body.table as { mirror: unknown }).mirror).toEqual({
      pool: 'canary',
      basisPoints: 10000,
      methods: ['GET', 'HEAD'],
    });

    const n = 20;
    for (let i = 0; i < n; i++) {
      const r = await proxied(app, `/item/${i}?q=${i}`);
      expect(r.status).toBe(200);
      expect(r.pool).toBe('blue');
      expect(r.body).not.toContain('mirror answer');
    }
    // The target receives one copy per client request, each marked as a copy.
    await eventually(() => expect(canary.seen.length).toBe(n));
    expect(canary.seen.map((s) => s.path).sort()).toEqual(
      Array.from({ length: n }, (_, i) => `/item/${i}?q=${i}`).sort(),
    );
    for (const s of canary.seen) {
      expect(s.method).toBe('GET');
      expect(s.headers['x-switchyard-mirror']).toBe('1');
      expect(s.headers['x-forwarded-for']).toBe('127.0.0.1');
    }
    // Counted apart: mirror metrics only, never the real per-pool figures.
    await eventually(async () =>
      expect(
        await readMetric(app.adminUrl, 'switchyard_mirror_requests_total', {
          pool: 'canary',
          outcome: '2xx',
        }),
      ).toBe(n),
    );
    expect(
      await readMetric(app.adminUrl, 'switchyard_mirror_duration_seconds_count', {
        pool: 'canary',
      }),
    ).toBe(n);
    expect(await readMetric(app.adminUrl, 'switchyard_requests_total', { pool: 'canary' })).toBe(0);
    expect(await readMetric(app.adminUrl, 'switchyard_requests_total', { pool: 'blue' })).toBe(n);
    expect(app.app.proxy.poolCounts().get('canary')?.requests ?? 0).toBe(0);
    expect(app.app.proxy.trafficSnapshot(60_000).canary ?? 0).toBe(0);
  });

  test('a client cannot pass for a copy: its x-switchyard-mirror header is removed', async () => {
    const { app, canary, green } = await world();
    expect((await send(`${app.adminUrl}/v1/switch`, 'POST', { to: 'green' })).status).toBe(200);
    expect(
      (await send(`${app.adminUrl}/v1/mirror`, 'PUT', { pool: 'canary', percent: 100 })).status,
    ).toBe(200);
    await eventually(async () =>
      expect((await proxied(app, '/spoof', { headers: { 'x-switchyard-mirror': '1' } })).pool).toBe(
        'green',
      ),
    );
    await eventually(() => expect(canary.seen.length).toBeGreaterThan(0));
    const real = green.seen.find((s) => s.path === '/spoof');
    expect(real?.headers['x-switchyard-mirror']).toBeUndefined();
    // The copy carries exactly one mark, the proxy's own.
    expect(canary.seen.find((s) => s.path === '/spoof')?.headers['x-switchyard-mirror']).toBe('1');
  });

  test('POSTs are not mirrored by default; with POST listed, small bodies are copied and large ones dropped', async () => {
    const { app, canary } = await world({ mirrorMaxBodyBytes: 1024 });
    expect(
      (await send(`${app.adminUrl}/v1/mirror`, 'PUT', { pool: 'canary', percent: 100 })).status,
    ).toBe(200);
    const post = (body: string): Promise<{ status: number; pool: string }> =>
      proxied(app, '/submit', { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
    expect((await post('one')).status).toBe(200);
    expect((await proxied(app, '/after')).status).toBe(200);
    await eventually(() => expect(canary.seen.map((s) => s.path)).toEqual(['/after']));

    const put = await send(`${app.adminUrl}/v1/mirror`, 'PUT', {
      pool: 'canary',
      percent: 100,
      methods: ['post'],
    });
    expect(put.status).toBe(200);
    expect((put.body.mirror as { methods: string[] }).methods).toEqual(['POST']);
    expect((await post('small body')).pool).toBe('blue');
    expect((await post('x'.repeat(5000))).status).toBe(200);
    expect((await proxied(app, '/get-not-listed')).status).toBe(200);
    await eventually(() => expect(canary.seen.length).toBe(2));
    expect(canary.seen[1]).toMatchObject({ method: 'POST', path: '/submit', body: 'small body' });
    expect(
      await readMetric(app.adminUrl, 'switchyard_mirror_dropped_total', {
        reason: 'body_too_large',
      }),
    ).toBe(1);
  });

  test('a mirror target that takes 5 s changes nothing for clients; copies past the cap are dropped and counted', async () => {
    const { app, canary } = await world({ mirrorConcurrency: 4 }, 5_000);
    const baseline: number[] = [];
    for (let i = 0; i < 20; i++) baseline.push((await proxied(app, '/base')).ms);
    expect(
      (await send(`${app.adminUrl}/v1/mirror`, 'PUT', { pool: 'canary', percent: 100 })).status,
    ).toBe(200);
    const n = 30;
    const mirrored: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await proxied(app, `/m/${i}`);
      expect(r.status).toBe(200);
      mirrored.push(r.ms);
    }
    const p99 = (xs: number[]): number =>
      [...xs].sort((a, b) => a - b)[Math.ceil(xs.length * 0.99) - 1] ?? 0;
    console.log(
      `[mirror] client p99 without mirror ${p99(baseline).toFixed(1)} ms, with a 5 s mirror target ${p99(mirrored).toFixed(1)} ms`,
    );
    // Far below the target's 5 s: no client answer waited for its copy.
    expect(Math.max(...mirrored)).toBeLessThan(2_000);
    await eventually(() => expect(canary.seen.length).toBe(4));
    const dropped = await readMetric(app.adminUrl, 'switchyard_mirror_dropped_total', {
      reason: 'queue_full',
    });
    const inFlight = await readMetric(app.adminUrl, 'switchyard_mirror_in_flight');
    const finished = await readMetric(app.adminUrl, 'switchyard_mirror_requests_total');
    // Every copy is accounted for: in flight, finished, or dropped because the cap was reached.
    expect(inFlight + finished + dropped).toBe(n);
    expect(inFlight + finished).toBe(4);
  });

  test('a copy still running at mirrorTimeout is aborted and counted; close does not wait for copies', async () => {
    const { app, canary } = await world({ mirrorTimeout: 300 }, 5_000);
    expect(
      (await send(`${app.adminUrl}/v1/mirror`, 'PUT', { pool: 'canary', percent: 100 })).status,
    ).toBe(200);
    expect((await proxied(app, '/slow-copy')).status).toBe(200);
    await eventually(async () =>
      expect(
        await readMetric(app.adminUrl, 'switchyard_mirror_requests_total', {
          pool: 'canary',
          outcome: 'timeout',
        }),
      ).toBe(1),
    );
    expect(canary.seen.map((s) => s.path)).toEqual(['/slow-copy']);
    // A copy in flight to a target that takes 5 s: close ends it rather than wait.
    expect((await proxied(app, '/in-flight')).status).toBe(200);
    await eventually(() => expect(canary.seen.length).toBe(2));
    const started = performance.now();
    await app.close();
    expect(performance.now() - started).toBeLessThan(4_000);
  });

  test('a share below 100 % copies exactly that share; match limits what is copied', async () => {
    const { app, canary } = await world();
    expect(
      (await send(`${app.adminUrl}/v1/mirror`, 'PUT', { pool: 'canary', percent: 10 })).status,
    ).toBe(200);
    for (let i = 0; i < 50; i++) expect((await proxied(app, `/s/${i}`)).status).toBe(200);
    await eventually(() => expect(canary.seen.length).toBe(5));

    const put = await send(`${app.adminUrl}/v1/mirror`, 'PUT', {
      pool: 'canary',
      basisPoints: 10000,
      match: [{ header: 'x-copy', present: true }],
    });
    expect(put.status).toBe(200);
    expect(put.body.mirror).toMatchObject({ match: [{ header: 'x-copy', present: true }] });
    await proxied(app, '/no');
    await proxied(app, '/yes', { headers: { 'x-copy': '1' } });
    await eventually(() => expect(canary.seen.length).toBe(6));
    expect(canary.seen[5]?.path).toBe('/yes');
  });

  test('refuses bad mirrors with the field named, and nothing changes', async () => {
    const { app } = await world();
    const url = `${app.adminUrl}/v1/mirror`;
    const unknown = await send(url, 'PUT', { pool: 'purple', percent: 10 });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({
      code: 'UNKNOWN_POOL',
      message: 'pool: unknown pool "purple"',
    });
    const cases: Array<[unknown, RegExp]> = [
      [{ pool: 'canary', percent: 0 }, /^percent: must be more than 0/],
      [{ pool: 'canary', percent: 101 }, /^percent: must be a number 0\.\.100/],
      [{ pool: 'canary', percent: 1.234 }, /^percent: at most two decimals/],
      [{ pool: 'canary', basisPoints: 0 }, /^basisPoints: must be an integer 1\.\.10000/],
      [{ pool: 'canary', percent: 5, basisPoints: 500 }, /^percent: give exactly one/],
      [{ pool: 'canary' }, /^percent: give exactly one/],
      [{ percent: 5 }, /^pool: /],
      [{ pool: 'canary', percent: 5, methods: ['FETCH'] }, /^methods\[0\]: "FETCH" is not one of/],
      [{ pool: 'canary', percent: 5, methods: [] }, /^methods: must list/],
      [
        { pool: 'canary', percent: 5, methods: ['GET', 'get'] },
        /^methods\[1\]: GET is named twice/,
      ],
      [
        { pool: 'canary', percent: 5, match: [{ path: true, regex: '(a' }] },
        /^match\[0\]\.regex: not a valid RE2/,
      ],
      [{ pool: 'canary', percent: 5, extra: 1 }, /extra: unknown field/],
    ];
    for (const [body, message] of cases) {
      const r = await send(url, 'PUT', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect((r.body.error as { code: string }).code).toBe('VALIDATION_FAILED');
      expect((r.body.error as { message: string }).message, JSON.stringify(body)).toMatch(message);
    }
    const state = await send(`${app.adminUrl}/v1/state`, 'GET');
    expect(state.body.table).toMatchObject({ revision: 1 });
    expect((state.body.table as Record<string, unknown>).mirror).toBeUndefined();
  });

  test('the mirror target cannot be removed; DELETE ends the mirror; rollback restores the previous one', async () => {
    const { app, canary } = await world();
    const url = `${app.adminUrl}/v1/mirror`;
    expect((await send(url, 'PUT', { pool: 'canary', percent: 100 })).status).toBe(200);
    const removed = await send(`${app.adminUrl}/v1/pools/canary`, 'DELETE', {});
    expect(removed.status).toBe(409);
    expect(removed.body.error).toMatchObject({
      code: 'POOL_LIVE',
      message: 'pools.canary: traffic is mirrored to it; end the mirror first (DELETE /v1/mirror)',
    });
    expect((await send(url, 'PUT', { pool: 'green', percent: 50 })).body).toMatchObject({
      revision: 3,
    });
    const back = await send(`${app.adminUrl}/v1/rollback`, 'POST', {});
    expect(back.body).toMatchObject({
      revision: 4,
      mirror: { pool: 'canary', basisPoints: 10000 },
    });
    await proxied(app, '/after-rollback');
    await eventually(() => expect(canary.seen.map((s) => s.path)).toContain('/after-rollback'));

    const off = await send(url, 'DELETE', {});
    expect(off.status).toBe(200);
    expect(off.body).toMatchObject({ revision: 5, changed: true });
    expect(off.body.mirror).toBeUndefined();
    expect((await send(url, 'DELETE', {})).body).toMatchObject({ revision: 5, changed: false });
    await proxied(app, '/after-off');
    expect(canary.seen.map((s) => s.path)).not.toContain('/after-off');
    expect((await send(`${app.adminUrl}/v1/pools/canary`, 'DELETE', {})).status).toBe(200);
  });

  test('the Redis op mirror sets and ends the mirror', async () => {
    const redis = await startRedisServer();
    closers.push(() => redis.close());
    const { app, canary } = await world({ redis: redis.url, namespace: 'mirror' });
    const xadd = (cmd: unknown): Promise<unknown> =>
      redis.cli(['XADD', 'switchyard:{mirror}:commands', '*', 'cmd', JSON.stringify(cmd)]);
    await xadd({ op: 'mirror', pool: 'canary', percent: 100, actor: 'ops' });
    await eventually(async () => {
      await proxied(app, '/via-redis');
      expect(canary.seen.length).toBeGreaterThan(0);
    });
    await xadd({ op: 'mirror', pool: null });
    await eventually(async () => {
      const state = await send(`${app.adminUrl}/v1/state`, 'GET');
      expect((state.body.table as Record<string, unknown>).mirror).toBeUndefined();
    });
    // A bad one is rejected and recorded, and changes nothing.
    await xadd({ op: 'mirror', pool: 'canary', percent: 0 });
    await eventually(async () => {
      const history = await send(`${app.adminUrl}/v1/history`, 'GET');
      const newest = (history.body.history as Array<Record<string, unknown>>)[0];
      expect(newest).toMatchObject({ result: 'rejected', source: 'redis' });
    });
  });
});

describe('the mirror command of the CLI (real binary)', () => {
  const cli = (args: string[]) => runSwitchyard(args, {}, 20_000);

  test('mirror POOL --percent N [--methods], mirror off; refusals and usage errors', async () => {
    const { app } = await world();
    const admin = ['--admin', app.adminUrl];
    expect(await cli(['mirror', 'canary', '--percent', '10', ...admin])).toEqual({
      code: 0,
      stdout:
        'revision 2: blue 100.00%, green 0.00%, canary 0.00%; mirror canary 10.00% (GET, HEAD)\n',
      stderr: '',
    });
    const post = await cli([
      'mirror',
      'canary',
      '--percent',
      '100',
      '--methods',
      'get,post',
      ...admin,
    ]);
    expect(post.code).toBe(0);
    expect(post.stdout).toMatch(/mirror canary 100\.00% \(GET, POST\)\n$/);
    const status = await cli(['status', ...admin]);
    expect(status.stdout).toContain(
      'mirror canary 100.00% (GET, POST) (copies, not counted above)',
    );
    const history = await cli(['history', '--limit', '1', ...admin]);
    expect(history.stdout).toContain('mirror canary --percent 100 --methods GET,POST');

    const unknown = await cli(['mirror', 'purple', '--percent', '5', ...admin]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('purple');
    const zero = await cli(['mirror', 'canary', '--percent', '0', ...admin]);
    expect(zero.code).toBe(1);
    expect(zero.stderr).toContain('percent: must be more than 0');
    expect((await cli(['mirror', 'canary', ...admin])).code).toBe(2);
    expect((await cli(['mirror', 'off', '--percent', '5', ...admin])).code).toBe(2);

    const off = await cli(['mirror', 'off', ...admin]);
    expect(off).toMatchObject({
      code: 0,
      stdout: 'revision 4: blue 100.00%, green 0.00%, canary 0.00%\n',
    });
    const again = await cli(['mirror', 'off', ...admin]);
    expect(again.stdout).toMatch(/^unchanged, still revision 4/);
  });
});
