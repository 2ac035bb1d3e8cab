/**
 * Release webhooks and the drained record (SPEC §10, issue 13), memory store: a real app, real
 * reference servers, and a real HTTP receiver on loopback that records every delivery. Time
 * bounds are generous for a busy 2-core machine; nothing asserts speed.
 */
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { closeAfterEach, listenOnLoopback } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { startColourApp, postJson, type TestApp } from '../helpers/start-app.js';

const closers = closeAfterEach();

/** One request the receiver got. */
interface Delivery {
  path: string;
  event: string;
  headers: http.IncomingHttpHeaders;
  raw: string;
  body: { event: string; rollout: Rollout; decision?: { action: string } };
  atMs: number;
}

interface Receiver {
  readonly url: string;
  readonly deliveries: Delivery[];
  /** Requests the receiver holds without answering (the /hang path). */
  readonly hanging: () => number;
  of(path: string, event?: string): Delivery[];
}

/**
 * A webhook receiver on 127.0.0.1:0. `answer(path, n)` gives the status of the n-th (from 1)
 * call to `path`; `/hang` never answers (until the test ends).
 */
async function startReceiver(
  answer: (path: string, n: number) => number = () => 204,
): Promise<Receiver> {
  const deliveries: Delivery[] = [];
  const counts = new Map<string, number>();
  const held = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const path = req.url ?? '/';
      deliveries.push({
        path,
        event: String(req.headers['x-switchyard-event']),
        headers: req.headers,
        raw,
        body: JSON.parse(raw) as Delivery['body'],
        atMs: Date.now(),
      });
      if (path === '/hang') {
        held.add(res);
        res.on('close', () => held.delete(res));
        return;
      }
      const n = (counts.get(path) ?? 0) + 1;
      counts.set(path, n);
      res.writeHead(answer(path, n)).end();
    });
  });
  const origin = await listenOnLoopback(server, closers);
  return {
    url: origin,
    deliveries,
    hanging: () => held.size,
    of: (path, event) =>
      deliveries.filter((d) => d.path === path && (event === undefined || d.event === event)),
  };
}

interface Rollout {
  id: string;
  pool: string;
  phase: string;
  step: number;
  targetWeightBp: number;
  drainedAt: string | null;
  decisions: Array<{
    time: string;
    action: string;
    reason: string;
    webhook?: {
      event: string;
      url: string;
      attempt: number;
      status: number | null;
      outcome: string;
    };
  }>;
}

async function current(t: TestApp): Promise<Rollout> {
  const res = await fetch(`${t.adminUrl}/v1/rollouts/current`);
  expect(res.status).toBe(200);
  return (await res.json()) as Rollout;
}

/** Waits for the rollout to reach `phase`; returns it. */
function reach(t: TestApp, phase: string, timeoutMs = 20_000): Promise<Rollout> {
  return eventually(
    async () => {
      const r = await current(t);
      expect(r.phase).toBe(phase);
      return r;
    },
    { timeoutMs, intervalMs: 50 },
  );
}

/** Records the highest weight `pool` had in every table the store published. */
function watchWeight(t: TestApp, pool: string): { max: number; firstAboveZeroMs: number | null } {
  const seen = {
    max: t.app.store.current()?.weights[pool] ?? 0,
    firstAboveZeroMs: null as number | null,
  };
  t.app.store.on('table', (table) => {
    const w = table.weights[pool] ?? 0;
    seen.max = Math.max(seen.max, w);
    if (w > 0 && seen.firstAboveZeroMs === null) seen.firstAboveZeroMs = Date.now();
  });
  return seen;
}

/** The newest decision of the engine itself (webhook call records left out). */
function lastDecision(r: Rollout): Rollout['decisions'][number] {
  const d = r.decisions.filter((x) => x.action !== 'webhook').at(-1);
  expect(d).toBeDefined();
  return d!;
}

/** Steps that need no traffic to move on: analysis records but does not act (dry run). */
const QUICK = { steps: [{ weight: 10 }, { weight: 100 }], analysis: { dryRun: true } };

