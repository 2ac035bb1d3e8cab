/**
 * The deployment recipes in deploy/ (issue 7): the HAProxy and nginx configs pass `haproxy -c`
 * and `nginx -t`, and really health-check /readyz and retry only what is safe when run on
 * loopback in front of fake replicas; the Compose and Kubernetes files parse and use the same
 * ports, paths and environment names as the configuration loader, with shutdown timings that
 * fit together.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { pickFreePort } from '../helpers/redis-server.js';
import { loadConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { listenOnLoopback } from '../helpers/closers.js';
import { eventually } from '../helpers/eventually.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const deploy = (...p: string[]): string => join(root, 'deploy', ...p);

/** Environment names the loader reads: one per schema key, plus the SPEC §1 aliases. */
const knownEnv = new Set([
  ...Object.keys(configSchema.shape)
    .filter((k) => !['pools', 'adminToken', 'overrideToken', 'webhookSecret'].includes(k))
    .map((k) => `SWITCHYARD_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`),
  'SWITCHYARD_ADMIN_TOKEN',
  'SWITCHYARD_OVERRIDE_TOKEN',
  'SWITCHYARD_WEBHOOK_SECRET',
  'SWITCHYARD_CONFIG',
  'SWITCHYARD_POOLS',
  'REDIS_URL',
  'LOG_LEVEL',
]);

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sy-deploy-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function binary(name: string): string {
  const found = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin']
    .map((d) => join(d, name))
    .find((p) => existsSync(p));
  if (!found)
    throw new Error(`${name} is not installed (apt-get install ${name}); .ci/run installs it`);
  return found;
}

/** A fake Switchyard replica: traffic port and admin port, both on loopback port 0. */
interface FakeReplica {
  name: string;
  port: number;
  adminPort: number;
  ready: boolean;
  /** Close the connection without answering (a replica that just died, or a reset). */
  hangUp: boolean;
  hits: Record<string, number>;
}

async function listen(server: http.Server): Promise<number> {
  const origin = await listenOnLoopback(server, cleanups);
  return Number(new URL(origin).port);
}

async function fakeReplica(name: string): Promise<FakeReplica> {
  const replica: FakeReplica = {
    name,
    port: 0,
    adminPort: 0,
    ready: true,
    hangUp: false,
    hits: {},
  };
  const traffic = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const method = req.method ?? '?';
      replica.hits[method] = (replica.hits[method] ?? 0) + 1;
      if (replica.hangUp) {
        req.socket.destroy();
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ replica: name }));
    });
  });
  const admin = http.createServer((req, res) => {
    if (req.url === '/readyz') res.statusCode = replica.ready ? 200 : 503;
    else if (req.url !== '/healthz') res.statusCode = 404;
    res.end();
  });
  replica.port = await listen(traffic);
  replica.adminPort = await listen(admin);
  return replica;
}

async function request(
  port: number,
  method = 'GET',
): Promise<{ status: number; replica?: string }> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: '/',
        agent: false,
        headers: { connection: 'close' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          let replica: string | undefined;
          try {
            replica = (JSON.parse(body) as { replica?: string }).replica;
          } catch {
            replica = undefined;
          }
          resolve(
            replica === undefined
              ? { status: res.statusCode ?? 0 }
              : { status: res.statusCode ?? 0, replica },
          );
        });
      },
    );
    req.on('error', () => resolve({ status: 0 }));
    req.setTimeout(5000, () => req.destroy());
    req.end(method === 'POST' ? '{"order":1}' : undefined);
  });
}

/**
 * Starts a load balancer that cannot listen on port 0: picks a loopback port, spawns, waits until
 * it accepts connections, and picks another port when the bind failed (SPEC-style retry).
 */
async function startLb(
  what: string,
  start: (port: number) => Promise<ChildProcess>,
): Promise<{ port: number }> {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    // A port the OS just had free (a random one collided under a full test run's load).
    const port = await pickFreePort();
    const child = await start(port);
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    let exited = false;
    child.on('exit', () => (exited = true));
    cleanups.push(async () => {
      if (exited) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await gone;
    });
    try {
      await eventually(
        async () => {
          if (exited) return;
          const r = await request(port);
          if (r.status === 0) throw new Error(`${what} not accepting on ${port} yet`);
        },
        { timeoutMs: 10_000 },
      );
    } catch (err) {
      throw new Error(`${what} did not start: ${String(err)}\n${output}`);
    }
    if (!exited) return { port };
    if (!/address already in use|cannot bind/i.test(output))
      throw new Error(`${what} exited:\n${output}`);
  }
  throw new Error(`${what}: no free port after 5 attempts`);
}

