/**
 * `workers: auto` (issue 16): the CPU count honours a cgroup CPU limit, v2 and v1, read from
 * fixture trees shaped like /proc and /sys/fs/cgroup.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  autoWorkers,
  cgroupCpuLimit,
  parseCfsQuota,
  parseCpuMax,
  parseProcCgroup,
} from '../../../src/cluster/cpus.js';

const fixture = (name: string): string =>
  fileURLToPath(new URL(`../../fixtures/cgroup/${name}/`, import.meta.url));

describe('cgroup CPU limit parsing', () => {
  it('reads cpu.max (v2)', () => {
    expect(parseCpuMax('200000 100000\n')).toBe(2);
    expect(parseCpuMax('50000 100000')).toBe(0.5);
    expect(parseCpuMax('max 100000\n')).toBeNull();
    expect(parseCpuMax('')).toBeNull();
    expect(parseCpuMax('garbage')).toBeNull();
  });

  it('reads cfs_quota_us / cfs_period_us (v1)', () => {
    expect(parseCfsQuota('300000\n', '100000\n')).toBe(3);
    expect(parseCfsQuota('-1\n', '100000\n')).toBeNull();
    expect(parseCfsQuota('100000', '0')).toBeNull();
  });

  it('finds the v2 path and the v1 cpu controller path in /proc/self/cgroup', () => {
    expect(parseProcCgroup('0::/system.slice/a.scope\n')).toEqual({
      v2: '/system.slice/a.scope',
      v1Cpu: null,
    });
    expect(parseProcCgroup('4:cpu,cpuacct:/docker/x\n2:cpuset:/docker/x\n')).toEqual({
      v2: null,
      v1Cpu: '/docker/x',
    });
  });
});

describe('auto workers (issue 16)', () => {
  it('a container limited to 2 CPUs on a 32-core host gets 2 workers (v2)', () => {
    expect(cgroupCpuLimit(fixture('v2-container'))).toBe(2);
    expect(autoWorkers({ fsRoot: fixture('v2-container'), cores: 32 })).toEqual({
      workers: 2,
      cores: 32,
      cgroupCpus: 2,
    });
  });

  it("a parent cgroup's limit applies, rounded down (1.5 CPUs: 1 worker)", () => {
    expect(cgroupCpuLimit(fixture('v2-nested'))).toBe(1.5);
    expect(autoWorkers({ fsRoot: fixture('v2-nested'), cores: 32 }).workers).toBe(1);
  });

  it('v1: the quota at the mount root of a container (its own cgroup) counts', () => {
    expect(autoWorkers({ fsRoot: fixture('v1-container'), cores: 32 }).workers).toBe(3);
  });

  it('no limit: the available cores; a limit above the cores: the cores', () => {
    expect(autoWorkers({ fsRoot: fixture('unlimited'), cores: 6 }).workers).toBe(6);
    expect(autoWorkers({ fsRoot: fixture('v1-container'), cores: 2 }).workers).toBe(2);
    expect(autoWorkers({ fsRoot: fixture('does-not-exist'), cores: 4 })).toEqual({
      workers: 4,
      cores: 4,
      cgroupCpus: null,
    });
  });
});