describe('release webhooks (SPEC §10)', () => {
  it('a failing pre-rollout gate aborts: the target never gets traffic', async () => {
    const t = await startColourApp(closers);
    const receiver = await startReceiver((path) => (path === '/gate' ? 503 : 204));
    const canary = watchWeight(t, 'canary');
    const started = await postJson(`${t.adminUrl}/v1/rollouts`, {
      pool: 'canary',
      ...QUICK,
      webhooks: [
        { url: `${receiver.url}/gate`, events: ['pre-rollout'], timeout: '2s' },
        { url: `${receiver.url}/notify`, events: ['aborted', 'step'] },
      ],
    });
    expect(started.status).toBe(201);
    // Answered before the gate was asked: the weight has not moved.
    expect(started.body).toMatchObject({ phase: 'progressing', targetWeightBp: 0 });
    const r = await reach(t, 'aborted');
    expect(lastDecision(r).reason).toMatch(
      new RegExp(`^pre-rollout gate failed: ${receiver.url}/gate 503$`),
    );
    const call = r.decisions.find(
      (d) => d.action === 'webhook' && d.webhook?.event === 'pre-rollout',
    );
    expect(call?.webhook).toEqual({
      event: 'pre-rollout',
      url: `${receiver.url}/gate`,
      attempt: 1,
      status: 503,
      outcome: '503',
    });
    expect(canary.max).toBe(0);
    expect(r.targetWeightBp).toBe(0);
    expect(r.decisions.some((d) => d.action === 'step')).toBe(false);
    // The gate saw the rollout it guards; the aborted notification followed.
    const gate = receiver.of('/gate');
    expect(gate).toHaveLength(1);
    expect(gate[0]!.body).toMatchObject({
      event: 'pre-rollout',
      rollout: { id: r.id, pool: 'canary' },
    });
    expect(gate[0]!.headers['content-type']).toBe('application/json');
    // No secret configured: no signature header.
    expect(gate[0]!.headers['x-switchyard-signature']).toBeUndefined();
    await eventually(() => expect(receiver.of('/notify', 'aborted')).toHaveLength(1));
    expect(receiver.of('/notify', 'step')).toHaveLength(0);
  });

  it('a pre-rollout gate that times out aborts too', async () => {
    const t = await startColourApp(closers);
    const receiver = await startReceiver();
    const canary = watchWeight(t, 'canary');
    const started = await postJson(`${t.adminUrl}/v1/rollouts`, {
      pool: 'canary',
      ...QUICK,
      webhooks: [{ url: `${receiver.url}/hang`, events: ['pre-rollout'], timeout: '300ms' }],
    });
    expect(started.status).toBe(201);
    const r = await reach(t, 'aborted');
    expect(lastDecision(r).reason).toBe(
      `pre-rollout gate failed: ${receiver.url}/hang timeout after 300 ms`,
    );
    expect(canary.max).toBe(0);
  });

  it('a failing then passing pre-step gate pauses the rollout, then it goes on', async () => {
    const t = await startColourApp(closers);
    // The first pre-step call fails; every later one passes.
    const receiver = await startReceiver((path, n) => (path === '/gate' && n === 1 ? 500 : 200));
    const canary = watchWeight(t, 'canary');
    const started = await postJson(`${t.adminUrl}/v1/rollouts`, {
      pool: 'canary',
      ...QUICK,
      webhooks: [
        { url: `${receiver.url}/gate`, events: ['pre-step'] },
        { url: `${receiver.url}/notify`, events: ['paused', 'step', 'promoted'] },
      ],
    });
    expect(started.status).toBe(201);
    const paused = await reach(t, 'paused');
    expect(paused.targetWeightBp).toBe(0);
    expect(lastDecision(paused)).toMatchObject({ action: 'pause' });
    expect(lastDecision(paused).reason).toMatch(
      new RegExp(`^pre-step gate failed: ${receiver.url}/gate 500; retrying every 2 s`),
    );
    const r = await reach(t, 'promoted');
    const actions = r.decisions.filter((d) => d.action !== 'webhook').map((d) => d.action);
    expect(actions.slice(0, 4)).toEqual(['start', 'pause', 'resume', 'step']);
    // Traffic moved only after the gate passed.
    const resumedAt = Date.parse(r.decisions.find((d) => d.action === 'resume')!.time);
    expect(canary.firstAboveZeroMs).not.toBeNull();
    expect(canary.firstAboveZeroMs!).toBeGreaterThanOrEqual(resumedAt);
    // One gate call per weight increase, plus the failed one.
    expect(receiver.of('/gate').map((d) => d.body.rollout.step)).toHaveLength(3);
    expect(receiver.of('/gate').every((d) => d.event === 'pre-step')).toBe(true);
    const calls = r.decisions.filter((d) => d.webhook?.event === 'pre-step');
    expect(calls.map((d) => d.webhook!.status)).toEqual([500, 200, 200]);
    await eventually(() => {
      expect(receiver.of('/notify', 'paused')).toHaveLength(1);
      expect(receiver.of('/notify', 'step')).toHaveLength(2);
      expect(receiver.of('/notify', 'promoted')).toHaveLength(1);
    });
  });

  it('a pre-step gate failing past maxStepDuration waits for approval; promote gets past it', async () => {
    const t = await startColourApp(closers);
    const receiver = await startReceiver((path) => (path === '/gate' ? 503 : 204));
    const started = await postJson(`${t.adminUrl}/v1/rollouts`, {
      pool: 'canary',
      steps: [{ weight: 100 }],
      analysis: { maxStepDuration: '3s' },
      webhooks: [{ url: `${receiver.url}/gate`, events: ['pre-step'] }],
    });
    expect(started.status).toBe(201);
    await reach(t, 'paused');
    const waiting = await reach(t, 'awaiting-approval');
    expect(waiting.targetWeightBp).toBe(0);
    expect(lastDecision(waiting).reason).toMatch(
      new RegExp(
        `^pre-step gate failed: ${receiver.url}/gate 503, still after 3 s: promote by hand`,
      ),
    );
    // Retried meanwhile (every 2 s), each call recorded.
    expect(receiver.of('/gate').length).toBeGreaterThanOrEqual(2);
    const promote = await postJson(`${t.adminUrl}/v1/rollouts/current/promote`, {});
    expect(promote.status).toBe(200);
    const r = await reach(t, 'promoted');
    expect(r.targetWeightBp).toBe(10_000);
  });

  it('signs the exact body with SWITCHYARD_WEBHOOK_SECRET: verifies with it, fails with another', async () => {
    const secret = 'webhook-secret-0123456789abcdef';
    const t = await startColourApp(closers, { webhookSecret: secret });
    const receiver = await startReceiver();
    const started = await postJson(`${t.adminUrl}/v1/rollouts`, {
      pool: 'canary',
      ...QUICK,
      webhooks: [{ url: `${receiver.url}/notify`, events: ['pre-rollout', 'step', 'decision'] }],
    });
    expect(started.status).toBe(201);
    await reach(t, 'promoted');
    await eventually(() => expect(receiver.of('/notify', 'step')).toHaveLength(2));
    const hmac = (key: string, raw: string): string =>
      `sha256=${createHmac('sha256', key).update(raw).digest('hex')}`;
    expect(receiver.deliveries.length).toBeGreaterThan(4);
    for (const d of receiver.deliveries) {
      const signature = d.headers['x-switchyard-signature'];
      expect(signature).toBe(hmac(secret, d.raw));
      expect(signature).not.toBe(hmac('another-secret-0123456789abcdef', d.raw));
      expect(d.body.event).toBe(d.event);
    }
  });

  it('retries a failing notification with backoff, at most 4 tries, the same delivery id', async () => {
    const t = await startColourApp(closers);
    // /flaky fails its first two calls; /down always fails.
    const receiver = await startReceiver((path, n) => (path === '/flaky' && n > 2 ? 200 : 503));
    const started = await postJson(`${t.adminUrl}/v1/rollouts`, {
      pool: 'canary',
      steps: [{ weight: 100 }],
      webhooks: [
        { url: `${receiver.url}/flaky`, events: ['promoted'] },
        { url: `${receiver.url}/down`, events: ['promoted'] },
      ],
    });
    expect(started.status).toBe(201);
    await reach(t, 'promoted');
    const r = await eventually(
      async () => {
        const now = await current(t);
        const calls = now.decisions.filter((d) => d.webhook?.event === 'promoted');
        expect(calls).toHaveLength(7);
        return now;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    const calls = (path: string): Array<{ attempt: number; status: number | null }> =>
      r.decisions
        .filter((d) => d.webhook?.url === `${receiver.url}${path}`)
        .map((d) => ({ attempt: d.webhook!.attempt, status: d.webhook!.status }));
    expect(calls('/flaky')).toEqual([
      { attempt: 1, status: 503 },
      { attempt: 2, status: 503 },
      { attempt: 3, status: 200 },
    ]);
    expect(calls('/down').map((c) => c.attempt)).toEqual([1, 2, 3, 4]);
    // Backoff doubles: the gaps between tries grow (0.5 s, 1 s, 2 s by default).
    const down = receiver.of('/down');
    const gaps = down.slice(1).map((d, i) => d.atMs - down[i]!.atMs);
    expect(gaps[0]!).toBeGreaterThanOrEqual(450);
    expect(gaps[1]!).toBeGreaterThanOrEqual(950);
    expect(gaps[2]!).toBeGreaterThanOrEqual(1950);
    // One delivery: every retry carries the same id and body.
    expect(new Set(down.map((d) => d.headers['x-switchyard-delivery'])).size).toBe(1);
    expect(new Set(down.map((d) => d.raw)).size).toBe(1);
  });

  it('a receiver that hangs delays neither routing, the rollout nor the other hooks', async () => {
    const t = await startColourApp(closers);
    const receiver = await startReceiver();
    const events = ['step', 'decision', 'promoted'];
    const started = await postJson(`${t.adminUrl}/v1/rollouts`, {
      pool: 'canary',
      ...QUICK,
      webhooks: [
        { url: `${receiver.url}/hang`, events, timeout: '10s' },
        { url: `${receiver.url}/notify`, events },
      ],
    });
    expect(started.status).toBe(201);
    const r = await reach(t, 'promoted');
    // The hanging hook still holds its first delivery (10 s timeout) while the rollout is done...
    expect(receiver.hanging()).toBe(1);
    expect(receiver.of('/hang')).toHaveLength(1);
    // ...the other hook got every event...
    await eventually(() => {
      expect(receiver.of('/notify', 'step')).toHaveLength(2);
      expect(receiver.of('/notify', 'promoted')).toHaveLength(1);
      expect(receiver.of('/notify', 'decision').length).toBe(
        r.decisions.filter((d) => d.action !== 'webhook').length,
      );
    });
    expect(receiver.hanging()).toBe(1);
    // ...and the proxy routes.
    const res = await fetch(`${t.proxyUrl}/`);
    expect(res.status).toBe(200);
    await res.text();
  });

  it('a gate that hangs blocks neither routing nor the rollout controls', async () => {
    const t = await startColourApp(closers);
    const receiver = await startReceiver();
    const started = await postJson(`${t.adminUrl}/v1/rollouts`, {
      pool: 'canary',
      ...QUICK,
      webhooks: [{ url: `${receiver.url}/hang`, events: ['pre-rollout'], timeout: '30s' }],
    });
    expect(started.status).toBe(201);
    await eventually(() => expect(receiver.hanging()).toBe(1));
    const res = await fetch(`${t.proxyUrl}/`);
    expect(res.status).toBe(200);
    await res.text();
    // The gate is still being asked: an abort by hand is answered at once, not after 30 s.
    const aborted = await postJson(`${t.adminUrl}/v1/rollouts/current/abort`, {
      reason: 'changed my mind',
    });
    expect(aborted.status).toBe(200);
    expect(aborted.body).toMatchObject({ phase: 'aborted', targetWeightBp: 0 });
    expect(receiver.hanging()).toBe(1);
  });

  it('refuses bad webhooks with 400 naming the field', async () => {
    const t = await startColourApp(closers);
    const answer = await postJson(`${t.adminUrl}/v1/rollouts`, {
      pool: 'canary',
      webhooks: [{ url: 'ftp://127.0.0.1/x', events: ['step'] }],
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect((answer.body.error as { message: string }).message).toMatch(/^webhooks\[0\]\.url: /);
    const none = await fetch(`${t.adminUrl}/v1/rollouts/current`);
    expect(none.status).toBe(404);
    await none.text();
  });
});

describe('the drained record (SPEC §10)', () => {
  it('no drained record when traffic went back to the old baseline first (a rollback)', async () => {
    const t = await startColourApp(closers);
    const receiver = await startReceiver();
    const slow = fetch(`${t.proxyUrl}/slow?ms=2000`).then((res) => res.text());
    await eventually(() => expect(t.app.proxy.drainReport().blue?.inFlight).toBe(1));
    const started = await postJson(`${t.adminUrl}/v1/rollouts`, {
      pool: 'canary',
      steps: [{ weight: 100 }],
      webhooks: [{ url: `${receiver.url}/notify`, events: ['promoted', 'drained'] }],
    });
    expect(started.status).toBe(201);
    await reach(t, 'promoted');
    // Rolled back while blue still serves the slow request.
    expect((await postJson(`${t.adminUrl}/v1/rollback`, {})).status).toBe(200);
    expect(t.app.store.current()!.weights.blue).toBe(10_000);
    await slow;
    await eventually(() => expect(receiver.of('/notify', 'promoted')).toHaveLength(1));
    // The watch ended with the rollback: blue draining after a later, manual switch is not
    // this rollout's drain.
    expect((await postJson(`${t.adminUrl}/v1/switch`, { to: 'canary' })).status).toBe(200);
    await eventually(async () => {
      const res = await fetch(`${t.adminUrl}/v1/pools/blue/drain`);
      expect(((await res.json()) as { drained: boolean }).drained).toBe(true);
    });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect((await current(t)).drainedAt).toBeNull();
    expect(receiver.of('/notify', 'drained')).toHaveLength(0);
  });

  it('after promotion, records drainedAt and sends drained once the old baseline drained', async () => {
    const t = await startColourApp(closers);
    const receiver = await startReceiver();
    // A request on blue stays in flight across the promotion.
    const slowStartMs = Date.now();
    const slow = fetch(`${t.proxyUrl}/slow?ms=3000`).then(async (res) => {
      await res.text();
      return { status: res.status };
    });
    await eventually(() => expect(t.app.proxy.drainReport().blue?.inFlight).toBe(1));
    const started = await postJson(`${t.adminUrl}/v1/rollouts`, {
      pool: 'canary',
      steps: [{ weight: 100 }],
      webhooks: [{ url: `${receiver.url}/notify`, events: ['promoted', 'drained'] }],
    });
    expect(started.status).toBe(201);
    const promoted = await reach(t, 'promoted');
    expect(promoted.drainedAt).toBeNull();
    const ended = await slow;
    expect(ended.status).toBe(200);
    const r = await eventually(
      async () => {
        const now = await current(t);
        expect(now.drainedAt).not.toBeNull();
        return now;
      },
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    // Not before the last request on blue ended (blue answers 3 s after it got the request).
    expect(Date.parse(r.drainedAt!)).toBeGreaterThanOrEqual(slowStartMs + 3000);
    expect(r.decisions.find((d) => d.action === 'drained')?.reason).toMatch(
      /^blue: no traffic left on 1 live replica\(s\)/,
    );
    const drained = await eventually(() => {
      const d = receiver.of('/notify', 'drained');
      expect(d).toHaveLength(1);
      return d[0]!;
    });
    expect(drained.body.rollout.drainedAt).toBe(r.drainedAt);
    expect(receiver.of('/notify', 'promoted')).toHaveLength(1);
    // Sent once: the watch has ended.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(receiver.of('/notify', 'drained')).toHaveLength(1);
  });
});
