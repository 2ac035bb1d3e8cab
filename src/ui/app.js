// Switchyard dashboard (SPEC §11, issue 14). Plain browser JavaScript, no framework, no CDN.
// Data: GET /v1/state once, then the event stream GET /v1/events read with fetch() so the token
// travels in the Authorization header (EventSource cannot send headers; a token in a URL leaks
// into logs and history). Every DOM update goes through textContent: nothing from the API is
// parsed as HTML.

const TOKEN_KEY = 'switchyard.adminToken';
const RECONNECT_MS = 2000;

const state = {
  table: null,
  appliedRevision: 0,
  traffic: null,
  health: null,
  replicas: [],
  rollout: null,
  history: [],
  canWrite: false,
};

/** The running event stream's abort controller, or null. */
let stream = null;
let retryMs = RECONNECT_MS;

const $ = (id) => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`missing #${id}`);
  return el;
};

/** Builds an element: h('td', {class: 'num', dataset: {label: 'Req/s'}}, 'text', child...). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
  }
  return el;
}

/** Replaces the children of `el`, skipping absent ones (null, undefined, false). */
function fill(el, ...children) {
  el.replaceChildren(
    ...children.flat().filter((c) => c !== null && c !== undefined && c !== false),
  );
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

function authHeaders(extra = {}) {
  const t = token();
  return t === null ? extra : { ...extra, authorization: `Bearer ${t}` };
}

/** Calls the admin API; throws an Error with `status` and `code` for non-2xx answers. */
async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    cache: 'no-store',
    headers: authHeaders(method === 'GET' ? {} : { 'content-type': 'application/json' }),
    body: method === 'GET' ? undefined : JSON.stringify(body ?? {}),
  });
  const text = await res.text();
  let json = null;
  try {
    json = text === '' ? null : JSON.parse(text);
  } catch {
    json = null;
  }
  if (!res.ok) {
    const err = new Error(json?.error?.message ?? `HTTP ${res.status}`);
    err.status = res.status;
    err.code = json?.error?.code;
    throw err;
  }
  return json;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const pct = (share, digits = 1) => `${(share * 100).toFixed(digits)} %`;
const bpPct = (bp) => `${+(bp / 100).toFixed(2)} %`;

function timeOf(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString();
}

// CSP forbids inline style attributes set from markup, but the CSSOM is allowed: widths of the
// bars are set through element.style.
function meterBar(share, kind, label) {
  const inner = h('span');
  inner.style.width = `${Math.max(0, Math.min(100, share * 100))}%`;
  return h('span', { class: `bar ${kind}`, role: 'img', 'aria-label': label }, inner);
}

// ---------------------------------------------------------------------------------------------
// Rendering

function poolNames() {
  return Object.keys(state.table?.pools ?? {});
}

function versionOf(pool) {
  return state.table?.pools?.[pool]?.version ?? '?';
}

function renderSummary() {
  const t = state.table;
  $('summary').textContent =
    t === null
      ? 'No routing table yet'
      : `Revision ${t.revision} · applied here ${state.appliedRevision} · by ${t.updatedBy ?? '?'}`;
}

