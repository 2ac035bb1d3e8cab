/**
 * switchyard.example.yaml, the commented config file the README points at (issue 11): it loads
 * through the real loader, holds the defaults it claims, and names every setting.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { configFrom, loadConfig } from '../../../src/config/load.js';
import { configSchema } from '../../../src/config/schema.js';

const EXAMPLE = fileURLToPath(new URL('../../../switchyard.example.yaml', import.meta.url));
const SECRETS = ['adminToken', 'overrideToken', 'webhookSecret'];

describe('switchyard.example.yaml', () => {
  it('issue 11: loads with --config, and every active setting but the example pools is the default', () => {
    const config = loadConfig(['--config', EXAMPLE], {});
    const defaults = configFrom({});
    for (const key of Object.keys(configSchema.shape)) {
      if (key === 'pools') continue;
      expect(config[key as keyof typeof config], key).toEqual(
        defaults[key as keyof typeof defaults],
      );
    }
    expect(config.pools).toEqual([
      { name: 'blue', version: '3f2c9e1', endpoints: ['http://127.0.0.1:3001'] },
      { name: 'green', version: '9ab14d0', endpoints: ['http://127.0.0.1:3002'] },
    ]);
  });

  it('names every setting (secrets in the header comment)', () => {
    const text = readFileSync(EXAMPLE, 'utf8');
    for (const key of Object.keys(configSchema.shape)) {
      if (SECRETS.includes(key)) continue;
      expect(text, key).toMatch(new RegExp(`^(# )?${key}:`, 'm'));
    }
    expect(text).toContain('SWITCHYARD_ADMIN_TOKEN');
    expect(text).toContain('SWITCHYARD_OVERRIDE_TOKEN');
    expect(text).toContain('SWITCHYARD_WEBHOOK_SECRET');
  });
});
