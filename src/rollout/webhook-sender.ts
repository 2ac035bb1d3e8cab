/**
 * Sends release webhooks (SPEC §10) with undici: a POST of JSON with `X-Switchyard-Event` and,
 * with a secret, `X-Switchyard-Signature: sha256=<hex HMAC-SHA256 of the exact body>`.
 *
 * Gate calls are single attempts the caller waits for. Notifications go through one queue per
 * webhook, each drained by its own loop with bounded retries and exponential backoff, so a
 * receiver that hangs delays only its own queue: never routing, the rollout, or another hook.
 * Every call has its own timeout. Nothing here throws to the caller: results are reported.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';
import type { Logger } from '../observability/logger.js';
import type { Webhook, WebhookEvent } from './webhooks.js';

/** The result of one call. */
export interface WebhookCallResult {
  readonly ok: boolean;
  /** HTTP status, or null for a timeout or a network error. */
  readonly status: number | null;
  /** `200`, `timeout after 5000 ms`, `error: connect ECONNREFUSED ...`. */
  readonly outcome: string;
  /** 1 for the first try. */
  readonly attempt: number;
}

/** Options; the defaults suit production. */
export interface WebhookSenderOptions {
  /** SWITCHYARD_WEBHOOK_SECRET, read by the config loader; undefined: unsigned. */
  readonly secret: string | undefined;
  readonly logger: Logger;
  /** Tries of one notification, the first included (default 4). */
  readonly maxAttempts?: number;
  /** Pause before the first retry, doubled for each next one (default 500 ms). */
  readonly backoffMs?: number;
  /** Longest pause between retries (default 10 s). */
  readonly maxBackoffMs?: number;
  /** Notifications waiting per webhook; the oldest is dropped past this (default 100). */
  readonly maxQueued?: number;
  /**
   * How long close() lets queued notifications go out (one more try each, no further retries)
   * before it aborts what is left (default 2000 ms).
   */
  readonly closeGraceMs?: number;
}

interface Delivery {
  readonly hook: Webhook;
  readonly event: WebhookEvent;
  readonly body: string;
  readonly id: string;
  readonly onResult: (result: WebhookCallResult) => void;
}

interface Queue {
  readonly items: Delivery[];
  running: boolean;
}

/** The event's name (header names are case-insensitive; sent lowercase). */
export const EVENT_HEADER = 'x-switchyard-event';
/** `sha256=<hex HMAC-SHA256 of the body>`, with a secret only. */
export const SIGNATURE_HEADER = 'x-switchyard-signature';
/** One id per delivery, the same on its retries (receivers may deduplicate on it). */
export const DELIVERY_HEADER = 'x-switchyard-delivery';

/** `sha256=<hex>` of `body` under `secret`, as sent in X-Switchyard-Signature. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Sends webhook calls; created and closed by the app. */
export class WebhookSender {
  readonly #options: WebhookSenderOptions;
  readonly #log: Logger;
  readonly #agent = new Agent({ keepAliveTimeout: 4_000, connections: 4 });
  readonly #queues = new Map<string, Queue>();
  readonly #controllers = new Set<AbortController>();
  readonly #sleeps = new Set<() => void>();
  readonly #workers = new Set<Promise<void>>();
  /** close() was called: no new notifications, no retries after a failed try. */
  #closed = false;
  /** The grace is over: calls are aborted and none is made. */
  #aborted = false;
  #closing: Promise<void> | undefined;
  #sequence = 0;

