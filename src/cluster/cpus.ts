/**
 * How many CPUs this process may use, for `workers: auto` (SPEC §13). os.availableParallelism()
 * counts the cores of the CPU set (sched_getaffinity) but not a CFS quota: a container limited
 * to 2 CPUs (`docker run --cpus 2`, a Kubernetes CPU limit) on a 32-core host sees 32 there, and
 * 32 workers would be throttled in turn. The quota is read from the cgroup the process is in,
 * v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us` / `cpu.cfs_period_us`), including every ancestor
 * cgroup, since a parent's limit applies to its children too.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

/** CPUs a cgroup v2 `cpu.max` allows (`"200000 100000"` → 2), or null for `max` / unreadable. */
export function parseCpuMax(text: string): number | null {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || quota === 'max') return null;
  return quotaCpus(Number(quota), Number(period ?? 100_000));
}

/** CPUs a cgroup v1 quota and period allow, or null for no limit (`-1`) / unreadable. */
export function parseCfsQuota(quotaText: string, periodText: string): number | null {
  return quotaCpus(Number(quotaText.trim()), Number(periodText.trim()));
}

function quotaCpus(quota: number, period: number): number | null {
  if (!Number.isFinite(quota) || !Number.isFinite(period) || quota <= 0 || period <= 0) return null;
  return quota / period;
}

/** The cgroup paths of this process from /proc/self/cgroup: v2's and v1's cpu controller's. */
export function parseProcCgroup(text: string): { v2: string | null; v1Cpu: string | null } {
  let v2: string | null = null;
  let v1Cpu: string | null = null;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (m === null) continue;
    const [, id, controllers, path] = m as unknown as [string, string, string, string];
    if (id === '0' && controllers === '') v2 = path;
    else if (controllers.split(',').includes('cpu')) v1Cpu = path;
  }
  return { v2, v1Cpu };
}

/** `/a/b` → [`/a/b`, `/a`, `/`]: a cgroup and its ancestors. */
function selfAndAncestors(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '');
  const out: string[] = [];
  for (let i = parts.length; i >= 0; i--) out.push(`/${parts.slice(0, i).join('/')}`);
  return out;
}

function readOrNull(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/**
 * The smallest CPU quota on the cgroup path of this process, in CPUs (may be fractional), or
 * null when there is none. `fsRoot` is `/` except in tests, which point it at fixture trees.
 * Inside a container the cgroup namespace makes the own cgroup the mount root, so the mount
 * root itself is read as well.
 */
export function cgroupCpuLimit(fsRoot = '/'): number | null {
  const procText = readOrNull(join(fsRoot, 'proc/self/cgroup'));
  const paths = parseProcCgroup(procText ?? '');
  const limits: number[] = [];
  const v2Root = join(fsRoot, 'sys/fs/cgroup');
  for (const p of selfAndAncestors(paths.v2 ?? '/')) {
    const text = readOrNull(join(v2Root, p, 'cpu.max'));
    const cpus = text === null ? null : parseCpuMax(text);
    if (cpus !== null) limits.push(cpus);
  }
  if (limits.length === 0) {
    for (const mount of ['sys/fs/cgroup/cpu,cpuacct', 'sys/fs/cgroup/cpu']) {
      const root = join(fsRoot, mount);
      for (const p of selfAndAncestors(paths.v1Cpu ?? '/')) {
        const quota = readOrNull(join(root, p, 'cpu.cfs_quota_us'));
        const period = readOrNull(join(root, p, 'cpu.cfs_period_us'));
        const cpus = quota === null || period === null ? null : parseCfsQuota(quota, period);
        if (cpus !== null) limits.push(cpus);
      }
      if (limits.length > 0) break;
    }
  }
  return limits.length === 0 ? null : Math.min(...limits);
}

/**
 * Workers for `auto`: the cores available (CPU set), capped by the cgroup quota rounded down
 * (1.5 CPUs → 1 worker: a second would be throttled half the time), at least 1.
 */
export function autoWorkers(options: { fsRoot?: string; cores?: number } = {}): {
  workers: number;
  cores: number;
  cgroupCpus: number | null;
} {
  const cores = options.cores ?? availableParallelism();
  const cgroupCpus = cgroupCpuLimit(options.fsRoot);
  const capped = cgroupCpus === null ? cores : Math.min(cores, Math.floor(cgroupCpus));
  return { workers: Math.max(1, capped), cores, cgroupCpus };
}
