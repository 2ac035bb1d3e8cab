/**
 * The audit log through the admin API of a real app (in-memory store): rejected bodies cannot
 * grow the heap or break `GET /v1/history` (issue 10 item 4), the `x-switchyard-actor` header
 * names the actor (issue 11), and a change that changes nothing answers `"changed": false`.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { startApp, type TestApp } from '../helpers/start-app.js';

const MB = 1024 * 1024;

/** The parts of the answers these tests read. */
interface Answer {
  revision: number;
  updatedBy: string;
  weights: Record<string, number>;
  changed: boolean;
  error: { code: string; message: string };
  history: Array<{
    revision: number | null;
    actor: string;
    source: string;
    command: { endpoints?: string[] };
  }>;
}

const closers = closeAfterEach();

/** V8's gc(), exposed at run time (vitest workers do not get --expose-gc). */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

async function app(config: Record<string, unknown> = {}): Promise<TestApp> {
  // Endpoints nobody listens on: these tests never route a request.
  const t = await startApp({
    ...config,
    pools: [
      { name: 'blue', version: 'aaaaaaa', endpoints: ['http://127.0.0.1:9'] },
      { name: 'green', version: 'bbbbbbb', endpoints: ['http://127.0.0.1:9'] },
      { name: 'canary', version: 'ccccccc', endpoints: ['http://127.0.0.1:9'] },
    ],
  });
  closers.push(() => t.close());
  return t;
}

