import { describe, expect, it } from 'vitest';
import { BurstLog } from '../../../src/lib/burst-log.js';

describe('BurstLog', () => {
  it('logs the first event of each window with the count it suppressed before', () => {
    const lines: Array<{ fields: Record<string, unknown>; message: string }> = [];
    const burst = new BurstLog(
      {
        warn: (fields, message) =>
          lines.push({ fields: fields as Record<string, unknown>, message }),
      },
      'upstream errors',
      1000,
    );
    burst.record({ reason: 'refused' }, 0);
    for (let t = 1; t < 1000; t += 100) burst.record({ reason: 'reset' }, t);
    burst.record({ reason: 'timeout' }, 1000);
    burst.record({ reason: 'timeout' }, 5000);
    expect(lines).toEqual([
      {
        fields: { reason: 'refused', suppressedBefore: 0, windowMs: 1000 },
        message: 'upstream errors',
      },
      {
        fields: { reason: 'timeout', suppressedBefore: 10, windowMs: 1000 },
        message: 'upstream errors',
      },
      {
        fields: { reason: 'timeout', suppressedBefore: 0, windowMs: 1000 },
        message: 'upstream errors',
      },
    ]);
  });
});
