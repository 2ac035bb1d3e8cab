import { describe, expect, it } from 'vitest';
import { parseWebhookFlag } from '../../../src/cli/rollout-command.js';
import { signBody } from '../../../src/rollout/webhook-sender.js';
import { parseWebhooks } from '../../../src/rollout/webhooks.js';

function problem(raw: unknown): string {
  try {
    parseWebhooks(raw);
  } catch (err) {
    return (err as Error).message;
  }
  return 'accepted';
}

describe('parseWebhooks (SPEC §10, issue 13)', () => {
  it('takes url, events and timeout, with a 5s default timeout', () => {
    expect(
      parseWebhooks([
        { url: 'https://ci.example.com/hook', events: ['pre-rollout', 'promoted'] },
        { url: 'http://127.0.0.1:9/x?y=1', events: ['drained'], timeout: '250ms' },
      ]),
    ).toEqual([
      {
        url: 'https://ci.example.com/hook',
        events: ['pre-rollout', 'promoted'],
        timeout: '5s',
        timeoutMs: 5000,
      },
      { url: 'http://127.0.0.1:9/x?y=1', events: ['drained'], timeout: '250ms', timeoutMs: 250 },
    ]);
    expect(parseWebhooks(undefined)).toEqual([]);
  });

  it('names the field of every problem', () => {
    expect(problem('x')).toBe('webhooks: must be an array');
    const hook = { url: 'http://h/', events: ['step'] };
    expect(problem(Array.from({ length: 11 }, () => hook))).toBe('webhooks: at most 10 webhooks');
    expect(problem([{ url: 'file:///etc/passwd', events: ['step'] }])).toMatch(
      /^webhooks\[0\]\.url: only http:\/\/ and https:\/\/ URLs are allowed, not file:/,
    );
    expect(problem([hook, { url: 'not a url', events: ['step'] }])).toBe(
      'webhooks[1].url: not a URL',
    );
    expect(problem([{ url: 'https://u:p@h/', events: ['step'] }])).toMatch(
      /^webhooks\[0\]\.url: must not carry user:password/,
    );
    expect(problem([{ url: 'http://h/', events: [] }])).toMatch(/^webhooks\[0\]\.events: /);
    expect(problem([{ url: 'http://h/', events: ['step', 'deployed'] }])).toMatch(
      /^webhooks\[0\]\.events\[1\]: unknown event "deployed" \(one of pre-rollout, pre-step, /,
    );
    expect(problem([{ url: 'http://h/', events: ['step', 'step'] }])).toMatch(
      /^webhooks\[0\]\.events\[1\]: "step" given twice/,
    );
    for (const timeout of ['50ms', '2m', 5, 'soon']) {
      expect(problem([{ ...hook, timeout }]), String(timeout)).toMatch(
        /^webhooks\[0\]\.timeout: must be a duration from 100ms to 60s/,
      );
    }
    expect(problem([{ ...hook, secret: 'x' }])).toMatch(/^webhooks\[0\]\.secret: unknown field/);
  });
});

describe('signBody', () => {
  it('is sha256=<hex HMAC-SHA256> of the exact body (RFC 4231 test case 2)', () => {
    expect(signBody('Jefe', 'what do ya want for nothing?')).toBe(
      'sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });
});

describe('switchyard rollout start --webhook EVENTS=URL', () => {
  it('reads the events and the URL, with the timeout of --webhook-timeout', () => {
    expect(parseWebhookFlag('pre-rollout,promoted=https://ci.example.com/h?a=b', '30s')).toEqual({
      url: 'https://ci.example.com/h?a=b',
      events: ['pre-rollout', 'promoted'],
      timeout: '30s',
    });
    expect(parseWebhookFlag('drained=http://127.0.0.1:9/x', undefined)).toEqual({
      url: 'http://127.0.0.1:9/x',
      events: ['drained'],
    });
    expect(() => parseWebhookFlag('https://ci.example.com/h', undefined)).toThrow(
      /^--webhook: "https:\/\/ci.example.com\/h" is not EVENTS=URL/,
    );
  });
});
