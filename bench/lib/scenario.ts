import type { Pinning } from './pinning.js';

/** What every scenario gets from the runner. */
export interface ScenarioContext {
  pinning: Pinning;
  /** Short runs for a smoke test of the suite itself (`BENCH_QUICK=1`); figures meaningless. */
  quick: boolean;
  log: (line: string) => void;
}

/** What a scenario hands back: a printable table, checks, and the figures for latest.json. */
export interface ScenarioResult {
  table: string;
  /** Pass/fail lines (targets, must-be-zero counts). */
  checks: Check[];
  warnings: string[];
  data: unknown;
}

/** One checked figure. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** A hard failure (e.g. errors during cutover) makes the run exit non-zero; targets do not. */
  hard: boolean;
}

/** A bench scenario. */
export type Scenario = (ctx: ScenarioContext) => Promise<ScenarioResult>;

/** Formats checks for the console. */
export function formatChecks(checks: readonly Check[]): string {
  return checks
    .map((c) => `  ${c.ok ? 'ok  ' : c.hard ? 'FAIL' : 'miss'} ${c.name}: ${c.detail}`)
    .join('\n');
}
