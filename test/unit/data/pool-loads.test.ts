import { describe, expect, it } from 'vitest';
import { ConnTracker, trackedConnection } from '../../../src/data/conn-tracker.js';
import {
  collectPoolLoads,
  DEPARTED_POOL_LIMIT,
  DEPARTED_POOL_MEMORY_MS,
  DepartedPools,
} from '../../../src/data/pool-loads.js';
import { decodeDrainReport, encodeDrainReport } from '../../../src/control/replica-registry.js';

describe('DepartedPools', () => {
  it('remembers pools that left for an hour, forgets those that came back', () => {
    const departed = new DepartedPools();
    departed.tableChanged(['blue', 'green'], new Set(['green']), 0);
    expect([...departed.names(1)]).toEqual(['blue']);
    departed.tableChanged(['green'], new Set(['green', 'blue']), 10);
    expect([...departed.names(11)]).toEqual([]);
    departed.tableChanged(['blue', 'green'], new Set(['green']), 20);
    expect([...departed.names(20 + DEPARTED_POOL_MEMORY_MS - 1)]).toEqual(['blue']);
    expect([...departed.names(20 + DEPARTED_POOL_MEMORY_MS)]).toEqual([]);
  });

  it('keeps at most DEPARTED_POOL_LIMIT, the newest', () => {
    const departed = new DepartedPools();
    const names = Array.from({ length: DEPARTED_POOL_LIMIT + 10 }, (_, i) => `p${i}`);
    names.forEach((name, i) => departed.tableChanged([name], new Set(), i));
    const kept = [...departed.names(names.length)];
    expect(kept).toHaveLength(DEPARTED_POOL_LIMIT);
    expect(kept[0]).toBe('p10');
  });
});

describe('collectPoolLoads', () => {
  it('counts connections by the pool they were routed to, departed pools at 0', () => {
    const tracker = new ConnTracker();
    const noop = (): void => undefined;
    tracker.add('http://shared', trackedConnection('blue', noop, noop));
    tracker.add('http://shared', trackedConnection('green', noop, noop));
    tracker.add('http://other', trackedConnection('constructor', noop, noop));
    const loads = collectPoolLoads({ blue: 0, green: 10_000 }, ['old'], [], tracker);
    expect({ ...loads }).toEqual({
      blue: { weight: 0, inFlight: 0, longLived: 1 },
      green: { weight: 10_000, inFlight: 0, longLived: 1 },
      old: { weight: 0, inFlight: 0, longLived: 0 },
      constructor: { weight: 0, inFlight: 0, longLived: 1 },
    });
  });
});

describe('drain report encoding', () => {
  it('round-trips and refuses anything else', () => {
    const report = { blue: { weight: 0, inFlight: 2, longLived: 1 } };
    expect(decodeDrainReport(encodeDrainReport(report))).toEqual(report);
    for (const bad of [undefined, '', 'x', '[]', '{"a":[1,2]}', '{"a":[1,2,-1]}', '{"a":"1"}'])
      expect(decodeDrainReport(bad)).toBeNull();
  });
});
