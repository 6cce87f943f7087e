/**
 * Top layer (CLI): `server.ts` dispatch to its subcommands `serve` (the
 * default), `keygen`, `key` and `user`, plus `--help` and `--version`.
 *
 * @module
 */

import type { CommandIo } from "./command_io.ts";
import { EXIT_CODES_TEXT } from "./exit_codes.ts";
import { unknownCommand } from "./flags.ts";
import { runKeygenCommand } from "./keygen_command.ts";
import { runKeyCommand } from "./key_command.ts";
import { runServeCommand, SERVE_OPTIONS_TEXT } from "./serve_command.ts";
import { runUserCommand } from "./user_command.ts";
import { VERSION } from "./version.ts";

const COMMANDS = ["serve", "keygen", "key", "user", "help"];

/**
 * Usage of the server program: its commands, then `serve`'s flags (the
 * default command), so `--help` lists every flag a new user needs.
 *
 * @param program How the user ran it, e.g. `deno task serve`.
 * @returns The `--help` text.
 */
export function serverUsage(program = "server.ts"): string {
  return `Usage: ${program} [COMMAND] [options]

Commands:
  serve            run the server (the default when no command is given)
  keygen           write a new random pre-shared key file (keygen --help)
  key              add, list or revoke keys of a key ring (key --help)
  user             add, change, delete or list users (user --help)

Options:
  -h, --help       show this help (each command also has --help)
  -V, --version    show the version

${SERVE_OPTIONS_TEXT}

${EXIT_CODES_TEXT}`;
}

/** Usage of `server.ts`. */
export const SERVER_USAGE: string = serverUsage();

/**
 * Runs `server.ts` with `args`.
 *
 * @returns The exit code.
 */
export async function runServerCommand(
  args: string[],
  io: CommandIo,
): Promise<number> {
  const program = io.program ?? "server.ts";
  const [first, ...rest] = args;
  switch (first) {
    case "serve":
      return await runServeCommand(rest, io);
    case "keygen":
      return await runKeygenCommand(rest, { ...io, program });
    case "key":
      return await runKeyCommand(rest, io);
    case "user":
      return await runUserCommand(rest, io);
    case "-h":
    case "--help":
    case "help":
      io.stdout(serverUsage(program));
      return 0;
    case "-V":
    case "--version":
      io.stdout(`doorman-server ${VERSION}`);
      return 0;
    default:
      if (first === undefined || first.startsWith("-")) {
        return await runServeCommand(args, io);
      }
      throw unknownCommand(first, COMMANDS, `${program} --help`);
  }
}
