/**
 * The doorman client program: interactive at a terminal, pipe mode for
 * scripts, and `send MESSAGE...`. All logic lives in lib/cli/; this file
 * maps errors to one line on stderr and an exit code.
 *
 * @module
 */

import { runClientCommand } from "./lib/cli/client_command.ts";
import { denoClientIo } from "./lib/cli/client_pipe.ts";
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
    console.error(`client: ${describeError(error)}`);
    return exitCodeFor(error);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
