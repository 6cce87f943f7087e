/**
 * Top layer (CLI): strict flag parsing shared by every subcommand. Wraps
 * `parseArgs` from `node:util` so an unknown flag, a missing value or a
 * stray argument is a `UsageError` with one clear line.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../errors.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses `args` strictly against `options`.
 *
 * @param args The arguments of the subcommand.
 * @param options `parseArgs` option specs.
 * @param command The command's name, for messages and the help hint.
 * @param allowPositionals Whether positional arguments are accepted.
 * @throws {UsageError} On any unknown or malformed flag.
 */
export function parseFlags<T extends Options>(
  args: string[],
  options: T,
  command: string,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (error) {
    const detail = (error as Error).message.split("\n")[0]
      .replace(/\.\s*$/, "")
      .replace(/^Unknown option/, "unknown option");
    throw new UsageError(
      `Cannot parse ${command} arguments: ${detail}; see "--help"`,
    );
  }
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
