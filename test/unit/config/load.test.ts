import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parsePoolFlag, settingsHelp } from '../../../src/config/load.js';
import { problemsOf } from '../../helpers/config-problems.js';

const tmp = mkdtempSync(join(tmpdir(), 'switchyard-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const path = join(tmp, name);
  writeFileSync(path, text);
  return path;
}

describe('loadConfig', () => {
  it('applies the defaults of SPEC §1', () => {
    const config = loadConfig([], {});
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.adminListen).toEqual({ host: '127.0.0.1', port: 9090 });
    expect(config.namespace).toBe('default');
    expect(config.drainTimeout).toBe(30_000);
    expect(config.drainSpread).toBe(5_000);
    expect(config.shutdownDelay).toBe(5_000);
    expect(config.shutdownTimeout).toBe(30_000);
    expect(config.stickyKey).toEqual({ source: 'cookie', name: 'sy_id' });
    expect(config.redis).toBeUndefined();
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.listen)).toBe(true);
  });

  it('merges flags over environment over file over defaults', () => {
    const path = file(
      'c.yaml',
      'listen: 127.0.0.1:7000\nnamespace: fromfile\ndrainTimeout: 10s\nshutdownDelay: 1s\n',
    );
    const config = loadConfig(['--config', path, '--drain-timeout', '250ms'], {
      SWITCHYARD_NAMESPACE: 'fromenv',
      SWITCHYARD_DRAIN_TIMEOUT: '20s',
    });
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 7000 });
    expect(config.namespace).toBe('fromenv');
    expect(config.drainTimeout).toBe(250);
    expect(config.shutdownDelay).toBe(1000);
  });

  it('reads pools from --pool in order, and from a JSON file mapping', () => {
    const config = loadConfig(
      [
        '--pool',
        'blue=3f2c9e1@http://127.0.0.1:3001,http://127.0.0.1:3002',
        '--pool',
        'green=9ab14d0@http://127.0.0.1:3003',
      ],
      {},
    );
    expect(config.pools.map((p) => p.name)).toEqual(['blue', 'green']);
    expect(config.pools[0]?.endpoints).toEqual(['http://127.0.0.1:3001', 'http://127.0.0.1:3002']);
    const path = file(
      'c.json',
      JSON.stringify({
        pools: { green: { version: '9ab14d0', endpoints: ['http://127.0.0.1:1'] } },
      }),
    );
    expect(loadConfig(['--config', path], {}).pools[0]?.name).toBe('green');
  });

  it('takes REDIS_URL, LOG_LEVEL and secrets from the environment', () => {
    const config = loadConfig([], {
      REDIS_URL: 'redis://127.0.0.1:6390',
      LOG_LEVEL: 'warn',
      SWITCHYARD_ADMIN_TOKEN: 'a-very-long-admin-token',
    });
    expect(config.redis).toBe('redis://127.0.0.1:6390');
    expect(config.logLevel).toBe('warn');
    expect(config.adminToken).toBe('a-very-long-admin-token');
  });

  it('reports every problem with its field, and never falls back to a default', () => {
    const problems = problemsOf(() =>
      loadConfig(['--listen', 'nowhere', '--drain-timeout', 'soon', '--upstream-header', 'maybe'], {
        SWITCHYARD_STICKY_KEY: 'cookie',
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^--upstream-header: "maybe" is not a boolean/),
        expect.stringMatching(/^--listen: "nowhere" is not HOST:PORT/),
        expect.stringMatching(/^--drain-timeout: "soon" is not a duration/),
        expect.stringMatching(
          /^SWITCHYARD_STICKY_KEY: must be cookie:NAME, header:NAME or client-address/,
        ),
      ]),
    );
  });

  it('rejects unknown flags, unreadable files, secrets in files and bad pools', () => {
    expect(problemsOf(() => loadConfig(['--bogus', '1'], {}))[0]).toMatch(/^flags: /);
    expect(problemsOf(() => loadConfig(['--config', join(tmp, 'missing.yaml')], {}))[0]).toMatch(
      /^config: cannot read/,
    );
    const withSecret = file('s.yaml', 'adminToken: abcdefghijklmnopqrstuvwxyz\n');
    expect(problemsOf(() => loadConfig(['--config', withSecret], {}))[0]).toMatch(
      /^adminToken: secrets come from the environment only/,
    );
    expect(problemsOf(() => loadConfig(['--pool', 'blue'], {}))[0]).toMatch(
      /^--pool: "blue" is not NAME=VERSION@URL/,
    );
    const notMapping = file('list.yaml', '- a\n- b\n');
    expect(problemsOf(() => loadConfig(['--config', notMapping], {}))[0]).toMatch(
      /must hold a mapping/,
    );
  });

  it('review: an empty --config is an error naming --config, an empty SWITCHYARD_CONFIG is unset', () => {
    // `--config=$FILE` with FILE unset used to read nothing, report nothing and skip the demo.
    expect(problemsOf(() => loadConfig(['--config='], {}))).toEqual([
      '--config: needs a file path',
    ]);
    expect(problemsOf(() => loadConfig(['--config', ''], {}))).toEqual([
      '--config: needs a file path',
    ]);
    // The flag wins over the variable, so an empty flag is refused even with a variable set.
    const path = file('empty-flag.yaml', 'namespace: fromfile\n');
    expect(problemsOf(() => loadConfig(['--config='], { SWITCHYARD_CONFIG: path }))).toEqual([
      '--config: needs a file path',
    ]);
    // Reported together with the other problems.
    expect(problemsOf(() => loadConfig(['--config=', '--drain-timeout', 'soon'], {}))).toEqual([
      '--config: needs a file path',
      expect.stringMatching(/^--drain-timeout: /),
    ]);
    expect(loadConfig([], { SWITCHYARD_CONFIG: '' }).namespace).toBe('default');
    expect(loadConfig([], { SWITCHYARD_CONFIG: path }).namespace).toBe('fromfile');
  });

  it('names an unknown config-file key and the setting it was probably meant to be', () => {
    const path = file(
      'typo.yaml',
      'drainTimeot: 5s\ndrain_timeout: 5s\nhealthCheckIntervl: 1s\ncolour: blue\n',
    );
    expect([...problemsOf(() => loadConfig(['--config', path], {}))].sort()).toEqual([
      `config file ${path}: unknown setting "colour"`,
      `config file ${path}: unknown setting "drainTimeot" (did you mean "drainTimeout"?)`,
      `config file ${path}: unknown setting "drain_timeout" (did you mean "drainTimeout"?)`,
      `config file ${path}: unknown setting "healthCheckIntervl" (did you mean "healthCheckInterval"?)`,
    ]);
  });

  it('parses IPv6 listen addresses and header sticky keys', () => {
    const config = loadConfig(['--listen', '[::1]:8081', '--sticky-key', 'header:X-User'], {});
    expect(config.listen).toEqual({ host: '::1', port: 8081 });
    expect(config.stickyKey).toEqual({ source: 'header', name: 'x-user' });
  });
});

