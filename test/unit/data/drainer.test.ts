/** The drainer's bookkeeping with fake connections: schedule, counts, cancel, removal (issue 5). */
import { afterEach, describe, expect, test } from 'vitest';
import {
  ConnList,
  ConnTracker,
  DRAIN_CLOSE_CODE,
  trackedConnection,
  type TrackedConnection,
} from '../../../src/data/conn-tracker.js';
import { Drainer } from '../../../src/data/drainer.js';
import type { UpstreamPool } from '../../../src/data/upstream-pool.js';
import { createLogger } from '../../../src/observability/logger.js';
import { createMetrics, type Metrics } from '../../../src/observability/metrics.js';
import { eventually } from '../../helpers/eventually.js';
import { readMetric } from '../../helpers/metrics.js';

const drainers: Drainer[] = [];
afterEach(() => {
  for (const d of drainers.splice(0)) d.close();
});

/** Just what the drainer reads from an endpoint. */
function endpoint(url: string): UpstreamPool {
  return { url, conns: new ConnList() } as unknown as UpstreamPool;
}

interface Fake extends TrackedConnection {
  closedWith: number[];
}

/** An HTTP-exchange-like connection: `closes` says whether close() closes it. */
function exchange(pool: string, closes = true): Fake {
  const conn: Fake = {
    poolName: pool,
    longLived: false,
    closedWith: [],
    close(code: number) {
      if (!closes) return false;
      conn.closedWith.push(code);
      conn.trackList?.remove(conn);
      return true;
    },
    destroy() {},
    trackPrev: null,
    trackNext: null,
    trackList: null,
    trackDrain: null,
  };
  return conn;
}

function value(metrics: Metrics, name: 'draining' | 'closed' | 'completed'): Promise<number> {
  return name === 'draining'
    ? readMetric(metrics, 'switchyard_draining_connections')
    : readMetric(metrics, 'switchyard_drained_connections_total', { outcome: name });
}

function makeDrainer(drainTimeout: number, drainSpread: number, random?: () => number) {
  const metrics = createMetrics({ defaultMetrics: false });
  const tracker = new ConnTracker();
  const drainer = new Drainer(
    { drainTimeout, drainSpread },
    {
      log: createLogger({ level: 'silent' }),
      metrics,
      tracker,
      ...(random === undefined ? {} : { random }),
    },
  );
  drainers.push(drainer);
  return { drainer, metrics, tracker };
}

describe('ConnList', () => {
  test('adds and removes in O(1) from any position, and tells the drain watcher', () => {
    const list = new ConnList();
    const [a, b, c] = [exchange('p'), exchange('p'), exchange('p')];
    list.add(a);
    list.add(b);
    list.add(c);
    expect(list.toArray()).toEqual([c, b, a]);
    const ended: TrackedConnection[] = [];
    b.trackDrain = { ended: (x) => ended.push(x) };
    list.remove(b);
    expect(list.toArray()).toEqual([c, a]);
    expect(ended).toEqual([b]);
    expect(b.trackDrain).toBeNull();
    list.remove(b); // not in the list any more: no-op
    list.remove(c);
    list.remove(a);
    expect(list.size).toBe(0);
    expect(list.toArray()).toEqual([]);
  });
});

describe('Drainer', () => {
  test('weight to 0: connections are closed with 1012 after drainTimeout, within the spread', async () => {
    const { drainer, metrics } = makeDrainer(60, 40);
    const ep = endpoint('http://a');
    const conns = [exchange('blue'), exchange('blue'), exchange('blue')];
    for (const c of conns) ep.conns.add(c);
    drainer.update(new Set([ep]), []);
    const started = performance.now();
    drainer.update(new Set(), []);
    expect(drainer.isDraining(ep)).toBe(true);
    expect(await value(metrics, 'draining')).toBe(3);
    await eventually(() => expect(conns.every((c) => c.closedWith.length === 1)).toBe(true));
    expect(performance.now() - started).toBeGreaterThanOrEqual(59);
    for (const c of conns) expect(c.closedWith).toEqual([DRAIN_CLOSE_CODE]);
    expect(drainer.isDraining(ep)).toBe(false);
    expect(await value(metrics, 'closed')).toBe(3);
    expect(await value(metrics, 'draining')).toBe(0);
  });

  test('connections that end by themselves count as completed; a request still waiting is left alone', async () => {
    const { drainer, metrics } = makeDrainer(30, 0);
    const ep = endpoint('http://a');
    const quick = exchange('blue');
    const waiting = exchange('blue', false);
    ep.conns.add(quick);
    ep.conns.add(waiting);
    drainer.update(new Set([ep]), []);
    drainer.update(new Set(), []);
    ep.conns.remove(quick);
    expect(await value(metrics, 'completed')).toBe(1);
    // Past the deadline the waiting request is not closed and the drain stays open...
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(waiting.closedWith).toEqual([]);
    expect(drainer.isDraining(ep)).toBe(true);
    // ...until it completes.
    ep.conns.remove(waiting);
    expect(drainer.isDraining(ep)).toBe(false);
    expect(await value(metrics, 'completed')).toBe(2);
    expect(await value(metrics, 'closed')).toBe(0);
  });

  test('live again before the deadline (rollback): cancelled, nothing closed', async () => {
    const { drainer, metrics } = makeDrainer(40, 0);
    const ep = endpoint('http://a');
    const conn = exchange('blue');
    ep.conns.add(conn);
    drainer.update(new Set([ep]), []);
    drainer.update(new Set(), []);
    drainer.update(new Set([ep]), []);
    expect(drainer.isDraining(ep)).toBe(false);
    expect(conn.trackDrain).toBeNull();
    expect(await value(metrics, 'draining')).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(conn.closedWith).toEqual([]);
  });

  test('upgraded connections of the endpoint are drained too; removed endpoints drain even if never live', async () => {
    const { drainer, tracker } = makeDrainer(10, 10, () => 0.5);
    const ep = endpoint('http://b');
    const codes: number[] = [];
    const untrack = tracker.add(
      ep.url,
      trackedConnection(
        'green',
        (code) => {
          codes.push(code);
          untrack();
        },
        () => undefined,
      ),
    );
    drainer.update(new Set(), [ep]);
    expect(drainer.isDraining(ep)).toBe(true);
    await eventually(() => expect(codes).toEqual([DRAIN_CLOSE_CODE]));
    expect(tracker.size).toBe(0);
  });

  test('close() stops every drain without closing connections', async () => {
    const { drainer } = makeDrainer(20, 0);
    const ep = endpoint('http://a');
    const conn = exchange('blue');
    ep.conns.add(conn);
    drainer.update(new Set([ep]), []);
    drainer.update(new Set(), []);
    drainer.close();
    expect(drainer.draining).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(conn.closedWith).toEqual([]);
  });
});
