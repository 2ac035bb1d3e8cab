import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatRules, readRulesFile, RulesFileError } from '../../../src/cli/rules-command.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function file(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-rules-'));
  dirs.push(dir);
  const path = join(dir, 'rules.json');
  await writeFile(path, text);
  return path;
}

const RULE = { name: 'beta', match: [{ header: 'x-beta', value: '1' }], pool: 'canary' };

describe('readRulesFile', () => {
  it('accepts the PUT /v1/rules body or a bare array', async () => {
    expect(await readRulesFile(await file(JSON.stringify({ rules: [RULE] })))).toEqual({
      rules: [RULE],
    });
    expect(await readRulesFile(await file(JSON.stringify([RULE])))).toEqual({ rules: [RULE] });
  });

  it('names the file and the problem', async () => {
    const bad = await file('{"rules":');
    await expect(readRulesFile(bad)).rejects.toThrow(RulesFileError);
    await expect(readRulesFile(bad)).rejects.toThrow(/^--file: .*rules\.json is not JSON/);
    await expect(readRulesFile(await file('{"x":1}'))).rejects.toThrow(
      /must hold \{"rules":\[\.\.\.\]\} or an array of rules$/,
    );
    await expect(readRulesFile('/nonexistent/rules.json')).rejects.toThrow(
      '--file: cannot read /nonexistent/rules.json (ENOENT)',
    );
  });
});

describe('formatRules', () => {
  it('prints one row per rule in order', () => {
    const text = formatRules([
      RULE,
      {
        name: 'api',
        match: [
          { path: true, prefix: '/api' },
          { cookie: 'beta', present: true, invert: true },
        ],
        pool: 'green',
      },
    ]);
    expect(text.split('\n')).toEqual([
      '#  NAME  POOL    MATCH (all must hold)',
      '1  beta  canary  header x-beta = "1"',
      '2  api   green   path starts with "/api" and not cookie beta present',
      '',
    ]);
    expect(formatRules([])).toBe('no routing rules: every request follows the weights\n');
  });
});
