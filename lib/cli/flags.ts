/**
 * Top layer (CLI): strict flag parsing and flag values, written once for
 * every subcommand. Wraps `parseArgs` from `node:util` so an unknown flag, a
 * missing value or a stray argument is a `UsageError` with one short line
 * that suggests the nearest flag and points to the command's `--help`; and
 * parses numbers, ports and durations with one wording.
 *
 * This file does no I/O.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../errors.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * The longest duration a flag may give, in seconds: what a timer holds
 * (2^31 - 1 ms). Longer values would fire at once.
 */
export const MAX_DURATION_SECONDS = 2_147_483;

const SECONDS_REGEXP = /^[0-9]+(\.[0-9]+)?$/;
const WHOLE_REGEXP = /^[0-9]+$/;

/** Which command is parsing, for the error message. */
export interface FlagContext {
  /** The command's name, e.g. `keygen` or `user add`. */
  command: string;
  /** How to get its help, e.g. `deno task serve keygen --help`. */
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
 * @returns What `parseArgs` returns.
 * @throws {UsageError} On any unknown or malformed flag, e.g.
 *   `Cannot parse client arguments: unknown flag "--usr" (did you mean
 *   "--user"?); see "deno task client --help"`.
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
        describeParseError(error, Object.keys(options))
      }; see "${context.help}"`,
    );
  }
}

/** A short reason for a `parseArgs` error, naming the argument at fault. */
function describeParseError(error: unknown, names: string[]): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof Error && "code" in error
    ? error.code
    : undefined;
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? "";
  const flag = /--?[A-Za-z][\w-]*/.exec(quoted)?.[0] ?? quoted;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const typed = quoted.replace(/^-+/, "").split("=")[0];
    const near = nearest(typed, names);
    const hint = near === null ? "" : ` (did you mean "--${near}"?)`;
    return `unknown flag ${JSON.stringify(quoted)}${hint}`;
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
 * The candidate closest to `typed` by edit distance, if close enough to be
 * a likely typo (1 edit, or 2 in words of 6 letters or more; swapping two
 * neighbours is one edit), or a word it starts with.
 *
 * @param typed What the user typed, e.g. `usr`.
 * @param candidates The known names, e.g. `["user", "host"]`.
 * @returns The nearest candidate, or `null`.
 */
export function nearest(
  typed: string,
  candidates: readonly string[],
): string | null {
  const extended = candidates.filter((name) => name.startsWith(typed));
  if (typed.length > 1 && extended.length === 1) return extended[0];
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(typed, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const limit = Math.min(2, Math.max(1, Math.floor(typed.length / 3)));
  return bestDistance <= limit ? best : null;
}

/**
 * A `UsageError` for an unknown subcommand, suggesting the nearest one.
 *
 * @param typed The word the user typed.
 * @param commands The known subcommands.
 * @param help How to get the command's help.
 * @returns The error to throw.
 */
export function unknownCommand(
  typed: string,
  commands: readonly string[],
  help: string,
): UsageError {
  const near = nearest(typed, commands);
  const hint = near === null ? "" : ` (did you mean "${near}"?)`;
  return new UsageError(
    `Cannot run ${JSON.stringify(typed)}: unknown command${hint}; ` +
      `see "${help}"`,
  );
}

/** Edit distance (optimal string alignment) between two short strings. */
function editDistance(left: string, right: string): number {
  const rows = [Array.from({ length: right.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= left.length; i++) {
    const row = [i];
    for (let j = 1; j <= right.length; j++) {
      const cost = left[i - 1] === right[j - 1] ? 0 : 1;
      row[j] = Math.min(
        rows[i - 1][j] + 1,
        row[j - 1] + 1,
        rows[i - 1][j - 1] + cost,
      );
      if (
        i > 1 && j > 1 && left[i - 1] === right[j - 2] &&
        left[i - 2] === right[j - 1]
      ) {
        row[j] = Math.min(row[j], rows[i - 2][j - 2] + 1);
      }
    }
    rows.push(row);
  }
  return rows[left.length][right.length];
}

/**
 * Parses a whole number flag value within `[min, max]`.
 *
 * @param text The flag's value.
 * @param flag The flag's name, e.g. `--max-connections`.
 * @param range The smallest and largest values allowed.
 * @returns The number.
 * @throws {UsageError} If `text` is not such a number.
 */
export function positiveInteger(
  text: string,
  flag: string,
  range: { min: number; max?: number },
): number {
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const value = WHOLE_REGEXP.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < range.min || value > max) {
    throw new UsageError(
      `Cannot use ${flag} ${
        JSON.stringify(text)
      }: expected a whole number from ${range.min} to ${max}`,
    );
  }
  return value;
}

/**
 * Parses a port flag value.
 *
 * @param text The flag's value.
 * @param options `allowZero`: `0` (pick a free port) is allowed.
 * @returns The port.
 * @throws {UsageError} If `text` is not a port.
 */
export function parsePort(
  text: string,
  options: { allowZero?: boolean } = {},
): number {
  return positiveInteger(text, "--port", {
    min: options.allowZero ? 0 : 1,
    max: 65535,
  });
}

/**
 * Parses a duration flag value in seconds; fractions are allowed (`1.5` is
 * 1500 ms).
 *
 * @param text The flag's value, e.g. `10` or `0.5`.
 * @param flag The flag's name, e.g. `--timeout`.
 * @param range Smallest and largest seconds; `max` is at most
 *   {@link MAX_DURATION_SECONDS}, its default. `min` 0 allows `0`.
 * @returns The duration in milliseconds.
 * @throws {UsageError} If `text` is not such a duration.
 */
export function parseSeconds(
  text: string,
  flag: string,
  range: { min: number; max?: number },
): number {
  const max = Math.min(range.max ?? Infinity, MAX_DURATION_SECONDS);
  const seconds = SECONDS_REGEXP.test(text) ? Number(text) : NaN;
  const ms = Math.ceil(seconds * 1000);
  const zeroOk = range.min === 0 && seconds === 0;
  if (!(seconds <= max) || (!zeroOk && !(seconds >= range.min && ms > 0))) {
    const low = range.min === 0 ? "0" : `${range.min}`;
    throw new UsageError(
      `Cannot use ${flag} ${
        JSON.stringify(text)
      }: expected seconds from ${low} to ${max}`,
    );
  }
  return ms;
}
