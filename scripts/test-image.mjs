#!/usr/bin/env node
// `npm run test:image`: builds the image with podman, tagged by git SHA, and smoke-tests it:
// labels, user, contents (no dev dependencies, no tests, no sources), a proxy container in front
// of two reference-server containers (all `--network host`, loopback ports), a routed request,
// a switch through the admin API, `podman healthcheck run`, and SIGTERM -> exit 0 after
// /readyz turned 503. Removes every container and tag it made (build cache layers stay).
// Prints image size, build time and start-to-ready time.
//
// When podman cannot be set up here (no ../shared/tools/container-env.sh, not root, apt
// unreachable...) it prints one line `image check skipped: <reason>` and exits 0. A failing
// build or check exits 1.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildImage, defaultName, gitInfo, hasCommand, repoRoot } from './image.mjs';

const STOP_TIMEOUT_S = 40; // shutdownDelay 5 s + shutdownTimeout 30 s + margin (SPEC §4)
const BLUE = '3f2c9e1';
const GREEN = '9ab14d0';
const runId = `${process.pid}-${Date.now().toString(36)}`;

const containers = [];
const createdTags = [];
let passed = 0;

function podman(args, opts = {}) {
  const r = spawnSync('podman', args, { encoding: 'utf8', timeout: 120_000, ...opts });
  return {
    ok: r.status === 0,
    status: r.status,
    stdout: (r.stdout ?? '').trim(),
    stderr: (r.stderr ?? '').trim(),
  };
}

function podmanOk(args) {
  const r = podman(args);
  if (!r.ok) throw new Error(`podman ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

class CheckFailed extends Error {}

function check(cond, what, detail = '') {
  if (!cond) throw new CheckFailed(`${what}${detail ? `: ${detail}` : ''}`);
  passed += 1;
  console.log(`ok ${passed} - ${what}`);
}

function skip(reason) {
  console.log(`image check skipped: ${reason}`);
  process.exit(0);
}

/** The base images the Dockerfile builds FROM (not its own stages). */
function baseImages() {
  const stages = new Set();
  const bases = [];
  for (const line of readFileSync(join(repoRoot, 'Dockerfile'), 'utf8').split('\n')) {
    const m = /^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?/i.exec(line.trim());
    if (!m) continue;
    if (!stages.has(m[1])) bases.push(m[1]);
    if (m[2]) stages.add(m[2]);
  }
  return [...new Set(bases)];
}

/** Makes podman usable (container-env.sh setup) or skips with the reason. */
function ensurePodman() {
  const script = resolve(
    process.env.CONTAINER_ENV_SH ?? join(repoRoot, '..', 'shared', 'tools', 'container-env.sh'),
  );
  let setupProblem = '';
  if (existsSync(script)) {
    const bases = baseImages();
    console.log(`container-env.sh setup ${bases.join(' ')}`);
    const r = spawnSync('bash', [script, 'setup', ...bases], {
      encoding: 'utf8',
      timeout: 900_000,
    });
    if (r.status !== 0) {
      const lines = `${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim().split('\n');
      setupProblem = `container-env.sh setup failed: ${lines.at(-1) || `exit ${r.status}`}`;
    }
  } else {
    setupProblem = `${script} not found`;
  }
  if (!hasCommand('podman')) skip(`podman is not installed (${setupProblem || 'no reason given'})`);
  for (const base of baseImages()) {
    if (!podman(['image', 'exists', base]).ok) {
      skip(
        `base image ${base} is not in local storage and no registry is reachable (${setupProblem || 'setup did not create it'})`,
      );
    }
  }
  if (setupProblem) console.log(`note: ${setupProblem}; podman and the base image exist, going on`);
}

/** A loopback port that is free right now; containers may still lose the race (then we retry). */
async function candidatePort() {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    const free = await new Promise((res) => {
      const s = net.createServer();
      s.once('error', () => res(false));
      s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
    });
    if (free) return port;
  }
}

async function get(url, init = {}) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000), ...init });
    return { status: res.status, headers: res.headers, body: await res.text() };
  } catch (err) {
    return { status: 0, headers: new Headers(), body: String(err?.cause?.code ?? err) };
  }
}

function running(id) {
  return podman(['inspect', id, '--format', '{{.State.Running}}']).stdout === 'true';
}

function logs(id) {
  const r = podman(['logs', id]);
  return `${r.stdout}\n${r.stderr}`.trim();
}

/**
 * Starts a container on freshly picked loopback ports and waits until `readyUrl(ports)` answers
 * 200. Picks new ports and tries again when the process died with EADDRINUSE.
 */
