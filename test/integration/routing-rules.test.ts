/**
 * Routing rules (SPEC §12, issue 15) end to end: PUT /v1/rules and the Redis op `rules` change
 * the table, and the proxy sends matching requests to the rule's pool before the weighted split.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { runSwitchyard } from '../helpers/cli-process.js';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { hasMetric, readMetric } from '../helpers/metrics.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { startColours, type TestColours } from '../helpers/reference.js';
import { startApp, type TestApp } from '../helpers/start-app.js';

const closers = closeAfterEach();

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function send(url: string, method: string, body?: unknown): Promise<Answer> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The pool that answered a proxied request (from `x-switchyard-upstream: POOL@VERSION`). */
async function poolFor(app: TestApp, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${app.proxyUrl}${path}`, { headers });
  await res.arrayBuffer();
  expect(res.status).toBe(200);
  return (res.headers.get('x-switchyard-upstream') ?? '').split('@')[0];
}

async function world(config: Record<string, unknown> = {}): Promise<{
  app: TestApp;
  colours: TestColours;
}> {
  const colours = await startColours(closers);
  const app = await startApp({ pools: colours.pools, ...config });
  closers.push(() => app.close());
  return { app, colours };
}

const RULES = [
  { name: 'beta-header', match: [{ header: 'X-Beta', value: '1' }], pool: 'canary' },
  { name: 'beta-cookie', match: [{ cookie: 'beta', value: 'yes' }], pool: 'canary' },
  { name: 'preview', match: [{ query: 'preview', present: true }], pool: 'green' },
  { name: 'api-v2', match: [{ path: true, prefix: '/api/v2' }], pool: 'green' },
];

describe('routing rules', () => {
  test('header, cookie, query and path-prefix rules route to their pools, the rest by weight', async () => {
    const { app } = await world();
    const put = await send(`${app.adminUrl}/v1/rules`, 'PUT', { rules: RULES });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ revision: 2, changed: true });
    expect((put.body.rules as unknown[]).length).toBe(4);

    const state = await send(`${app.adminUrl}/v1/state`, 'GET');
    expect((state.body.table as { rules: unknown[] }).rules[0]).toEqual({
      name: 'beta-header',
      match: [{ header: 'x-beta', value: '1' }],
      pool: 'canary',
    });
    await eventually(async () => expect(await poolFor(app, '/', { 'x-beta': '1' })).toBe('canary'));

    expect(await poolFor(app, '/', { 'X-BETA': '1' })).toBe('canary');
    expect(await poolFor(app, '/', { 'x-beta': '2' })).toBe('blue');
    expect(await poolFor(app, '/', { cookie: 'a=1; beta=yes' })).toBe('canary');
    expect(await poolFor(app, '/', { cookie: 'beta=no' })).toBe('blue');
    expect(await poolFor(app, '/items?preview')).toBe('green');
    expect(await poolFor(app, '/preview')).toBe('blue');
    expect(await poolFor(app, '/api/v2/users?x=1')).toBe('green');
    expect(await poolFor(app, '/api/v1/users')).toBe('blue');
    // First rule that holds wins.
    expect(await poolFor(app, '/api/v2', { 'x-beta': '1' })).toBe('canary');

    // The rest stays on the weighted split.
    const canary = await send(`${app.adminUrl}/v1/weights`, 'PUT', {
      percent: { blue: 0, green: 0, canary: 100 },
    });
    expect(canary.status).toBe(200);
    await eventually(async () => expect(await poolFor(app, '/other')).toBe('canary'));
    expect(await poolFor(app, '/api/v2/x')).toBe('green');

    const metrics = app.adminUrl;
    expect(await readMetric(metrics, 'switchyard_rule_hits_total', { rule: 'beta-header' })).toBe(
      3,
    );
    expect(await readMetric(metrics, 'switchyard_rule_hits_total', { rule: 'api-v2' })).toBe(2);
    expect(await readMetric(metrics, 'switchyard_rule_hits_total', { rule: 'preview' })).toBe(1);

    // A rule that leaves the table takes its series with it (the label stays bounded).
    expect((await send(`${app.adminUrl}/v1/rules`, 'PUT', { rules: [RULES[3]] })).status).toBe(200);
    await eventually(async () =>
      expect(await hasMetric(metrics, 'switchyard_rule_hits_total', { rule: 'preview' })).toBe(
        false,
      ),
    );
    expect(await readMetric(metrics, 'switchyard_rule_hits_total', { rule: 'api-v2' })).toBe(2);
  });

  test('inverted and regex matches; all matches of a rule must hold', async () => {
    const { app } = await world();
    const put = await send(`${app.adminUrl}/v1/rules`, 'PUT', {
      rules: [
        {
          name: 'not-internal',
          match: [
            { path: true, regex: '^/users/[0-9]+$' },
            { header: 'x-internal', present: true, invert: true },
          ],
          pool: 'canary',
        },
        { name: 'no-v1', match: [{ path: true, prefix: '/v1/', invert: true }], pool: 'green' },
      ],
    });
    expect(put.status).toBe(200);
    await eventually(async () => expect(await poolFor(app, '/users/42')).toBe('canary'));
    expect(await poolFor(app, '/users/42', { 'x-internal': '1' })).toBe('green');
    expect(await poolFor(app, '/users/4x')).toBe('green');
    expect(await poolFor(app, '/v1/users/42')).toBe('blue');
  });

  test('catastrophic regexes stay fast on long inputs', async () => {
    const { app } = await world();
    const patterns = ['(a+)+$', '(a|aa)+$', '(.*a){20}$'];
    const put = await send(`${app.adminUrl}/v1/rules`, 'PUT', {
      rules: patterns.map((regex, i) => ({
        name: `evil-${i}`,
        match: [{ header: 'x-in', regex }],
        pool: 'canary',
      })),
    });
    expect(put.status).toBe(200);
    await eventually(async () => expect(await poolFor(app, '/', { 'x-in': 'aaa' })).toBe('canary'));
    const input = `${'a'.repeat(12_000)}!`;
    const started = performance.now();
    expect(await poolFor(app, '/', { 'x-in': input })).toBe('blue');
    console.log(
      `[rules] 3 catastrophic regexes on a ${input.length}-char header: answered in ${(performance.now() - started).toFixed(1)} ms`,
    );
  });

  test('refuses a rule to an unknown pool (404) and a bad regex (400), naming the field', async () => {
    const { app } = await world();
    const unknown = await send(`${app.adminUrl}/v1/rules`, 'PUT', {
      rules: [RULES[0], { ...RULES[1], pool: 'purple' }],
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({
      code: 'UNKNOWN_POOL',
      message: 'rules[1].pool: unknown pool "purple"',
    });
    const regex = await send(`${app.adminUrl}/v1/rules`, 'PUT', {
      rules: [RULES[0], { name: 'bad', match: [{ path: true, regex: '(a' }], pool: 'green' }],
    });
    expect(regex.status).toBe(400);
    expect(regex.body.error).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect((regex.body.error as { message: string }).message).toMatch(
      /^rules\[1\]\.match\[0\]\.regex: not a valid RE2 regular expression/,
    );
    const state = await send(`${app.adminUrl}/v1/state`, 'GET');
    expect(state.body.table).toMatchObject({ revision: 1, rules: [] });
  });

  test('a pool a rule names cannot be removed; the same rules make no revision', async () => {
    const { app } = await world();
    expect((await send(`${app.adminUrl}/v1/rules`, 'PUT', { rules: [RULES[0]] })).status).toBe(200);
    const again = await send(`${app.adminUrl}/v1/rules`, 'PUT', { rules: [RULES[0]] });
    expect(again.body).toMatchObject({ revision: 2, changed: false });
    const removed = await send(`${app.adminUrl}/v1/pools/canary`, 'DELETE', {});
    expect(removed.status).toBe(409);
    expect(removed.body.error).toMatchObject({
      code: 'POOL_LIVE',
      message:
        'pools.canary: routing rule "beta-header" sends traffic to it; change the rules first',
    });
    expect((await send(`${app.adminUrl}/v1/rules`, 'PUT', { rules: [] })).status).toBe(200);
    expect((await send(`${app.adminUrl}/v1/pools/canary`, 'DELETE', {})).status).toBe(200);
  });

  test('rollback restores the previous rule set', async () => {
    const { app } = await world();
    expect((await send(`${app.adminUrl}/v1/rules`, 'PUT', { rules: [RULES[0]] })).status).toBe(200);
    expect((await send(`${app.adminUrl}/v1/rules`, 'PUT', { rules: [RULES[3]] })).status).toBe(200);
    await eventually(async () => expect(await poolFor(app, '/api/v2')).toBe('green'));
    expect(await poolFor(app, '/', { 'x-beta': '1' })).toBe('blue');

    const back = await send(`${app.adminUrl}/v1/rollback`, 'POST', {});
    expect(back.status).toBe(200);
    expect(back.body).toMatchObject({ revision: 4, changed: true });
    expect((back.body.rules as Array<{ name: string }>).map((r) => r.name)).toEqual([
      'beta-header',
    ]);
    await eventually(async () => expect(await poolFor(app, '/', { 'x-beta': '1' })).toBe('canary'));
    expect(await poolFor(app, '/api/v2')).toBe('blue');

    const history = await send(`${app.adminUrl}/v1/history`, 'GET');
    const ops = (history.body.history as Array<{ command: { op: string } }>).map(
      (e) => e.command.op,
    );
    expect(ops.slice(0, 3)).toEqual(['rollback', 'rules', 'rules']);
  });

  test('the Redis command op rules is applied', async () => {
    const redis = await startRedisServer();
    closers.push(() => redis.close());
    const { app } = await world({ redis: redis.url, namespace: 'rules' });
    const command = JSON.stringify({ op: 'rules', rules: [RULES[2]], actor: 'ops' });
    await redis.cli(['XADD', 'switchyard:{rules}:commands', '*', 'cmd', command]);
    await eventually(async () => expect(await poolFor(app, '/x?preview=1')).toBe('green'));
    const state = await send(`${app.adminUrl}/v1/state`, 'GET');
    expect(state.body.table).toMatchObject({ rules: [{ name: 'preview', pool: 'green' }] });
  });
});

describe('the rules commands of the CLI (real binary)', () => {
  const cli = (args: string[]) => runSwitchyard(args);

  test('set-rules --file replaces the rules, rules lists them; a bad file is a usage error', async () => {
    const { app } = await world();
    const admin = ['--admin', app.adminUrl];
    const dir = await mkdtemp(join(tmpdir(), 'switchyard-rules-'));
    closers.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'rules.json');
    await writeFile(file, JSON.stringify({ rules: RULES.slice(0, 2) }));

    expect((await cli(['rules', ...admin])).stdout).toContain('no routing rules');
    const set = await cli(['set-rules', '--file', file, ...admin]);
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/^revision 2: /);
    const shown = await cli(['rules', ...admin]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/1\s+beta-header\s+canary\s+header x-beta = "1"/);
    expect(shown.stdout).toMatch(/2\s+beta-cookie\s+canary\s+cookie beta = "yes"/);
    expect(await poolFor(app, '/', { 'x-beta': '1' })).toBe('canary');

    await writeFile(file, '{"rules": 3}');
    const bad = await cli(['set-rules', '--file', file, ...admin]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('must hold {"rules":[...]} or an array of rules');
    await writeFile(file, JSON.stringify([{ name: 'x', match: [], pool: 'purple' }]));
    const refused = await cli(['set-rules', '--file', file, ...admin]);
    expect(refused.code).toBe(1);
    expect((await cli(['rules', '--json', ...admin])).stdout).toContain('"beta-cookie"');
  });
});
