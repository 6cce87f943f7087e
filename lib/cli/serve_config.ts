/**
 * Top layer (CLI): `server.ts serve --config FILE` and `--print-config`.
 * The file is TOML (npm `smol-toml`, pinned) or JSON (by a `.json` name);
 * every flag of `serve` is a key with the flag's name (`max-connections`,
 * or `max_connections`), and a flag given on the command line wins over
 * the file. The file is turned into flags placed before the command line's,
 * so one strict parser checks both. `--print-config` shows the result.
 *
 * No secret is in a flag (the key is in `--key-file`, passwords in the
 * userinfo file), so nothing printed here is secret.
 *
 * @module
 */

// Pinned inline and locked in deno.lock, like lib/login/saslprep.ts.
// deno-lint-ignore no-import-prefix
import { parse as parseToml } from "npm:smol-toml@1.9.1";
import { UsageError } from "../errors.ts";

/** The shape of one `parseArgs` option, as far as the config needs it. */
export interface ConfigFlagSpec {
  readonly type: "string" | "boolean";
  readonly multiple?: boolean;
}

/** Flags that only make sense on the command line. */
const COMMAND_LINE_ONLY = new Set([
  "config",
  "print-config",
  "help",
  "worker-index",
]);

/** The `--config` value in `args`, or `null`. */
export function configPath(args: readonly string[]): string | null {
  let path: string | null = null;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--") break;
    if (args[i] === "--config" && i + 1 < args.length) path = args[++i];
    else if (args[i].startsWith("--config=")) path = args[i].slice(9);
  }
  return path;
}

/**
 * Reads and checks a config file: a table whose keys are flag names.
 *
 * @param path The file (`.json` is JSON, anything else TOML).
 * @param options The command's flag specs.
 * @returns The values by flag name, as flag text (lists as arrays).
 * @throws {UsageError} If the file cannot be read or parsed, has an
 *   unknown key, or a value of the wrong type.
 */
export async function readConfigFile(
  path: string,
  options: Readonly<Record<string, ConfigFlagSpec>>,
): Promise<Map<string, string | boolean | string[]>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(
      `Cannot read config file ${JSON.stringify(path)}: ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
  }
  let table: unknown;
  try {
    table = path.endsWith(".json") ? JSON.parse(text) : parseToml(text);
  } catch (error) {
    const detail = error instanceof Error
      ? error.message.split("\n")[0]
      : String(error);
    throw new UsageError(
      `Cannot parse config file ${JSON.stringify(path)}: ${detail}`,
    );
  }
  if (typeof table !== "object" || table === null || Array.isArray(table)) {
    throw new UsageError(
      `Cannot use config file ${
        JSON.stringify(path)
      }: expected a table of flag names`,
    );
  }
  const values = new Map<string, string | boolean | string[]>();
  for (const [rawKey, value] of Object.entries(table)) {
    const key = rawKey.replaceAll("_", "-");
    const spec = options[key];
    const where = `config file ${JSON.stringify(path)}, key ${
      JSON.stringify(rawKey)
    }`;
    if (spec === undefined || COMMAND_LINE_ONLY.has(key)) {
      throw new UsageError(`Cannot use ${where}: not a serve flag`);
    }
    values.set(key, configValue(value, spec, where));
  }
  return values;
}

function configValue(
  value: unknown,
  spec: ConfigFlagSpec,
  where: string,
): string | boolean | string[] {
  if (spec.type === "boolean") {
    if (typeof value !== "boolean") {
      throw new UsageError(`Cannot use ${where}: expected true or false`);
    }
    return value;
  }
  const scalar = (item: unknown): string => {
    if (typeof item === "string") return item;
    if (typeof item === "number" && Number.isFinite(item)) return String(item);
    throw new UsageError(`Cannot use ${where}: expected a string or number`);
  };
  if (spec.multiple) {
    return Array.isArray(value) ? value.map(scalar) : [scalar(value)];
  }
  return scalar(value);
}

/**
 * The arguments with the config file's values put in front as flags, for
 * every key whose flag is not on the command line.
 *
 * @param args The command line (after `serve`).
 * @param options The command's flag specs.
 * @returns The arguments to parse.
 * @throws {UsageError} As {@link readConfigFile}.
 */
export async function expandConfigArgs(
  args: string[],
  options: Readonly<Record<string, ConfigFlagSpec>>,
): Promise<string[]> {
  const path = configPath(args);
  if (path === null) return args;
  const values = await readConfigFile(path, options);
  const given = flagsGiven(args);
  const fromFile: string[] = [];
  for (const [key, value] of values) {
    if (given.has(key)) continue;
    if (value === true) fromFile.push(`--${key}`);
    else if (Array.isArray(value)) {
      for (const item of value) fromFile.push(`--${key}=${item}`);
    } else if (value !== false) fromFile.push(`--${key}=${value}`);
  }
  return [...fromFile, ...args];
}

/** The long flag names present on a command line. */
export function flagsGiven(args: readonly string[]): Set<string> {
  const given = new Set<string>();
  for (const arg of args) {
    if (arg === "--") break;
    if (arg.startsWith("--")) given.add(arg.slice(2).split("=")[0]);
  }
  return given;
}

/**
 * The effective configuration as a TOML file that `--config` reads back:
 * every flag with its value, in the order of `options`.
 *
 * @param values The parsed flags.
 * @param options The command's flag specs.
 * @returns TOML text, one key per line.
 */
export function formatConfig(
  values: Readonly<Record<string, unknown>>,
  options: Readonly<Record<string, ConfigFlagSpec>>,
): string {
  const lines = ["# doorman serve: effective configuration"];
  for (const [key, spec] of Object.entries(options)) {
    if (COMMAND_LINE_ONLY.has(key)) continue;
    const value = values[key];
    if (value === undefined) {
      lines.push(spec.multiple ? `${key} = []` : `# ${key} not set`);
    } else if (typeof value === "boolean") lines.push(`${key} = ${value}`);
    else if (Array.isArray(value)) {
      const items = value.flatMap((item) => String(item).split(","))
        .map((item) => item.trim()).filter((item) => item !== "");
      lines.push(
        `${key} = [${items.map((item) => JSON.stringify(item)).join(", ")}]`,
      );
    } else if (/^\d{1,15}$/.test(String(value))) {
      lines.push(`${key} = ${value}`);
    } else lines.push(`${key} = ${JSON.stringify(String(value))}`);
  }
  return lines.join("\n");
}
