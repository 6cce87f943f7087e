/**
 * Top layer (CLI): `server.ts` dispatch to its subcommands `serve` (the
 * default), `keygen` and `user`, plus `--help` and `--version`.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import type { CommandIo } from "./command_io.ts";
import { runKeygenCommand } from "./keygen_command.ts";
import { runKeyCommand } from "./key_command.ts";
import { runServeCommand } from "./serve_command.ts";
import { runUserCommand } from "./user_command.ts";
import { VERSION } from "./version.ts";

/** Usage of `server.ts`. */
export const SERVER_USAGE = `Usage: server.ts [COMMAND] [options]

Commands:
  serve            run the server (the default when no command is given)
  keygen           write a new random pre-shared key file
  key              add, list or revoke keys of a key ring (key --help)
  user             add, change, delete or list users (user --help)

Options:
  -h, --help       show this help (each command also has --help)
  -V, --version    show the version

Exit codes: 0 success; 1 runtime error (bad key file, malformed userinfo,
port in use, ...); 2 usage error.`;

/**
 * Runs `server.ts` with `args`.
 *
 * @returns The exit code.
 */
export async function runServerCommand(
  args: string[],
  io: CommandIo,
): Promise<number> {
  const [first, ...rest] = args;
  switch (first) {
    case "serve":
      return await runServeCommand(rest, io);
    case "keygen":
      return await runKeygenCommand(rest, io);
    case "key":
      return await runKeyCommand(rest, io);
    case "user":
      return await runUserCommand(rest, io);
    case "-h":
    case "--help":
    case "help":
      io.stdout(SERVER_USAGE);
      return 0;
    case "-V":
    case "--version":
      io.stdout(`doorman-server ${VERSION}`);
      return 0;
    default:
      if (first === undefined || first.startsWith("-")) {
        return await runServeCommand(args, io);
      }
      throw new UsageError(
        `Cannot run "${first}": unknown command; see "server.ts --help"`,
      );
  }
}
