/**
 * The doorman server program: `serve` (default), `keygen` and `user`
 * subcommands. All logic lives in lib/cli/; this file maps errors to one
 * line on stderr and an exit code.
 *
 * @module
 */

import { denoCommandIo } from "./lib/cli/command_io.ts";
import { runServerCommand } from "./lib/cli/server_command.ts";
import { describeError, exitCodeFor } from "./lib/errors.ts";

/**
 * Runs the server program.
 *
 * @param args Command-line arguments.
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  try {
    return await runServerCommand(args, denoCommandIo());
  } catch (error) {
    console.error(`server: ${describeError(error)}`);
    return exitCodeFor(error);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
