/** The commands that need no admin API: `version`, `help` and `completion`. */
import { UsageError } from './args.js';
import { COMMANDS, commandHelp, commandSpec, generalHelp, type CommandSpec } from './commands.js';
import { COMPLETION_SHELLS, completionScript } from './completion.js';
import { didYouMean } from './suggest.js';
import { packageVersion } from './version.js';

/** Where a local command writes. */
export interface LocalIo {
  readonly stdout: { write(text: string): unknown };
}

/** Runs `version`, `help` or `completion`; resolves to exit code 0, throws UsageError. */
export function runLocal(spec: CommandSpec, positionals: readonly string[], io: LocalIo): number {
  switch (spec.name) {
    case 'version':
      expectArgs(positionals, 0, 'version takes no arguments');
      io.stdout.write(`switchyard ${packageVersion()}\n`);
      return 0;
    case 'help': {
      if (positionals.length === 0) {
        io.stdout.write(generalHelp());
        return 0;
      }
      expectArgs(positionals, 1, 'help takes at most one COMMAND');
      const name = positionals[0] as string;
      const about = commandSpec(name);
      if (about === undefined) {
        throw new UsageError(
          `unknown command ${JSON.stringify(name)}${didYouMean(
            name,
            COMMANDS.map((c) => c.name),
          )}`,
        );
      }
      io.stdout.write(commandHelp(about));
      return 0;
    }
    case 'completion': {
      expectArgs(positionals, 1, `completion needs a shell: ${COMPLETION_SHELLS.join(' or ')}`);
      const shell = positionals[0] as string;
      const script = completionScript(shell);
      if (script === undefined) {
        throw new UsageError(
          `no completion for ${JSON.stringify(shell)}: ${COMPLETION_SHELLS.join(' or ')}${didYouMean(shell, COMPLETION_SHELLS)}`,
        );
      }
      io.stdout.write(script);
      return 0;
    }
    default:
      throw new Error(`runLocal: ${spec.name} is not a local command`);
  }
}

function expectArgs(positionals: readonly string[], count: number, message: string): void {
  if (positionals.length !== count) throw new UsageError(message);
}
