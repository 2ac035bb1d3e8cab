/**
 * Every command of the `switchyard` binary, its arguments and options, in one table: the general
 * help, each command's `--help`, the one-line usage printed with a usage error, "did you mean"
 * and the shell completion scripts are all generated from it, so none of them can drift.
 */

/** Where the default admin API is (SPEC §5). */
export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9090';

/** One option of a command. */
export interface OptionSpec {
  readonly name: string;
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  /** Placeholder of the value in help texts (`URL`, `N`). */
  readonly value?: string;
  readonly help: string;
}

/** What kind of command it is; decides which option groups it takes. */
type Kind = 'read' | 'change' | 'local' | 'server';

/** One command. */
export interface CommandSpec {
  readonly name: string;
  /** Arguments and own options as in the usage line, e.g. `PERCENT [--pool POOL]`. */
  readonly synopsis: string;
  /** One line for the general help. */
  readonly summary: string;
  /** A few sentences for the command's own help. */
  readonly description: string;
  readonly kind: Kind;
  /** Options of this command only (the group options come from its kind). */
  readonly options: readonly OptionSpec[];
  readonly examples: readonly string[];
  /** Preformatted lines printed under the description (sub-commands of `rollout`). */
  readonly details?: string;
}

const HELP_OPTION: OptionSpec = {
  name: 'help',
  type: 'boolean',
  short: 'h',
  help: 'print this help',
};

/** Options of every command that talks to the admin API. */
export const API_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'admin',
    type: 'string',
    value: 'URL',
    help: `admin API, may end in a path prefix (env SWITCHYARD_ADMIN_URL, default ${DEFAULT_ADMIN_URL})`,
  },
  { name: 'token', type: 'string', value: 'T', help: 'bearer token (env SWITCHYARD_ADMIN_TOKEN)' },
  { name: 'json', type: 'boolean', help: "print the server's answer as JSON (for scripts)" },
];

/** Options of every command that changes the table. */
export const CHANGE_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'wait',
    type: 'boolean',
    help: 'answer once every live replica has applied the change',
  },
  {
    name: 'timeout',
    type: 'string',
    value: 'D',
    help: 'with --wait: how long to wait (e.g. 5s, 500ms; default 10s)',
  },
  {
    name: 'expect-revision',
    type: 'string',
    value: 'N',
    help: 'refuse the change unless the table is at revision N',
  },
  {
    name: 'actor',
    type: 'string',
    value: 'NAME',
    help: 'who makes the change, for the audit log (env SWITCHYARD_ACTOR, default $USER@host)',
  },
];

