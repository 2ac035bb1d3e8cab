import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { packageVersion } from '../../../src/cli/version.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('packageVersion', () => {
  it('reads the version of this checkout', async () => {
    const pkg = JSON.parse(
      await readFile(new URL('../../../package.json', import.meta.url), 'utf8'),
    ) as {
      version: string;
    };
    expect(packageVersion()).toBe(pkg.version);
  });

  it('finds package.json of an installed package (dist/src/cli), never a project above it', async () => {
    const root = await mkdtemp(join(tmpdir(), 'switchyard-version-'));
    dirs.push(root);
    const pkgDir = join(root, 'node_modules', 'switchyard-proxy');
    await mkdir(join(pkgDir, 'dist', 'src', 'cli'), { recursive: true });
    await writeFile(
      join(root, 'package.json'),
      JSON.stringify({ name: 'my-app', version: '9.9.9' }),
    );
    await writeFile(
      join(pkgDir, 'package.json'),
      JSON.stringify({ name: 'switchyard-proxy', version: '1.2.3' }),
    );
    expect(packageVersion(join(pkgDir, 'dist', 'src', 'cli', 'version.js'))).toBe('1.2.3');
    // Without ours on the way up, the user's package.json is not taken for it.
    await rm(join(pkgDir, 'package.json'));
    expect(() => packageVersion(join(pkgDir, 'dist', 'src', 'cli', 'version.js'))).toThrow(
      /cannot find the package\.json of switchyard-proxy/,
    );
  });
});
