/** Access log and mirror settings: flags, environment, defaults and refused values. */
import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load.js';

describe('access log and mirror settings', () => {
  test('off by default; flags win over the environment', () => {
    const defaults = loadConfig([], {});
    expect(defaults.accessLog).toBeUndefined();
    expect(defaults.accessLogSample).toBe(1);
    expect(defaults.mirrorConcurrency).toBe(64);
    expect(defaults.mirrorMaxBodyBytes).toBe(65536);
    expect(defaults.mirrorTimeout).toBe(10_000);
    const config = loadConfig(['--access-log', 'stdout', '--access-log-sample', '0.1'], {
      SWITCHYARD_ACCESS_LOG: '/var/log/x.log',
      SWITCHYARD_ACCESS_LOG_SAMPLE: '0.5',
      SWITCHYARD_MIRROR_TIMEOUT: '2s',
    });
    expect(config.accessLog).toBe('stdout');
    expect(config.accessLogSample).toBe(0.1);
    expect(config.mirrorTimeout).toBe(2000);
  });

  test('a sample that is not a number 0..1 is refused, naming the flag or variable', () => {
    const problems = (argv: string[], env: Record<string, string> = {}): string[] => {
      try {
        loadConfig(argv, env);
      } catch (err) {
        if (err instanceof ConfigError) return [...err.problems];
        throw err;
      }
      return [];
    };
    expect(problems(['--access-log-sample', 'half'])).toEqual([
      '--access-log-sample: "half" is not a non-negative number',
    ]);
    expect(problems([], { SWITCHYARD_ACCESS_LOG_SAMPLE: '1.5' })).toEqual([
      'SWITCHYARD_ACCESS_LOG_SAMPLE: must be a number 0..1',
    ]);
    expect(problems(['--mirror-concurrency', '0'])[0]).toMatch(/^--mirror-concurrency: /);
  });
});
