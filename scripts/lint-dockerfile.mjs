#!/usr/bin/env node
// `node scripts/lint-dockerfile.mjs [Dockerfile]`: lints the Dockerfile in three passes and
// exits 1 on any finding:
//   1. dockerfile-utils (the validator behind the VS Code Docker language server: syntax,
//      instruction arguments, flags), every setting raised to error, plus its formatter.
//   2. The project's rules (STYLE.md §9, issue 7), after hadolint's where one exists: tagged
//      bases (never latest), multi-stage, npm ci, apt hygiene, no ADD, USER node, exec-form
//      CMD/ENTRYPOINT/HEALTHCHECK, NODE_ENV=production, OCI labels from ARG GIT_SHA, EXPOSE
//      8080 9090, no secrets in ARG/ENV.
//   3. shellcheck (Debian package) on the shell body of every shell-form RUN, as hadolint does.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot } from './image.mjs';

const file = process.argv[2] ?? join(repoRoot, 'Dockerfile');
const shown = relative(process.cwd(), file) || file;
const text = readFileSync(file, 'utf8');
const problems = [];
const report = (line, rule, message) => problems.push({ line, rule, message });

// --- 1. dockerfile-utils ------------------------------------------------------------------
let utils;
try {
  const mod = await import('dockerfile-utils');
  utils = mod.validate ? mod : mod.default;
} catch {
  console.error(`${shown}: dockerfile-utils is not installed (it is a dev dependency: npm ci)`);
  process.exit(1);
}
const ERROR = 2; // ValidationSeverity.ERROR
for (const d of utils.validate(text, {
  deprecatedMaintainer: ERROR,
  directiveCasing: ERROR,
  emptyContinuationLine: ERROR,
  instructionCasing: ERROR,
  instructionCmdMultiple: ERROR,
  instructionEntrypointMultiple: ERROR,
  instructionHealthcheckMultiple: ERROR,
  instructionJSONInSingleQuotes: ERROR,
  instructionWorkdirRelative: ERROR,
})) {
  report(d.range.start.line + 1, `dockerfile-utils/${d.code}`, d.message);
}
for (const edit of utils.format(text, { insertSpaces: true, tabSize: 2 })) {
  report(
    edit.range.start.line + 1,
    'dockerfile-utils/format',
    `formatting differs: expected ${JSON.stringify(edit.newText)}`,
  );
}

// --- 2. project rules ---------------------------------------------------------------------
/** Logical instructions: comments dropped, `\` continuations joined, first line kept. */
function instructions(source) {
  const out = [];
  let current = null;
  source.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (current === null) {
      if (/^\s*(#|$)/.test(line)) return;
      current = { line: i + 1, text: '', raw: '' };
    } else if (/^\s*#/.test(line)) {
      return; // comment inside a continuation
    }
    // `text` joins continuations as Docker does; `raw` keeps them, for shellcheck's line numbers.
    current.raw += `${line}\n`;
    if (line.endsWith('\\')) {
      current.text += line.slice(0, -1);
    } else {
      current.text += line;
      const m = /^\s*(\w+)\s*([\s\S]*)$/.exec(current.text);
      const raw = /^\s*\w+\s*([\s\S]*)$/.exec(current.raw)?.[1] ?? '';
      out.push({
        line: current.line,
        keyword: (m?.[1] ?? '').toUpperCase(),
        args: (m?.[2] ?? '').trim(),
        raw,
      });
      current = null;
    }
  });
  return out;
}

const all = instructions(text);
const stages = [];
for (const ins of all) {
  if (ins.keyword === 'FROM') stages.push({ from: ins, body: [] });
  else stages.at(-1)?.body.push(ins);
}
const final = stages.at(-1);
const stageNames = new Set();
const isJsonArray = (args) => {
  try {
    const v = JSON.parse(args);
    return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string');
  } catch {
    return false;
  }
};

if (stages.length < 2)
  report(
    1,
    'SY001',
    'use a multi-stage build: build with dev dependencies, run with production ones',
  );
