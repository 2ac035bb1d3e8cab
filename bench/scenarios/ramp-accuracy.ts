import { Pool } from 'undici';
import { canaryWeights } from '../../src/table/weights.js';
import { createPoolPicker, StickyIdSource } from '../../src/table/sticky-hash.js';
import { closeAll, type BenchChild } from '../lib/child.js';
import type { Check, ScenarioContext, ScenarioResult } from '../lib/scenario.js';
import { round } from '../lib/stats.js';
import {
  admin,
  BENCH_VERSIONS,
  setCanary,
  startReferenceServer,
  startSwitchyard,
  upstreamPoolOf,
} from '../lib/switchyard.js';
import { formatTable } from '../lib/table.js';

const PERCENTS = [1, 5, 25] as const;
// Two stable pools with canary on top: the ramp must not move keys between blue and green.
const BASE_WEIGHTS = { blue: 5000, green: 5000, canary: 0 };
const SHARE_TOLERANCE_PP = 0.5;
const STICKY_HEADER = 'x-bench-key';

interface LevelResult {
  percent: number;
  keys: number;
  canarySharePct: number;
  blueSharePct: number;
  greenSharePct: number;
  /** Keys in the canary at the previous (lower) level that left it at this one. */
  leftCanary: number;
  /** Keys outside the canary at both levels that changed pool (blue<->green). */
  movedBetweenStable: number;
}

/** Pool per key at each level, and the level statistics with the monotonic-ramp checks. */
function analyse(
  keys: readonly string[],
  picks: readonly (readonly (string | undefined)[])[],
): LevelResult[] {
  const out: LevelResult[] = [];
  const base = createPoolPicker(BASE_WEIGHTS);
  let previous: readonly (string | undefined)[] = keys.map((k) => base(k));
  PERCENTS.forEach((percent, level) => {
    const now = picks[level] as readonly (string | undefined)[];
    const count: Record<string, number> = {};
    let leftCanary = 0;
    let movedBetweenStable = 0;
    for (let i = 0; i < keys.length; i++) {
      const pool = now[i] ?? 'none';
      count[pool] = (count[pool] ?? 0) + 1;
      const before = previous[i];
      if (before === 'canary' && pool !== 'canary') leftCanary += 1;
      if (before !== 'canary' && pool !== 'canary' && before !== pool) movedBetweenStable += 1;
    }
    const pct = (pool: string): number => ((count[pool] ?? 0) / keys.length) * 100;
    out.push({
      percent,
      keys: keys.length,
      canarySharePct: pct('canary'),
      blueSharePct: pct('blue'),
      greenSharePct: pct('green'),
      leftCanary,
      movedBetweenStable,
    });
    previous = now;
  });
  return out;
}