function renderPools() {
  const host = $('pools');
  const names = poolNames();
  if (names.length === 0) {
    fill(host, h('p', {}, 'No pools.'));
    return;
  }
  const traffic = state.traffic;
  const rows = names.map((name) => {
    const weight = state.table.weights[name] ?? 0;
    const observed = traffic?.pools?.[name];
    // With Redis the rates are the whole fleet's; with one replica, this one's.
    const rate = (traffic?.fleet ?? traffic)?.rates?.[name];
    const health = state.health?.pools?.[name];
    const endpoints = health?.endpoints?.length
      ? h(
          'ul',
          { class: 'endpoints' },
          health.endpoints.map((e) =>
            h(
              'li',
              {},
              h('span', { class: e.healthy ? 'up' : 'down' }, e.healthy ? '● up ' : '✕ down '),
              h('code', {}, e.url),
            ),
          ),
        )
      : h(
          'span',
          {},
          (state.table.pools[name]?.endpoints ?? []).length + ' endpoint(s), health unknown',
        );
    const drain = health?.drain;
    const status =
      weight > 0
        ? 'serving'
        : drain == null
          ? 'idle'
          : drain.drained
            ? 'idle, drained'
            : `draining: ${drain.inFlight} in flight, ${drain.longLived} long-lived`;
    const cell = (label, field, ...content) =>
      h('td', { dataset: { label, field }, class: field === 'name' ? null : 'num' }, ...content);
    return h(
      'tr',
      { dataset: { pool: name } },
      h(
        'td',
        { dataset: { label: 'Pool', field: 'name' } },
        h('strong', {}, name),
        ' ',
        h('code', { dataset: { field: 'version' } }, versionOf(name)),
      ),
      h('td', { dataset: { label: 'Endpoints', field: 'endpoints' } }, endpoints),
      cell(
        'Weight',
        'weight',
        bpPct(weight),
        meterBar(weight / 10000, 'configured', `configured ${bpPct(weight)}`),
      ),
      cell(
        'Observed',
        'observed',
        observed ? pct(observed.observedShare) : '–',
        observed?.skewed ? h('span', { class: 'skewed' }, ' skewed') : null,
        observed
          ? meterBar(observed.observedShare, 'observed', `observed ${pct(observed.observedShare)}`)
          : null,
        observed ? h('span', { class: 'hint' }, ` ${observed.requests} req`) : null,
      ),
      cell('Req/s', 'rps', rate ? rate.requestsPerSecond.toFixed(1) : '–'),
      cell('Errors', 'errors', rate && rate.errorRatio !== null ? pct(rate.errorRatio, 2) : '–'),
      cell('p99', 'p99', rate && rate.p99Ms !== null ? `${Math.round(rate.p99Ms)} ms` : '–'),
      h('td', { dataset: { label: 'State', field: 'state' } }, status),
    );
  });
  const head = [
    'Pool',
    'Endpoints',
    'Weight',
    'Observed (60 s)',
    traffic?.fleet ? `Req/s (${traffic.fleet.replicas} replica(s))` : 'Req/s',
    'Errors',
    'p99',
    'State',
  ];
  fill(
    host,
    h(
      'table',
      { id: 'pools-table' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          head.map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h('tbody', {}, rows),
    ),
  );
  renderPoolSelects();
}

function renderPoolSelects() {
  for (const id of ['canary-pool', 'switch-pool']) {
    const select = $(id);
    const names = poolNames();
    const current = select.value;
    const existing = [...select.options].map((o) => o.value).join(',');
    if (existing !== names.join(',')) {
      fill(select, ...names.map((n) => h('option', { value: n }, `${n} (${versionOf(n)})`)));
      if (names.includes(current)) select.value = current;
      else if (id === 'canary-pool' && names.includes('canary')) select.value = 'canary';
    }
  }
}

function renderReplicas() {
  const host = $('replicas');
  const revision = state.table?.revision ?? 0;
  if (state.replicas.length === 0) {
    fill(host, h('p', {}, 'No replica reports.'));
    return;
  }
  fill(
    host,
    h(
      'table',
      {},
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Replica', 'Applied revision', 'Live', 'Last heartbeat'].map((t) =>
            h('th', { scope: 'col' }, t),
          ),
        ),
      ),
      h(
        'tbody',
        {},
        state.replicas.map((r) =>
          h(
            'tr',
            { dataset: { replica: r.id } },
            h('td', { dataset: { label: 'Replica' } }, h('code', {}, r.id)),
            h(
              'td',
              { dataset: { label: 'Applied revision' } },
              String(r.revision),
              r.revision < revision ? h('span', { class: 'behind' }, ' behind') : null,
            ),
            h(
              'td',
              { dataset: { label: 'Live' } },
              r.live ? 'yes' : h('span', { class: 'down' }, 'no'),
            ),
            h('td', { dataset: { label: 'Last heartbeat' } }, timeOf(r.heartbeatAt)),
          ),
        ),
      ),
    ),
  );
}

function describeCommand(c) {
  if (c === null || typeof c !== 'object') return String(c);
  switch (c.op) {
    case 'canary':
      return `canary ${c.pool ?? 'canary'} ${c.basisPoints !== undefined ? bpPct(c.basisPoints) : `${c.percent} %`}`;
    case 'switch':
      return `switch to ${c.to}`;
    case 'set-weights':
    case 'weights':
      return `weights ${Object.entries(c.weights ?? {})
        .map(([p, w]) => `${p}=${bpPct(w)}`)
        .join(' ')}`;
    case 'set-pool':
      return `set-pool ${c.pool ?? c.name ?? ''} ${c.version ?? ''}`;
    default:
      return String(c.op ?? 'change');
  }
}

