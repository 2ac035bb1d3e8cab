/**
 * Rollouts (SPEC §9, issue 12), memory store: one app, real reference servers (a failing one
 * through its errorRate), real keep-alive load. Steps and analysis minimums are small so each
 * test runs in seconds; time bounds are generous for a busy 2-core machine.
 */
import { describe, expect, it } from 'vitest';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { startLoad, type RunningLoad } from '../helpers/keepalive-load.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { startReference } from '../helpers/reference.js';
import { startApp, type TestApp } from '../helpers/start-app.js';

const closers = closeAfterEach();

interface World {
  readonly app: TestApp;
  readonly canaryUrl: string;
}

/** blue (100 %) and canary (0 %) reference servers failing at the given shares. */
async function world(
  options: { blueErrorRate?: number; canaryErrorRate?: number; redis?: string } = {},
): Promise<World> {
  const blue = await startReference({
    pool: 'blue',
    version: '1111111',
    errorRate: options.blueErrorRate ?? 0,
  });
  closers.push(blue.close);
  const canary = await startReference({
    pool: 'canary',
    version: '3333333',
    errorRate: options.canaryErrorRate ?? 0,
  });
  closers.push(canary.close);
  const app = await startApp({
    ...(options.redis === undefined ? {} : { redis: options.redis }),
    pools: [
      { name: 'blue', version: '1111111', endpoints: [blue.url] },
      { name: 'canary', version: '3333333', endpoints: [canary.url] },
    ],
  });
  closers.push(() => app.close());
  return { app, canaryUrl: canary.url };
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function call(app: TestApp, method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${app.adminUrl}${path}`, {
    method,
    // The admin API wants a JSON content type on every change, a bodyless one too.
    headers: method === 'GET' ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  };
}

interface Rollout {
  id: string;
  phase: string;
  step: number;
  targetWeightBp: number;
  judgement: { verdict: string } | null;
  decisions: Array<{ time: string; action: string; reason: string; dryRun?: boolean }>;
}

async function current(app: TestApp): Promise<Rollout> {
  const answer = await call(app, 'GET', '/v1/rollouts/current');
  expect(answer.status).toBe(200);
  return answer.body as unknown as Rollout;
}

async function weights(app: TestApp): Promise<Record<string, number>> {
  const state = await call(app, 'GET', '/v1/state');
  return (state.body.table as { weights: Record<string, number> }).weights;
}

/** About 100-200 req/s through the proxy: 4 keep-alive clients with a 20 ms pause. */
function load(app: TestApp): RunningLoad {
  const running = startLoad({ origin: app.proxyUrl, clients: 4, pauseMs: 20 });
  closers.push(() => running.stop());
  return running;
}

/** Waits for 100 baseline answers: blue-green judges the target against these figures. */
async function baselineTraffic(app: TestApp): Promise<void> {
  await eventually(
    () => expect(app.app.proxy.poolCounts().get('blue')?.requests ?? 0).toBeGreaterThan(100),
    { timeoutMs: 10_000 },
  );
}

function errorOf(answer: Answer): { code: string; message: string } {
  return answer.body.error as { code: string; message: string };
}

describe('rollouts (memory store)', () => {
  it('aborts a target answering 20 % 500s within 5 s of its first step, with the numbers', async () => {
    const { app } = await world({ canaryErrorRate: 0.2 });
    load(app);
    const started = await call(app, 'POST', '/v1/rollouts', {
      pool: 'canary',
      steps: [{ weight: 20 }, { pause: '1m' }, { weight: 100 }],
    });
    expect(started.status).toBe(201);
    const id = started.body.id as string;
    expect(started.body).toMatchObject({
      pool: 'canary',
      baseline: 'blue',
      driver: app.app.replicaId,
    });

    const r = await eventually(
      async () => {
        const now = await current(app);
        expect(now.phase).toBe('aborted');
        return now;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    const step = r.decisions.find((d) => d.action === 'step');
    const abort = r.decisions.find((d) => d.action === 'abort');
    expect(step && abort).toBeTruthy();
    // Bound generous on purpose: the hard limit needs 20 target requests (about 1 s here).
    expect(Date.parse(abort!.time) - Date.parse(step!.time)).toBeLessThan(5_000);
    expect(abort!.reason).toMatch(
      /^canary 5xx [\d,]+\/[\d,]+ \([\d.]+ %\) vs blue [\d,]+\/[\d,]+ \(/,
    );
    expect(r.targetWeightBp).toBe(0);
    expect(await weights(app)).toEqual({ blue: 10_000, canary: 0 });

    const history = await call(app, 'GET', '/v1/history?limit=5');
    const entries = history.body.history as Array<{ actor: string; note?: string }>;
    expect(entries[0]).toMatchObject({ actor: `rollout:${id}` });
    expect(entries[0]!.note).toContain('aborted: canary 5xx');

    const metrics = await (await fetch(`${app.adminUrl}/metrics`)).text();
    expect(metrics).toContain('switchyard_rollout_phase{pool="canary",phase="aborted"} 1');
    expect(metrics).toContain('switchyard_rollout_decisions_total{action="abort"} 1');
    expect(metrics).toContain('switchyard_rollout_target_weight_basis_points 0');
  });

  it('walks a healthy target (both pools 1 % 500s) through short steps to 100 %', async () => {
    const { app } = await world({ blueErrorRate: 0.01, canaryErrorRate: 0.01 });
    load(app);
    const started = await call(app, 'POST', '/v1/rollouts', {
      pool: 'canary',
      steps: [
        { weight: 20 },
        { pause: '1s' },
        { basisPoints: 5000 },
        { pause: '1s' },
        { weight: 100 },
      ],
      analysis: { minRequests: 40, minRequestsToPromote: 80, tolerance: { points: 20 } },
    });
    expect(started.status).toBe(201);
    const r = await eventually(
      async () => {
        const now = await current(app);
        expect(now.phase).toBe('promoted');
        return now;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(r.targetWeightBp).toBe(10_000);
    expect(r.decisions.filter((d) => d.action === 'pass').length).toBe(2);
    expect(await weights(app)).toEqual({ blue: 0, canary: 10_000 });
    const metrics = await (await fetch(`${app.adminUrl}/metrics`)).text();
    expect(metrics).toContain('switchyard_rollout_phase{pool="canary",phase="promoted"} 1');
    expect(metrics).toContain('switchyard_rollout_target_weight_basis_points 10000');
  });

  it('owns the weights: manual moves and a second start are 409, rollback aborts it', async () => {
    const { app, canaryUrl } = await world();
    const started = await call(app, 'POST', '/v1/rollouts', {
      pool: 'canary',
      version: '4444444',
      endpoints: [canaryUrl],
      steps: [{ weight: 10 }, { pause: 'approval' }, { weight: 100 }],
    });
    expect(started.status).toBe(201);
    expect(started.body.version).toBe('4444444');
    await eventually(async () => expect((await current(app)).step).toBe(1));
    expect(await weights(app)).toEqual({ blue: 9000, canary: 1000 });
    const state = await call(app, 'GET', '/v1/state');
    expect(state.body.replica).toBe(app.app.replicaId);
    expect(
      (state.body.table as { pools: Record<string, { version: string }> }).pools.canary!.version,
    ).toBe('4444444');

    for (const [method, path, body] of [
      ['POST', '/v1/canary', { pool: 'canary', percent: 50 }],
      ['PUT', '/v1/weights', { percent: { blue: 100 } }],
      ['POST', '/v1/switch', { to: 'canary', force: true }],
      ['POST', '/v1/rollouts', { pool: 'canary' }],
      // The rules hold still too: a rule to the target would keep users there past an abort.
      [
        'PUT',
        '/v1/rules',
        { rules: [{ name: 'beta', match: [{ header: 'x-beta', present: true }], pool: 'canary' }] },
      ],
    ] as const) {
      const refused = await call(app, method, path, body);
      expect(refused.status, `${method} ${path}`).toBe(409);
      expect(errorOf(refused).code).toBe('ROLLOUT_IN_PROGRESS');
    }
    expect(await weights(app)).toEqual({ blue: 9000, canary: 1000 });

    const rollback = await call(app, 'POST', '/v1/rollback', {});
    expect(rollback.status).toBe(200);
    expect(rollback.body.weights).toEqual({ blue: 10_000, canary: 0 });
    const r = await current(app);
    expect(r.phase).toBe('aborted');
    expect(r.decisions.at(-1)!.reason).toContain('POST /v1/rollback');
    // Afterwards the weights are the operator's again.
    expect((await call(app, 'POST', '/v1/canary', { pool: 'canary', percent: 5 })).status).toBe(
      200,
    );
  });

  it('does not start while a routing rule sends requests to the target', async () => {
    const { app } = await world();
    const rules = {
      rules: [{ name: 'beta', match: [{ header: 'x-beta', present: true }], pool: 'canary' }],
    };
    expect((await call(app, 'PUT', '/v1/rules', rules)).status).toBe(200);
    const refused = await call(app, 'POST', '/v1/rollouts', { pool: 'canary' });
    expect(refused.status).toBe(409);
    expect(errorOf(refused).code).toBe('POOL_LIVE');
    expect(errorOf(refused).message).toContain('routing rule "beta" sends requests to canary');
    expect((await call(app, 'GET', '/v1/rollouts/current')).status).toBe(404);
    expect(await weights(app)).toEqual({ blue: 10_000, canary: 0 });
    // Without the rule it starts.
    expect((await call(app, 'PUT', '/v1/rules', { rules: [] })).status).toBe(200);
    expect((await call(app, 'POST', '/v1/rollouts', { pool: 'canary' })).status).toBe(201);
  });

  it('pauses, resumes, aborts with a reason, and promotes in full', async () => {
    const { app } = await world();
    const steps = [{ weight: 10 }, { pause: 'approval' }, { weight: 50 }, { weight: 100 }];
    expect((await call(app, 'POST', '/v1/rollouts', { pool: 'canary', steps })).status).toBe(201);
    expect((await call(app, 'POST', '/v1/rollouts/current/pause')).body.phase).toBe('paused');
    expect((await call(app, 'POST', '/v1/rollouts/current/resume')).body.phase).toBe('progressing');
    const again = await call(app, 'POST', '/v1/rollouts/current/resume');
    expect(again.status).toBe(409);
    expect(errorOf(again).code).toBe('ROLLOUT_NOT_ACTIVE');
    const aborted = await call(app, 'POST', '/v1/rollouts/current/abort', {
      reason: 'bad dashboard',
    });
    expect(aborted.status).toBe(200);
    expect(aborted.body.phase).toBe('aborted');
    expect(aborted.body.targetWeightBp).toBe(0);
    expect((aborted.body as unknown as Rollout).decisions.at(-1)!.reason).toBe('bad dashboard');

    expect((await call(app, 'POST', '/v1/rollouts', { pool: 'canary', steps })).status).toBe(201);
    await eventually(async () => expect((await current(app)).step).toBe(1));
    const full = await call(app, 'POST', '/v1/rollouts/current/promote', { full: true });
    expect(full.status).toBe(200);
    expect(full.body).toMatchObject({ phase: 'promoted', targetWeightBp: 10_000 });
    expect(await weights(app)).toEqual({ blue: 0, canary: 10_000 });
    const late = await call(app, 'POST', '/v1/rollouts/current/promote');
    expect(late.status).toBe(409);
    expect(errorOf(late).code).toBe('ROLLOUT_NOT_ACTIVE');
    const list = await call(app, 'GET', '/v1/rollouts?limit=5');
    expect((list.body.rollouts as Rollout[]).map((r) => r.phase)).toEqual(['promoted', 'aborted']);
  });

  it('promote ends an approval pause', async () => {
    const { app } = await world();
    const steps = [{ weight: 10 }, { pause: 'approval' }, { weight: 100 }];
    expect((await call(app, 'POST', '/v1/rollouts', { pool: 'canary', steps })).status).toBe(201);
    await eventually(async () => expect((await current(app)).step).toBe(1));
    const promoted = await call(app, 'POST', '/v1/rollouts/current/promote', {});
    expect(promoted.status).toBe(200);
    await eventually(async () => expect((await current(app)).phase).toBe('promoted'), {
      timeoutMs: 10_000,
    });
    expect(await weights(app)).toEqual({ blue: 0, canary: 10_000 });
  });

  it('blue-green: switches at once, judges against the baseline from before, switches back', async () => {
    const { app } = await world({ canaryErrorRate: 0.2 });
    load(app);
    await baselineTraffic(app);
    const started = await call(app, 'POST', '/v1/rollouts', {
      pool: 'canary',
      strategy: 'blue-green',
      analysis: { window: '1m' },
    });
    expect(started.status).toBe(201);
    expect(started.body.steps).toEqual([{ basisPoints: 10_000 }]);
    const r = await eventually(
      async () => {
        const now = await current(app);
        expect(now.phase).toBe('aborted');
        return now;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    expect(r.decisions.at(-1)!.reason).toMatch(/^canary 5xx .* vs blue /);
    expect(await weights(app)).toEqual({ blue: 10_000, canary: 0 });
  });

  it('blue-green: a healthy target is promoted after the window', async () => {
    const { app } = await world();
    load(app);
    await baselineTraffic(app);
    const started = await call(app, 'POST', '/v1/rollouts', {
      pool: 'canary',
      strategy: 'blue-green',
      analysis: {
        window: '1s',
        minRequests: 20,
        minRequestsToPromote: 20,
        tolerance: { points: 20 },
      },
    });
    expect(started.status).toBe(201);
    await eventually(async () => expect((await current(app)).phase).toBe('promoted'), {
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    expect(await weights(app)).toEqual({ blue: 0, canary: 10_000 });
  });

  it('refuses bad input naming the field, an unknown pool with 404, and no rollout with 404', async () => {
    const { app } = await world();
    const none = await call(app, 'GET', '/v1/rollouts/current');
    expect(none.status).toBe(404);
    expect(errorOf(none).code).toBe('NO_ROLLOUT');
    for (const [body, field] of [
      [{}, 'pool:'],
      [{ pool: 'canary', steps: [{ weight: 150 }] }, 'steps[0].weight:'],
      [{ pool: 'canary', steps: [{ weight: 50 }] }, 'steps:'],
      [{ pool: 'canary', steps: [{ pause: 'soon' }, { weight: 100 }] }, 'steps[0].pause:'],
      [{ pool: 'canary', analysis: { tolerance: { ratio: 0.5 } } }, 'analysis.tolerance.ratio:'],
      [{ pool: 'canary', colour: 'red' }, 'colour:'],
      [{ pool: 'canary', baseline: 'canary' }, 'baseline:'],
    ] as const) {
      const answer = await call(app, 'POST', '/v1/rollouts', body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(errorOf(answer).code).toBe('VALIDATION_FAILED');
      expect(errorOf(answer).message.startsWith(field), errorOf(answer).message).toBe(true);
    }
    const unknown = await call(app, 'POST', '/v1/rollouts', { pool: 'purple' });
    expect(unknown.status).toBe(404);
    expect(errorOf(unknown).code).toBe('UNKNOWN_POOL');
    expect((await call(app, 'POST', '/v1/rollouts/current/pause')).status).toBe(404);
    expect(await weights(app)).toEqual({ blue: 10_000, canary: 0 });
  });

  it('dryRun records the abort it would make without acting', async () => {
    const { app } = await world({ canaryErrorRate: 0.2 });
    load(app);
    const started = await call(app, 'POST', '/v1/rollouts', {
      pool: 'canary',
      steps: [{ weight: 20 }, { pause: 'approval' }, { weight: 100 }],
      analysis: { dryRun: true },
    });
    expect(started.status).toBe(201);
    const r = await eventually(
      async () => {
        const now = await current(app);
        const abort = now.decisions.find((d) => d.action === 'abort');
        expect(abort).toMatchObject({ dryRun: true });
        return now;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    expect(r.phase).toBe('progressing');
    expect(await weights(app)).toEqual({ blue: 8000, canary: 2000 });
  });
});

describe('rollouts (Redis store)', () => {
  it('starts one kept in Redis: the status names the driving replica', async () => {
    const redis = await startRedisServer();
    closers.push(() => redis.close());
    const { app } = await world({ redis: redis.url });
    const answer = await call(app, 'POST', '/v1/rollouts', {
      pool: 'canary',
      steps: [{ weight: 20 }, { pause: 'approval' }, { weight: 100 }],
    });
    expect(answer.status).toBe(201);
    expect(await weights(app)).toEqual({ blue: 8000, canary: 2000 });
    const current = await call(app, 'GET', '/v1/rollouts/current');
    expect(current.body).toMatchObject({ pool: 'canary', phase: 'progressing', step: 0 });
    const stored = await redis.cli(['GET', 'switchyard:{default}:rollout']);
    expect(JSON.parse(stored)).toMatchObject({ record: { id: answer.body.id } });
    await eventually(
      async () =>
        expect((await call(app, 'GET', '/v1/rollouts/current')).body.driver).toBe(
          app.app.replicaId,
        ),
      { timeoutMs: 15_000, intervalMs: 100 },
    );
  });
});
