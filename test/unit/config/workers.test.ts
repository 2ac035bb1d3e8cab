/**
 * The `workers` setting (issue 16, SPEC §13): 1 by default, a whole number 1..256 or `auto`,
 * from a flag, the environment or the config file; anything else stops start-up naming it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, settingsHelp } from '../../../src/config/load.js';
import { problemsOf } from '../../helpers/config-problems.js';

const tmp = mkdtempSync(join(tmpdir(), 'switchyard-workers-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('workers setting', () => {
  it('defaults to 1 and takes N or auto from a flag, the environment or the file', () => {
    expect(loadConfig([], {}).workers).toBe(1);
    expect(loadConfig(['--workers', '4'], {}).workers).toBe(4);
    expect(loadConfig(['--workers=auto'], {}).workers).toBe('auto');
    expect(loadConfig([], { SWITCHYARD_WORKERS: 'auto' }).workers).toBe('auto');
    expect(loadConfig(['--workers', '2'], { SWITCHYARD_WORKERS: 'auto' }).workers).toBe(2);
    const yaml = join(tmp, 'w.yaml');
    writeFileSync(yaml, 'workers: 3\n');
    expect(loadConfig(['--config', yaml], {}).workers).toBe(3);
    writeFileSync(yaml, 'workers: auto\n');
    expect(loadConfig(['--config', yaml], {}).workers).toBe('auto');
  });

  it('refuses anything else, naming the field', () => {
    for (const bad of ['0', '257', '1.5', 'all', '-1', '']) {
      expect(problemsOf(() => loadConfig([`--workers=${bad}`], {}))).toEqual([
        expect.stringMatching(/^--workers|^workers: /),
      ]);
    }
    const json = join(tmp, 'w.json');
    writeFileSync(json, JSON.stringify({ workers: 0 }));
    expect(problemsOf(() => loadConfig(['--config', json], {}))).toEqual([
      'workers: 0 is not a worker count (1 to 256, or auto)',
    ]);
  });

  it('is listed in proxy --help', () => {
    expect(settingsHelp()).toMatch(/--workers N\|auto/);
  });
});