function renderHistory() {
  const host = $('history');
  if (state.history.length === 0) {
    fill(host, h('li', {}, 'No changes yet.'));
    return;
  }
  fill(
    host,
    ...state.history.map((e) =>
      h(
        'li',
        { class: e.result === 'rejected' ? 'rejected' : null },
        h('time', { datetime: e.time }, timeOf(e.time)),
        h('strong', {}, e.revision === null ? 'rejected' : `r${e.revision}`),
        ` ${describeCommand(e.command)} · ${e.actor}`,
        e.undoes !== undefined ? ` · undoes r${e.undoes}` : null,
        e.reason ? ` · ${e.reason.code}: ${e.reason.message}` : null,
        e.note ? h('div', { class: 'hint' }, e.note) : null,
      ),
    ),
  );
}

const ACTIVE = new Set(['progressing', 'paused', 'awaiting-approval']);

function stepText(step) {
  if ('basisPoints' in step) return bpPct(step.basisPoints);
  return step.pause === 'approval' ? 'wait for approval' : `pause ${step.pause}`;
}

function figures(label, f) {
  if (!f) return h('tr', {}, h('td', {}, label), h('td', { colspan: 4 }, '–'));
  return h(
    'tr',
    {},
    h('td', { dataset: { label: 'Pool' } }, label),
    h('td', { class: 'num', dataset: { label: 'Requests' } }, String(f.requests)),
    h('td', { class: 'num', dataset: { label: 'Errors' } }, String(f.errors)),
    h('td', { class: 'num', dataset: { label: 'Error ratio' } }, pct(f.errorRatio, 2)),
    h(
      'td',
      { class: 'num', dataset: { label: 'Latency' } },
      f.latencyMs === null ? '–' : `${Math.round(f.latencyMs)} ms`,
    ),
  );
}

function renderRollout() {
  const host = $('rollout');
  const r = state.rollout;
  const controls = $('rollout-controls');
  if (r === null) {
    fill(host, h('p', {}, 'No rollout has run.'));
    controls.hidden = true;
    renderControls();
    return;
  }
  const j = r.judgement;
  const evidence = j?.evidence;
  const lastReason = r.decisions.at(-1);
  fill(
    host,
    h(
      'p',
      {},
      h('strong', {}, r.id),
      ': ',
      h('code', {}, r.pool),
      r.version ? ` (${r.version})` : '',
      ` against ${r.baseline} · `,
      h('span', { class: `phase phase-${r.phase}`, id: 'rollout-phase' }, r.phase),
      ` · target weight ${bpPct(r.targetWeightBp)}`,
    ),
    r.phase === 'aborted' && lastReason
      ? h('p', { class: 'error', id: 'rollout-reason' }, `Aborted: ${lastReason.reason}`)
      : null,
    h(
      'ol',
      { class: 'steps', 'aria-label': 'Steps' },
      r.steps.map((s, i) =>
        h(
          'li',
          {
            'aria-current': i === r.step && ACTIVE.has(r.phase) ? 'step' : null,
            class: i < r.step ? 'done' : null,
          },
          stepText(s),
        ),
      ),
    ),
    j
      ? h(
          'div',
          {},
          h(
            'p',
            {},
            'Verdict: ',
            h('strong', { class: `verdict-${j.verdict}`, id: 'rollout-verdict' }, j.verdict),
            ` · ${j.reason}`,
          ),
          h(
            'p',
            {},
            h('label', { for: 'evidence' }, 'Evidence '),
            h('meter', {
              id: 'evidence',
              min: 0,
              max: Math.max(1, evidence.need),
              value: Math.min(evidence.have, evidence.need),
            }),
            ` ${evidence.have} / ${evidence.need} requests`,
            j.overdue ? h('span', { class: 'skewed' }, ' overdue') : null,
          ),
          h(
            'table',
            {},
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                [
                  'Pool',
                  'Requests',
                  'Errors',
                  'Error ratio',
                  `p${Math.round((r.analysis?.latency?.quantile ?? 0.99) * 100)}`,
                ].map((t) => h('th', { scope: 'col' }, t)),
              ),
            ),
            h(
              'tbody',
              {},
              figures(`${r.pool} (target)`, j.target),
              figures(`${r.baseline} (baseline)`, j.baseline),
            ),
          ),
        )
      : null,
    h('h3', {}, 'Decisions'),
    h(
      'ol',
      { class: 'timeline', id: 'rollout-decisions' },
      [...r.decisions]
        .reverse()
        .slice(0, 20)
        .map((d) =>
          h(
            'li',
            {},
            h('time', { datetime: d.time }, timeOf(d.time)),
            h('strong', {}, d.action),
            d.dryRun ? ' (dry run)' : '',
            ` · ${d.reason}`,
          ),
        ),
    ),
  );
  const active = ACTIVE.has(r.phase);
  controls.hidden = !(state.canWrite && active);
  $('rollout-pause').hidden = r.phase !== 'progressing';
  $('rollout-resume').hidden = r.phase !== 'paused';
  renderControls();
}

