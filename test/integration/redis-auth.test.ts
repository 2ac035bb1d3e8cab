/**
 * Redis that requires credentials, and Redis over TLS, with real servers and the real product:
 * replicas authenticated as an ACL user (limited to `switchyard:*` keys and channels) or with the
 * default user's password converge; a wrong password fails start-up at once with Redis's reason;
 * credentials revoked while running are reported; and no log line, error or output ever holds a
 * password. TLS (`rediss://` and `rediss+cluster://`) runs real proxy processes trusting a
 * throwaway CA through NODE_EXTRA_CA_CERTS, and is skipped when this redis-server or machine
 * cannot do TLS.
 */
import { describe, expect, it } from 'vitest';
import { isSwitchyardError } from '../../src/errors.js';
import { eventually } from '../helpers/eventually.js';
import { createLogCollector } from '../helpers/log-collector.js';
import { runProxy, spawnProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { startRedisCluster } from '../helpers/redis-cluster.js';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { startReference, type TestReference } from '../helpers/reference.js';
import { startApp, type TestApp } from '../helpers/start-app.js';
import {
  createTestCertificates,
  TlsUnavailableError,
  type TestCertificates,
} from '../helpers/tls-certs.js';
import { closeAfterEach } from '../helpers/closers.js';

/**
 * The ACL user's password (`:`, `@`, `/` and `%` percent-encoded in URLs), the default user's,
 * a wrong one and a rotated one: none may appear in any log, raw or encoded.
 */
const ACL_SECRET = 'acl:Secret@7f3a/9c%1e';
const DEFAULT_SECRET = 'default-Secret-2b8e41d0';
const WRONG_SECRET = 'wrong-Secret-d45e0a77';
const ROTATED_SECRET = 'rotated-Secret-93c1b5aa';
const SECRETS = [ACL_SECRET, DEFAULT_SECRET, WRONG_SECRET, ROTATED_SECRET].flatMap((s) => [
  s,
  encodeURIComponent(s),
]);
/** The ACL user Switchyard logs in as: our keys and channels only. */
const ACL_USER = {
  name: 'switchyard',
  password: ACL_SECRET,
  rules: ['~switchyard:*', '&switchyard:*', '+@all'],
};

const closers = closeAfterEach();

function expectNoSecret(lines: readonly unknown[]): void {
  const text = lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n');
  for (const secret of SECRETS) expect(text).not.toContain(secret);
}

async function authServer(): Promise<RedisServerHandle> {
  const redis = await startRedisServer({ password: DEFAULT_SECRET, users: [ACL_USER] });
  closers.push(() => redis.close());
  return redis;
}

/** `connected_clients` of INFO: redis-cli's own connection is one. */
async function connectedClients(redis: RedisServerHandle): Promise<number> {
  const info = await redis.cli(['INFO', 'clients']);
  return Number(/^connected_clients:(\d+)/m.exec(info)?.[1]);
}

/** Logins as `user` that Redis refused so far: the `count`s of its ACL LOG `auth` entries. */
async function refusedLogins(redis: RedisServerHandle, user: string): Promise<number> {
  // redis-cli prints the entries flat, one key or value a line, each entry starting at `count`.
  const lines = (await redis.cli(['ACL', 'LOG'])).split('\n');
  const entries: Array<Map<string, string>> = [];
  for (let i = 0; i + 1 < lines.length; i += 2) {
    if (lines[i] === 'count') entries.push(new Map());
    entries.at(-1)?.set(lines[i] ?? '', lines[i + 1] ?? '');
  }
  return entries
    .filter((e) => e.get('reason') === 'auth' && e.get('username') === user)
    .reduce((n, e) => n + Number(e.get('count')), 0);
}

async function upstreams(): Promise<{
  blue: TestReference;
  green: TestReference;
  pools: Array<{ name: string; version: string; endpoints: string[] }>;
}> {
  const blue = await startReference({ pool: 'blue', version: 'b1b1b1b' });
  const green = await startReference({ pool: 'green', version: 'a2a2a2a' });
  closers.push(
    () => blue.close(),
    () => green.close(),
  );
  return {
    blue,
    green,
    pools: [
      { name: 'blue', version: 'b1b1b1b', endpoints: [blue.url] },
      { name: 'green', version: 'a2a2a2a', endpoints: [green.url] },
    ],
  };
}

async function startTestApp(config: Record<string, unknown>, replicaId: string): Promise<TestApp> {
  const app = await startApp({ logLevel: 'debug', ...config }, { replicaId });
  closers.push(() => app.close());
  return app;
}

async function upstreamOf(proxyUrl: string): Promise<string | null> {
  const res = await fetch(`${proxyUrl}/`);
  await res.arrayBuffer();
  return res.headers.get('x-switchyard-upstream');
}

async function post(
  url: string,
  body: unknown,
): Promise<{ status: number; body: { revision?: number; error?: { code: string } } }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    body: (await res.json()) as { revision?: number; error?: { code: string } },
  };
}

