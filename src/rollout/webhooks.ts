/**
 * Release webhooks of a rollout (SPEC §10): `{"url","events":[...],"timeout":"5s"}`, validated
 * into Webhook. Pure: no I/O here (webhook-sender.ts sends, rollout-hooks.ts decides when).
 */
import { fail } from '../errors.js';

/** Gate events: the rollout waits for a 2xx from every hook subscribed to them. */
export const GATE_EVENTS = ['pre-rollout', 'pre-step'] as const;
/** Notification events: sent with retries, never waited for. */
export const NOTIFY_EVENTS = [
  'step',
  'paused',
  'promoted',
  'aborted',
  'decision',
  'drained',
] as const;

/** An event the rollout waits for. */
export type GateEvent = (typeof GATE_EVENTS)[number];
/** An event the rollout only tells. */
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];
/** Any webhook event of SPEC §10. */
export type WebhookEvent = GateEvent | NotifyEvent;

/** One validated webhook as the rollout's status shows it. */
export interface Webhook {
  readonly url: string;
  readonly events: readonly WebhookEvent[];
  /** As given (`5s`), for the status. */
  readonly timeout: string;
  /** Per call, milliseconds. */
  readonly timeoutMs: number;
}

/** At most this many webhooks per rollout. */
export const MAX_WEBHOOKS = 10;
/** Default per-call timeout. */
export const DEFAULT_WEBHOOK_TIMEOUT = '5s';
/** Shortest per-call timeout, milliseconds. */
export const MIN_WEBHOOK_TIMEOUT_MS = 100;
/** Longest per-call timeout, milliseconds. */
export const MAX_WEBHOOK_TIMEOUT_MS = 60_000;
/** Longest accepted URL. */
const MAX_URL_LENGTH = 2048;

const ALL_EVENTS: readonly string[] = [...GATE_EVENTS, ...NOTIFY_EVENTS];
const HOOK_FIELDS = ['url', 'events', 'timeout'];

/** True for an event the rollout waits for. */
export function isGateEvent(event: WebhookEvent): event is GateEvent {
  return (GATE_EVENTS as readonly string[]).includes(event);
}

/** Milliseconds of `text` (`5s`, `250ms`, `1m`), or NaN. */
function parseTimeoutMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text.trim());
  if (!m) return Number.NaN;
  const unit = m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000;
  return Math.round(Number(m[1]) * unit);
}

function parseUrl(raw: unknown, path: string): string {
  if (typeof raw !== 'string' || raw === '' || raw.length > MAX_URL_LENGTH) {
    throw fail('VALIDATION_FAILED', `${path}: must be an http:// or https:// URL`);
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw fail('VALIDATION_FAILED', `${path}: not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw fail(
      'VALIDATION_FAILED',
      `${path}: only http:// and https:// URLs are allowed, not ${url.protocol}`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    // The URL is shown in the status and the decisions: no credentials in it.
    throw fail(
      'VALIDATION_FAILED',
      `${path}: must not carry user:password (the URL is shown in the status); verify the signature instead`,
    );
  }
  return url.href;
}

function parseEvents(raw: unknown, path: string): WebhookEvent[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw fail('VALIDATION_FAILED', `${path}: must be a non-empty array of events`);
  }
  const seen = new Set<string>();
  for (const [i, e] of raw.entries()) {
    if (typeof e !== 'string' || !ALL_EVENTS.includes(e)) {
      throw fail(
        'VALIDATION_FAILED',
        `${path}[${i}]: unknown event ${JSON.stringify(e)} (one of ${ALL_EVENTS.join(', ')})`,
      );
    }
    if (seen.has(e)) throw fail('VALIDATION_FAILED', `${path}[${i}]: "${e}" given twice`);
    seen.add(e);
  }
  return raw as WebhookEvent[];
}

function parseHook(raw: unknown, path: string): Webhook {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw fail(
      'VALIDATION_FAILED',
      `${path}: must be an object {"url", "events": [...], "timeout": "5s"}`,
    );
  }
  const hook = raw as Record<string, unknown>;
  for (const key of Object.keys(hook)) {
    if (!HOOK_FIELDS.includes(key)) {
      throw fail('VALIDATION_FAILED', `${path}.${key}: unknown field (url, events or timeout)`);
    }
  }
  const url = parseUrl(hook.url, `${path}.url`);
  const events = parseEvents(hook.events, `${path}.events`);
  const timeout = hook.timeout === undefined ? DEFAULT_WEBHOOK_TIMEOUT : hook.timeout;
  const timeoutMs = typeof timeout === 'string' ? parseTimeoutMs(timeout) : Number.NaN;
  if (!(timeoutMs >= MIN_WEBHOOK_TIMEOUT_MS && timeoutMs <= MAX_WEBHOOK_TIMEOUT_MS)) {
    throw fail(
      'VALIDATION_FAILED',
      `${path}.timeout: must be a duration from ${MIN_WEBHOOK_TIMEOUT_MS}ms to ${MAX_WEBHOOK_TIMEOUT_MS / 1000}s, such as "5s"`,
    );
  }
  return { url, events, timeout: timeout as string, timeoutMs };
}

/** Validates the `webhooks` field of a start body; absent means none. Errors name the field. */
export function parseWebhooks(raw: unknown): Webhook[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw fail('VALIDATION_FAILED', 'webhooks: must be an array');
  if (raw.length > MAX_WEBHOOKS) {
    throw fail('VALIDATION_FAILED', `webhooks: at most ${MAX_WEBHOOKS} webhooks`);
  }
  return raw.map((h, i) => parseHook(h, `webhooks[${i}]`));
}
