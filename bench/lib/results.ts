import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

// Compiled to dist/bench/lib/: the source tree's bench/results is three levels up.
const RESULTS_DIR = fileURLToPath(new URL('../../../bench/results/', import.meta.url));

/** The tracked results of a full run, quoted in bench/README.md. */
export const LATEST_RESULTS_FILE = 'latest.json';
/** Where a `BENCH_QUICK=1` smoke run writes (git-ignored): its figures are meaningless. */
export const QUICK_RESULTS_FILE = 'quick.json';

/** bench/results/ in the source tree (CPU profiles go here too; they are git-ignored). */
export function resultsDir(): string {
  return RESULTS_DIR;
}

/** Writes `data` as pretty JSON to bench/results/<file>; returns the path. */
export async function writeResults(file: string, data: unknown): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const path = `${RESULTS_DIR}${file}`;
  await writeFile(path, `${JSON.stringify(data, null, 2)}\n`);
  return path;
}
