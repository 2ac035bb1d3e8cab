/**
 * The last good table on local disk, so a replica restarted while Redis is unreachable boots
 * routing by what the fleet last agreed on, never by stale defaults (HAProxy users lost drain
 * state on reload this way). Written atomically: temp file, fsync, rename.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import type { RoutingTable } from '../table/types.js';
import { parseTable } from '../table/validate.js';

/** Largest state file read back (a table is a few KiB). */
const MAX_STATE_FILE_BYTES = 1024 * 1024;

/** Writes `table` to `path` atomically (readers see the old or the new file, never a mix). */
export async function writeStateFile(path: string, table: RoutingTable): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(table)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Reads and validates the state file. Resolves null when it does not exist; rejects when it
 * exists but cannot be read or holds an invalid table (the caller logs and ignores it).
 */
export async function readStateFile(path: string): Promise<RoutingTable | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  if (text.length > MAX_STATE_FILE_BYTES) {
    throw new Error(`state file ${path} is larger than ${MAX_STATE_FILE_BYTES} bytes`);
  }
  return parseTable(JSON.parse(text) as unknown);
}
