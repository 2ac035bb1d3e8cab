/**
 * WebhookSender.close() drains (SPEC §10, "close drains"): a notification queued just before a
 * shutdown still reaches its receiver, a retry waiting for its backoff goes at once, and a
 * receiver that never answers holds the close for the grace only. Real HTTP on loopback.
 */
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { WebhookSender, type WebhookCallResult } from '../../src/rollout/webhook-sender.js';
import type { Webhook } from '../../src/rollout/webhooks.js';
import { closeAfterEach, listenOnLoopback } from '../helpers/closers.js';

const closers = closeAfterEach();

interface Receiver {
  readonly url: string;
  /** Paths of the requests that reached the receiver, in order. */
  readonly got: string[];
}

/** `/slow` answers 204 after 300 ms, `/fail` 500, `/hang` never; anything else 204 at once. */
async function startReceiver(): Promise<Receiver> {
  const got: string[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const path = req.url ?? '/';
      got.push(path);
      if (path === '/hang') return;
      if (path === '/slow') setTimeout(() => res.writeHead(204).end(), 300);
      else res.writeHead(path === '/fail' ? 500 : 204).end();
    });
  });
  const origin = await listenOnLoopback(server, closers);
  return { url: origin, got };
}

function hook(url: string): Webhook {
  return { url, events: ['aborted'], timeout: '60s', timeoutMs: 60_000 };
}

function sender(options: { closeGraceMs?: number; backoffMs?: number } = {}): WebhookSender {
  const s = new WebhookSender({
    secret: undefined,
    logger: createLogger({ level: 'silent' }),
    ...options,
  });
  closers.push(() => s.close());
  return s;
}

describe('webhook sender close', () => {
  it('delivers what was queued just before close, and refuses what comes after', async () => {
    const rx = await startReceiver();
    const s = sender();
    const results: WebhookCallResult[] = [];
    s.notify(
      'r#0',
      hook(`${rx.url}/slow`),
      'aborted',
      '{"n":1}',
      (r) => results.push(r),
      () => {},
    );
    s.notify(
      'r#0',
      hook(`${rx.url}/slow`),
      'aborted',
      '{"n":2}',
      (r) => results.push(r),
      () => {},
    );
    const closed = s.close();
    s.notify(
      'r#0',
      hook(`${rx.url}/late`),
      'aborted',
      '{"n":3}',
      (r) => results.push(r),
      () => {},
    );
    await closed;
    expect(rx.got).toEqual(['/slow', '/slow']);
    expect(results.map((r) => r.outcome)).toEqual(['204', '204']);
  });

  it('a retry waiting for its backoff is tried once more at close, then no more', async () => {
    const rx = await startReceiver();
    const s = sender({ backoffMs: 60_000 });
    const results: WebhookCallResult[] = [];
    s.notify(
      'r#0',
      hook(`${rx.url}/fail`),
      'aborted',
      '{}',
      (r) => results.push(r),
      () => {},
    );
    const started = Date.now();
    while (results.length === 0 && Date.now() - started < 10_000) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(results).toHaveLength(1);
    await s.close();
    // Not a minute of backoff: the second try went at close, and no third.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(rx.got).toEqual(['/fail', '/fail']);
    expect(results.map((r) => `${r.attempt} ${r.outcome}`)).toEqual(['1 500', '2 500']);
  });

  it('a receiver that never answers holds close for the grace only, then is aborted', async () => {
    const rx = await startReceiver();
    const s = sender({ closeGraceMs: 300 });
    const results: WebhookCallResult[] = [];
    s.notify(
      'r#0',
      hook(`${rx.url}/hang`),
      'aborted',
      '{}',
      (r) => results.push(r),
      () => {},
    );
    s.notify(
      'r#1',
      hook(`${rx.url}/quick`),
      'aborted',
      '{}',
      (r) => results.push(r),
      () => {},
    );
    const started = Date.now();
    while (rx.got.length < 2 && Date.now() - started < 10_000) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const closing = Date.now();
    await s.close();
    // Far from the hook's 60 s timeout: the grace (300 ms) ended it.
    expect(Date.now() - closing).toBeLessThan(30_000);
    expect(results.map((r) => r.outcome)).toEqual(['204']);
    expect([...rx.got].sort()).toEqual(['/hang', '/quick']);
  });
});
