import { describe, expect, it } from 'vitest';
import { parseStepsFlag } from '../../../src/cli/rollout-command.js';
import { DEFAULT_ANALYSIS } from '../../../src/rollout/analysis.js';
import { DEFAULT_STEPS, parseRolloutStart } from '../../../src/rollout/rollout-plan.js';
import type { RoutingTable } from '../../../src/table/types.js';

const TABLE: RoutingTable = {
  revision: 3,
  pools: {
    blue: { version: '1111111', endpoints: ['http://127.0.0.1:1'] },
    green: { version: '2222222', endpoints: ['http://127.0.0.1:2'] },
    canary: { version: '3333333', endpoints: ['http://127.0.0.1:3'] },
  },
  weights: { blue: 3000, green: 7000, canary: 0 },
  rules: [],
  updatedAt: '2026-01-01T00:00:00.000Z',
  updatedBy: 'test',
};

function problem(body: unknown): string {
  try {
    parseRolloutStart(body, TABLE);
  } catch (err) {
    return (err as Error).message;
  }
  return 'accepted';
}

describe('parseRolloutStart (SPEC §9)', () => {
  it('fills the defaults: the baseline is the pool with the most weight, SPEC steps', () => {
    const plan = parseRolloutStart({ pool: 'canary' }, TABLE);
    expect(plan).toMatchObject({ pool: 'canary', baseline: 'green', strategy: 'steps' });
    expect(plan.steps).toEqual(DEFAULT_STEPS);
    expect(plan.steps.map((s) => ('basisPoints' in s ? s.basisPoints : s.pause))).toEqual([
      500,
      '1m',
      2500,
      '2m',
      5000,
      '2m',
      10_000,
    ]);
    expect(plan.analysis).toEqual(DEFAULT_ANALYSIS);
  });

  it('blue-green is one step to 100 %', () => {
    const plan = parseRolloutStart({ pool: 'canary', strategy: 'blue-green' }, TABLE);
    expect(plan.steps).toEqual([{ basisPoints: 10_000 }]);
  });

  it('reads weights, basis points, timed and approval pauses', () => {
    const plan = parseRolloutStart(
      {
        pool: 'canary',
        baseline: 'blue',
        steps: [
          { weight: 2.5 },
          { pause: '90s' },
          { basisPoints: 5000 },
          { pause: 'approval' },
          { weight: 100 },
        ],
      },
      TABLE,
    );
    expect(plan.baseline).toBe('blue');
    expect(plan.steps).toEqual([
      { basisPoints: 250 },
      { pause: '90s', pauseMs: 90_000 },
      { basisPoints: 5000 },
      { pause: 'approval' },
      { basisPoints: 10_000 },
    ]);
  });

  it('names the field of every problem', () => {
    expect(
      problem({ pool: 'canary', steps: [{ weight: 50 }, { weight: 20 }, { weight: 100 }] }),
    ).toMatch(/^steps\[1\]: weights must not decrease/);
    expect(
      problem({ pool: 'canary', steps: [{ weight: 10, pause: '1m' }, { weight: 100 }] }),
    ).toMatch(/^steps\[0\]: give exactly one/);
    expect(problem({ pool: 'canary', steps: [] })).toMatch(/^steps: /);
    expect(problem({ pool: 'canary', strategy: 'big-bang' })).toMatch(/^strategy: /);
    expect(problem({ pool: 'canary', baseline: 'purple' })).toMatch(/^baseline: no pool named/);
    expect(problem({ pool: 'canary', webhooks: {} })).toMatch(/^webhooks: must be an array/);
    expect(problem({ pool: 'canary', webhooks: [{ url: 'ftp://x', events: ['step'] }] })).toMatch(
      /^webhooks\[0\]\.url: only http/,
    );
    expect(problem({ pool: 'canary', analysis: { minRequests: 0 } })).toMatch(
      /^analysis\.minRequests: /,
    );
    expect(problem([])).toMatch(/^body: /);
  });
});

describe('switchyard rollout --steps', () => {
  it('reads percentages, durations and approval', () => {
    expect(parseStepsFlag('5,1m,25%,approval,100')).toEqual([
      { weight: 5 },
      { pause: '1m' },
      { weight: 25 },
      { pause: 'approval' },
      { weight: 100 },
    ]);
    expect(() => parseStepsFlag('5,,100')).toThrow(/item 2/);
  });
});
