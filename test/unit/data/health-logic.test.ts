/** Pure parts of endpoint health and the retry budget (issue 5). */
import { describe, expect, test } from 'vitest';
import { configFrom, ConfigError, loadConfig } from '../../../src/config/load.js';
import { ejectionDurationMs, healthOptionsFrom } from '../../../src/data/health-checker.js';
import { RetryBudget, RetryBudgets, slidingRate } from '../../../src/data/retry-budget.js';
import { PoolTrafficCounter } from '../../../src/data/traffic-window.js';

describe('ejectionDurationMs', () => {
  test('doubles from the base on each ejection in a row, capped at the maximum', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => ejectionDurationMs(10_000, 120_000, n))).toEqual([
      10_000, 20_000, 40_000, 80_000, 120_000, 120_000,
    ]);
    expect(ejectionDurationMs(10_000, 120_000, 1_000)).toBe(120_000);
  });
});

describe('healthOptionsFrom', () => {
  test('matches the schema defaults, except that active checks are off without an interval', () => {
    const c = configFrom({});
    const fromConfig = healthOptionsFrom(c);
    const fromNothing = healthOptionsFrom({});
    expect(fromConfig.health.intervalMs).toBe(2_000);
    expect(fromNothing.health.intervalMs).toBe(0);
    expect({ ...fromNothing.health, intervalMs: 2_000 }).toEqual(fromConfig.health);
    expect(fromNothing.retryBudget).toEqual(fromConfig.retryBudget);
  });
});

describe('health config keys', () => {
  test('are flags and environment variables; values that do not parse are errors', () => {
    const c = loadConfig(
      [
        '--health-check-path',
        '/ready',
        '--health-check-interval',
        '500ms',
        '--ejection-threshold',
        '0',
      ],
      {
        SWITCHYARD_HEALTH_CHECK_TIMEOUT: '250ms',
        SWITCHYARD_UNHEALTHY_THRESHOLD: '4',
        SWITCHYARD_MAX_EJECTION_DURATION: '1m',
        SWITCHYARD_RETRY_BUDGET_PERCENT: '50',
      },
    );
    expect(c).toMatchObject({
      healthCheckPath: '/ready',
      healthCheckInterval: 500,
      healthCheckTimeout: 250,
      unhealthyThreshold: 4,
      ejectionThreshold: 0,
      maxEjectionDuration: 60_000,
      retryBudgetPercent: 50,
      healthyThreshold: 2,
      ejectionDuration: 10_000,
      retryBudgetMin: 10,
    });
    expect(() => loadConfig(['--health-check-path', 'healthz'], {})).toThrow(ConfigError);
    expect(() => loadConfig(['--retry-budget-percent', '150'], {})).toThrow(ConfigError);
    expect(() => loadConfig(['--healthy-threshold', '0'], {})).toThrow(ConfigError);
    expect(() => loadConfig(['--health-check-timeout', '0'], {})).toThrow(ConfigError);
  });
});

describe('RetryBudget', () => {
  const T0 = 1_700_000_000_000; // a whole second

  function traffic(requests: number, atMs: number): PoolTrafficCounter {
    const t = new PoolTrafficCounter();
    for (let i = 0; i < requests; i++) t.record(atMs);
    return t;
  }

  function take(budget: RetryBudget, t: PoolTrafficCounter, atMs: number, n: number): number {
    let granted = 0;
    for (let i = 0; i < n; i++) if (budget.tryAcquire(atMs, t)) granted++;
    return granted;
  }

  test('grants percent % of the requests of the last second', () => {
    const t = traffic(1_000, T0 + 100);
    expect(take(new RetryBudget({ percent: 20, minPerSecond: 10 }), t, T0 + 200, 1_000)).toBe(200);
  });

  test('grants the floor when traffic is low, and nothing with a zero budget', () => {
    const t = traffic(5, T0);
    expect(take(new RetryBudget({ percent: 20, minPerSecond: 10 }), t, T0, 100)).toBe(10);
    expect(take(new RetryBudget({ percent: 0, minPerSecond: 0 }), t, T0, 100)).toBe(0);
  });

  test('the window slides: last second retries weigh less as the second passes', () => {
    const budget = new RetryBudget({ percent: 0, minPerSecond: 10 });
    const t = new PoolTrafficCounter();
    expect(take(budget, t, T0 + 900, 100)).toBe(10);
    // 500 ms into the next second, half of the previous second's 10 retries still count.
    expect(take(budget, t, T0 + 1_500, 100)).toBe(5);
    // Two seconds on, nothing from before counts.
    expect(take(budget, t, T0 + 3_000, 100)).toBe(10);
  });

  test('slidingRate weighs the previous second by the part of it still in the window', () => {
    expect(slidingRate(4, 10, 0)).toBe(14);
    expect(slidingRate(4, 10, 250)).toBe(11.5);
    expect(slidingRate(4, 10, 999)).toBeCloseTo(4.01);
  });

  test('RetryBudgets keeps one budget per pool and forgets pools that left', () => {
    const budgets = new RetryBudgets({ percent: 20, minPerSecond: 1 });
    const blue = budgets.for('blue');
    expect(budgets.for('blue')).toBe(blue);
    budgets.retain(['green']);
    expect(budgets.for('blue')).not.toBe(blue);
  });
});
