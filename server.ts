/**
 * The doorman server program: `serve` (default), `keygen` and `user`
 * subcommands. All logic lives in lib/cli/; this file maps errors to one
 * line on stderr and an exit code.
 *
 * @module
 */

import { callerDirectory, denoCommandIo } from "./lib/cli/command_io.ts";
import {
  INTERRUPTED_EXIT_CODE,
  PromptInterruptedError,
} from "./lib/cli/password_prompt.ts";
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
    return await runServerCommand(args, denoCommandIo("server"));
  } catch (error) {
    if (error instanceof PromptInterruptedError) return INTERRUPTED_EXIT_CODE;
    console.error(`server: ${describeError(error)}`);
    return exitCodeFor(error);
  }
}

if (import.meta.main) {
  // Under `deno task`, relative paths are the caller's, not deno.json's.
  const caller = callerDirectory(new URL(".", import.meta.url));
  if (caller !== undefined) Deno.chdir(caller);
  Deno.exit(await main(Deno.args));
}