async function startOnFreePorts(what, nPorts, makeArgs, readyUrl) {
  for (let attempt = 1; attempt <= 5; attempt += 1) {
    const ports = [];
    while (ports.length < nPorts) {
      const p = await candidatePort();
      if (!ports.includes(p)) ports.push(p);
    }
    const started = process.hrtime.bigint();
    const id = podmanOk([
      'run',
      '-d',
      '--pull=never',
      '--network',
      'host',
      '--label',
      `switchyard.test-image=${runId}`,
      ...makeArgs(ports),
    ]);
    containers.push(id);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const r = await get(readyUrl(ports));
      if (r.status === 200) {
        return { id, ports, readySeconds: Number(process.hrtime.bigint() - started) / 1e9 };
      }
      if (!running(id)) break;
      await sleep(25);
    }
    const out = logs(id);
    if (!running(id) && /EADDRINUSE|address already in use/i.test(out)) {
      console.log(`${what}: port taken, retrying (attempt ${attempt})`);
      continue;
    }
    throw new CheckFailed(
      `${what} did not become ready at ${readyUrl(ports)}\n--- logs ---\n${out}`,
    );
  }
  throw new CheckFailed(`${what}: no free port after 5 attempts`);
}

/** Runs `script` with node inside the image as its default user and parses its JSON output. */
function inspectInside(image, script, env = {}) {
  const envArgs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  const out = podmanOk([
    'run',
    '--rm',
    '--pull=never',
    '--network',
    'host',
    ...envArgs,
    image,
    'node',
    '--input-type=module',
    '-e',
    script,
  ]);
  return JSON.parse(out.split('\n').at(-1));
}

const CONTENT_SCRIPT = `
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
const walk = (dir, acc = []) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, acc); else acc.push(p);
  }
  return acc;
};
const dev = JSON.parse(process.env.DEV_DEPS);
const prod = JSON.parse(process.env.PROD_DEPS);
const appFiles = walk('/app/dist').concat(readdirSync('/app').filter((n) => n !== 'node_modules' && n !== 'dist'));
console.log(JSON.stringify({
  uid: process.getuid(),
  cwd: process.cwd(),
  top: readdirSync('/app').sort(),
  devPresent: dev.filter((d) => existsSync(join('/app/node_modules', d))),
  prodMissing: prod.filter((d) => !existsSync(join('/app/node_modules', d, 'package.json'))),
  tsFiles: appFiles.filter((f) => /\\.(c|m)?ts$/.test(f) && !f.endsWith('.d.ts')),
  testFiles: appFiles.filter((f) => /(^|\\/)(test|tests|__tests__)(\\/|$)|\\.test\\.js$/.test(f)),
  secretFiles: appFiles.filter((f) => /(^|\\/)(\\.env.*|.*\\.pem|.*\\.key|id_rsa.*|\\.npmrc)$/.test(f)),
  appWritable: (() => { try { accessSync('/app/dist/src', constants.W_OK); return true; } catch { return false; } })(),
  main: existsSync('/app/dist/src/main.js'),
}));
`;

