/**
 * Rollouts with the Redis control store (SPEC §9 "Many replicas", issue 12): two real proxy
 * processes (`node dist/src/main.js proxy`, built by `npm run build`) on one real redis-server,
 * real reference servers (a failing one through its error rate), real keep-alive load through
 * both replicas. SIGKILL and SIGSTOP hit the processes themselves. Bounds are generous for a busy
 * 2-core machine; the lease is shortened (`--rollout-lease`) where a takeover is awaited.
 */
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { closeAfterEach, listenOnLoopback } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { readMetric } from '../helpers/metrics.js';
import { startLoad } from '../helpers/keepalive-load.js';
import { spawnProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { startReference } from '../helpers/reference.js';

const closers = closeAfterEach();

const COMMANDS = 'switchyard:{default}:commands';

/** One replica: its process and the id it registered with. */
interface Replica {
  readonly proc: ProxyProcess;
  readonly id: string;
}

interface World {
  readonly redis: RedisServerHandle;
  readonly a: Replica;
  readonly b: Replica;
}

interface Rollout {
  id: string;
  pool: string;
  phase: string;
  step: number;
  targetWeightBp: number;
  driver: string;
  stepStartedAt?: string | null;
  waiting?: string | null;
  judgement: { verdict: string } | null;
  decisions: Array<{ time: string; action: string; reason: string }>;
  drainedAt?: string | null;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function call(r: Replica, method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${r.proc.adminUrl}${path}`, {
    method,
    headers: method === 'GET' ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  };
}

async function current(r: Replica): Promise<Rollout> {
  const answer = await call(r, 'GET', '/v1/rollouts/current');
  expect(answer.status).toBe(200);
  return answer.body as unknown as Rollout;
}

async function weights(r: Replica): Promise<Record<string, number>> {
  const state = await call(r, 'GET', '/v1/state');
  return (state.body.table as { weights: Record<string, number> }).weights;
}

/**
 * Two replicas of namespace `default` on a fresh redis-server, blue (100 %) and canary (0 %)
 * reference servers failing at the given shares; resolves once both are registered and live.
 */
async function world(
  options: { blueErrorRate?: number; canaryErrorRate?: number; lease?: string } = {},
): Promise<World> {
  const redis = await startRedisServer();
  closers.push(() => redis.close());
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
  const args = [
    '--redis',
    redis.url,
    '--pool',
    `blue=1111111@${blue.url}`,
    '--pool',
    `canary=3333333@${canary.url}`,
    '--shutdown-delay',
    '0s',
    '--rollout-lease',
    options.lease ?? '5s',
  ];
  const replicas: Replica[] = [];
  for (let i = 0; i < 2; i += 1) {
    const proc = await spawnProxy(args, [], { env: { LOG_LEVEL: 'info' } });
    closers.push(() => proc.kill());
    const state = await fetch(`${proc.adminUrl}/v1/state`);
    const id = ((await state.json()) as { replica: string }).replica;
    replicas.push({ proc, id });
  }
  const [a, b] = replicas as [Replica, Replica];
  await eventually(
    async () => {
      const answer = await call(a, 'GET', '/v1/replicas');
      const list = answer.body.replicas as Array<{ id: string; live: boolean }>;
      expect(list.filter((x) => x.live).map((x) => x.id)).toEqual(
        expect.arrayContaining([a.id, b.id]),
      );
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  );
  return { redis, a, b };
}

/** About 100 req/s through each replica (2 keep-alive clients, 20 ms pause), ~200 in all. */
function loadBoth(w: World): void {
  for (const r of [w.a, w.b]) {
    const running = startLoad({ origin: r.proc.proxyUrl, clients: 2, pauseMs: 20 });
    closers.push(() => running.stop());
  }
}

/** The replica holding the driver lease, and the other one. */
async function roles(w: World): Promise<{ holder: Replica; other: Replica }> {
  const holder = await leaseHolder(w);
  return { holder, other: holder === w.a ? w.b : w.a };
}

/** About 200-400 req/s through `r` only (4 keep-alive clients, 10 ms pause). */
function loadThrough(r: Replica): void {
  const running = startLoad({ origin: r.proc.proxyUrl, clients: 4, pauseMs: 10 });
  closers.push(() => running.stop());
}

/** The current rollout as `r` reports it, once it has reached `phase`. */
function reach(r: Replica, phase: string, timeoutMs: number): Promise<Rollout> {
  return eventually(
    async () => {
      const now = await current(r);
      expect(now.phase).toBe(phase);
      return now;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/** Waits until `r` has proxied more than `n` requests to blue. */
async function blueServed(r: Replica, n: number): Promise<void> {
  await eventually(
    async () =>
      expect(
        await readMetric(r.proc.adminUrl, 'switchyard_requests_total', { pool: 'blue' }),
      ).toBeGreaterThan(n),
    { timeoutMs: 20_000, intervalMs: 200 },
  );
}

/** One webhook call the receiver got. */
interface Delivery {
  event: string;
  id: string;
  action: string | undefined;
  reason: string | undefined;
  drainedAt: string | null | undefined;
}

/** A webhook receiver on loopback answering 204 to every call; resolves with its `/hook` URL. */
async function startHookReceiver(): Promise<{ url: string; deliveries: Delivery[] }> {
  const deliveries: Delivery[] = [];
  const receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        event: string;
        rollout?: { drainedAt?: string | null };
        decision?: { action: string; reason: string };
      };
      deliveries.push({
        event: body.event,
        id: String(req.headers['x-switchyard-delivery']),
        action: body.decision?.action,
        reason: body.decision?.reason,
        drainedAt: body.rollout?.drainedAt,
      });
      res.writeHead(204).end();
    });
  });
  return { url: `${await listenOnLoopback(receiver, closers)}/hook`, deliveries };
}

/** The replica holding the driver lease. */
async function leaseHolder(w: World): Promise<Replica> {
  const id = await eventually(
    async () => {
      const holder = (await w.redis.cli(['GET', 'switchyard:{default}:rollout-lease'])).trim();
      expect([w.a.id, w.b.id]).toContain(holder);
      return holder;
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  );
  return id === w.a.id ? w.a : w.b;
}

describe('rollouts with Redis (two replica processes)', () => {
  it('aborts a target answering 20 % 500s within 5 s of its first step, on both replicas', async () => {
    const w = await world({ canaryErrorRate: 0.2 });
    loadBoth(w);
    const started = await call(w.b, 'POST', '/v1/rollouts', {
      pool: 'canary',
      steps: [{ weight: 20 }, { pause: '1m' }, { weight: 100 }],
    });
    expect(started.status).toBe(201);
    const id = started.body.id as string;

    const r = await reach(w.a, 'aborted', 30_000);
    const step = r.decisions.find((d) => d.action === 'step');
    const abort = r.decisions.find((d) => d.action === 'abort');
    expect(step && abort).toBeTruthy();
    const abortMs = Date.parse(abort!.time) - Date.parse(step!.time);
    console.log(`[rollouts-redis] 20 % failing canary aborted ${abortMs} ms after its first step`);
    expect(abortMs).toBeLessThan(5_000);
    expect(abort!.reason).toMatch(
      /^canary 5xx [\d,]+\/[\d,]+ \([\d.]+ %\) vs blue [\d,]+\/[\d,]+ \(/,
    );
    expect(r.targetWeightBp).toBe(0);
    // Started on b: the driver named from the start is the lease holder, not replaced later.
    expect(started.body.driver).toBe(r.driver);
    expect(r.decisions.map((d) => d.action)).not.toContain('driver');
    // Both replicas route by the abort's table, and both report the same rollout.
    for (const replica of [w.a, w.b]) {
      await eventually(async () =>
        expect(await weights(replica)).toEqual({ blue: 10_000, canary: 0 }),
      );
      expect((await current(replica)).id).toBe(id);
    }
    const history = await call(w.a, 'GET', '/v1/history?limit=5');
    const entries = history.body.history as Array<{ actor: string; note?: string }>;
    expect(entries[0]).toMatchObject({ actor: `rollout:${id}` });
    expect(entries[0]!.note).toContain('aborted: canary 5xx');

    // The driving replica counted the decision; every replica shows the phase.
    const driver = r.driver === w.a.id ? w.a : w.b;
    const metrics = await (await fetch(`${driver.proc.adminUrl}/metrics`)).text();
    expect(metrics).toContain('switchyard_rollout_decisions_total{action="abort"} 1');
    for (const replica of [w.a, w.b]) {
      await eventually(async () => {
        const text = await (await fetch(`${replica.proc.adminUrl}/metrics`)).text();
        expect(text).toContain('switchyard_rollout_phase{pool="canary",phase="aborted"} 1');
        expect(text).toContain('switchyard_rollout_target_weight_basis_points 0');
      });
    }
  });

  it('walks a healthy target (both pools 1 % 500s) through short steps to 100 %', async () => {
    const w = await world({ blueErrorRate: 0.01, canaryErrorRate: 0.01 });
    loadBoth(w);
    const started = await call(w.a, 'POST', '/v1/rollouts', {
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
    const r = await reach(w.b, 'promoted', 45_000);
    expect(r.targetWeightBp).toBe(10_000);
    expect(r.decisions.filter((d) => d.action === 'pass').length).toBe(2);
    // Judged on the sum of both replicas' counts: the evidence needed is there.
    for (const replica of [w.a, w.b]) {
      await eventually(async () =>
        expect(await weights(replica)).toEqual({ blue: 0, canary: 10_000 }),
      );
    }
  });

  it('the driver SIGKILLed mid-rollout: the other replica goes on from the same step', async () => {
    const leaseMs = 2000;
    const w = await world({ lease: `${leaseMs}ms` });
    loadBoth(w);
    const started = await call(w.a, 'POST', '/v1/rollouts', {
      pool: 'canary',
      steps: [{ weight: 20 }, { pause: 'approval' }, { weight: 100 }],
      analysis: { minRequests: 20, minRequestsToPromote: 20 },
    });
    expect(started.status).toBe(201);
    // Step 1 is entered by the lease holder's tick, which names itself the driver.
    const before = await eventually(
      async () => {
        const now = await current(w.b);
        expect(now.step).toBe(1);
        expect([w.a.id, w.b.id]).toContain(now.driver);
        return now;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    const driver = before.driver === w.a.id ? w.a : w.b;
    const survivor = driver === w.a ? w.b : w.a;
    const killedAt = Date.now();
    await driver.proc.kill();

    const after = await eventually(
      async () => {
        const now = await current(survivor);
        expect(now.driver).toBe(survivor.id);
        return now;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    const tookOverMs = Date.now() - killedAt;
    console.log(`[rollouts-redis] lease ${leaseMs} ms: taken over ${tookOverMs} ms after SIGKILL`);
    // The lease runs out within leaseMs of the last renewal and the survivor tries right then;
    // the rest is slack for a busy machine (and this test's polling).
    expect(tookOverMs).toBeLessThan(leaseMs + 2000);
    expect(after).toMatchObject({ id: before.id, step: 1, phase: 'progressing' });
    expect(after.decisions.map((d) => d.action)).not.toContain('abort');
    expect(after.decisions.filter((d) => d.action === 'start')).toHaveLength(1);
    const takeover = after.decisions.find(
      (d) => d.action === 'driver' && d.reason.startsWith(survivor.id),
    );
    expect(takeover?.reason).toContain('from step 1');

    // And it finishes the rollout from there.
    expect((await call(survivor, 'POST', '/v1/rollouts/current/promote', {})).status).toBe(200);
    await eventually(async () => expect((await current(survivor)).phase).toBe('promoted'), {
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    expect(await weights(survivor)).toEqual({ blue: 0, canary: 10_000 });
  });

  it('starts one from a rollout-start entry written with redis-cli XADD; rejects a bad one', async () => {
    const w = await world();
    const bad = await w.redis.cli([
      'XADD',
      COMMANDS,
      '*',
      'cmd',
      JSON.stringify({ op: 'rollout-start', pool: 'nope' }),
    ]);
    await w.redis.cli([
      'XADD',
      COMMANDS,
      '*',
      'cmd',
      JSON.stringify({
        op: 'rollout-start',
        pool: 'canary',
        steps: [{ weight: 10 }, { pause: 'approval' }, { weight: 100 }],
      }),
    ]);
    for (const replica of [w.a, w.b]) {
      await eventually(
        async () => expect(await current(replica)).toMatchObject({ pool: 'canary', step: 1 }),
        { timeoutMs: 20_000, intervalMs: 100 },
      );
      await eventually(async () =>
        expect(await weights(replica)).toEqual({ blue: 9000, canary: 1000 }),
      );
    }
    const history = await call(w.a, 'GET', '/v1/history?limit=10');
    const entries = history.body.history as Array<{
      result: string;
      source: string;
      reason?: { code: string; message: string };
    }>;
    const rejected = entries.filter((e) => e.result === 'rejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ source: 'redis', reason: { code: 'UNKNOWN_POOL' } });
    expect(bad.trim()).toMatch(/^\d+-\d+$/);

    // The other commands: pause, resume, abort with a reason; a bad one is rejected.
    const xadd = (cmd: unknown): Promise<string> =>
      w.redis.cli(['XADD', COMMANDS, '*', 'cmd', JSON.stringify(cmd)]);
    await xadd({ op: 'rollout-pause' });
    await eventually(async () => expect((await current(w.b)).phase).toBe('paused'));
    await xadd({ op: 'rollout-resume', extra: 1 });
    await xadd({ op: 'rollout-abort', reason: 'bad build 1234' });
    const r = await eventually(async () => {
      const now = await current(w.b);
      expect(now.phase).toBe('aborted');
      return now;
    });
    expect(r.decisions.at(-1)).toMatchObject({ action: 'abort', reason: 'bad build 1234' });
    const after = await call(w.a, 'GET', '/v1/history?limit=20');
    const reasons = (after.body.history as Array<{ result: string; reason?: { message: string } }>)
      .filter((e) => e.result === 'rejected')
      .map((e) => e.reason?.message);
    expect(reasons).toContain('extra: unknown field');
  });

  it('a step clock waits while a live replica (SIGSTOPped) has not applied the weights', async () => {
    const w = await world();
    const { holder, other } = await roles(w);
    other.proc.child.kill('SIGSTOP');
    let stopped = true;
    closers.push(() => {
      if (stopped) other.proc.child.kill('SIGCONT');
    });
    const started = await call(holder, 'POST', '/v1/rollouts', {
      pool: 'canary',
      steps: [{ weight: 20 }, { pause: 'approval' }, { weight: 100 }],
    });
    expect(started.status).toBe(201);
    // The stopped replica stays live (5 s since its last heartbeat) but cannot apply anything.
    const waiting = await eventually(
      async () => {
        const now = await current(holder);
        expect(now.waiting).toContain(other.id);
        return now;
      },
      { timeoutMs: 3000, intervalMs: 50 },
    );
    expect(waiting).toMatchObject({ step: 0, stepStartedAt: null, judgement: null });
    const resumedAt = Date.now();
    other.proc.child.kill('SIGCONT');
    stopped = false;
    const r = await eventually(
      async () => {
        const now = await current(holder);
        expect(now.stepStartedAt).toEqual(expect.any(String));
        return now;
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    expect(Date.parse(r.stepStartedAt!)).toBeGreaterThanOrEqual(resumedAt - 50);
    expect(r.waiting ?? null).toBeNull();
  });

  it('manual canary during a rollout is refused on any replica and in Redis; rollback aborts it', async () => {
    const w = await world();
    const started = await call(w.a, 'POST', '/v1/rollouts', {
      pool: 'canary',
      steps: [{ weight: 10 }, { pause: 'approval' }, { weight: 100 }],
    });
    expect(started.status).toBe(201);
    const canary = await call(w.b, 'POST', '/v1/canary', { pool: 'canary', percent: 50 });
    expect(canary.status).toBe(409);
    expect((canary.body.error as { code: string }).code).toBe('ROLLOUT_IN_PROGRESS');
    const second = await call(w.b, 'POST', '/v1/rollouts', { pool: 'canary' });
    expect(second.status).toBe(409);
    // The same move written to the commands stream is refused and recorded too.
    await w.redis.cli([
      'XADD',
      COMMANDS,
      '*',
      'cmd',
      JSON.stringify({ op: 'canary', pool: 'canary', percent: 50 }),
    ]);
    // And the rules, which hold still while a rollout runs (a rule to the target would keep its
    // users there past an abort).
    await w.redis.cli([
      'XADD',
      COMMANDS,
      '*',
      'cmd',
      JSON.stringify({
        op: 'rules',
        rules: [{ name: 'beta', match: [{ header: 'x-beta', present: true }], pool: 'canary' }],
      }),
    ]);
    await eventually(async () => {
      const history = await call(w.a, 'GET', '/v1/history?limit=5');
      const entries = history.body.history as Array<{
        source: string;
        command: { op?: string };
        reason?: { code: string };
      }>;
      const refused = entries.filter(
        (e) => e.source === 'redis' && e.reason?.code === 'ROLLOUT_IN_PROGRESS',
      );
      expect(refused.map((e) => e.command.op).sort()).toEqual(['canary', 'rules']);
    });
    const state = await call(w.b, 'GET', '/v1/state');
    expect((state.body.table as { rules: unknown[] }).rules).toEqual([]);
    for (const replica of [w.a, w.b]) {
      expect(await weights(replica)).toEqual({ blue: 9000, canary: 1000 });
    }

    const rollback = await call(w.b, 'POST', '/v1/rollback', {});
    expect(rollback.status).toBe(200);
    const r = await current(w.a);
    expect(r.phase).toBe('aborted');
    expect(r.decisions.at(-1)?.reason).toContain('rolled back');
    for (const replica of [w.a, w.b]) {
      await eventually(async () =>
        expect(await weights(replica)).toEqual({ blue: 10_000, canary: 0 }),
      );
    }
    // Past rollouts are listed from the store by every replica.
    const again = await call(w.b, 'POST', '/v1/rollouts', {
      pool: 'canary',
      steps: [{ weight: 10 }, { pause: 'approval' }, { weight: 100 }],
    });
    expect(again.status).toBe(201);
    // A rollback written to the commands stream aborts it as well.
    await w.redis.cli(['XADD', COMMANDS, '*', 'cmd', JSON.stringify({ op: 'rollback' })]);
    await eventually(async () => expect((await current(w.a)).phase).toBe('aborted'), {
      timeoutMs: 15_000,
      intervalMs: 100,
    });
    for (const replica of [w.a, w.b]) {
      await eventually(async () =>
        expect(await weights(replica)).toEqual({ blue: 10_000, canary: 0 }),
      );
    }
    const list = await call(w.a, 'GET', '/v1/rollouts?limit=5');
    expect((list.body.rollouts as Rollout[]).map((x) => x.id)).toEqual([
      again.body.id,
      started.body.id,
    ]);
  });

  it('with Redis unreachable nothing advances and the status says why', async () => {
    const w = await world();
    loadBoth(w);
    const started = await call(w.a, 'POST', '/v1/rollouts', {
      pool: 'canary',
      steps: [{ weight: 20 }, { pause: '2s' }, { weight: 100 }],
      // A wide tolerance: the pass needs little evidence, so the test is about the outage.
      analysis: { minRequests: 20, minRequestsToPromote: 20, tolerance: { points: 20 } },
    });
    expect(started.status).toBe(201);
    await eventually(async () => expect((await current(w.b)).step).toBe(1), {
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    w.redis.pause();
    let paused = true;
    closers.push(() => {
      if (paused) w.redis.resume();
    });
    // Past the 2 s pause: the step would be over, but nothing can be written or confirmed.
    for (const replica of [w.a, w.b]) {
      const r = await eventually(
        async () => {
          const now = await current(replica);
          expect(now.waiting).toMatch(/control store unreachable/);
          return now;
        },
        { timeoutMs: 15_000, intervalMs: 200 },
      );
      expect(r).toMatchObject({ step: 1, phase: 'progressing' });
    }
    const refused = await call(w.a, 'POST', '/v1/rollouts/current/pause', {});
    expect(refused.status).toBe(503);
    w.redis.resume();
    paused = false;
    const r = await reach(w.a, 'promoted', 30_000);
    expect(r.waiting ?? null).toBeNull();
  });

  it('judges every replica’s traffic: load only through the replica that does not drive', async () => {
    const w = await world({ canaryErrorRate: 0.2 });
    const { holder, other } = await roles(w);
    loadThrough(other);
    const started = await call(holder, 'POST', '/v1/rollouts', {
      pool: 'canary',
      steps: [{ weight: 20 }, { pause: '1m' }, { weight: 100 }],
    });
    expect(started.status).toBe(201);
    // The driver itself proxies nothing: only the other replica's published counts can fail it.
    const r = await reach(holder, 'aborted', 30_000);
    expect(r.driver).toBe(holder.id);
    const abort = r.decisions.find((d) => d.action === 'abort');
    expect(abort?.reason).toMatch(/^canary 5xx [1-9][\d,]*\/[\d,]+ /);
    const metrics = await (await fetch(`${holder.proc.adminUrl}/metrics`)).text();
    expect(metrics).not.toMatch(/switchyard_requests_total\{[^}]*pool="canary"[^}]*\} [1-9]/);
  });

  it('blue-green: judged against the fleet’s baseline from before the switch, switched back on both', async () => {
    const w = await world({ canaryErrorRate: 0.2 });
    // Traffic through the driver only; the rollout is started on the other replica, which itself
    // served nothing: the baseline it stores can only come from the driver's published counts.
    const { holder, other } = await roles(w);
    loadThrough(holder);
    await blueServed(holder, 500);
    const started = await call(other, 'POST', '/v1/rollouts', {
      pool: 'canary',
      strategy: 'blue-green',
      analysis: { window: '1m' },
    });
    expect(started.status).toBe(201);
    // No gates: the replica that took the start switched at once, without waiting for the driver.
    expect(started.body.targetWeightBp).toBe(10_000);
    const r = await reach(w.a, 'aborted', 30_000);
    const abort = r.decisions.find((d) => d.action === 'abort');
    const m = /^canary 5xx [\d,]+\/[\d,]+ .* vs blue 0\/([\d,]+) /.exec(abort?.reason ?? '');
    expect(m, abort?.reason).not.toBeNull();
    expect(Number(m?.[1]?.replace(/,/g, ''))).toBeGreaterThan(100);
    expect(
      await readMetric(other.proc.adminUrl, 'switchyard_requests_total', { pool: 'blue' }),
    ).toBe(0);
    for (const replica of [w.a, w.b]) {
      await eventually(
        async () => expect(await weights(replica)).toEqual({ blue: 10_000, canary: 0 }),
        { timeoutMs: 10_000, intervalMs: 100 },
      );
    }
  });

  it('blue-green: a healthy target is promoted after the window on both replicas', async () => {
    const w = await world();
    loadBoth(w);
    for (const r of [w.a, w.b]) {
      await blueServed(r, 100);
    }
    const started = await call(w.b, 'POST', '/v1/rollouts', {
      pool: 'canary',
      strategy: 'blue-green',
      analysis: {
        window: '2s',
        minRequests: 40,
        minRequestsToPromote: 80,
        tolerance: { points: 20 },
      },
    });
    expect(started.status).toBe(201);
    const r = await reach(w.a, 'promoted', 30_000);
    expect(r.decisions.map((d) => d.action)).not.toContain('abort');
    for (const replica of [w.a, w.b]) {
      expect(await weights(replica)).toEqual({ blue: 0, canary: 10_000 });
    }
  });

  it('issue 13: the promoting replica SIGKILLed, the other records and sends drained once', async () => {
    const { url, deliveries } = await startHookReceiver();
    const w = await world({ lease: '2s' });
    const { holder, other } = await roles(w);
    // A request on blue through the survivor stays in flight across the promotion and the kill.
    const slowStartMs = Date.now();
    const slow = fetch(`${other.proc.proxyUrl}/slow?ms=8000`).then(async (res) => {
      await res.text();
      return res.status;
    });
    const started = await call(holder, 'POST', '/v1/rollouts', {
      pool: 'canary',
      steps: [{ weight: 100 }],
      webhooks: [{ url, events: ['drained'] }],
    });
    expect(started.status).toBe(201);
    const promoted = await reach(other, 'promoted', 20_000);
    expect(promoted.drainedAt ?? null).toBeNull();
    // The replica that promoted it, and was watching blue drain, dies.
    await holder.proc.kill();
    expect(await slow).toBe(200);
    const r = await eventually(
      async () => {
        const now = (await call(other, 'GET', '/v1/rollouts/current')).body as {
          drainedAt: string | null;
          decisions: Array<{ action: string; reason: string }>;
        };
        expect(now.drainedAt ?? null).not.toBeNull();
        return now;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    // Not before the last request on blue ended.
    expect(Date.parse(r.drainedAt as string)).toBeGreaterThanOrEqual(slowStartMs + 8000);
    expect(r.decisions.filter((d) => d.action === 'drained')).toHaveLength(1);
    const drained = (): Delivery[] => deliveries.filter((d) => d.event === 'drained');
    await eventually(() => expect(drained()).toHaveLength(1), { timeoutMs: 10_000 });
    expect(drained()[0]?.drainedAt).toBe(r.drainedAt);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(drained()).toHaveLength(1);
  });

  it('issue 13: with two replicas each webhook event arrives once', async () => {
    const { url, deliveries } = await startHookReceiver();
    const w = await world({ blueErrorRate: 0.01, canaryErrorRate: 0.01 });
    loadBoth(w);
    // Started on the replica that does not drive: the events still come from one replica each
    // (its gate calls once came from both, the starting replica and the driver).
    const { other } = await roles(w);
    const started = await call(other, 'POST', '/v1/rollouts', {
      pool: 'canary',
      steps: [{ weight: 20 }, { pause: '1s' }, { weight: 100 }],
      analysis: { minRequests: 40, minRequestsToPromote: 80, tolerance: { points: 20 } },
      webhooks: [{ url, events: ['pre-rollout', 'pre-step', 'step', 'promoted', 'decision'] }],
    });
    expect(started.status).toBe(201);
    const r = await reach(w.a, 'promoted', 45_000);
    expect(r.phase).toBe('promoted');
    // The last decision is blue's drained record, made by the driver shortly after promotion.
    const engine = await eventually(
      async () => {
        const now = (await current(w.a)).decisions.filter((d) => d.action !== 'webhook');
        expect(now.at(-1)?.action).toBe('drained');
        expect(deliveries.filter((d) => d.event === 'decision')).toHaveLength(now.length);
        return now;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    // Give a second replica's duplicate the time to arrive, had one been sent.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const of = (event: string): typeof deliveries => deliveries.filter((d) => d.event === event);
    expect(of('pre-rollout')).toHaveLength(1);
    expect(of('pre-step')).toHaveLength(2); // before 20 % and before 100 %
    expect(of('step')).toHaveLength(engine.filter((d) => d.action === 'step').length);
    expect(of('promoted')).toHaveLength(1);
    expect(of('decision').map((d) => `${d.action} ${d.reason}`)).toEqual(
      engine.map((d) => `${d.action} ${d.reason}`),
    );
    expect(new Set(deliveries.map((d) => d.id)).size).toBe(deliveries.length);
    // Every call is in the stored rollout's decisions, whichever replica made it.
    const calls = (await current(w.b)).decisions.filter((d) => d.action === 'webhook');
    expect(calls.length).toBe(deliveries.length);
  });
});
