/**
 * Top layer (CLI): strict flag parsing shared by every subcommand. Wraps
 * `parseArgs` from `node:util` so an unknown flag, a missing value or a
 * stray argument is a `UsageError` with one short, clear line that points
 * to the command's `--help`.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../errors.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Which command is parsing, for the error message. */
export interface FlagContext {
  /** The command's name, e.g. `keygen` or `user add`. */
  command: string;
  /** How to get its help, e.g. `server.ts keygen --help`. */
  help: string;
  /** Whether positional arguments are accepted. @default {false} */
  allowPositionals?: boolean;
}

/**
 * Parses `args` strictly against `options`.
 *
 * @param args The arguments of the subcommand.
 * @param options `parseArgs` option specs.
 * @param context The command, for messages.
 * @throws {UsageError} On any unknown or malformed flag, e.g.
 *   `Cannot parse keygen arguments: unknown flag "--x"; see "server.ts keygen --help"`.
 */
export function parseFlags<T extends Options>(
  args: string[],
  options: T,
  context: FlagContext,
) {
  try {
    return parseArgs({
      args,
      options,
      strict: true,
      allowPositionals: context.allowPositionals ?? false,
    });
  } catch (error) {
    // No cause: describeError would append node:util's long text again.
    throw new UsageError(
      `Cannot parse ${context.command} arguments: ${
        describeParseError(error)
      }; see "${context.help}"`,
    );
  }
}

/** A short reason for a `parseArgs` error, naming the argument at fault. */
function describeParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof Error && "code" in error
    ? error.code
    : undefined;
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? "";
  const flag = /--?[A-Za-z][\w-]*/.exec(quoted)?.[0] ?? quoted;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    return `unknown flag ${JSON.stringify(quoted)}`;
  }
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    return `unexpected argument ${JSON.stringify(quoted)}`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    return message.includes("does not take an argument")
      ? `flag ${JSON.stringify(flag)} takes no value`
      : `flag ${JSON.stringify(flag)} needs a value`;
  }
  return message.split("\n")[0];
}

/**
 * Parses a whole number flag value within `[min, max]`.
 *
 * @throws {UsageError} If `text` is not such a number.
 */
export function positiveInteger(
  text: string,
  flag: string,
  range: { min: number; max?: number },
): number {
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < range.min || value > max) {
    throw new UsageError(
      `Cannot use ${flag} "${text}": expected a whole number from ${range.min} to ${max}`,
    );
  }
  return value;
}
