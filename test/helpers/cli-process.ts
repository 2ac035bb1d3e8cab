/**
 * Runs the built `switchyard` binary (dist/) as a child process, asynchronously: the app under
 * test usually runs in the test's own process and must keep answering meanwhile.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built binary; `npm test` builds it first (pretest). */
export const SWITCHYARD_MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

/** What a run printed and how it ended. */
export interface ProcessRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `file args` with only PATH (and `env`) in its environment; resolves with its exit code
 * and output, rejects when it could not run or outlived `timeoutMs`.
 */
export function runProcess(
  file: string,
  args: readonly string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<ProcessRun> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env: { PATH: process.env.PATH, ...env }, timeout: timeoutMs },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== 'number') {
          reject(new Error(`${file} ${args.join(' ')} failed to run`, { cause: err }));
          return;
        }
        const code = err === null ? 0 : (err.code as number);
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs `switchyard ...args` (the built binary). */
export function runSwitchyard(
  args: readonly string[],
  env: Record<string, string> = {},
  timeoutMs?: number,
): Promise<ProcessRun> {
  return runProcess(process.execPath, [SWITCHYARD_MAIN, ...args], env, timeoutMs);
}