/** The haproxy.cfg of the recipes with loopback addresses. */
function renderHaproxy(
  cfg: string,
  port: number,
  statsPort: number,
  replicas: FakeReplica[],
): string {
  let out = cfg
    .replace('bind :8080', `bind 127.0.0.1:${port}`)
    .replace('bind :8404', `bind 127.0.0.1:${statsPort}`);
  replicas.forEach((r, i) => {
    out = out.replace(`switchyard-${i + 1}:8080`, `127.0.0.1:${r.port} port ${r.adminPort}`);
  });
  return out;
}

/** The nginx.conf of the recipes with loopback addresses. */
function renderNginx(conf: string, dir: string, port: number, replicas: FakeReplica[]): string {
  let out = conf
    .replace('/var/log/nginx/access.log', join(dir, 'access.log'))
    .replace('listen 8080;', `listen 127.0.0.1:${port};`)
    .replace('worker_processes auto;', 'worker_processes 1;');
  replicas.forEach((r, i) => {
    out = out.replace(`switchyard-${i + 1}:8080`, `127.0.0.1:${r.port}`);
  });
  return out;
}

/** nginx flags that keep every path (prefix, error log, pid) inside `dir`. */
function nginxArgs(dir: string, globals = ''): string[] {
  return [
    '-p',
    dir,
    '-e',
    join(dir, 'error.log'),
    '-c',
    join(dir, 'nginx.conf'),
    '-g',
    `pid ${join(dir, 'nginx.pid')};${globals}`,
  ];
}

/** Sends `n` sequential requests and counts them by outcome. */
async function burst(port: number, method: string, n: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i += 1) {
    const r = await request(port, method);
    const key = r.status === 200 ? (r.replica ?? 'none') : `status ${r.status}`;
    seen[key] = (seen[key] ?? 0) + 1;
  }
  return seen;
}