/** Every command, in the order the general help lists them. */
export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'proxy',
    synopsis: '[--config FILE] [flags]',
    summary: 'run the proxy (or the demo); flags: `switchyard proxy --help`',
    description:
      'With no config file, no Redis and no pools it runs the demo. Every flag: `switchyard proxy --help`.',
    kind: 'server',
    options: [],
    examples: ['switchyard proxy', 'switchyard proxy --config switchyard.yaml'],
  },
  {
    name: 'reference-server',
    synopsis: '[--listen HOST:PORT] [--pool NAME] [--version SHA]',
    summary: "the demo's upstream: `switchyard reference-server --help`",
    description: 'Every flag: `switchyard reference-server --help`.',
    kind: 'server',
    options: [],
    examples: ['switchyard reference-server --listen 127.0.0.1:3001 --pool green'],
  },
  {
    name: 'status',
    synopsis: '',
    summary: 'table, weights, endpoint health and observed traffic',
    description:
      'Prints the revision, the control store (and its namespace with Redis), then one row per ' +
      'pool: version, configured weight, the share of requests this replica routed to it over ' +
      'the last 60 s, and its endpoints (marked "down" when health checks or ejection took them ' +
      'out). A change shifts the observed share gradually: the window still holds requests ' +
      'routed by the previous table until it has passed.',
    kind: 'read',
    options: [
      {
        name: 'watch',
        type: 'boolean',
        help: 'repeat every second until interrupted: redrawn on a terminal, one line per change otherwise',
      },
    ],
    examples: [
      'switchyard status',
      'switchyard status --watch',
      'switchyard status --json | jq .state.table.weights',
    ],
  },
  {
    name: 'canary',
    synopsis: 'PERCENT [--pool POOL]',
    summary: 'give POOL (default canary) PERCENT; the other pools keep their ratio',
    description:
      'PERCENT is 0 to 100 with at most two decimals. The other pools share the rest in their ' +
      'current ratio, so a canary ramp never moves users between them. Refused ' +
      '(NO_STABLE_POOL) when every other pool has weight 0.',
    kind: 'change',
    options: [
      {
        name: 'pool',
        type: 'string',
        value: 'POOL',
        help: 'the pool that gets PERCENT (default canary)',
      },
    ],
    examples: ['switchyard canary 5', 'switchyard canary 25 --wait', 'switchyard canary 0'],
  },
  {
    name: 'weights',
    synopsis: 'POOL=PERCENT...',
    summary: 'set every weight at once (pools not named get 0)',
    description: 'The percentages must add up to 100; pools not named get 0.',
    kind: 'change',
    options: [],
    examples: ['switchyard weights blue=90 canary=10', 'switchyard weights blue=50 green=50'],
  },
  {
    name: 'switch',
    synopsis: 'POOL [--force]',
    summary: 'all traffic to POOL in one revision',
    description:
      'Refused (POOL_UNHEALTHY) when POOL has no healthy endpoint on the replica that answers, ' +
      'unless --force is given.',
    kind: 'change',
    options: [
      {
        name: 'force',
        type: 'boolean',
        help: 'switch even when POOL has no healthy endpoint',
      },
    ],
    examples: ['switchyard switch green', 'switchyard switch green --wait --timeout 30s'],
  },
  {
    name: 'rollback',
    synopsis: '',
    summary: 'undo the most recent change not yet undone',
    description:
      'Restores the table from before the most recent change (weights and pools alike) as a new ' +
      'revision. Repeated rollbacks walk further back, never forward.',
    kind: 'change',
    options: [],
    examples: ['switchyard rollback'],
  },
  {
    name: 'set-pool',
    synopsis: 'POOL --version SHA --endpoint URL [--endpoint URL...]',
    summary: 'create a pool, or deploy a version or endpoints into one',
    description:
      'SHA is an immutable version: a git SHA of 7 to 40 lowercase hex characters, or ' +
      'sha256:<64 hex>. A pool that receives traffic keeps its version (POOL_LIVE): deploy into ' +
      'an idle pool, then shift traffic. Its endpoints may change (removed ones are drained). ' +
      'A new pool starts at weight 0.',
    kind: 'change',
    options: [
      { name: 'version', type: 'string', value: 'SHA', help: 'the immutable version (git SHA)' },
      {
        name: 'endpoint',
        type: 'string',
        multiple: true,
        value: 'URL',
        help: 'an endpoint of the pool, http://host:port (repeat for several)',
      },
    ],
    examples: [
      'switchyard set-pool green --version 9ab14d0 --endpoint http://10.0.0.21:3000',
      'switchyard set-pool green --version 9ab14d0 --endpoint http://10.0.0.21:3000 --endpoint http://10.0.0.22:3000',
    ],
  },
  {
    name: 'remove-pool',
    synopsis: 'POOL',
    summary: 'remove a pool that has weight 0',
    description:
      'Refused (POOL_LIVE) while the pool has traffic: shift it away first. Its endpoints are drained.',
    kind: 'change',
    options: [],
    examples: ['switchyard remove-pool canary'],
  },
  {
    name: 'rules',
    synopsis: '',
    summary: 'the routing rules, in the order they are tried before the weighted split',
    description:
      'One row per rule: its name, its pool and its matches (all must hold). Requests no rule ' +
      'matches follow the weights.',
    kind: 'read',
    options: [],
    examples: ['switchyard rules', 'switchyard rules --json'],
  },
  {
    name: 'set-rules',
    synopsis: '--file FILE',
    summary: 'replace the routing rules with those in a JSON file',
    description:
      'FILE holds {"rules":[...]} (the body of PUT /v1/rules) or a bare array of rules; an ' +
      'empty array removes every rule. The server validates every rule (a bad one names its ' +
      'field) and a rollback restores the previous rules.',
    kind: 'change',
    options: [{ name: 'file', type: 'string', value: 'FILE', help: 'JSON file with the rules' }],
    examples: [
      'switchyard set-rules --file rules.json',
      "echo '[]' > none.json && switchyard set-rules --file none.json",
    ],
  },
  {
    name: 'mirror',
    synopsis: 'POOL --percent N [--methods GET,HEAD] | off',
    summary: 'copy a share of the requests to POOL, fire-and-forget (`mirror off` ends it)',
    description:
      'Copies N percent (more than 0, at most 100, two decimals) of the requests whose method ' +
      'is listed (default GET and HEAD) to POOL. Clients never wait for a copy: its answer is ' +
      'discarded and counted apart (switchyard_mirror_* metrics). Copies carry ' +
      '`x-switchyard-mirror: 1`. POOL cannot be removed while it is the mirror target.',
    kind: 'change',
    options: [
      {
        name: 'percent',
        type: 'string',
        value: 'N',
        help: 'share of the requests copied, more than 0, at most 100',
      },
      {
        name: 'methods',
        type: 'string',
        value: 'M,M',
        help: 'methods copied (default GET,HEAD; e.g. GET,HEAD,POST)',
      },
    ],
    examples: [
      'switchyard mirror canary --percent 10',
      'switchyard mirror canary --percent 100 --methods GET,HEAD,POST',
      'switchyard mirror off',
    ],
  },
  {
    name: 'history',
    synopsis: '[--limit N]',
    summary: 'audit log, newest first: who changed what, and what was refused',
    description:
      'One row per command: revision, time, actor, source (cli, admin, redis), result and the ' +
      'command; a refused command shows its reason below it.',
    kind: 'read',
    options: [{ name: 'limit', type: 'string', value: 'N', help: 'at most N entries (1 to 1000)' }],
    examples: ['switchyard history', 'switchyard history --limit 5'],
  },
  {
    name: 'replicas',
    synopsis: '',
    summary: 'replicas following this namespace and the revision each has applied',
    description: 'A replica is live while its last heartbeat is under 5 s old.',
    kind: 'read',
    options: [],
    examples: ['switchyard replicas'],
  },
  {
    name: 'rollout',
    synopsis: 'start|status|wait|promote|pause|resume|abort ...',
    summary: 'progressive rollouts judged by the proxy',
    description:
      "Moves traffic to POOL in steps and judges it against the baseline from the proxy's own " +
      'counts; a worse target is aborted by itself. With Redis every replica shares it.',
    kind: 'read',
    options: [],
    details: `sub-commands:
  start POOL [--version SHA --endpoint URL...] [--steps 5,1m,25,approval,100]
             [--baseline POOL] [--strategy blue-green] [--dry-run]
             [--webhook EVENTS=URL...] [--webhook-timeout 5s]
                            EVENTS: pre-rollout, pre-step (gates), step, paused,
                            promoted, aborted, decision, drained; comma-separated
  status [--watch]          step, weights, evidence, verdict and the last decisions
  wait [--timeout 30m]      block until the rollout ends: exit 0 promoted, 1 aborted
  promote [--full]          end the current pause (--full: to 100 % now)
  pause | resume
  abort [--reason TEXT]`,
    examples: ['switchyard rollout start canary --steps 5,1m,25,2m,100', 'switchyard rollout wait'],
  },
  {
    name: 'wait-drained',
    synopsis: 'POOL [--timeout D]',
    summary: 'wait until nothing flows to POOL on any live replica (then scale it down)',
    description:
      'Polls GET /v1/pools/POOL/drain every 500 ms and prints a line when the picture changes. ' +
      'Exit 0 when every live replica has applied a table without traffic to POOL and has no ' +
      'request, WebSocket or SSE stream open to it; exit 1 when --timeout expires first.',
    kind: 'read',
    options: [
      {
        name: 'timeout',
        type: 'string',
        value: 'D',
        help: 'how long to wait (e.g. 90s, 10m; default 10m)',
      },
    ],
    examples: ['switchyard wait-drained blue', 'switchyard wait-drained blue --timeout 15m'],
  },
  {
    name: 'version',
    synopsis: '',
    summary: 'print the version of this switchyard (also --version)',
    description: 'Prints the package version.',
    kind: 'local',
    options: [],
    examples: ['switchyard version', 'switchyard --version'],
  },
  {
    name: 'completion',
    synopsis: 'bash|zsh',
    summary: 'print a shell completion script',
    description:
      'Completes commands, options, and pool names (read from the admin API that the line ' +
      'or SWITCHYARD_ADMIN_URL points at). Load it in the current ' +
      'shell with `source <(switchyard completion bash)` (or zsh), or save it where your shell ' +
      'loads completions from: bash: ~/.local/share/bash-completion/completions/switchyard; ' +
      'zsh: a file named _switchyard in a directory of $fpath.',
    kind: 'local',
    options: [],
    examples: [
      'source <(switchyard completion bash)',
      'switchyard completion zsh > ~/.zfunc/_switchyard',
    ],
  },
  {
    name: 'help',
    synopsis: '[COMMAND]',
    summary: "this help, or one command's (also COMMAND --help)",
    description: 'Prints the general help, or the usage, options and examples of COMMAND.',
    kind: 'local',
    options: [],
    examples: ['switchyard help canary'],
  },
];

