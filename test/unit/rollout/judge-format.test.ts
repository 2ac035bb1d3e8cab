/** The numbers in the judge's reasons. */
import { expect, test } from 'vitest';
import {
  formatMs,
  formatPercent,
  group,
  quantileLabel,
} from '../../../src/rollout/judge-format.js';

test('counts, percentages, durations and quantile labels', () => {
  expect([0, 999, 1_000, 33_910, 1_234_567].map(group)).toEqual([
    '0',
    '999',
    '1,000',
    '33,910',
    '1,234,567',
  ]);
  expect([0, 23 / 561, 41 / 33_910, 0.2, 1, 0.00001].map(formatPercent)).toEqual([
    '0 %',
    '4.1 %',
    '0.12 %',
    '20 %',
    '100 %',
    '0.001 %',
  ]);
  expect([4.5, 52.2, 1234].map(formatMs)).toEqual(['4.5 ms', '52 ms', '1.23 s']);
  expect([0.99, 0.999, 0.5].map(quantileLabel)).toEqual(['p99', 'p99.9', 'p50']);
});
