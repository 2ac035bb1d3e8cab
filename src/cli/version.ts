/** The package version, read from package.json at run time (`switchyard --version`). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'switchyard-proxy';

/**
 * The version in the package.json of `switchyard-proxy`, found by walking up from this module:
 * src/cli/ in a checkout (tests), dist/src/cli/ once built, and
 * node_modules/switchyard-proxy/dist/src/cli/ when installed (npm always packs package.json, even
 * with `files: ["dist/src"]`). The name is checked so an unrelated package.json on the way (a
 * user's project above node_modules) is never taken for ours. Throws when none is found.
 */
export function packageVersion(from: string = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from);
  for (let depth = 0; depth < 6; depth++) {
    let text: string | undefined;
    try {
      text = readFileSync(join(dir, 'package.json'), 'utf8');
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      const pkg = JSON.parse(text) as { name?: unknown; version?: unknown };
      if (pkg.name === PACKAGE_NAME && typeof pkg.version === 'string') return pkg.version;
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(`cannot find the package.json of ${PACKAGE_NAME} above ${from}`);
}