/** The spec of `name`, or undefined for an unknown command. */
export function commandSpec(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/** Every option `spec` takes, own options first, `--help` last. */
export function optionsOf(spec: CommandSpec): readonly OptionSpec[] {
  switch (spec.kind) {
    case 'read':
      return [...spec.options, ...API_OPTIONS, HELP_OPTION];
    case 'change':
      return [...spec.options, ...CHANGE_OPTIONS, ...API_OPTIONS, HELP_OPTION];
    case 'local':
    case 'server':
      return [...spec.options, HELP_OPTION];
  }
}

/** The one-line usage of a command: `usage: switchyard canary PERCENT [--pool POOL] [options]`. */
export function usageLine(spec: CommandSpec): string {
  const more = spec.kind === 'read' || spec.kind === 'change' ? ' [options]' : '';
  return `usage: switchyard ${spec.name}${spec.synopsis === '' ? '' : ` ${spec.synopsis}`}${more}`;
}

/** `--timeout D` / `-h, --help`, the left column of an option in help texts. */
function optionLabel(option: OptionSpec): string {
  const long = `--${option.name}${option.value === undefined ? '' : ` ${option.value}`}`;
  return option.short === undefined ? long : `-${option.short}, ${long}`;
}

/** Help texts stay within this many columns (a wide left column still wins). */
const HELP_WIDTH = 100;

/** `  left  text`, the text wrapped under itself past HELP_WIDTH. */
function entryLines(left: string, text: string, width: number): string[] {
  const indent = ' '.repeat(width + 4);
  const [first = '', ...more] = wrap(text, Math.max(40, HELP_WIDTH - indent.length));
  const head =
    left.length > width
      ? [`  ${left}`, `${indent}${first}`]
      : [`  ${left.padEnd(width)}  ${first}`];
  return [...head, ...more.map((line) => `${indent}${line}`)];
}

function optionRows(options: readonly OptionSpec[], width: number): string[] {
  return options.flatMap((o) => entryLines(optionLabel(o), o.help, width));
}

/** `switchyard COMMAND --help`: usage, description, options by group, examples. */
export function commandHelp(spec: CommandSpec): string {
  const all = optionsOf(spec);
  const width = Math.max(...all.map((o) => optionLabel(o).length));
  const lines = [
    usageLine(spec),
    '',
    ...wrap(`${capitalise(spec.summary)}. ${spec.description}`, 96),
    ...(spec.details === undefined ? [] : ['', spec.details]),
  ];
  const own = [
    ...spec.options,
    ...(spec.kind === 'local' || spec.kind === 'server' ? [HELP_OPTION] : []),
  ];
  if (own.length > 0) lines.push('', 'options:', ...optionRows(own, width));
  if (spec.kind === 'change')
    lines.push('', 'change options:', ...optionRows(CHANGE_OPTIONS, width));
  if (spec.kind === 'read' || spec.kind === 'change') {
    lines.push('', 'admin API options:', ...optionRows([...API_OPTIONS, HELP_OPTION], width));
  }
  lines.push('', 'examples:', ...spec.examples.map((e) => `  ${e}`));
  if (spec.kind === 'read' || spec.kind === 'change') lines.push('', EXIT_CODES_LINE);
  return `${lines.join('\n')}\n`;
}

const EXIT_CODES_LINE =
  'exit codes: 0 done, 1 refused by the server, 2 usage error, 3 admin API unreachable';

/** `switchyard --help`: every command and every option of the operator commands. */
export function generalHelp(): string {
  const entry = (spec: CommandSpec): string[] =>
    entryLines(`${spec.name}${spec.synopsis === '' ? '' : ` ${spec.synopsis}`}`, spec.summary, 30);
  const group = (kinds: readonly Kind[]): string[] =>
    COMMANDS.filter((c) => kinds.includes(c.kind)).flatMap(entry);
  const width = Math.max(...[...CHANGE_OPTIONS, ...API_OPTIONS].map((o) => optionLabel(o).length));
  return `${[
    'usage: switchyard <command> [arguments] [options]',
    '',
    'run:',
    ...group(['server']),
    '',
    'operate a running proxy through its admin API:',
    ...group(['read', 'change']),
    '',
    'other:',
    ...group(['local']),
    '',
    'admin API options (every operator command):',
    ...optionRows(API_OPTIONS, width),
    '',
    'change options (canary, weights, switch, rollback, set-pool, remove-pool):',
    ...optionRows(CHANGE_OPTIONS, width),
    '',
    EXIT_CODES_LINE,
    "`switchyard COMMAND --help` prints a command's usage, options and examples.",
  ].join('\n')}\n`;
}

function capitalise(text: string): string {
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}`;
}

/** Wraps prose at `width` columns on spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}