describe('HAProxy recipe (deploy/haproxy/haproxy.cfg)', () => {
  it('passes haproxy -c without warnings when rendered with loopback addresses', async () => {
    const dir = await tempDir();
    const cfg = await readFile(deploy('haproxy', 'haproxy.cfg'), 'utf8');
    const replicas = [
      { name: 'a', port: 18081, adminPort: 19091 },
      { name: 'b', port: 18082, adminPort: 19092 },
    ] as FakeReplica[];
    await writeFile(join(dir, 'haproxy.cfg'), renderHaproxy(cfg, 18080, 18404, replicas));
    const { stdout, stderr } = await run(binary('haproxy'), ['-c', '-f', join(dir, 'haproxy.cfg')]);
    expect(`${stdout}${stderr}`).toContain('Configuration file is valid');
    expect(`${stdout}${stderr}`).not.toMatch(/\[(WARNING|ALERT)\]/);
  });

  it('takes a replica out when its /readyz turns 503, and retries only what is safe', async () => {
    const dir = await tempDir();
    const cfg = await readFile(deploy('haproxy', 'haproxy.cfg'), 'utf8');
    const replicas = [await fakeReplica('switchyard-1'), await fakeReplica('switchyard-2')];
    const { port } = await startLb('haproxy', async (p) => {
      // The stats port is chosen with the listen port, so a bind failure of either retries both.
      const stats = await pickFreePort();
      await writeFile(join(dir, 'haproxy.cfg'), renderHaproxy(cfg, p, stats, replicas));
      return spawn(binary('haproxy'), ['-db', '-f', join(dir, 'haproxy.cfg')], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    });
    const [one, two] = replicas as [FakeReplica, FakeReplica];

    // Both replicas get traffic while ready.
    await eventually(
      async () =>
        expect(Object.keys(await burst(port, 'GET', 6)).sort()).toEqual([
          'switchyard-1',
          'switchyard-2',
        ]),
      { timeoutMs: 10_000 },
    );

    // A GET whose connection is closed without an answer is retried on the other replica.
    one.hangUp = true;
    const gets = await burst(port, 'GET', 10);
    expect(gets).toEqual({ 'switchyard-2': 10 });
    expect(one.hits.GET ?? 0).toBeGreaterThan(0);

    // A POST is never sent twice: each reached exactly one replica, once.
    const postsBefore = { one: one.hits.POST ?? 0, two: two.hits.POST ?? 0 };
    const posts = await burst(port, 'POST', 10);
    const reachedOne = (one.hits.POST ?? 0) - postsBefore.one;
    const reachedTwo = (two.hits.POST ?? 0) - postsBefore.two;
    expect(reachedOne).toBeGreaterThan(0);
    expect(reachedOne + reachedTwo).toBe(10);
    expect(posts).toEqual({ 'switchyard-2': reachedTwo, 'status 502': reachedOne });
    one.hangUp = false;

    // Shutdown: /readyz 503 takes the replica out within inter 1s x fall 2, well under the
    // 5 s shutdownDelay during which it still serves.
    one.ready = false;
    const started = Date.now();
    await eventually(
      async () => expect(await burst(port, 'GET', 6)).toEqual({ 'switchyard-2': 6 }),
      { timeoutMs: 5000, intervalMs: 100 },
    );
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('nginx recipe (deploy/nginx/nginx.conf)', () => {
  it('passes nginx -t when rendered with loopback addresses', async () => {
    const dir = await tempDir();
    const conf = await readFile(deploy('nginx', 'nginx.conf'), 'utf8');
    const replicas = [
      { name: 'a', port: 18081 },
      { name: 'b', port: 18082 },
    ] as FakeReplica[];
    await writeFile(join(dir, 'nginx.conf'), renderNginx(conf, dir, 18080, replicas));
    const { stderr } = await run(binary('nginx'), ['-t', ...nginxArgs(dir)]);
    expect(stderr).toContain('test is successful');
    expect(stderr).not.toMatch(/\[(warn|emerg|alert)\]/);
  });

  /** Two fake replicas behind nginx running the rendered recipe; both seen serving. */
  async function nginxInFront(): Promise<{ port: number; one: FakeReplica; two: FakeReplica }> {
    const dir = await tempDir();
    const conf = await readFile(deploy('nginx', 'nginx.conf'), 'utf8');
    const replicas = [await fakeReplica('switchyard-1'), await fakeReplica('switchyard-2')];
    const { port } = await startLb('nginx', async (p) => {
      await writeFile(join(dir, 'nginx.conf'), renderNginx(conf, dir, p, replicas));
      return spawn(binary('nginx'), nginxArgs(dir, ' daemon off;'), {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    });
    await eventually(
      async () =>
        expect(Object.keys(await burst(port, 'GET', 6)).sort()).toEqual([
          'switchyard-1',
          'switchyard-2',
        ]),
      { timeoutMs: 10_000 },
    );
    const [one, two] = replicas as [FakeReplica, FakeReplica];
    return { port, one, two };
  }

  it('retries a GET on the other replica when a replica closes without answering', async () => {
    const { port, one } = await nginxInFront();
    one.hangUp = true;
    const before = one.hits.GET ?? 0;
    expect(await burst(port, 'GET', 6)).toEqual({ 'switchyard-2': 6 });
    expect((one.hits.GET ?? 0) - before).toBeGreaterThan(0);
  });

  it('never sends a POST twice', async () => {
    const { port, one, two } = await nginxInFront();
    one.hangUp = true;
    const before = { one: one.hits.POST ?? 0, two: two.hits.POST ?? 0 };
    const posts = await burst(port, 'POST', 10);
    const reachedOne = (one.hits.POST ?? 0) - before.one;
    const reachedTwo = (two.hits.POST ?? 0) - before.two;
    // The POST that met the hang-up failed (502) instead of going to switchyard-2 as well.
    expect(reachedOne).toBeGreaterThan(0);
    expect(reachedOne + reachedTwo).toBe(10);
    expect(posts).toEqual({ 'switchyard-2': reachedTwo, 'status 502': reachedOne });
  });
});

/** Compose-style `${VAR}`, `${VAR:?msg}`, `${VAR:-default}` interpolation; unknown names fail. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::?[?-][^}]*)?\}/g, (_m, name: string) => {
    const v = vars[name];
    if (v === undefined)
      throw new Error(`compose.yaml uses \${${name}}, which the recipe does not document`);
    return v;
  });
}

function parseDuration(v: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(v);
  if (!m) throw new Error(`not a duration: ${v}`);
  const n = Number(m[1]);
  return m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n;
}

type Obj = Record<string, unknown>;

/** The parts of a Kubernetes container spec the test reads. */
interface Container {
  image: string;
  args: string[];
  ports: Array<{ name: string; containerPort: number }>;
  env: Array<{
    name: string;
    value?: string;
    valueFrom?: { secretKeyRef: { name: string; key: string } };
  }>;
  readinessProbe: { httpGet: Obj };
  livenessProbe: { httpGet: Obj };
  lifecycle: { preStop: { exec: { command: string[] } } };
  resources: { requests: Obj };
  securityContext: Obj;
}

/** The parts of a Kubernetes pod spec the test reads. */
interface PodSpec {
  terminationGracePeriodSeconds: number;
  securityContext: Obj;
  containers: Container[];
}
const sample = {
  SWITCHYARD_SHA: '0123456789abcdef0123456789abcdef01234567',
  BLUE_SHA: '3f2c9e1',
  GREEN_SHA: '9ab14d0',
  SWITCHYARD_ADMIN_TOKEN: 'a-test-token-of-32-characters-xx',
};

describe('Compose recipe (deploy/compose.yaml)', () => {
  it('runs Redis, two Switchyard replicas, blue and green tagged by SHA, and a load balancer', async () => {
    const doc = parse(await readFile(deploy('compose.yaml'), 'utf8'), { merge: true }) as {
      services: Record<string, Obj>;
    };
    const services = doc.services;
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['redis', 'blue', 'green', 'switchyard-1', 'switchyard-2', 'lb']),
    );
    for (const [name, svc] of Object.entries(services)) {
      const image = svc.image as string;
      expect(image, name).toMatch(/:[^:/]+$/);
      expect(image, name).not.toMatch(/:latest$/);
    }
    for (const name of ['switchyard-1', 'switchyard-2', 'blue', 'green']) {
      expect(services[name]?.image, name).toMatch(/^switchyard:\$\{[A-Z_]*SHA:\?/);
    }
    // The LB configs name the replicas as Compose does, and are mounted from deploy/.
    const haproxy = await readFile(deploy('haproxy', 'haproxy.cfg'), 'utf8');
    const nginx = await readFile(deploy('nginx', 'nginx.conf'), 'utf8');
    for (const name of ['switchyard-1', 'switchyard-2']) {
      expect(haproxy).toContain(`${name}:8080`);
      expect(nginx).toContain(`${name}:8080`);
    }
    expect(haproxy).toMatch(/check port 9090/);
    expect(haproxy).toMatch(/uri \/readyz/);
    for (const lb of ['lb', 'lb-nginx']) {
      for (const volume of services[lb]?.volumes as string[]) {
        expect(existsSync(deploy(volume.split(':')[0] as string)), volume).toBe(true);
      }
    }
  });

  it('configures each replica with names and values the configuration loader accepts', async () => {
    const doc = parse(await readFile(deploy('compose.yaml'), 'utf8'), { merge: true }) as {
      services: Record<string, Obj>;
    };
    for (const name of ['switchyard-1', 'switchyard-2']) {
      const svc = doc.services[name] as Obj;
      const env = Object.fromEntries(
        Object.entries(svc.environment as Record<string, string>).map(([k, v]) => [
          k,
          interpolate(String(v), sample),
        ]),
      );
      for (const key of Object.keys(env)) expect(knownEnv, `${name}: ${key}`).toContain(key);
      const command = (svc.command as string[]).map((a) => interpolate(a, sample));
      expect(command.slice(0, 3)).toEqual(['node', 'dist/src/main.js', 'proxy']);
      const config = loadConfig(command.slice(3), env);
      expect(config.listen).toEqual({ host: '0.0.0.0', port: 8080 });
      expect(config.adminListen).toEqual({ host: '0.0.0.0', port: 9090 });
      expect(config.adminToken).toBe(sample.SWITCHYARD_ADMIN_TOKEN);
      expect(config.redis).toBe('redis://redis:6379');
      // stop_grace_period covers shutdownDelay + shutdownTimeout.
      expect(parseDuration(svc.stop_grace_period as string)).toBeGreaterThanOrEqual(
        config.shutdownDelay + config.shutdownTimeout,
      );
    }
  });
});

describe('Kubernetes recipe (deploy/k8s)', () => {
  async function docs(file: string): Promise<Obj[]> {
    return parseAllDocuments(await readFile(deploy('k8s', file), 'utf8')).map((d) => {
      expect(d.errors, file).toEqual([]);
      return d.toJS() as Obj;
    });
  }

  it('Deployment: 2+ replicas, probes on /readyz and /healthz, shutdown timings that fit, non-root', async () => {
    const [deployment] = await docs('deployment.yaml');
    const [secret] = await docs('secret.yaml');
    const spec = deployment?.spec as { replicas: number; template: { spec: Obj } };
    expect(spec.replicas).toBeGreaterThanOrEqual(2);
    const pod = spec.template.spec as unknown as PodSpec;
    const c = pod.containers[0] as Container;
    expect(c.image).toMatch(/:[^:/]+$/);
    expect(c.image).not.toMatch(/:latest$/);
    const ports = Object.fromEntries(c.ports.map((p) => [p.name, p.containerPort]));
    expect(ports).toEqual({ http: 8080, admin: 9090 });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });

    // Environment: known names; secrets from the Secret; the loader accepts the result.
    const env: Record<string, string> = {};
    const secretData = (secret as { stringData: Record<string, string> }).stringData;
    for (const e of c.env) {
      expect(knownEnv, e.name).toContain(e.name);
      if (e.valueFrom) {
        expect(e.valueFrom.secretKeyRef.name).toBe((secret?.metadata as Obj).name);
        expect(Object.keys(secretData)).toContain(e.valueFrom.secretKeyRef.key);
        env[e.name] =
          e.name === 'SWITCHYARD_ADMIN_TOKEN'
            ? sample.SWITCHYARD_ADMIN_TOKEN
            : (secretData[e.valueFrom.secretKeyRef.key] as string);
      } else {
        env[e.name] = e.value as string;
      }
    }
    expect(c.env.find((e) => e.name === 'SWITCHYARD_ADMIN_TOKEN')?.valueFrom).toBeDefined();
    expect(env.REDIS_URL).toMatch(/^rediss?:\/\//);
    expect(c.args).toEqual(['node', 'dist/src/main.js', 'proxy']);
    const config = loadConfig([], env);
    expect(config.listen.port).toBe(ports.http);
    expect(config.adminListen.port).toBe(ports.admin);

    // preStop sleep, then SIGTERM: shutdownDelay + shutdownTimeout must fit in the grace period.
    const preStop = c.lifecycle.preStop.exec.command;
    expect(preStop[0]).toBe('sleep');
    const preStopMs = Number(preStop[1]) * 1000;
    expect(preStopMs).toBeGreaterThanOrEqual(config.shutdownDelay);
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(
      preStopMs + config.shutdownDelay + config.shutdownTimeout,
    );

    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(typeof c.resources.requests.cpu).toBe('string');
    expect(typeof c.resources.requests.memory).toBe('string');
  });

  it('Services route to the named container ports; kustomize pins the image by SHA', async () => {
    const services = await docs('service.yaml');
    const byName = Object.fromEntries(
      services
        .filter((s) => s.kind === 'Service')
        .map((s) => [(s.metadata as Obj).name as string, s]),
    );
    const port = (name: string): Obj => ((byName[name]?.spec as Obj).ports as Obj[])[0] as Obj;
    expect(port('switchyard')).toMatchObject({ targetPort: 'http' });
    expect(port('switchyard-admin')).toMatchObject({ port: 9090, targetPort: 'admin' });
    expect(services.some((s) => s.kind === 'PodDisruptionBudget')).toBe(true);
    const [kustomization] = await docs('kustomization.yaml');
    const images = (kustomization as { images: Array<{ name: string; newTag: string }> }).images;
    expect(images[0]?.name).toBe('switchyard');
    expect(images[0]?.newTag).not.toBe('latest');
    expect((kustomization as { resources: string[] }).resources).not.toContain('secret.yaml');
  });
});

describe('CI example (deploy/ci/pipeline.yml)', () => {
  it('builds an image tagged by SHA, then set-pool, canary --wait, switch, rollback on failure', async () => {
    const text = await readFile(deploy('ci', 'pipeline.yml'), 'utf8');
    const doc = parse(text) as {
      jobs: Record<string, { steps: Array<{ run?: string; if?: string }> }>;
    };
    const runs = Object.values(doc.jobs).flatMap((j) => j.steps.map((s) => s.run ?? ''));
    const all = runs.join('\n');
    expect(all).toMatch(/GIT_SHA=/);
    expect(all).not.toMatch(/:latest\b/);
    const order = [
      'switchyard set-pool',
      'switchyard canary 5 --wait',
      'switchyard switch',
      'switchyard rollback',
    ].map((s) => all.indexOf(s));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    const rollback = Object.values(doc.jobs)
      .flatMap((j) => j.steps)
      .find((s) => s.run?.includes('switchyard rollback'));
    expect(rollback?.if).toBe('failure()');
  });
});
