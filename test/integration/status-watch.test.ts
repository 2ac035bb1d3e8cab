/**
 * `switchyard status --watch` (issue 14) against a real app: in a terminal the view is redrawn in
 * place; into a pipe one plain line per change, with each pool's weight, observed share over the
 * window and endpoint health. The CLI runs in-process (runCli, the binary's own entry) so the
 * test can end the watch through its signal.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/cli.js';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { postJson, startColourApp } from '../helpers/start-app.js';

const closers = closeAfterEach();
/** Clear the screen, cursor home: how a terminal view is redrawn. */
const CLEAR = '\x1b[2J\x1b[H';

function watch(adminUrl: string, isTTY: boolean) {
  const out: string[] = [];
  const err: string[] = [];
  const stop = new AbortController();
  const done = runCli(
    ['status', '--watch', '--admin', adminUrl],
    {},
    {
      stdout: { write: (t: string) => out.push(t), isTTY },
      stderr: { write: (t: string) => err.push(t) },
      signal: stop.signal,
    },
  );
  closers.push(async () => {
    stop.abort();
    await done;
  });
  return { out, err, stop: () => (stop.abort(), done) };
}

describe('switchyard status --watch', () => {
  it('prints one plain line per change when not a terminal', async () => {
    const t = await startColourApp(closers);
    const w = watch(t.adminUrl, false);
    await eventually(() => expect(w.out.length).toBeGreaterThan(0), { timeoutMs: 10_000 });
    const first = w.out[0]!;
    expect(first).toMatch(
      /^\d{4}-\d\d-\d\dT\S+Z revision 1 \(applied 1\) \| blue 100\.00% \(observed - over 60s, 1\/1 healthy\) \| green 0\.00% /,
    );
    expect(first).not.toContain('\x1b');
    expect((await postJson(`${t.adminUrl}/v1/canary`, { percent: 10 })).status).toBe(200);
    await eventually(() => expect(w.out.join('')).toContain('canary 10.00%'), {
      timeoutMs: 10_000,
    });
    // A pool whose endpoint is down shows it.
    const res = await fetch(`${t.adminUrl}/v1/pools/staging`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ version: '4444444', endpoints: ['http://127.0.0.1:1'] }),
    });
    expect(res.status).toBe(200);
    await eventually(
      () => expect(w.out.at(-1)).toContain('staging 0.00% (observed - over 60s, 0/1 healthy)'),
      {
        timeoutMs: 20_000,
        intervalMs: 100,
      },
    );
    // Unchanged readings print nothing: every line differs from the one before.
    for (let i = 1; i < w.out.length; i++) {
      expect(w.out[i]!.replace(/^\S+ /, '')).not.toBe(w.out[i - 1]!.replace(/^\S+ /, ''));
    }
    expect(await w.stop()).toBe(0);
    expect(w.err).toEqual([]);
  });

  it('redraws the status table in place on a terminal', async () => {
    const t = await startColourApp(closers);
    const w = watch(t.adminUrl, true);
    await eventually(() => expect(w.out.length).toBeGreaterThan(0), { timeoutMs: 10_000 });
    expect(w.out[0]?.startsWith(CLEAR)).toBe(true);
    expect(w.out[0]).toMatch(
      /POOL\s+VERSION\s+WEIGHT\s+OBSERVED \(60s\)\s+REQUESTS\s+HEALTHY\s+ENDPOINTS/,
    );
    expect(w.out[0]).toContain('every 1 s; Ctrl-C to stop');
    expect((await postJson(`${t.adminUrl}/v1/switch`, { to: 'green' })).status).toBe(200);
    await eventually(() => expect(w.out.at(-1)?.startsWith(`${CLEAR}revision 2 `)).toBe(true), {
      timeoutMs: 10_000,
    });
    expect(w.out.at(-1)).toMatch(/green\s+2222222\s+100\.00%/);
    expect(await w.stop()).toBe(0);
  });
});