  constructor(options: WebhookSenderOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: 'webhooks' });
  }

  /** One POST of `body` to `hook`; resolves with its result (never rejects). */
  async call(
    hook: Webhook,
    event: WebhookEvent,
    body: string,
    attempt = 1,
    id = this.#nextId(),
  ): Promise<WebhookCallResult> {
    if (this.#aborted) return { ok: false, status: null, outcome: 'not sent: closing', attempt };
    const controller = new AbortController();
    this.#controllers.add(controller);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, hook.timeoutMs);
    timer.unref();
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'switchyard-webhook',
      [EVENT_HEADER]: event,
      [DELIVERY_HEADER]: id,
    };
    if (this.#options.secret !== undefined) {
      headers[SIGNATURE_HEADER] = signBody(this.#options.secret, body);
    }
    try {
      const res = await request(hook.url, {
        method: 'POST',
        headers,
        body,
        signal: controller.signal,
        dispatcher: this.#agent,
      });
      // The answer's body is not used; reading it frees the connection.
      await res.body.dump({ limit: 64 * 1024 });
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      return { ok, status: res.statusCode, outcome: String(res.statusCode), attempt };
    } catch (err) {
      const outcome = timedOut
        ? `timeout after ${hook.timeoutMs} ms`
        : this.#aborted
          ? 'aborted: closing'
          : `error: ${errorText(err)}`;
      return { ok: false, status: null, outcome, attempt };
    } finally {
      clearTimeout(timer);
      this.#controllers.delete(controller);
    }
  }

  /**
   * Queues a notification on `queueKey` (one key per webhook of a rollout) and returns at once.
   * `onResult` sees every attempt; `onDrop` is told when the queue was full and the oldest
   * waiting delivery was dropped.
   */
  notify(
    queueKey: string,
    hook: Webhook,
    event: WebhookEvent,
    body: string,
    onResult: (result: WebhookCallResult) => void,
    onDrop: (event: WebhookEvent) => void,
  ): void {
    if (this.#closed) return;
    let queue = this.#queues.get(queueKey);
    if (queue === undefined) {
      queue = { items: [], running: false };
      this.#queues.set(queueKey, queue);
    }
    queue.items.push({ hook, event, body, id: this.#nextId(), onResult });
    const max = this.#options.maxQueued ?? 100;
    while (queue.items.length > max) {
      const dropped = queue.items.shift();
      if (dropped !== undefined) onDrop(dropped.event);
    }
    if (!queue.running) {
      queue.running = true;
      const worker = this.#drain(queueKey, queue).finally(() => {
        this.#workers.delete(worker);
      });
      this.#workers.add(worker);
    }
  }

  /**
   * Stops intake; what is queued gets one more try each (a retry waiting for its backoff goes at
   * once) for up to `closeGraceMs`, then calls in flight are aborted and connections closed.
   * An `aborted` or `promoted` sent just before a SIGTERM still reaches its receiver. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      for (const wake of this.#sleeps) wake();
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#options.closeGraceMs ?? 2000);
      });
      await Promise.race([Promise.allSettled([...this.#workers]), grace]);
      clearTimeout(timer);
      this.#aborted = true;
      const left = [...this.#queues.values()].reduce((n, q) => n + q.items.length, 0);
      const inFlight = this.#controllers.size;
      for (const c of this.#controllers) c.abort();
      for (const wake of this.#sleeps) wake();
      await Promise.allSettled([...this.#workers]);
      if (left + inFlight > 0) {
        this.#log.warn(
          { inFlight, queued: left },
          'webhook notifications not delivered before close: aborted',
        );
      }
      this.#queues.clear();
      await this.#agent.close().catch(() => this.#agent.destroy());
    })();
    return this.#closing;
  }

  async #drain(queueKey: string, queue: Queue): Promise<void> {
    const maxAttempts = this.#options.maxAttempts ?? 4;
    const backoffMs = this.#options.backoffMs ?? 500;
    const maxBackoffMs = this.#options.maxBackoffMs ?? 10_000;
    try {
      for (let d = queue.items.shift(); d !== undefined; d = queue.items.shift()) {
        for (let attempt = 1; attempt <= maxAttempts && !this.#aborted; attempt++) {
          const result = await this.call(d.hook, d.event, d.body, attempt, d.id);
          if (this.#aborted) break;
          report(d, result, this.#log);
          if (result.ok) break;
          if (attempt === maxAttempts || this.#closed) {
            this.#log.warn(
              { event: d.event, url: d.hook.url, attempts: attempt, outcome: result.outcome },
              'webhook delivery failed',
            );
            break;
          }
          await this.#sleep(Math.min(maxBackoffMs, backoffMs * 2 ** (attempt - 1)));
        }
        if (this.#aborted) return;
      }
    } finally {
      queue.running = false;
      if (queue.items.length === 0) this.#queues.delete(queueKey);
    }
  }

  /** A pause that close() ends early. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#sleeps.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.#sleeps.add(wake);
    });
  }

  #nextId(): string {
    this.#sequence++;
    return `${randomBytes(4).toString('hex')}-${this.#sequence}`;
  }
}

function report(d: Delivery, result: WebhookCallResult, log: Logger): void {
  try {
    d.onResult(result);
  } catch (err) {
    log.error({ err }, 'webhook result handler failed');
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const code = (err as { code?: unknown }).code;
    const text = cause instanceof Error ? cause.message : err.message;
    return typeof code === 'string' && !text.includes(code) ? `${code} ${text}` : text;
  }
  return String(err);
}