for (const { from } of stages) {
  const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(from.args);
  const ref = m?.[1] ?? '';
  if (stageNames.has(ref)) continue;
  const tag = /@sha256:[0-9a-f]{64}$/.test(ref) ? 'digest' : /:([^/:]+)$/.exec(ref)?.[1];
  if (!tag) report(from.line, 'DL3006', `always tag the base image: ${ref}`);
  else if (tag === 'latest') report(from.line, 'DL3007', `never use :latest: ${ref}`);
  if (m?.[2]) stageNames.add(m[2]);
}
for (const ins of all) {
  if (ins.keyword === 'ADD') report(ins.line, 'DL3020', 'use COPY, not ADD');
  if (ins.keyword === 'MAINTAINER')
    report(ins.line, 'DL4000', 'MAINTAINER is deprecated: use a LABEL');
  if (ins.keyword === 'COPY') {
    const from = /--from=(\S+)/.exec(ins.args)?.[1];
    if (from && !stageNames.has(from) && !/^\d+$/.test(from))
      report(ins.line, 'DL3022', `COPY --from=${from} names no earlier stage`);
  }
  if (ins.keyword === 'ARG' || ins.keyword === 'ENV') {
    const name = /^([A-Za-z_][A-Za-z0-9_]*)/.exec(ins.args)?.[1] ?? '';
    if (/TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|NPM_AUTH/i.test(name)) {
      report(
        ins.line,
        'SY002',
        `${ins.keyword} ${name}: secrets end up in the image history; pass them at run time`,
      );
    }
  }
  if (ins.keyword === 'RUN') {
    const body = ins.args;
    if (/\bnpm\s+(install|i)\b/.test(body))
      report(
        ins.line,
        'SY003',
        'use npm ci (reproducible, from package-lock.json), not npm install',
      );
    if (/\bsudo\b/.test(body)) report(ins.line, 'DL3004', 'do not use sudo');
    if (/\bapt-get\s+(-\S+\s+)*install\b/.test(body)) {
      if (!/--no-install-recommends/.test(body))
        report(ins.line, 'DL3015', 'apt-get install needs --no-install-recommends');
      if (!/\s-y\b|--yes\b|-\w*y/.test(body))
        report(ins.line, 'DL3014', 'apt-get install needs -y');
      if (!/rm -rf \/var\/lib\/apt\/lists/.test(body))
        report(ins.line, 'DL3009', 'remove /var/lib/apt/lists in the same RUN');
    }
    if (/\bapt\s+(install|update)\b/.test(body)) report(ins.line, 'DL3027', 'use apt-get, not apt');
  }
}
if (final) {
  const body = final.body;
  const last = (kw) => body.filter((i) => i.keyword === kw).at(-1);
  const user = last('USER');
  if (!user) report(final.from.line, 'SY010', 'the runtime stage must set USER node');
  else if (/^(root|0)(:|$)/.test(user.args))
    report(user.line, 'DL3002', 'the last USER must not be root');
  else if (user.args !== 'node')
    report(user.line, 'SY010', `run as the unprivileged node user, not ${user.args}`);
  for (const kw of ['CMD', 'ENTRYPOINT']) {
    const ins = last(kw);
    if (ins && !isJsonArray(ins.args))
      report(ins.line, 'DL3025', `${kw} must be exec form (JSON array) so SIGTERM reaches node`);
  }
  if (!last('CMD'))
    report(final.from.line, 'SY011', 'the runtime stage needs an exec-form CMD ["node", ...]');
  const hc = last('HEALTHCHECK');
  if (!hc) report(final.from.line, 'SY012', 'the runtime stage needs a HEALTHCHECK');
  else if (!/\bCMD\s+\[/.test(hc.args))
    report(hc.line, 'SY012', 'HEALTHCHECK CMD must be exec form (no shell, no curl)');
  if (!body.some((i) => i.keyword === 'ENV' && /\bNODE_ENV=production\b/.test(i.args))) {
    report(final.from.line, 'SY013', 'set ENV NODE_ENV=production in the runtime stage');
  }
  const exposed = body.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
  for (const port of ['8080', '9090']) {
    if (!exposed.some((p) => p === port || p === `${port}/tcp`))
      report(final.from.line, 'SY014', `EXPOSE ${port}`);
  }
  if (!body.some((i) => i.keyword === 'ARG' && /^GIT_SHA\b/.test(i.args)))
    report(final.from.line, 'SY015', 'declare ARG GIT_SHA in the runtime stage');
  const labels = body
    .filter((i) => i.keyword === 'LABEL')
    .map((i) => i.args)
    .join('\n');
  for (const key of ['revision', 'source', 'version', 'created']) {
    if (!labels.includes(`org.opencontainers.image.${key}=`))
      report(final.from.line, 'SY016', `LABEL org.opencontainers.image.${key}`);
  }
  if (!/org\.opencontainers\.image\.revision="?\$\{?GIT_SHA\}?/.test(labels)) {
    report(
      final.from.line,
      'SY016',
      'org.opencontainers.image.revision must come from ARG GIT_SHA',
    );
  }
  for (const ins of body) {
    if (ins.keyword === 'COPY' && !/--from=/.test(ins.args) && /(^|\s)\.\s/.test(ins.args)) {
      report(
        ins.line,
        'SY017',
        'the runtime stage copies named paths only, never the whole context',
      );
    }
  }
}

// --- 3. shellcheck on RUN bodies ----------------------------------------------------------
const shellcheck = spawnSync('shellcheck', ['--version'], { encoding: 'utf8' });
if (shellcheck.status !== 0) {
  report(1, 'shellcheck', 'shellcheck is not installed (apt-get install shellcheck)');
} else {
  for (const ins of all) {
    if (ins.keyword !== 'RUN' || ins.args.startsWith('[')) continue;
    const script = ins.raw.replace(/^(--\S+\s+)+/, '');
    // SC2154: variables set by ARG/ENV look unassigned to shellcheck.
    const r = spawnSync('shellcheck', ['--shell=sh', '--exclude=SC2154', '--format=gcc', '-'], {
      input: script,
      encoding: 'utf8',
    });
    for (const line of r.stdout.split('\n').filter(Boolean)) {
      const m = /^-:(\d+):\d+: (\w+): (.*)$/.exec(line);
      report(ins.line + Number(m?.[1] ?? 1) - 1, 'shellcheck', m ? `${m[2]}: ${m[3]}` : line);
    }
  }
}

problems.sort((a, b) => a.line - b.line);
for (const p of problems) console.log(`${shown}:${p.line} ${p.rule} ${p.message}`);
if (problems.length > 0) {
  console.log(`${shown}: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(
  `${shown}: lint ok (dockerfile-utils, project rules, shellcheck on ${all.filter((i) => i.keyword === 'RUN').length} RUN instructions)`,
);