async function main() {
  if (process.platform !== 'linux') skip(`podman needs Linux (this is ${process.platform})`);
  ensurePodman();

  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
  const git = gitInfo();
  const wantTags = [`${defaultName}:${git.sha}`, `${defaultName}:${git.short}`].map((t) =>
    git.dirty ? `${t}-dirty` : t,
  );
  const preexisting = new Set(wantTags.filter((t) => podman(['image', 'exists', t]).ok));

  // Build (the tree may be dirty on a developer machine: then the tags say -dirty).
  let buildLog = '';
  const sink = new Writable({
    write(chunk, _enc, done) {
      buildLog += chunk;
      done();
    },
  });
  let build;
  try {
    build = await buildImage({ allowDirty: true, engine: 'podman', log: sink });
  } catch (err) {
    console.log(buildLog.split('\n').slice(-40).join('\n'));
    throw new CheckFailed(`build: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    for (const t of wantTags)
      if (!preexisting.has(t) && podman(['image', 'exists', t]).ok) createdTags.push(t);
  }
  const steps = (buildLog.match(/^\[\d+\/\d+\] STEP /gm) ?? []).length;
  const cached = (buildLog.match(/^--> Using cache /gm) ?? []).length;
  const image = build.tags[0];
  check(
    build.tags.every((t) => /:[0-9a-f]{12,40}(-dirty)?$/.test(t)),
    `built ${build.tags.join(', ')}`,
  );

  // Image metadata.
  const [meta] = JSON.parse(podmanOk(['image', 'inspect', image]));
  const cfg = meta.Config ?? {};
  const labels = cfg.Labels ?? {};
  check(
    labels['org.opencontainers.image.revision'] === build.sha,
    'label revision is the git SHA',
    labels['org.opencontainers.image.revision'],
  );
  check(
    labels['org.opencontainers.image.version'] === pkg.version,
    'label version is package.json version',
    labels['org.opencontainers.image.version'],
  );
  check(
    !Number.isNaN(Date.parse(labels['org.opencontainers.image.created'] ?? '')) &&
      !labels['org.opencontainers.image.created'].startsWith('1970'),
    'label created is the build time',
    labels['org.opencontainers.image.created'],
  );
  check(
    /^(https?|git):\/\/\S+$/.test(labels['org.opencontainers.image.source'] ?? ''),
    'label source is a URL',
    labels['org.opencontainers.image.source'],
  );
  check(cfg.User === 'node', 'runs as user node', cfg.User);
  const env = Object.fromEntries(
    (cfg.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
  );
  check(env.NODE_ENV === 'production', 'NODE_ENV=production');
  check(env.SWITCHYARD_BUILD_SHA === build.sha, 'SWITCHYARD_BUILD_SHA is the git SHA');
  check(
    !Object.keys(env).some((k) => /TOKEN|SECRET|PASSWORD|CREDENTIAL/i.test(k)),
    'no secrets in the image environment',
    Object.keys(env).join(' '),
  );
  check(
    JSON.stringify(cfg.Cmd) === JSON.stringify(['node', 'dist/src/main.js', 'proxy']),
    'exec-form CMD runs the proxy',
    JSON.stringify(cfg.Cmd),
  );
  check(
    ['8080/tcp', '9090/tcp'].every((p) => p in (cfg.ExposedPorts ?? {})),
    'exposes 8080 and 9090',
    JSON.stringify(cfg.ExposedPorts),
  );
  // podman reports the health check at the top level, docker under Config.
  const healthcheck = cfg.Healthcheck ?? meta.Healthcheck;
  check(
    Array.isArray(healthcheck?.Test) && healthcheck.Test[0] === 'CMD',
    'has an exec-form HEALTHCHECK',
    JSON.stringify(healthcheck),
  );

  // Contents.
  const inside = inspectInside(image, CONTENT_SCRIPT, {
    DEV_DEPS: JSON.stringify(
      Object.keys(pkg.devDependencies ?? {}).concat(['vitest', 'typescript', 'eslint', 'prettier']),
    ),
    PROD_DEPS: JSON.stringify(Object.keys(pkg.dependencies ?? {})),
  });
  check(inside.uid !== 0, 'process uid is not 0', String(inside.uid));
  check(
    JSON.stringify(inside.top) ===
      JSON.stringify(['dist', 'healthcheck.mjs', 'node_modules', 'package.json']),
    '/app holds only dist, node_modules, package.json, healthcheck.mjs',
    inside.top.join(' '),
  );
  check(
    inside.devPresent.length === 0,
    'no dev dependencies in node_modules',
    inside.devPresent.join(' '),
  );
  check(
    inside.prodMissing.length === 0,
    'all production dependencies present',
    inside.prodMissing.join(' '),
  );
  check(
    inside.tsFiles.length === 0 && inside.testFiles.length === 0,
    'no TypeScript sources or tests',
    [...inside.tsFiles, ...inside.testFiles].join(' '),
  );
  check(
    inside.secretFiles.length === 0,
    'no .env, key or .npmrc files',
    inside.secretFiles.join(' '),
  );
  check(inside.main, 'dist/src/main.js present');
  check(!inside.appWritable, 'the code is read-only for the node user');

  // Two reference servers (blue, green) from the same image, on loopback.
  const ref = (pool, version) => (p) => [
    image,
    'node',
    'dist/src/main.js',
    'reference-server',
    '--listen',
    `127.0.0.1:${p[0]}`,
    '--pool',
    pool,
    '--version',
    version,
  ];
  const blue = await startOnFreePorts(
    'blue reference server',
    1,
    ref('blue', BLUE),
    (p) => `http://127.0.0.1:${p[0]}/`,
  );
  const green = await startOnFreePorts(
    'green reference server',
    1,
    ref('green', GREEN),
    (p) => `http://127.0.0.1:${p[0]}/`,
  );
  check(true, `reference servers up on 127.0.0.1:${blue.ports[0]} and :${green.ports[0]}`);

  // The proxy: the image's own CMD path, addresses from the environment (as the health check reads them).
  const proxy = await startOnFreePorts(
    'proxy',
    2,
    (p) => [
      '-e',
      `SWITCHYARD_LISTEN=127.0.0.1:${p[0]}`,
      '-e',
      `SWITCHYARD_ADMIN_LISTEN=127.0.0.1:${p[1]}`,
      image,
      'node',
      'dist/src/main.js',
      'proxy',
      '--pool',
      `blue=${BLUE}@http://127.0.0.1:${blue.ports[0]}`,
      '--pool',
      `green=${GREEN}@http://127.0.0.1:${green.ports[0]}`,
    ],
    (p) => `http://127.0.0.1:${p[1]}/readyz`,
  );
  const [port, adminPort] = proxy.ports;
  const base = `http://127.0.0.1:${port}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  check(
    true,
    `proxy ready in ${proxy.readySeconds.toFixed(2)} s (listen :${port}, admin :${adminPort})`,
  );

  const health = await get(`${admin}/healthz`);
  let healthBody = {};
  try {
    healthBody = JSON.parse(health.body);
  } catch {
    // checked below
  }
  check(
    health.status === 200 && healthBody.build === build.sha,
    '/healthz reports the build SHA',
    `${health.status} ${health.body}`,
  );

  const first = await get(`${base}/hello`);
  check(
    first.status === 200 && first.body.includes('"blue"') && first.body.includes(BLUE),
    'request routed to blue',
    `${first.status} ${first.body}`,
  );
  check(
    first.headers.get('x-switchyard-upstream') === `blue@${BLUE}`,
    'x-switchyard-upstream: blue@<sha>',
    String(first.headers.get('x-switchyard-upstream')),
  );

  const sw = await get(`${admin}/v1/switch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ to: 'green' }),
  });
  check(sw.status === 200, 'POST /v1/switch {to: green} accepted', `${sw.status} ${sw.body}`);
  const second = await get(`${base}/hello`);
  check(
    second.status === 200 && second.body.includes('"green"') && second.body.includes(GREEN),
    'next request routed to green',
    `${second.status} ${second.body}`,
  );

  const hc = podman(['healthcheck', 'run', proxy.id]);
  check(hc.ok, 'podman healthcheck run: healthy', `${hc.status} ${hc.stdout} ${hc.stderr}`);

  // SIGTERM: /readyz turns 503 at once, requests are still served during shutdownDelay, exit 0.
  const stopStarted = process.hrtime.bigint();
  const stopping = new Promise((res) => {
    const child = spawn('podman', ['stop', '-t', String(STOP_TIMEOUT_S), proxy.id], {
      stdio: 'ignore',
    });
    child.on('close', res);
  });
  let ready503 = -1;
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    const r = await get(`${admin}/readyz`);
    if (r.status === 503) {
      ready503 = Number(process.hrtime.bigint() - stopStarted) / 1e9;
      break;
    }
    await sleep(20);
  }
  check(
    ready503 >= 0,
    '/readyz answers 503 after SIGTERM',
    ready503 >= 0 ? `${ready503.toFixed(2)} s` : 'never within 3 s',
  );
  const during = await get(`${base}/hello`);
  check(
    during.status === 200,
    'requests still served during shutdownDelay',
    `${during.status} ${during.body}`,
  );
  await stopping;
  const stopSeconds = Number(process.hrtime.bigint() - stopStarted) / 1e9;
  const exitCode = podman(['inspect', proxy.id, '--format', '{{.State.ExitCode}}']).stdout;
  check(
    exitCode === '0' && stopSeconds < STOP_TIMEOUT_S,
    `exit code 0 after SIGTERM within ${STOP_TIMEOUT_S} s`,
    `exit ${exitCode} after ${stopSeconds.toFixed(1)} s\n${logs(proxy.id).split('\n').slice(-20).join('\n')}`,
  );

  const size = Number(meta.Size);
  const baseSize = Number(JSON.parse(podmanOk(['image', 'inspect', baseImages().at(-1)]))[0].Size);
  console.log(
    `image figures: size ${(size / 1e6).toFixed(1)} MB (base ${(baseSize / 1e6).toFixed(1)} MB + app ${((size - baseSize) / 1e6).toFixed(1)} MB), ` +
      `build ${build.seconds.toFixed(1)} s (${cached}/${steps} steps cached), ` +
      `start-to-ready ${proxy.readySeconds.toFixed(2)} s, SIGTERM-to-exit ${stopSeconds.toFixed(1)} s`,
  );
}

function cleanup() {
  for (const id of containers.splice(0)) podman(['rm', '-f', '-t', '0', id]);
  for (const tag of createdTags.splice(0)) podman(['rmi', tag]);
}

process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  console.log(`not ok ${passed + 1} - ${err instanceof Error ? err.message : String(err)}`);
  if (!(err instanceof CheckFailed) && err instanceof Error && err.stack) console.log(err.stack);
} finally {
  cleanup();
}
console.log(`image-check: ${passed} passed, ${failed ? 1 : 0} failed`);
process.exit(failed ? 1 : 0);
