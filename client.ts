/**
 * The doorman client program: interactive at a terminal, pipe mode for
 * scripts, and `send MESSAGE...`. All logic lives in lib/cli/; this file
 * maps errors to one line on stderr and an exit code.
 *
 * @module
 */

import { runClientCommand } from "./lib/cli/client_command.ts";
import { callerDirectory, denoClientIo } from "./lib/cli/command_io.ts";
import {
  INTERRUPTED_EXIT_CODE,
  PromptInterruptedError,
} from "./lib/cli/password_prompt.ts";
import { sanitizeLine } from "./lib/cli/terminal_text.ts";
import { describeError, exitCodeFor } from "./lib/errors.ts";

/**
 * Runs the client program.
 *
 * @param args Command-line arguments.
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  try {
    return await runClientCommand(args, denoClientIo());
  } catch (error) {
    if (error instanceof PromptInterruptedError) return INTERRUPTED_EXIT_CODE;
    // Close reasons come from the server: no control characters.
    console.error(`client: ${sanitizeLine(describeError(error))}`);
    return exitCodeFor(error);
  }
}

if (import.meta.main) {
  // Under `deno task`, relative paths are the caller's, not deno.json's.
  const caller = callerDirectory(new URL(".", import.meta.url));
  if (caller !== undefined) Deno.chdir(caller);
  Deno.exit(await main(Deno.args));
}