function renderControls() {
  $('controls').hidden = !state.canWrite;
  const owned = state.rollout !== null && ACTIVE.has(state.rollout.phase);
  $('controls-locked').hidden = !owned;
  for (const id of ['canary-form', 'switch-form']) {
    for (const el of $(id).elements) el.disabled = owned;
  }
}

function renderAll() {
  renderSummary();
  renderPools();
  renderReplicas();
  renderRollout();
  renderHistory();
}

// ---------------------------------------------------------------------------------------------
// Confirmation and actions

/** Shows the confirmation dialog naming the effect; resolves true when confirmed. */
function confirmEffect(text) {
  const dialog = $('confirm');
  $('confirm-text').textContent = text;
  return new Promise((resolve) => {
    const done = (ok) => {
      $('confirm-ok').removeEventListener('click', onOk);
      $('confirm-cancel').removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      dialog.close();
      resolve(ok);
    };
    const onOk = () => done(true);
    const onCancel = (e) => {
      e.preventDefault();
      done(false);
    };
    $('confirm-ok').addEventListener('click', onOk);
    $('confirm-cancel').addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

async function act(text, method, path, body, done) {
  if (!(await confirmEffect(text))) return;
  $('action-error').hidden = true;
  try {
    const answer = await api(method, path, body);
    $('action-result').textContent = done(answer);
  } catch (err) {
    $('action-error').textContent = `Refused: ${err.code ? `${err.code}: ` : ''}${err.message}`;
    $('action-error').hidden = false;
    if (err.status === 401) void boot();
  }
}

function wireControls() {
  $('canary-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const pool = $('canary-pool').value;
    const percent = Number($('canary-percent').value);
    void act(
      `Send ${percent} % of traffic to ${pool} (version ${versionOf(pool)})? The other pools share the rest in their current ratio.`,
      'POST',
      '/v1/canary',
      { percent, pool },
      (t) => `Revision ${t.revision}: ${pool} now gets ${bpPct(t.weights[pool] ?? 0)}.`,
    );
  });
  $('switch-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const pool = $('switch-pool').value;
    void act(
      `Send all traffic to ${pool} (version ${versionOf(pool)})? Every other pool goes to 0 % (kept running for rollback).`,
      'POST',
      '/v1/switch',
      { to: pool },
      (t) => `Revision ${t.revision}: all traffic to ${pool}.`,
    );
  });
  $('rollback').addEventListener('click', () => {
    const rev = state.table?.revision ?? 0;
    const owned = state.rollout !== null && ACTIVE.has(state.rollout.phase);
    void act(
      owned
        ? `Roll back: abort rollout ${state.rollout.id} and send its traffic back to ${state.rollout.baseline}?`
        : `Roll back the most recent change (the one that made revision ${rev}) and restore the table from before it?`,
      'POST',
      '/v1/rollback',
      {},
      (t) => `Revision ${t.revision}: rolled back.`,
    );
  });
  const rolloutAction = (action, text, body) => () => {
    const r = state.rollout;
    if (r === null) return;
    void act(
      text(r),
      'POST',
      `/v1/rollouts/current/${action}`,
      body,
      (x) => `Rollout ${x.id}: ${x.phase}.`,
    );
  };
  $('rollout-promote').addEventListener(
    'click',
    rolloutAction(
      'promote',
      (r) =>
        `Promote rollout ${r.id}: end the current pause and move ${r.pool} (version ${r.version ?? versionOf(r.pool)}) on to its next step?`,
      {},
    ),
  );
  $('rollout-pause').addEventListener(
    'click',
    rolloutAction(
      'pause',
      (r) => `Pause rollout ${r.id}: hold ${r.pool} at ${bpPct(r.targetWeightBp)}?`,
      {},
    ),
  );
  $('rollout-resume').addEventListener(
    'click',
    rolloutAction('resume', (r) => `Resume rollout ${r.id} from ${bpPct(r.targetWeightBp)}?`, {}),
  );
  $('rollout-abort').addEventListener(
    'click',
    rolloutAction(
      'abort',
      (r) =>
        `Abort rollout ${r.id}: send ${r.pool}'s ${bpPct(r.targetWeightBp)} of traffic back to ${r.baseline}?`,
      { reason: 'aborted from the dashboard' },
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Data: state, history, event stream

async function loadHistory() {
  try {
    const answer = await api('GET', '/v1/history?limit=15');
    state.history = answer.history ?? [];
    renderHistory();
  } catch (err) {
    if (err.status === 401) void boot();
  }
}

function onEvent(name, data) {
  switch (name) {
    case 'table':
      state.table = data.table;
      state.appliedRevision = data.appliedRevision;
      renderSummary();
      renderPools();
      renderReplicas();
      void loadHistory();
      break;
    case 'traffic':
      state.traffic = data;
      renderPools();
      break;
    case 'health':
      state.health = data;
      renderPools();
      break;
    case 'replicas':
      state.replicas = data.replicas;
      renderReplicas();
      break;
    case 'rollout':
      state.rollout = data.rollout;
      renderRollout();
      break;
    default:
      break;
  }
}

function setConn(text) {
  $('conn').textContent = text;
}

function stopStream() {
  if (stream !== null) stream.abort();
  stream = null;
}

async function startStream() {
  stopStream();
  const ctrl = new AbortController();
  stream = ctrl;
  try {
    const res = await fetch('/v1/events', {
      headers: authHeaders({ accept: 'text/event-stream' }),
      cache: 'no-store',
      signal: ctrl.signal,
    });
    if (res.status === 401) {
      void boot();
      return;
    }
    if (!res.ok || res.body === null) throw new Error(`HTTP ${res.status}`);
    setConn('Live');
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, '\n');
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line === '' || line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') name = val;
          else if (field === 'data') data.push(val);
          else if (field === 'retry' && /^\d+$/.test(val)) retryMs = Number(val);
        }
        if (data.length > 0) onEvent(name, JSON.parse(data.join('\n')));
      }
    }
  } catch {
    // the connection failed or was cut: reconnect below unless stopped on purpose
  }
  if (ctrl.signal.aborted || stream !== ctrl) return;
  setConn('Reconnecting…');
  setTimeout(() => {
    if (stream === ctrl) void startStream();
  }, retryMs);
}

