/**
 * Starts a whole Switchyard app (proxy + admin + store) on loopback ephemeral ports for a test.
 * Close it in afterEach/onTestFinished.
 */
import { createApp, type App, type AppOverrides } from '../../src/app.js';
import { configFrom } from '../../src/config/load.js';
import { createLogCollector } from './log-collector.js';
import { startColours } from './reference.js';
import { startRedisServer, type RedisServerHandle } from './redis-server.js';

/** A running app and where to reach it. */
export interface TestApp {
  readonly app: App;
  readonly proxyUrl: string;
  readonly adminUrl: string;
  /** Parsed JSON log lines written so far. */
  readonly logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/**
 * Starts an app with test defaults (loopback port 0, log level info captured in memory,
 * shutdownDelay 0, no default process metrics), overridden by `config`.
 */
export async function startApp(
  config: Record<string, unknown> = {},
  overrides: AppOverrides = {},
): Promise<TestApp> {
  const { stream, logs } = createLogCollector();
  const app = createApp(
    configFrom({
      listen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      logLevel: 'info',
      shutdownDelay: 0,
      ...config,
    }),
    { logStream: stream, defaultMetrics: false, ...overrides },
  );
  await app.start();
  const proxy = app.proxy.address();
  const admin = app.admin.address();
  return {
    app,
    proxyUrl: `http://127.0.0.1:${proxy.port}`,
    adminUrl: `http://127.0.0.1:${admin.port}`,
    logs,
    close: () => app.close(),
  };
}

/**
 * An app routing to three fresh reference servers (blue 100 %, green and canary idle), with
 * `config` on top; the servers and the app are closed through `closers`.
 */
export async function startColourApp(
  closers: Array<() => unknown>,
  config: Record<string, unknown> = {},
): Promise<TestApp> {
  const { pools } = await startColours(closers);
  const t = await startApp({ pools, ...config });
  closers.push(() => t.close());
  return t;
}

/**
 * Two replicas (`<namespace>-a`, `<namespace>-b`) of one namespace on a fresh redis-server,
 * routing to three fresh reference servers, with `config` on top; everything is closed through
 * `closers`.
 */
export async function startRedisPair(
  closers: Array<() => unknown>,
  namespace: string,
  config: Record<string, unknown> = {},
): Promise<{ redis: RedisServerHandle; a: TestApp; b: TestApp }> {
  const redis = await startRedisServer();
  closers.push(() => redis.close());
  const { pools } = await startColours(closers);
  const apps: TestApp[] = [];
  for (const id of [`${namespace}-a`, `${namespace}-b`]) {
    const app = await startApp(
      { redis: redis.url, namespace, pools, ...config },
      { replicaId: id },
    );
    closers.push(() => app.close());
    apps.push(app);
  }
  const [a, b] = apps as [TestApp, TestApp];
  return { redis, a, b };
}

/** POSTs `body` as JSON (as every admin change must be sent); the status and parsed answer. */
export async function postJson(
  url: string,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  };
}
