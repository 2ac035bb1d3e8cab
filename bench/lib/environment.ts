import os from 'node:os';

/** What the figures were measured on; printed and written with every result. */
export interface BenchEnvironment {
  node: string;
  cpuModel: string;
  cores: number;
  os: string;
  totalMemoryMb: number;
  /** 1-minute load average when the run started: other work on the machine skews every figure. */
  loadAverage1m: number;
  date: string;
}

/** Reads the environment of this run. */
export function describeEnvironment(): BenchEnvironment {
  const cpus = os.cpus();
  return {
    node: process.version,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    totalMemoryMb: Math.round(os.totalmem() / 1024 / 1024),
    loadAverage1m: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
    date: new Date().toISOString(),
  };
}

/** One-line summary for the console. */
export function formatEnvironment(env: BenchEnvironment): string {
  return `node ${env.node} | ${env.cpuModel} x${env.cores} | ${env.os} | ${env.totalMemoryMb} MB | load ${env.loadAverage1m} | ${env.date}`;
}

/** A warning when the machine was already busy (load average over a third of its cores). */
export function busyMachineWarning(env: BenchEnvironment): string | undefined {
  if (env.loadAverage1m <= env.cores / 3) return undefined;
  return `warning: the machine is busy (1-min load ${env.loadAverage1m} on ${env.cores} cores): figures will be noisy; cpu µs/req is the steadiest`;
}