function showLocked(message) {
  stopStream();
  state.canWrite = false;
  $('data').hidden = true;
  $('controls').hidden = true;
  $('auth').hidden = false;
  $('forget').hidden = true;
  const error = $('auth-error');
  error.textContent = message ?? '';
  error.hidden = message === null;
  setConn('Read-only: no token');
  $('summary').textContent = '';
  fetch('/readyz', { cache: 'no-store' })
    .then((r) => r.json())
    .then((r) => {
      $('public').textContent = `Readiness: ${r.status}, routing revision ${r.revision}.`;
    })
    .catch(() => {
      $('public').textContent = 'Readiness: the admin API does not answer.';
    });
}

/** Loads the state with the stored token (if any) and starts the event stream. */
async function boot() {
  stopStream();
  let answer;
  try {
    answer = await api('GET', '/v1/state');
  } catch (err) {
    if (err.status === 401) {
      const hadToken = token() !== null;
      sessionStorage.removeItem(TOKEN_KEY);
      showLocked(
        hadToken
          ? 'The admin API refused this token (401 Unauthorized). Check it and try again.'
          : null,
      );
      if (hadToken) $('token').focus();
      return;
    }
    setConn(`Admin API unreachable (${err.message}); retrying…`);
    setTimeout(() => void boot(), RECONNECT_MS);
    return;
  }
  $('auth').hidden = true;
  $('data').hidden = false;
  $('forget').hidden = token() === null;
  // Reads succeeded: with a token it is the right one, without one the API needs none. Either
  // way this page may change what the API lets it change.
  state.canWrite = true;
  state.table = answer.table;
  state.appliedRevision = answer.appliedRevision;
  renderAll();
  void loadHistory();
  void startStream();
}

function wireAuth() {
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const value = $('token').value.trim();
    if (value === '') return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $('token').value = '';
    void boot();
  });
  $('forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    void boot();
  });
}

wireAuth();
wireControls();
void boot();