describe('parsePoolFlag', () => {
  it('splits NAME=VERSION@URL,URL', () => {
    expect(parsePoolFlag('canary=abc1234@http://a:1,http://b:2')).toEqual({
      name: 'canary',
      version: 'abc1234',
      endpoints: ['http://a:1', 'http://b:2'],
    });
  });
});

describe('loadConfig checks before anything starts', () => {
  it('rejects a pool with a mutable version, a bad name or a bad endpoint', () => {
    const problems = problemsOf(() =>
      loadConfig(
        [
          '--pool',
          'blue=latest@http://127.0.0.1:1',
          '--pool',
          'Green=abcdef1@http://127.0.0.1:2',
          '--pool',
          'canary=abcdef1@ftp://127.0.0.1:3',
        ],
        {},
      ),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^--pool: blue: version: "latest" is not an immutable identifier/),
        expect.stringMatching(/^--pool: name: "Green" must match/),
        expect.stringMatching(/^--pool: canary: endpoints\[0\]/),
      ]),
    );
  });

  it('rejects a pool named twice', () => {
    expect(
      problemsOf(() =>
        loadConfig(
          [
            '--pool',
            'blue=abcdef1@http://127.0.0.1:1',
            '--pool',
            'blue=1234567@http://127.0.0.1:2',
          ],
          {},
        ),
      ),
    ).toEqual(['--pool: blue: named twice']);
  });

  it('reports the cross-field problems together with a bad field, not after it is fixed', () => {
    expect(
      [
        ...problemsOf(() =>
          loadConfig(
            [
              '--pool',
              'blue=abcdef1@http://127.0.0.1:1',
              '--pool',
              'blue=1234567@http://127.0.0.1:2',
              '--admin-listen',
              '0.0.0.0:9090',
              '--drain-timeout',
              'soon',
            ],
            {},
          ),
        ),
      ].sort(),
    ).toEqual([
      expect.stringMatching(/^--admin-listen: 0\.0\.0\.0 is not a loopback address/),
      expect.stringMatching(/^--drain-timeout: "soon" is not a duration/),
      '--pool: blue: named twice',
    ]);
  });

  it('refuses a non-loopback admin address without a token, accepts it with one', () => {
    expect(problemsOf(() => loadConfig(['--admin-listen', '0.0.0.0:9090'], {}))).toEqual([
      expect.stringMatching(
        /^--admin-listen: 0\.0\.0\.0 is not a loopback address: set SWITCHYARD_ADMIN_TOKEN/,
      ),
    ]);
    const config = loadConfig(['--admin-listen', '0.0.0.0:9090'], {
      SWITCHYARD_ADMIN_TOKEN: 'a-very-long-admin-token',
    });
    expect(config.adminListen.host).toBe('0.0.0.0');
    expect(loadConfig(['--admin-listen', '[::1]:9090'], {}).adminListen.host).toBe('::1');
  });

  it('takes pools from SWITCHYARD_POOL (and the SWITCHYARD_POOLS alias)', () => {
    const env = {
      SWITCHYARD_POOL: 'blue=abcdef1@http://127.0.0.1:1 green=1234567@http://127.0.0.1:2',
    };
    expect(loadConfig([], env).pools.map((p) => p.name)).toEqual(['blue', 'green']);
    expect(
      loadConfig([], { SWITCHYARD_POOLS: 'canary=abcdef1@http://127.0.0.1:1' }).pools[0]?.name,
    ).toBe('canary');
  });

  it('names a problem as the user wrote it: flag, environment variable, else the file key', () => {
    const path = file(
      'bad.yaml',
      [
        'drainTimeout: later',
        'listen: nowhere',
        'redis: not-a-url',
        'pools:',
        '  blue: { version: latest, endpoints: ["http://127.0.0.1:1"] }',
        '',
      ].join('\n'),
    );
    expect(problemsOf(() => loadConfig(['--config', path], {}))).toEqual([
      expect.stringMatching(/^listen: "nowhere" is not HOST:PORT/),
      expect.stringMatching(/^redis: /),
      expect.stringMatching(/^pools\.0: blue: version: "latest" is not an immutable identifier/),
      expect.stringMatching(/^drainTimeout: "later" is not a duration/),
    ]);
    // The same keys set again by flags and the environment (which win over the file).
    const problems = problemsOf(() =>
      loadConfig(
        [
          '--config',
          path,
          '--drain-timeout',
          'abc',
          '--pool',
          'green=latest@http://127.0.0.1:2',
          '--upstream-connections',
          '0',
        ],
        { SWITCHYARD_LISTEN: 'elsewhere', REDIS_URL: 'not-a-url', LOG_LEVEL: 'loud' },
      ),
    );
    expect(problems).toEqual([
      expect.stringMatching(/^SWITCHYARD_LISTEN: "elsewhere" is not HOST:PORT/),
      expect.stringMatching(/^REDIS_URL: /),
      expect.stringMatching(/^--pool: green: version: "latest" is not an immutable identifier/),
      expect.stringMatching(/^--drain-timeout: "abc" is not a duration/),
      expect.stringMatching(/^--upstream-connections: /),
      expect.stringMatching(/^LOG_LEVEL: /),
    ]);
    expect(
      problemsOf(() =>
        loadConfig([], {
          SWITCHYARD_DRAIN_TIMEOUT: 'abc',
          SWITCHYARD_POOL: 'blue=latest@http://127.0.0.1:1',
          SWITCHYARD_LOG_LEVEL: 'loud',
        }),
      ),
    ).toEqual([
      expect.stringMatching(/^SWITCHYARD_POOL: blue: version: "latest"/),
      expect.stringMatching(/^SWITCHYARD_DRAIN_TIMEOUT: "abc" is not a duration/),
      expect.stringMatching(/^SWITCHYARD_LOG_LEVEL: /),
    ]);
    expect(
      problemsOf(() =>
        loadConfig(['--admin-listen', '0.0.0.0:9090'], {
          SWITCHYARD_POOLS: 'blue=abcdef1@http://127.0.0.1:1 blue=1234567@http://127.0.0.1:2',
        }),
      ),
    ).toEqual([
      expect.stringMatching(/^--admin-listen: 0\.0\.0\.0 is not a loopback address/),
      'SWITCHYARD_POOLS: blue: named twice',
    ]);
  });

  it('reports a malformed --pool once, and a --pool with no endpoint as malformed', () => {
    expect(problemsOf(() => loadConfig(['--pool', 'blue=abcdef1@,'], {}))).toEqual([
      '--pool: "blue=abcdef1@," is not NAME=VERSION@URL[,URL...]',
    ]);
    expect(
      problemsOf(() => loadConfig(['--pool', 'blue', '--pool', 'green=abcdef1@http://a:1'], {})),
    ).toEqual(['--pool: "blue" is not NAME=VERSION@URL[,URL...]']);
  });

  it('refuses an admin token that is not an RFC 6750 bearer token, naming SWITCHYARD_ADMIN_TOKEN', () => {
    // A token with a space could never authenticate: the header parser stops at white space.
    expect(
      problemsOf(() => loadConfig([], { SWITCHYARD_ADMIN_TOKEN: 'correct horse battery staple' })),
    ).toEqual([
      expect.stringMatching(/^SWITCHYARD_ADMIN_TOKEN: contains white space at character 8/),
    ]);
    // The usual slip: a secret file that ends in a newline.
    expect(
      problemsOf(() => loadConfig([], { SWITCHYARD_ADMIN_TOKEN: 'a-very-long-admin-token\n' })),
    ).toEqual([
      expect.stringMatching(/^SWITCHYARD_ADMIN_TOKEN: contains white space at character 24/),
    ]);
    expect(
      problemsOf(() => loadConfig([], { SWITCHYARD_ADMIN_TOKEN: 'user:a-very-long-password' })),
    ).toEqual([expect.stringMatching(/^SWITCHYARD_ADMIN_TOKEN: character 5 is not allowed/)]);
    expect(problemsOf(() => loadConfig([], { SWITCHYARD_ADMIN_TOKEN: 'short' }))).toEqual([
      'SWITCHYARD_ADMIN_TOKEN: must be at least 16 characters',
    ]);
    // openssl rand -base64 and -hex output are fine.
    const token = 'q1Zx8+/Uv3kD0P9wJm2T7yLr4bHs6Nc=';
    expect(loadConfig([], { SWITCHYARD_ADMIN_TOKEN: token }).adminToken).toBe(token);
  });

  it('review: --help states the token character rule for both secrets (it refuses tokens that used to work)', () => {
    const lines = settingsHelp().split('\n');
    for (const name of ['SWITCHYARD_ADMIN_TOKEN', 'SWITCHYARD_OVERRIDE_TOKEN']) {
      const meaning = lines[lines.findIndex((l) => l.trim() === name) + 1] ?? '';
      expect(meaning, name).toContain('A-Z a-z 0-9 - . _ ~ + /, optionally ending in =');
      expect(meaning, name).toContain('RFC 6750');
    }
  });

  it('refuses an override token the x-switchyard-token header could never carry', () => {
    // Parsers trim header values: this token would never match, and overrides would fail silently.
    expect(
      problemsOf(() => loadConfig([], { SWITCHYARD_OVERRIDE_TOKEN: 'a-long-override-token\n' })),
    ).toEqual([
      expect.stringMatching(/^SWITCHYARD_OVERRIDE_TOKEN: contains white space at character 22/),
    ]);
    const token = 'q1Zx8+/Uv3kD0P9wJm2T7yLr4bHs6Nc=';
    expect(loadConfig([], { SWITCHYARD_OVERRIDE_TOKEN: token }).overrideToken).toBe(token);
  });

  it('issue 13: reads SWITCHYARD_WEBHOOK_SECRET from the environment only, 16+ characters', () => {
    const secret = 'a-webhook-secret-of-some-length';
    expect(loadConfig([], { SWITCHYARD_WEBHOOK_SECRET: secret }).webhookSecret).toBe(secret);
    expect(loadConfig([], {}).webhookSecret).toBeUndefined();
    expect(problemsOf(() => loadConfig([], { SWITCHYARD_WEBHOOK_SECRET: 'short' }))).toEqual([
      expect.stringMatching(/^SWITCHYARD_WEBHOOK_SECRET: must be at least 16 characters/),
    ]);
  });

  it('refuses durations a Node timer cannot hold', () => {
    expect(problemsOf(() => loadConfig(['--shutdown-timeout', '3000000s'], {}))[0]).toMatch(
      /^--shutdown-timeout: "3000000s" is not a duration/,
    );
    expect(
      loadConfig(['--shutdown-timeout', '24d'.replace('d', '') + 'm'], {}).shutdownTimeout,
    ).toBe(24 * 60_000);
  });
});
