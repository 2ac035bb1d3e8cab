import { execFileSync } from 'node:child_process';
import os from 'node:os';

/** Which CPUs the bench uses for what; `undefined` CPUs mean "not pinned". */
export interface Pinning {
  enabled: boolean;
  /** CPU for the process under test (proxy, peer). */
  proxyCpu: number | undefined;
  /** CPU for the load generator (this process) and the upstreams. */
  loadCpu: number | undefined;
  description: string;
}

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Proxy on the last CPU, load generator + upstreams on CPU 0: the proxy then has a core to
 * itself and its CPU time per request is not inflated by the client's work.
 */
export function choosePinning(): Pinning {
  const cores = os.cpus().length;
  if (process.env.BENCH_NO_PIN === '1') {
    return {
      enabled: false,
      proxyCpu: undefined,
      loadCpu: undefined,
      description: 'off (BENCH_NO_PIN=1)',
    };
  }
  if (cores < 2 || !hasTaskset()) {
    return {
      enabled: false,
      proxyCpu: undefined,
      loadCpu: undefined,
      description: cores < 2 ? 'off (one CPU)' : 'off (taskset not found)',
    };
  }
  const proxyCpu = cores - 1;
  return {
    enabled: true,
    proxyCpu,
    loadCpu: 0,
    description: `proxy/peer on CPU ${proxyCpu}; load generator (autocannon) and upstreams on CPU 0`,
  };
}

/** Pins this process (all its threads) to the load CPU. */
export function pinSelf(pinning: Pinning): void {
  if (!pinning.enabled || pinning.loadCpu === undefined) return;
  execFileSync('taskset', ['-a', '-p', '-c', String(pinning.loadCpu), String(process.pid)], {
    stdio: 'ignore',
  });
}

/** Wraps a command so it starts pinned to `cpu` (taskset execs, so the pid stays the same). */
export function pinnedCommand(
  cpu: number | undefined,
  command: string,
  args: readonly string[],
): { command: string; args: string[] } {
  if (cpu === undefined) return { command, args: [...args] };
  return { command: 'taskset', args: ['-c', String(cpu), command, ...args] };
}
