/**
 * The dashboard (GET /ui, issue 14) in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core; no browser download) against a real app, real reference servers and real
 * traffic through the proxy. Skipped, with the reason printed, only where no Chromium exists
 * (.ci/run installs it). `SWITCHYARD_SCREENSHOT=1` also saves docs/images/dashboard.png.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { UI_CONTENT_SECURITY_POLICY } from '../../src/admin/routes/ui.js';
import { closeAfterEach } from '../helpers/closers.js';
import { startLoad } from '../helpers/keepalive-load.js';
import { startColours, startReference } from '../helpers/reference.js';
import { startApp, startColourApp, startRedisPair, type TestApp } from '../helpers/start-app.js';

const closers = closeAfterEach();
const TOKEN = 'dashboard-test-token-0123';
const CHROMIUM = process.env.SWITCHYARD_CHROMIUM ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

if (!hasChromium) {
  console.log(
    `dashboard browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set SWITCHYARD_CHROMIUM)`,
  );
}

describe('GET /ui (HTTP)', () => {
  it('serves the page and its assets with their types, a strict CSP, nosniff and ETags', async () => {
    const t = await startColourApp(closers, { adminToken: TOKEN });
    const types: Record<string, string> = {
      '/ui': 'text/html; charset=utf-8',
      '/ui/app.js': 'text/javascript; charset=utf-8',
      '/ui/app.css': 'text/css; charset=utf-8',
    };
    for (const [path, type] of Object.entries(types)) {
      // No token needed: the page holds no data.
      const res = await fetch(`${t.adminUrl}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toBe(type);
      expect(res.headers.get('content-security-policy')).toBe(UI_CONTENT_SECURITY_POLICY);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('cache-control')).toBe('no-cache');
      const etag = res.headers.get('etag');
      expect(etag).toMatch(/^"[\w-]{22}"$/);
      expect((await res.text()).length).toBeGreaterThan(100);
      const again = await fetch(`${t.adminUrl}${path}`, { headers: { 'if-none-match': etag! } });
      expect(again.status).toBe(304);
    }
    expect(UI_CONTENT_SECURITY_POLICY).toContain("frame-ancestors 'none'");
    expect(UI_CONTENT_SECURITY_POLICY).not.toContain('unsafe-inline');
    const html = await (await fetch(`${t.adminUrl}/ui`)).text();
    // No inline script or style, nothing from another origin.
    expect(html).not.toMatch(/<script>|<style|style=|https?:\/\//);
    // A page of another site cannot even load it.
    const cross = await fetch(`${t.adminUrl}/ui`, { headers: { 'sec-fetch-site': 'cross-site' } });
    expect(cross.status).toBe(403);
  });
});

describe.skipIf(!hasChromium)('dashboard in headless Chromium', () => {
  let browser: Browser;

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // A fresh temporary profile per launch (playwright's default); no network but ours.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      timeout: 60_000,
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
  });

  /** A fresh page; console errors and page errors (a CSP violation is one) are collected. */
  async function openPage(width = 1280): Promise<{ page: Page; errors: string[] }> {
    const context = await browser.newContext({ viewport: { width, height: 900 } });
    closers.push(() => context.close());
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('console', (msg) => {
      // A refused token is an expected 401 in the console; everything else is a defect.
      if (msg.type() === 'error' && !msg.text().includes('401')) errors.push(msg.text());
    });
    return { page, errors };
  }

  async function signIn(page: Page, t: TestApp, token = TOKEN): Promise<void> {
    await page.goto(`${t.adminUrl}/ui`);
    await page.getByLabel('Admin token').fill(token);
    await page.getByRole('button', { name: 'Use token' }).click();
  }

  const cellText = (page: Page, pool: string, field: string): Promise<string> =>
    page.locator(`tr[data-pool="${pool}"] td[data-field="${field}"]`).innerText();

  it('loads with the token and shows three pools whose live numbers move under traffic', async () => {
    const t = await startColourApp(closers, { adminToken: TOKEN });
    const { page, errors } = await openPage();
    await page.goto(`${t.adminUrl}/ui`);
    // Asked for the token; nothing else shown before it.
    await expect.poll(() => page.getByLabel('Admin token').isVisible()).toBe(true);
    expect(await page.locator('#data').isVisible()).toBe(false);
    await signIn(page, t);
    await expect.poll(() => page.locator('tr[data-pool]').count()).toBe(3);
    const order = await Promise.all(
      (await page.locator('tr[data-pool]').all()).map((row) => row.getAttribute('data-pool')),
    );
    expect(order).toEqual(['blue', 'green', 'canary']);
    expect(await cellText(page, 'blue', 'weight')).toContain('100 %');
    expect(await cellText(page, 'green', 'state')).toContain('idle');
    expect(await cellText(page, 'blue', 'endpoints')).toContain('up');
    await expect.poll(() => page.locator('#conn').innerText()).toBe('Live');
    // Kept for the tab only.
    expect(await page.evaluate("sessionStorage.getItem('switchyard.adminToken')")).toBe(TOKEN);
    expect(await page.evaluate('localStorage.length')).toBe(0);
    expect(await page.context().cookies()).toEqual([]);

    const load = startLoad({ origin: t.proxyUrl, clients: 2, pauseMs: 5 });
    closers.push(() => load.stop());
    const requestsSeen = async (): Promise<number> =>
      Number(/(\d+) req/.exec(await cellText(page, 'blue', 'observed'))?.[1] ?? 0);
    await expect.poll(requestsSeen, { timeout: 20_000 }).toBeGreaterThan(0);
    const first = await requestsSeen();
    await expect.poll(requestsSeen, { timeout: 20_000 }).toBeGreaterThan(first);
    await expect
      .poll(async () => parseFloat(await cellText(page, 'blue', 'rps')), { timeout: 20_000 })
      .toBeGreaterThan(0);
    await expect.poll(() => cellText(page, 'blue', 'p99'), { timeout: 20_000 }).toMatch(/\d+ ms/);
    expect(await cellText(page, 'blue', 'observed')).toContain('100.0 %');
    expect(await page.locator('#replicas').innerText()).toContain(t.app.replicaId);
    await load.stop();
    expect(errors).toEqual([]);
  });

  it('with Redis, shows the whole fleet’s requests per second, not one replica’s', async () => {
    const { a, b } = await startRedisPair(closers, 'ui', { adminToken: TOKEN });
    // Traffic through A only; the page is B's.
    const load = startLoad({ origin: a.proxyUrl, clients: 2, pauseMs: 5 });
    closers.push(() => load.stop());
    const { page, errors } = await openPage();
    await signIn(page, b);
    await expect.poll(() => page.locator('tr[data-pool]').count()).toBe(3);
    await expect
      .poll(async () => parseFloat(await cellText(page, 'blue', 'rps')), { timeout: 20_000 })
      .toBeGreaterThan(0);
    await expect.poll(() => page.locator('#pools-table thead').innerText()).toContain('1 replica');
    // B itself served nothing: its own share is empty.
    expect(await cellText(page, 'blue', 'observed')).toMatch(/–|0 req/);
    await load.stop();
    expect(errors).toEqual([]);
  });

  it('sets the canary to 10 % from the page after a confirmation naming the effect', async () => {
    const t = await startColourApp(closers, { adminToken: TOKEN });
    const agent = new Agent({ connections: 4 });
    closers.push(() => agent.close());
    const sendRequests = async (n: number): Promise<Record<string, number>> => {
      const seen: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const res = await request(`${t.proxyUrl}/`, { dispatcher: agent });
        const pool = String(res.headers['x-switchyard-upstream'] ?? '?').split('@')[0] as string;
        await res.body.dump();
        seen[pool] = (seen[pool] ?? 0) + 1;
      }
      return seen;
    };
    expect(await sendRequests(200)).toEqual({ blue: 200 });

    const { page, errors } = await openPage();
    await signIn(page, t);
    await expect.poll(() => page.locator('tr[data-pool]').count()).toBe(3);
    await page.getByLabel('Pool', { exact: true }).selectOption('canary');
    await page.getByLabel('Share (%)').fill('10');
    // Cancelling changes nothing.
    await page.getByRole('button', { name: 'Set share' }).click();
    const dialog = page.getByRole('dialog');
    await expect.poll(() => dialog.isVisible()).toBe(true);
    expect(await dialog.innerText()).toContain('Send 10 % of traffic to canary (version 3333333)?');
    await page.keyboard.press('Escape');
    await expect.poll(() => dialog.isVisible()).toBe(false);
    expect(t.app.store.current()?.weights.canary).toBe(0);

    await page.getByRole('button', { name: 'Set share' }).click();
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await expect.poll(() => cellText(page, 'canary', 'weight')).toContain('10 %');
    expect(await page.locator('#action-result').innerText()).toContain('canary now gets 10 %');
    expect(t.app.store.current()?.weights).toEqual({ blue: 9000, green: 0, canary: 1000 });
    // The history shows the change and who made it.
    await expect.poll(() => page.locator('#history').innerText()).toContain('canary canary 10 %');

    const after = await sendRequests(400);
    expect(after.canary ?? 0).toBeGreaterThan(10);
    expect(after.canary ?? 0).toBeLessThan(100);
    expect((after.blue ?? 0) + (after.canary ?? 0)).toBe(400);
    expect(errors).toEqual([]);
  });

  it('shows a rollout against a failing target being aborted, with its reason', async () => {
    const { blue } = await startColours(closers);
    const failing = await startReference({ pool: 'canary', version: '3333333', errorRate: 0.3 });
    closers.push(failing.close);
    const t = await startApp({
      adminToken: TOKEN,
      pools: [
        { name: 'blue', version: '1111111', endpoints: [blue.url] },
        { name: 'canary', version: '3333333', endpoints: [failing.url] },
      ],
    });
    closers.push(() => t.close());
    const { page, errors } = await openPage();
    await signIn(page, t);
    await expect.poll(() => page.locator('#rollout').innerText()).toContain('No rollout has run');

    const load = startLoad({ origin: t.proxyUrl, clients: 2, pauseMs: 2 });
    closers.push(() => load.stop());
    const started = await fetch(`${t.adminUrl}/v1/rollouts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        pool: 'canary',
        steps: [{ weight: 20 }, { pause: '1m' }, { weight: 100 }],
      }),
    });
    expect(started.status).toBe(201);
    await expect
      .poll(() => page.locator('#rollout-phase').innerText(), { timeout: 30_000 })
      .toBe('aborted');
    const reason = await page.locator('#rollout-reason').innerText();
    expect(reason).toMatch(/^Aborted: canary 5xx \d+\/\d+ .* vs blue/);
    expect(await page.locator('#rollout-decisions').innerText()).toContain('abort');
    expect(await page.locator('#rollout-verdict').innerText()).toBe('fail');
    await expect.poll(() => cellText(page, 'canary', 'weight')).toContain('0 %');
    // No rollout controls once it is over.
    expect(await page.locator('#rollout-controls').isVisible()).toBe(false);
    await load.stop();
    expect(errors).toEqual([]);
  });

  it('aborts an active rollout from the page after a confirmation', async () => {
    const t = await startColourApp(closers, { adminToken: TOKEN });
    const started = await fetch(`${t.adminUrl}/v1/rollouts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        pool: 'canary',
        steps: [{ weight: 10 }, { pause: 'approval' }, { weight: 100 }],
      }),
    });
    expect(started.status).toBe(201);
    const { page, errors } = await openPage();
    await signIn(page, t);
    await expect.poll(() => page.locator('#rollout-controls').isVisible()).toBe(true);
    // The rollout owns the weights: the manual controls are disabled and say why.
    expect(await page.getByRole('button', { name: 'Set share' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Abort' }).click();
    const dialog = page.getByRole('dialog');
    await expect
      .poll(() => dialog.innerText())
      .toMatch(/Abort rollout \S+: send canary's .* of traffic back to blue\?/);
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await expect.poll(() => page.locator('#rollout-phase').innerText()).toBe('aborted');
    expect(await page.locator('#rollout-reason').innerText()).toBe(
      'Aborted: aborted from the dashboard',
    );
    expect(t.app.rollouts.current()?.phase).toBe('aborted');
    expect(errors).toEqual([]);
  });

  it('a wrong token shows an error and no controls, and the token is not kept', async () => {
    const t = await startColourApp(closers, { adminToken: TOKEN });
    const { page } = await openPage();
    await signIn(page, t, 'not-the-right-token-0000');
    const error = page.getByRole('alert').first();
    await expect.poll(() => error.innerText()).toContain('refused this token');
    expect(await page.locator('#controls').isVisible()).toBe(false);
    expect(await page.locator('#data').isVisible()).toBe(false);
    expect(await page.getByRole('button', { name: 'Set share' }).isVisible()).toBe(false);
    expect(await page.evaluate("sessionStorage.getItem('switchyard.adminToken')")).toBeNull();
    // Still read-only: readiness from the unauthenticated probe.
    await expect.poll(() => page.locator('#public').innerText()).toContain('Readiness: ready');
  });

  it.runIf(process.env.SWITCHYARD_SCREENSHOT === '1')(
    'saves docs/images/dashboard.png: a judged canary rollout under traffic',
    async () => {
      const t = await startColourApp(closers, { adminToken: TOKEN });
      const load = startLoad({ origin: t.proxyUrl, clients: 2, pauseMs: 3 });
      closers.push(() => load.stop());
      const started = await fetch(`${t.adminUrl}/v1/rollouts`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          pool: 'canary',
          steps: [{ weight: 10 }, { pause: 'approval' }, { weight: 50 }, { weight: 100 }],
          analysis: { minRequests: 100 },
        }),
      });
      expect(started.status).toBe(201);
      const { page, errors } = await openPage();
      await signIn(page, t);
      await expect
        .poll(async () => parseFloat(await cellText(page, 'canary', 'rps')), { timeout: 20_000 })
        .toBeGreaterThan(0);
      // Judged with some evidence in: the meter, the verdict and both pools' figures show.
      await expect
        .poll(
          async () =>
            Number(
              /(\d+) \/ \d+ requests/.exec(await page.locator('#rollout').innerText())?.[1] ?? 0,
            ),
          { timeout: 30_000 },
        )
        .toBeGreaterThan(60);
      mkdirSync(join(root, 'docs', 'images'), { recursive: true });
      await page.screenshot({
        path: join(root, 'docs', 'images', 'dashboard.png'),
        fullPage: true,
      });
      await load.stop();
      expect(errors).toEqual([]);
    },
  );

  it('fits a phone width (375 px) without sideways scrolling', async () => {
    const t = await startColourApp(closers, { adminToken: TOKEN });
    const { page, errors } = await openPage(375);
    await signIn(page, t);
    await expect.poll(() => page.locator('tr[data-pool]').count()).toBe(3);
    const overflow = await page.evaluate<number>(
      'document.documentElement.scrollWidth - document.documentElement.clientWidth',
    );
    expect(overflow).toBeLessThanOrEqual(0);
    // Keyboard: the controls are reachable with Tab.
    await page.getByLabel('Share (%)').focus();
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Set share');
    expect(errors).toEqual([]);
  });
});
