/**
 * `--workers auto` under a real cgroup CPU limit (issue 16): `switchyard proxy` started inside a
 * cgroup limited to 1 CPU, on a host with more cores, runs 1 worker; started outside it, one per
 * core. The cgroup is made for the test (v1 `cpu` controller or v2 `cpu.max`) and removed after;
 * where cgroups cannot be made (no root, read-only /sys/fs/cgroup) the test is skipped. The
 * parser itself is covered on fixture trees in test/unit/cluster/cpus.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { closeAfterEach } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';
import { spawnProxy } from '../helpers/proxy-process.js';
import { COLOUR_VERSIONS, startColours } from '../helpers/reference.js';

const closers = closeAfterEach();

/** Where a CPU-limited cgroup can be made here: the v1 cpu hierarchy or the v2 root, or null. */
function cgroupParent(): { dir: string; version: 1 | 2 } | null {
  for (const dir of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct']) {
    if (existsSync(join(dir, 'cpu.cfs_quota_us'))) return { dir, version: 1 };
  }
  const v2 = '/sys/fs/cgroup';
  try {
    const controllers = readFileSync(join(v2, 'cgroup.subtree_control'), 'utf8');
    if (controllers.split(/\s+/).includes('cpu')) return { dir: v2, version: 2 };
  } catch {
    // no cgroup v2 here
  }
  return null;
}

/** Makes a cgroup limited to `cpus` CPUs and returns its directory, or null when impossible. */
function makeLimitedCgroup(cpus: number): string | null {
  const parent = cgroupParent();
  if (parent === null) return null;
  const dir = join(parent.dir, `switchyard-test-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(dir);
  } catch {
    return null;
  }
  try {
    const period = 100_000;
    if (parent.version === 1) {
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(period));
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(cpus * period));
    } else {
      writeFileSync(join(dir, 'cpu.max'), `${cpus * period} ${period}`);
    }
    return dir;
  } catch {
    rmdirSync(dir);
    return null;
  }
}

// Probed once at load: a cgroup is made and removed again.
const probe = makeLimitedCgroup(1);
if (probe !== null) rmdirSync(probe);
const supported = probe !== null && availableParallelism() >= 2;

describe.skipIf(!supported)('--workers auto under a real cgroup CPU limit', () => {
  test('limited to 1 CPU: 1 worker; unlimited: one per core', async () => {
    const colours = await startColours(closers);
    const args = [
      '--workers',
      'auto',
      '--pool',
      `blue=${COLOUR_VERSIONS.blue}@${colours.blue.url}`,
      '--health-check-interval',
      '0',
      '--shutdown-delay',
      '0',
    ];
    const dir = makeLimitedCgroup(1);
    if (dir === null) throw new Error('could not make the cgroup the probe made');
    // Runs last (closers run newest first): the cgroup must be empty to go.
    closers.push(() => eventually(() => rmdirSync(dir), { timeoutMs: 5_000, intervalMs: 50 }));
    const limited = await spawnProxy(args, [], {
      prefix: ['sh', '-c', `echo $$ > ${dir}/cgroup.procs && exec "$0" "$@"`],
    });
    closers.push(() => limited.kill());
    const unlimited = await spawnProxy(args);
    closers.push(() => unlimited.kill());

    const workersOf = (logs: ReadonlyArray<Record<string, unknown>>): unknown =>
      logs.find((l) => l.msg === 'switchyard started')?.workers;
    expect(workersOf(limited.logs)).toBe(1);
    expect(workersOf(unlimited.logs)).toBe(availableParallelism());
    expect((await fetch(limited.proxyUrl)).status).toBe(200);
    expect((await fetch(unlimited.proxyUrl)).status).toBe(200);
  });
});
