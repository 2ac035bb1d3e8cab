/** adminAllowedHosts (issue 10 item 2): flag, environment and file key, validated. */
import { describe, expect, it } from 'vitest';
import { ConfigError, configFrom, loadConfig, settingsHelp } from '../../../src/config/load.js';

describe('adminAllowedHosts', () => {
  it('defaults to none; a flag or SWITCHYARD_ADMIN_ALLOWED_HOSTS gives a lowercased list', () => {
    expect(configFrom({}).adminAllowedHosts).toEqual([]);
    expect(
      loadConfig(['--admin-allowed-hosts', 'Admin.Example.com, switchyard-admin'], {})
        .adminAllowedHosts,
    ).toEqual(['admin.example.com', 'switchyard-admin']);
    expect(
      loadConfig([], { SWITCHYARD_ADMIN_ALLOWED_HOSTS: 'switchyard_admin.internal' })
        .adminAllowedHosts,
    ).toEqual(['switchyard_admin.internal']);
    // Flags win over the environment.
    expect(
      loadConfig(['--admin-allowed-hosts', 'a.example'], {
        SWITCHYARD_ADMIN_ALLOWED_HOSTS: 'b.example',
      }).adminAllowedHosts,
    ).toEqual(['a.example']);
    expect(settingsHelp()).toContain('--admin-allowed-hosts NAME[,NAME...]');
  });

  it('refuses a scheme, a port, a path or a wildcard, naming the flag and the value', () => {
    for (const bad of ['http://admin.example', 'admin.example:9090', 'admin/x', '*', '*.example']) {
      let problems: readonly string[] = [];
      try {
        loadConfig(['--admin-allowed-hosts', bad], {});
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        problems = (err as ConfigError).problems;
      }
      expect(problems).toEqual([
        expect.stringMatching(
          new RegExp(
            `^--admin-allowed-hosts: 0: "${bad.replace(/[*.]/g, '\\$&')}" is not a host name`,
          ),
        ),
      ]);
    }
  });
});