describe('redis with a password or an ACL user', () => {
  it('replicas logged in as an ACL user and with the default password converge', async () => {
    const redis = await authServer();
    const { pools } = await upstreams();
    const common = { namespace: 'auth', pools };
    const acl = await startTestApp(
      {
        ...common,
        redis: `redis://${ACL_USER.name}:${encodeURIComponent(ACL_SECRET)}@127.0.0.1:${redis.port}`,
      },
      'acl',
    );
    const byPassword = await startTestApp(
      { ...common, redis: `redis://:${DEFAULT_SECRET}@127.0.0.1:${redis.port}/0` },
      'password',
    );

    const res = await post(`${acl.adminUrl}/v1/switch?wait=all&timeout=5s`, { to: 'green' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    for (const app of [acl, byPassword])
      expect(await upstreamOf(app.proxyUrl)).toBe('green@a2a2a2a');
    const back = await post(`${byPassword.adminUrl}/v1/switch?wait=all&timeout=5s`, { to: 'blue' });
    expect(back.status, JSON.stringify(back.body)).toBe(200);
    for (const app of [acl, byPassword])
      expect(await upstreamOf(app.proxyUrl)).toBe('blue@b1b1b1b');

    // Each replica really is logged in as the user its URL names.
    const clients = await redis.cli(['CLIENT', 'LIST']);
    const userOf = (name: string): string | undefined =>
      new RegExp(`name=${name} .*?user=(\\S+)`).exec(clients)?.[1];
    expect(userOf('switchyard:acl:writer')).toBe('switchyard');
    expect(userOf('switchyard:password:writer')).toBe('default');
    expectNoSecret([...acl.logs, ...byPassword.logs]);
  });

  it("a wrong password fails start-up at once, naming Redis's reason and never the password", async () => {
    const redis = await authServer();
    const { pools } = await upstreams();
    const { stream, logs } = createLogCollector();
    const started = Date.now();
    let error: unknown;
    try {
      const app = await startApp(
        {
          namespace: 'auth',
          pools,
          logLevel: 'debug',
          redis: `redis://${ACL_USER.name}:${WRONG_SECRET}@127.0.0.1:${redis.port}`,
        },
        { logStream: stream, replicaId: 'wrong' },
      );
      closers.push(() => app.close());
    } catch (err) {
      error = err;
    }
    // Well under the 3 s a store waits for an unreachable Redis before booting without it.
    expect(Date.now() - started).toBeLessThan(2000);
    expect(isSwitchyardError(error, 'INVALID_CONFIG'), String(error)).toBe(true);
    expect((error as Error).message).toMatch(/redis refused the credentials in the URL: WRONGPASS/);
    const refusal = logs.find((l) => l.msg === 'redis refused the credentials in the url');
    expect(refusal?.level).toBe(50);
    expect(String(refusal?.reason)).toMatch(/^WRONGPASS/);
    expectNoSecret([...logs, (error as Error).message, (error as Error).stack]);
    // The refused store hung up every connection it opened (ioredis would otherwise reconnect
    // and log in again every 50 ms to 2 s): only redis-cli's own connection is left...
    await eventually(async () => expect(await connectedClients(redis)).toBe(1));
    const refused = await refusedLogins(redis, ACL_USER.name);
    expect(refused).toBeGreaterThan(0);

    // The real process: exit code 2 and the reason on stderr, the password nowhere.
    const run = await runProxy(
      ['--namespace', 'auth', '--redis', `redis://:${WRONG_SECRET}@127.0.0.1:${redis.port}`],
      { env: { LOG_LEVEL: 'debug' } },
    );
    expect(run.code).toBe(2);
    expect(`${run.stdout}${run.stderr}`).toMatch(
      /cannot start: redis refused the credentials in the URL: WRONGPASS/,
    );
    expectNoSecret([run.stdout, run.stderr]);
    // ...and no login as the ACL user was refused while that process started and failed (it
    // logs in as the default user): the refused store is not retrying in the background.
    expect(await refusedLogins(redis, ACL_USER.name)).toBe(refused);
    expect(await connectedClients(redis)).toBe(1);
  });

  it('credentials revoked while running: routing goes on, the refusal is logged once, and the replica recovers', async () => {
    const redis = await authServer();
    const { pools } = await upstreams();
    const app = await startTestApp(
      {
        namespace: 'auth',
        pools,
        redis: `redis://${ACL_USER.name}:${encodeURIComponent(ACL_SECRET)}@127.0.0.1:${redis.port}`,
      },
      'rotated',
    );
    const refusals = (): number =>
      app.logs.filter((l) => l.msg === 'redis refused the credentials in the url').length;

    await redis.cli(['ACL', 'SETUSER', ACL_USER.name, 'resetpass', `>${ROTATED_SECRET}`]);
    await redis.cli(['CLIENT', 'KILL', 'USER', ACL_USER.name]);
    await eventually(() => expect(refusals()).toBe(1), { timeoutMs: 5000, intervalMs: 50 });
    const refused = await post(`${app.adminUrl}/v1/switch`, { to: 'green' });
    expect(refused.status).toBe(503);
    expect(refused.body.error?.code).toBe('STORE_UNAVAILABLE');
    expect(await upstreamOf(app.proxyUrl)).toBe('blue@b1b1b1b');

    await redis.cli(['ACL', 'SETUSER', ACL_USER.name, 'resetpass', `>${ACL_SECRET}`]);
    // Reconnects back off up to 2 s.
    const res = await eventually(
      async () => {
        const r = await post(`${app.adminUrl}/v1/switch`, { to: 'green' });
        expect(r.status).toBe(200);
        return r;
      },
      { timeoutMs: 8000, intervalMs: 100 },
    );
    expect(res.body.revision).toBe(2);
    expect(await upstreamOf(app.proxyUrl)).toBe('green@a2a2a2a');
    expect(refusals()).toBe(1);
    expectNoSecret(app.logs);
  });
});

describe('redis over TLS', () => {
  it.for(['rediss://', 'rediss+cluster://'])(
    '%s: two proxy processes trusting a private CA through NODE_EXTRA_CA_CERTS converge',
    async (scheme, ctx) => {
      let certs: TestCertificates;
      let cli: (args: string[]) => Promise<string>;
      let url: string;
      const auth = `${ACL_USER.name}:${encodeURIComponent(ACL_SECRET)}@`;
      try {
        certs = await createTestCertificates();
        closers.push(() => certs.close());
        const options = { tls: certs, password: DEFAULT_SECRET, users: [ACL_USER] };
        if (scheme === 'rediss://') {
          const redis = await startRedisServer(options);
          closers.push(() => redis.close());
          url = `rediss://${auth}127.0.0.1:${redis.port}`;
          cli = (args) => redis.cli(args);
        } else {
          const cluster = await startRedisCluster(options);
          closers.push(() => cluster.close());
          url = cluster.url.replace('rediss+cluster://', `rediss+cluster://${auth}`);
          cli = (args) => cluster.cli(args);
        }
      } catch (err) {
        if (err instanceof TlsUnavailableError) return ctx.skip(err.message);
        throw err;
      }
      const { blue, green } = await upstreams();
      // NODE_EXTRA_CA_CERTS is read once at process start, so a private CA cannot be trusted
      // from inside this test process.
      const env = { NODE_EXTRA_CA_CERTS: certs.caFile, LOG_LEVEL: 'debug' };
      const args = [
        '--namespace',
        'tls',
        '--redis',
        url,
        '--pool',
        `blue=b1b1b1b@${blue.url}`,
        '--pool',
        `green=a2a2a2a@${green.url}`,
      ];
      const start = async (): Promise<ProxyProcess> => {
        const proc = await spawnProxy(args, [], { env });
        closers.push(() => proc.kill());
        return proc;
      };
      // Both start at once; wait for both so one that started is killed even if the other failed.
      const starting = [start(), start()] as const;
      await Promise.allSettled(starting);
      const [one, two] = await Promise.all(starting);

      const res = await post(`${one.adminUrl}/v1/switch?wait=all&timeout=5s`, { to: 'green' });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      for (const p of [one, two]) expect(await upstreamOf(p.proxyUrl)).toBe('green@a2a2a2a');
      // The servers have no plain-text port: this state went over TLS.
      expect(await cli(['GET', 'switchyard:{tls}:state'])).toContain('"revision":2');
      expectNoSecret([one.stdout(), one.stderr(), two.stdout(), two.stderr()]);
    },
  );
});
