/**
 * PoolRates and FleetRates (issue 14): req/s, error ratio and p99 from differences of cumulative
 * counters, of one replica or of every replica of a fleet.
 */
import { describe, expect, it } from 'vitest';
import { FleetRates, PoolRates } from '../../../src/admin/pool-rates.js';
import type { PoolOutcomeSnapshot } from '../../../src/data/pool-outcomes.js';
import { LatencyHistogram } from '../../../src/rollout/latency-histogram.js';

function times(n: number, ms: number): number[] {
  return Array.from({ length: n }, () => ms);
}

function counts(
  pools: Record<string, { requests: number; errors: number; latenciesMs: number[] }>,
): Map<string, PoolOutcomeSnapshot> {
  const out = new Map<string, PoolOutcomeSnapshot>();
  for (const [pool, c] of Object.entries(pools)) {
    const latency = new LatencyHistogram();
    for (const ms of c.latenciesMs) latency.observe(ms);
    out.set(pool, { requests: c.requests, errors: c.errors, latency });
  }
  return out;
}

describe('PoolRates', () => {
  it('reports nothing until it has two samples', () => {
    const rates = new PoolRates();
    expect(rates.report()).toEqual({ windowMs: 0, pools: {} });
    rates.sample(counts({ blue: { requests: 5, errors: 0, latenciesMs: [] } }), 1000);
    expect(rates.report()).toEqual({ windowMs: 0, pools: {} });
  });

  it('turns the difference between the oldest and newest sample into rates', () => {
    const rates = new PoolRates(3);
    const fast = times(100, 10);
    rates.sample(counts({ blue: { requests: 100, errors: 1, latenciesMs: fast } }), 0);
    rates.sample(
      counts({
        blue: {
          requests: 300,
          errors: 5,
          latenciesMs: [...fast, ...times(197, 10), 900, 900, 900],
        },
        canary: { requests: 20, errors: 20, latenciesMs: times(20, 50) },
      }),
      2000,
    );
    const report = rates.report();
    expect(report.windowMs).toBe(2000);
    // 200 new requests in 2 s, 4 of them errors; only the new latencies count.
    expect(report.pools.blue?.requestsPerSecond).toBe(100);
    expect(report.pools.blue?.errorRatio).toBeCloseTo(0.02);
    // 3 of the 200 new samples are slow (900 ms): p99 is the slow bucket, within ~4.4 %.
    expect(report.pools.blue?.p99Ms).toBeGreaterThan(900);
    expect(report.pools.blue?.p99Ms).toBeLessThan(900 * 1.05);
    // A pool first seen in the newest sample counts from zero.
    expect(report.pools.canary).toMatchObject({ requestsPerSecond: 10, errorRatio: 1 });
  });

  it('keeps only the newest samples, and no figures for a pool without requests', () => {
    const rates = new PoolRates(2);
    rates.sample(counts({ blue: { requests: 0, errors: 0, latenciesMs: [] } }), 0);
    rates.sample(counts({ blue: { requests: 50, errors: 0, latenciesMs: times(50, 5) } }), 1000);
    rates.sample(counts({ blue: { requests: 50, errors: 0, latenciesMs: times(50, 5) } }), 2000);
    expect(rates.report()).toEqual({
      windowMs: 1000,
      pools: { blue: { requestsPerSecond: 0, errorRatio: null, p99Ms: null } },
    });
    rates.clear();
    expect(rates.report().windowMs).toBe(0);
  });
});

/** Counters of one pool, `blue`: `requests` so far, `errors` of them, all at 10 ms. */
function blue(requests: number, errors = 0): Map<string, PoolOutcomeSnapshot> {
  return counts({ blue: { requests, errors, latenciesMs: times(requests, 10) } });
}

function fleet(
  byReplica: Record<string, Map<string, PoolOutcomeSnapshot>>,
): Map<string, Map<string, PoolOutcomeSnapshot>> {
  return new Map(Object.entries(byReplica));
}

describe('FleetRates', () => {
  it('sums every replica’s own rate', () => {
    const rates = new FleetRates();
    rates.sample(fleet({ a: blue(100), b: blue(1000, 10) }), 0);
    rates.sample(fleet({ a: blue(300), b: blue(1400, 30) }), 2000);
    const r = rates.report();
    expect(r).toMatchObject({ windowMs: 2000, replicas: 2 });
    expect(r.pools.blue?.requestsPerSecond).toBe(300); // (200 + 400) / 2 s
    expect(r.pools.blue?.errorRatio).toBe(20 / 600);
    expect(r.pools.blue?.p99Ms).toBeGreaterThan(9);
  });

  it('counts a replica that joins from its second sample, over its own span', () => {
    const rates = new FleetRates();
    rates.sample(fleet({ a: blue(0) }), 0);
    rates.sample(fleet({ a: blue(100), b: blue(5000) }), 1000);
    // b's 5,000 requests before it was first seen are not a rate.
    expect(rates.report().pools.blue?.requestsPerSecond).toBe(100);
    expect(rates.report().replicas).toBe(1);
    rates.sample(fleet({ a: blue(200), b: blue(5050) }), 2000);
    // a: 200 in 2 s; b: 50 in its 1 s.
    expect(rates.report().pools.blue?.requestsPerSecond).toBe(150);
    expect(rates.report().replicas).toBe(2);
  });

  it('a replica that restarted counts from its first sample after, one that stopped adds 0', () => {
    const rates = new FleetRates();
    rates.sample(fleet({ a: blue(1000), gone: blue(700) }), 0);
    rates.sample(fleet({ a: blue(1100), gone: blue(700) }), 1000);
    rates.sample(fleet({ a: blue(30), gone: blue(700) }), 2000); // a restarted
    let r = rates.report();
    expect(r.pools.blue?.requestsPerSecond).toBe(0);
    expect(r.replicas).toBe(0);
    rates.sample(fleet({ a: blue(130), gone: blue(700) }), 3000);
    r = rates.report();
    expect(r.pools.blue?.requestsPerSecond).toBe(100);
    expect(r.pools.blue?.errorRatio).toBe(0);
    expect(r.replicas).toBe(1);
  });
});
