#!/usr/bin/env node
// `npm run image [-- --allow-dirty] [--engine docker|podman] [--name NAME] [--pull POLICY]`
//
// Builds the Switchyard image and tags it with the full and the short (12) git SHA of HEAD,
// never `latest`. Refuses a dirty work tree (an image tagged with a SHA must hold exactly that
// commit) unless --allow-dirty, which tags `<sha>-dirty` instead. Uses docker when `docker info`
// reaches an engine, podman otherwise (SWITCHYARD_IMAGE_ENGINE or --engine force one).
// Build output goes to stderr; stdout gets the tags, full SHA first, one per line, so
// `TAG=$(npm run -s image | head -n1)` works in scripts.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

/** The repository root (this file lives in scripts/). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Default image name; podman stores it as localhost/switchyard. */
export const defaultName = 'switchyard';

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000, ...opts });
  return {
    ok: r.status === 0,
    status: r.status,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    error: r.error,
  };
}

/** Whether `cmd` runs at all (is installed). */
export function hasCommand(cmd) {
  return run(cmd, ['--version']).ok;
}

/**
 * Picks the container engine: `requested` if given, else docker when `docker info` reaches an
 * engine (a podman shim named docker counts as podman), else podman. Throws when neither works.
 */
export function detectEngine(requested) {
  if (requested) {
    if (requested !== 'docker' && requested !== 'podman') {
      throw new Error(`unknown engine "${requested}" (docker or podman)`);
    }
    if (!hasCommand(requested)) throw new Error(`${requested} is not installed`);
    return requested;
  }
  const docker = run('docker', ['info'], { timeout: 15_000 });
  if (docker.ok) {
    const version = run('docker', ['--version']).stdout;
    return /podman/i.test(version) ? 'podman' : 'docker';
  }
  if (hasCommand('podman')) return 'podman';
  throw new Error('no container engine: `docker info` failed and podman is not installed');
}

/** HEAD's full and short SHA, and whether the work tree differs from it (untracked files too). */
export function gitInfo(root = repoRoot) {
  const head = run('git', ['rev-parse', 'HEAD'], { cwd: root });
  if (!head.ok) throw new Error(`not a git work tree with a commit: ${head.stderr.trim()}`);
  const sha = head.stdout.trim();
  const status = run('git', ['status', '--porcelain'], { cwd: root });
  if (!status.ok) throw new Error(`git status failed: ${status.stderr.trim()}`);
  return {
    sha,
    short: sha.slice(0, 12),
    dirty: status.stdout.trim() !== '',
    changes: status.stdout,
  };
}

function sourceUrl(root, pkg) {
  if (process.env.SWITCHYARD_IMAGE_SOURCE) return process.env.SWITCHYARD_IMAGE_SOURCE;
  const origin = run('git', ['remote', 'get-url', 'origin'], { cwd: root });
  if (origin.ok && origin.stdout.trim() !== '') {
    // git@host:owner/repo.git -> https://host/owner/repo; credentials in a URL are dropped.
    const url = origin.stdout.trim().replace(/\.git$/, '');
    const scp = /^[^@/]+@([^:]+):(.+)$/.exec(url);
    if (scp) return `https://${scp[1]}/${scp[2]}`;
    try {
      const u = new URL(url);
      // A clone of a local path (e.g. CI cloning a work tree) names no public source.
      if (/^(https?|git|ssh):$/.test(u.protocol)) {
        u.username = '';
        u.password = '';
        return u.href;
      }
    } catch {
      // not a URL: a local path
    }
  }
  const repo = typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url;
  return repo ?? `https://www.npmjs.com/package/${pkg.name}`;
}

/**
 * Builds and tags the image. Resolves to `{ engine, tags, sha, dirty, seconds }`; rejects when
 * the tree is dirty without `allowDirty` or the build fails. `log` receives build output.
 */
export async function buildImage({
  root = repoRoot,
  allowDirty = false,
  engine: requestedEngine,
  name = defaultName,
  pull = 'never',
  log = process.stderr,
} = {}) {
  const git = gitInfo(root);
  if (git.dirty && !allowDirty) {
    throw new Error(
      `refusing to build: the work tree has changes not in ${git.short}, so a SHA tag would lie.\n` +
        `Commit them, or pass --allow-dirty to tag the image <sha>-dirty.\n${git.changes}`,
    );
  }
  const engine = detectEngine(requestedEngine);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const suffix = git.dirty ? '-dirty' : '';
  const sha = `${git.sha}${suffix}`;
  const tags = [`${name}:${git.sha}${suffix}`, `${name}:${git.short}${suffix}`];
  const created = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const args = ['build'];
  // podman: keep HEALTHCHECK (the OCI format drops it); no registry here, so do not pull.
  if (engine === 'podman') args.push('--format', 'docker', `--pull=${pull}`, '--network', 'host');
  args.push(
    '--build-arg',
    `GIT_SHA=${sha}`,
    '--build-arg',
    `VERSION=${pkg.version}`,
    '--build-arg',
    `CREATED=${created}`,
    '--build-arg',
    `SOURCE=${sourceUrl(root, pkg)}`,
  );
  for (const tag of tags) args.push('-t', tag);
  args.push('-f', join(root, 'Dockerfile'), root);

  const started = process.hrtime.bigint();
  const code = await new Promise((resolve, reject) => {
    const child = spawn(engine, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.on('error', reject);
    child.on('close', resolve);
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) throw new Error(`${engine} build failed (exit ${code})`);
  return { engine, tags, sha, dirty: git.dirty, seconds };
}

async function main() {
  const { values } = parseArgs({
    options: {
      'allow-dirty': { type: 'boolean', default: false },
      engine: { type: 'string' },
      name: { type: 'string', default: defaultName },
      pull: { type: 'string', default: 'never' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(
      'usage: npm run image -- [--allow-dirty] [--engine docker|podman] [--name NAME] [--pull POLICY]',
    );
    return;
  }
  const result = await buildImage({
    allowDirty: values['allow-dirty'],
    engine: values.engine ?? process.env.SWITCHYARD_IMAGE_ENGINE,
    name: values.name,
    pull: values.pull,
  });
  process.stderr.write(`built with ${result.engine} in ${result.seconds.toFixed(1)} s\n`);
  for (const tag of result.tags) console.log(tag);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    console.error(`image: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