async function call(
  t: TestApp,
  method: 'GET' | 'PUT' | 'POST',
  path: string,
  body?: string,
  headers: Record<string, string | string[]> = {},
): Promise<{ status: number; json: Answer }> {
  const res = await request(`${t.adminUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body }),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: (text === '' ? null : JSON.parse(text)) as Answer };
}

describe('admin audit log', () => {
  it('issue 10 item 4: many big rejected bodies keep the heap bounded', async () => {
    const gc = exposeGc();
    const t = await app();
    // ~1 MiB of JSON that parses into a 520k-element array (about 4 MB of heap each).
    const body = `{"weights":[${'0,'.repeat(520_000)}0]}`;
    expect(body.length).toBeLessThan(MB);
    const send = async (): Promise<void> => {
      const res = await call(t, 'PUT', '/v1/weights', body);
      expect(res.status).toBe(400);
    };
    await send(); // warm-up
    gc();
    const before = process.memoryUsage().heapUsed;
    const bodies = 60;
    for (let i = 0; i < bodies; i += 1) await send();
    gc();
    const growthMb = (process.memoryUsage().heapUsed - before) / MB;
    console.log(`${bodies} rejected 1 MiB bodies: heap ${growthMb.toFixed(1)} MB`);
    // Kept whole, they held ~240 MB; summaries are a few KiB each.
    expect(growthMb).toBeLessThan(40);
    const history = await call(t, 'GET', '/v1/history?limit=1000');
    expect(history.status).toBe(200);
    expect(history.json.history.length).toBeGreaterThanOrEqual(bodies);
    expect(JSON.stringify(history.json).length).toBeLessThan(bodies * 8 * 1024);
  });

  it('issue 10 item 4: after a 100k-deep body, GET /v1/history still answers 200', async () => {
    const t = await app();
    const depth = 100_000;
    const body = `{"weights":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    expect((await call(t, 'PUT', '/v1/weights', body)).status).toBe(400);
    const history = await call(t, 'GET', '/v1/history');
    expect(history.status).toBe(200);
    expect(history.json.history[0]).toMatchObject({
      result: 'rejected',
      command: { op: 'weights' },
    });
  });

  it('issue 10 item 5: a password in a rejected PUT /v1/pools stays out of /v1/history', async () => {
    const t = await app();
    const body = JSON.stringify({
      version: 'bbbbbbb',
      endpoints: ['http://user:pw-s3cret@127.0.0.1:3002'],
    });
    const res = await call(t, 'PUT', '/v1/pools/green', body);
    expect(res.status).toBe(400);
    const history = await call(t, 'GET', '/v1/history');
    expect(JSON.stringify(history.json)).not.toContain('pw-s3cret');
    expect(history.json.history[0]?.command.endpoints).toEqual(['http://***@127.0.0.1:3002']);
  });

  it('issue 11: x-switchyard-actor names the actor in history and the table', async () => {
    const t = await app();
    const res = await call(t, 'POST', '/v1/canary', '{"percent":5}', {
      'x-switchyard-actor': 'alice@laptop',
      'x-switchyard-source': 'cli',
    });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ revision: 2, updatedBy: 'cli:alice@laptop', changed: true });
    const byAdmin = await call(t, 'POST', '/v1/rollback', undefined, {
      'x-switchyard-actor': 'bob',
    });
    expect(byAdmin.json.updatedBy).toBe('admin:bob');
    const history = await call(t, 'GET', '/v1/history?limit=2');
    expect(history.json.history.map((e) => [e.actor, e.source])).toEqual([
      ['admin:bob', 'admin'],
      ['cli:alice@laptop', 'cli'],
    ]);
    // Without the header the actor is the source, as before.
    const plain = await call(t, 'POST', '/v1/canary', '{"percent":7}');
    expect(plain.json.updatedBy).toBe('admin');
  });

  it('issue 11: a bad x-switchyard-actor is 400 naming the header, and nothing is recorded', async () => {
    const t = await app();
    const before = await call(t, 'GET', '/v1/history');
    for (const actor of ['x'.repeat(65), 'caf\u00e9', ['alice', 'bob']]) {
      const res = await call(t, 'POST', '/v1/canary', '{"percent":5}', {
        'x-switchyard-actor': actor,
      });
      expect(res.status, JSON.stringify(actor)).toBe(400);
      expect(res.json.error.code).toBe('VALIDATION_FAILED');
      expect(res.json.error.message).toMatch(/^x-switchyard-actor: /);
    }
    // The switch route checks the header before its health guard records anything.
    const sw = await call(t, 'POST', '/v1/switch', '{"to":"green"}', {
      'x-switchyard-actor': 'x'.repeat(65),
    });
    expect(sw.status).toBe(400);
    expect(sw.json.error.message).toMatch(/^x-switchyard-actor: must be at most 64 characters/);
    expect(await call(t, 'GET', '/v1/history')).toEqual(before);
  });

  it('issue 11: a change that changes nothing answers 200, changed: false, same revision', async () => {
    const t = await app();
    const first = await call(t, 'POST', '/v1/canary', '{"percent":5}');
    expect(first.json).toMatchObject({ revision: 2, changed: true });
    const again = await call(t, 'POST', '/v1/canary', '{"percent":5}');
    expect(again.status).toBe(200);
    expect(again.json.changed).toBe(false);
    expect({ ...again.json, changed: true }).toEqual(first.json);
    const same = await call(
      t,
      'PUT',
      '/v1/pools/green',
      '{"version":"bbbbbbb","endpoints":["http://127.0.0.1:9"]}',
    );
    expect(same.json).toMatchObject({ revision: 2, changed: false });
    const history = await call(t, 'GET', '/v1/history');
    expect(history.json.history.map((e) => e.revision)).toEqual([2, 1]);
    const rollback = await call(t, 'POST', '/v1/rollback');
    expect(rollback.json).toMatchObject({ revision: 3, changed: true });
    expect(rollback.json.weights).toEqual({ blue: 10000, green: 0, canary: 0 });
    expect(t.logs.some((l) => l.msg === 'table unchanged')).toBe(true);
  });

  it('issue 11: a switch to the pool that has 100 % is a no-op, not POOL_UNHEALTHY', async () => {
    const t = await app({ healthCheckInterval: 50, unhealthyThreshold: 1 });
    await eventually(() => {
      expect(t.app.proxy.poolHealth('blue').healthy).toBe(0);
      expect(t.app.proxy.poolHealth('green').healthy).toBe(0);
    });
    const same = await call(t, 'POST', '/v1/switch', '{"to":"blue"}');
    expect(same.status).toBe(200);
    expect(same.json).toMatchObject({ revision: 1, changed: false });
    // The guard still refuses a real switch to a pool without a healthy endpoint.
    const other = await call(t, 'POST', '/v1/switch', '{"to":"green"}');
    expect(other.status).toBe(409);
    expect(other.json.error.code).toBe('POOL_UNHEALTHY');
  });
});
