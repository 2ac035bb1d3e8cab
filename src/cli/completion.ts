/**
 * `switchyard completion bash|zsh`: shell completion scripts generated from the command table
 * (commands, their options, and the values of `completion`, `help` and `--config`), plus pool
 * names, which the scripts ask the admin API for through the hidden `switchyard __pools`. The proxy's
 * and the reference server's flags are read from their own help texts, which are generated from
 * the settings they parse, so a new flag is completed without touching this file.
 */
import { settingsHelp } from '../config/load.js';
import { REFERENCE_SERVER_USAGE } from '../reference-server/reference-server.js';
import { COMMANDS, optionsOf, type CommandSpec } from './commands.js';

/** The shells a script is printed for. */
export const COMPLETION_SHELLS = ['bash', 'zsh'] as const;

/** One completable option of one command. */
interface Flag {
  readonly flag: string;
  readonly help: string;
  /** True when the next word is its value (nothing to complete there, or a file). */
  readonly takesValue: boolean;
}

/** `--listen HOST:PORT` lines of a help text: the flag, and whether a placeholder follows. */
function flagsFromHelp(text: string): Flag[] {
  const flags: Flag[] = [];
  // `--listen HOST:PORT`, `--upstream-header true|false, --no-upstream-header`: a placeholder
  // means a value follows, except a boolean's optional `true|false`.
  const line = /^ {2}(--[a-z][a-z0-9-]*)(?: (true\|false)| ([^\s,]+))?(?:, (--no-[a-z0-9-]+))?/gm;
  for (const m of text.matchAll(line)) {
    flags.push({ flag: m[1] as string, help: '', takesValue: m[3] !== undefined });
    if (m[4] !== undefined) flags.push({ flag: m[4], help: '', takesValue: false });
  }
  return flags;
}

function flagsOf(spec: CommandSpec): Flag[] {
  if (spec.name === 'proxy') {
    return [...flagsFromHelp(settingsHelp()), { flag: '--help', help: '', takesValue: false }];
  }
  if (spec.name === 'reference-server') {
    // Its help lists `-h, --help` with a short form first, which the pattern skips.
    return [
      ...flagsFromHelp(REFERENCE_SERVER_USAGE),
      { flag: '--help', help: '', takesValue: false },
    ];
  }
  return optionsOf(spec).map((o) => ({
    flag: `--${o.name}`,
    help: o.help,
    takesValue: o.type === 'string',
  }));
}

/** Words completed after the command (its positional values), besides its flags. */
function argumentWords(spec: CommandSpec): string[] {
  if (spec.name === 'completion') return [...COMPLETION_SHELLS];
  if (spec.name === 'help') return COMMANDS.map((c) => c.name);
  return [];
}

/** Every flag that takes a value, over all commands (completion stops after them). */
function valueFlags(): string[] {
  const set = new Set<string>();
  for (const spec of COMMANDS) for (const f of flagsOf(spec)) if (f.takesValue) set.add(f.flag);
  // Handled before the list: files, and pool names (canary --pool).
  set.delete('--config');
  set.delete('--pool');
  return [...set].sort();
}

const TOP_LEVEL_FLAGS = ['--help', '--version'];

/** Commands whose argument is an existing pool name (completed from the admin API). */
const POOL_ARGUMENT = ['switch', 'remove-pool', 'set-pool', 'mirror'];

/** The hidden command the scripts call for pool names. */
export const POOLS_COMMAND = '__pools';