async function pickThroughProxy(
  pool: Pool,
  keys: readonly string[],
  concurrency: number,
): Promise<(string | undefined)[]> {
  const out = new Array<string | undefined>(keys.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < keys.length; i = next++) {
      const res = await pool.request({
        path: '/',
        method: 'GET',
        headers: { [STICKY_HEADER]: keys[i] as string },
      });
      await res.body.dump();
      const raw: string[] = [];
      for (const [name, value] of Object.entries(res.headers)) {
        if (typeof value === 'string') raw.push(name, value);
      }
      out[i] = res.statusCode === 200 ? upstreamPoolOf(raw) : `status ${res.statusCode}`;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  return out;
}

/**
 * SPEC §8 ramp-accuracy: the canary's observed share over many distinct keys at 1 %, 5 %, 25 %
 * (blue/green 50/50 underneath), and the monotonic-ramp check. Computed with the product's own
 * picker over 100k keys, then checked through a real proxy (header sticky key) on a subset:
 * every key must land where the picker says.
 */
export async function runRampAccuracy(ctx: ScenarioContext): Promise<ScenarioResult> {
  const keyCount = ctx.quick ? 50_000 : 100_000;
  const proxiedCount = ctx.quick ? 2_000 : 10_000;
  const ids = new StickyIdSource();
  const keys = Array.from({ length: keyCount }, () => ids.next());

  const weightsAt = PERCENTS.map((p) => canaryWeights(BASE_WEIGHTS, 'canary', p * 100));
  const picks = weightsAt.map((w) => {
    const pick = createPoolPicker(w);
    return keys.map((k) => pick(k));
  });
  const levels = analyse(keys, picks);

  // Through the real proxy, on the first `proxiedCount` keys.
  const children: BenchChild[] = [];
  const proxiedKeys = keys.slice(0, proxiedCount);
  let proxied: LevelResult[] = [];
  let disagreements = 0;
  let proxyError: string | undefined;
  try {
    const upstreams = [];
    for (const pool of ['blue', 'green', 'canary'] as const) {
      const up = await startReferenceServer(pool, BENCH_VERSIONS[pool], undefined);
      children.push(up.child);
      upstreams.push(up);
    }
    const proxy = await startSwitchyard({
      pools: upstreams,
      extraArgs: ['--sticky-key', `header:${STICKY_HEADER}`],
    });
    children.push(proxy.child);
    await admin(proxy.adminUrl, 'PUT', '/v1/weights', { weights: BASE_WEIGHTS });
    const client = new Pool(proxy.url, { connections: 32 });
    try {
      const proxiedPicks: (string | undefined)[][] = [];
      for (const [level, percent] of PERCENTS.entries()) {
        await setCanary(proxy.adminUrl, percent);
        const got = await pickThroughProxy(client, proxiedKeys, 32);
        proxiedPicks.push(got);
        const expected = picks[level] as (string | undefined)[];
        got.forEach((pool, i) => {
          if (pool !== expected[i]) disagreements += 1;
        });
      }
      proxied = analyse(proxiedKeys, proxiedPicks);
      ctx.log(
        `  ${proxiedCount} keys x ${PERCENTS.length} levels through the proxy: ${disagreements} disagreements with the picker`,
      );
    } finally {
      await client.close();
    }
  } catch (err) {
    proxyError = (err as Error).message;
  } finally {
    await closeAll(children);
  }

  const rows = [
    ['canary %', 'source', 'keys', 'canary %', 'blue %', 'green %', 'left canary', 'blue<->green'],
  ];
  for (const [name, list] of [
    ['picker', levels],
    ['proxy', proxied],
  ] as const) {
    for (const l of list) {
      rows.push([
        String(l.percent),
        name,
        String(l.keys),
        l.canarySharePct.toFixed(2),
        l.blueSharePct.toFixed(2),
        l.greenSharePct.toFixed(2),
        String(l.leftCanary),
        String(l.movedBetweenStable),
      ]);
    }
  }
  const checks: Check[] = levels.map((l) => ({
    name: `canary ${l.percent} %: observed share within ${SHARE_TOLERANCE_PP} pp (${keyCount} keys)`,
    ok: Math.abs(l.canarySharePct - l.percent) <= SHARE_TOLERANCE_PP,
    detail: `${l.canarySharePct.toFixed(2)} %`,
    hard: true,
  }));
  const leaks = levels.reduce((n, l) => n + l.leftCanary + l.movedBetweenStable, 0);
  checks.push({
    name: 'monotonic ramp: no key leaves the canary as it grows, none moves blue<->green',
    ok: leaks === 0,
    detail: `${leaks} violations`,
    hard: true,
  });
  checks.push({
    name: `proxy agrees with the picker for every key (${proxiedCount} keys x ${PERCENTS.length})`,
    ok: proxyError === undefined && disagreements === 0,
    detail: proxyError ?? `${disagreements} disagreements`,
    hard: true,
  });
  const toJson = (l: LevelResult): Record<string, number> => ({
    ...l,
    canarySharePct: round(l.canarySharePct, 3),
    blueSharePct: round(l.blueSharePct, 3),
    greenSharePct: round(l.greenSharePct, 3),
  });
  return {
    table: formatTable(rows),
    checks,
    warnings: [],
    data: {
      baseWeights: BASE_WEIGHTS,
      keys: keyCount,
      proxiedKeys: proxiedCount,
      picker: levels.map(toJson),
      proxy: proxied.map(toJson),
      disagreements,
      proxyError: proxyError ?? null,
    },
  };
}