/** The bash script. */
function bashScript(): string {
  const cases = COMMANDS.map((spec) => {
    const words = [...argumentWords(spec), ...flagsOf(spec).map((f) => f.flag)];
    const pools = POOL_ARGUMENT.includes(spec.name)
      ? ' if [[ $cur != -* ]]; then words="$(_switchyard_pools)"; fi;'
      : '';
    return `    ${spec.name}) words="${words.join(' ')}";${pools} ;;`;
  });
  return `# bash completion for switchyard, printed by \`switchyard completion bash\`.
# This shell: source <(switchyard completion bash)
# Every shell: switchyard completion bash > ~/.local/share/bash-completion/completions/switchyard
# (Word splitting of compgen's output is intended: no command, option or shell name has a space;
# bash 3.2, as on macOS, has no mapfile.)
# shellcheck disable=SC2207
# Pool names come from the admin API the command line points at (--admin, --token, or the
# SWITCHYARD_ADMIN_* variables), through \`switchyard __pools\`; nothing when it cannot be reached.
_switchyard_pools() {
  local line
  read -ra line <<< "$COMP_LINE"
  "\${line[0]}" __pools "\${line[@]:1}" 2>/dev/null
}
_switchyard() {
  local cur prev words
  cur=\${COMP_WORDS[COMP_CWORD]}
  prev=\${COMP_WORDS[COMP_CWORD-1]}
  COMPREPLY=()
  if [[ $COMP_CWORD -eq 1 ]]; then
    words="${[...COMMANDS.map((c) => c.name), ...TOP_LEVEL_FLAGS].join(' ')}"
  else
    case "$prev" in
      --config) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
      --pool)
        if [[ \${COMP_WORDS[1]} == canary ]]; then
          COMPREPLY=($(compgen -W "$(_switchyard_pools)" -- "$cur"))
        fi
        return 0 ;;
      ${valueFlags().join('|')}) return 0 ;;
    esac
    case "\${COMP_WORDS[1]}" in
${cases.join('\n')}
    *) return 0 ;;
    esac
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _switchyard switchyard
`;
}

/** A zsh single-quoted word. */
function zshQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** `name:description` for zsh's _describe (a colon in the name would need escaping; none has one). */
function described(name: string, help: string): string {
  return zshQuote(help === '' ? name : `${name}:${help}`);
}

/** The zsh script (works autoloaded from $fpath as `_switchyard`, or sourced). */
function zshScript(): string {
  const commands = COMMANDS.map((c) => `    ${described(c.name, c.summary)}`);
  const cases = COMMANDS.map((spec) => {
    const words = [
      ...argumentWords(spec).map((w) => described(w, '')),
      ...flagsOf(spec).map((f) => described(f.flag, f.help)),
    ];
    const pools = POOL_ARGUMENT.includes(spec.name) ? ' pools=1;' : '';
    return `    ${spec.name}) opts=(${words.join(' ')});${pools} ;;`;
  });
  return `#compdef switchyard
# zsh completion for switchyard, printed by \`switchyard completion zsh\`.
# This shell: source <(switchyard completion zsh)
# Every shell: switchyard completion zsh > ~/.zfunc/_switchyard (with ~/.zfunc in $fpath)
# Pool names from the admin API the command line points at (see the bash script).
_switchyard_pools() {
  \${words[1]} __pools \${words[2,-1]} 2>/dev/null
}
_switchyard() {
  local -a commands opts
  local pools
  if (( CURRENT == 2 )); then
    commands=(
${commands.join('\n')}
    )
    _describe -t commands 'switchyard command' commands
    compadd -- ${TOP_LEVEL_FLAGS.join(' ')}
    return
  fi
  case \${words[CURRENT-1]} in
    --config) _files; return ;;
    --pool) [[ \${words[2]} == canary ]] && compadd -- $(_switchyard_pools); return ;;
    ${valueFlags().join('|')}) return ;;
  esac
  case \${words[2]} in
${cases.join('\n')}
    *) return ;;
  esac
  if [[ -n $pools && \${words[CURRENT]} != -* ]]; then
    compadd -- $(_switchyard_pools)
    return
  fi
  _describe -t options 'switchyard option' opts
}
if [[ \${funcstack[1]} == _switchyard ]]; then
  _switchyard "$@"
else
  compdef _switchyard switchyard
fi
`;
}

/** The completion script for `shell`; undefined for a shell we have none for. */
export function completionScript(shell: string): string | undefined {
  if (shell === 'bash') return bashScript();
  if (shell === 'zsh') return zshScript();
  return undefined;
}
