/**
 * CLI: `server.ts keygen`, which writes a new random pre-shared key file
 * (mode 0600) for the server and its clients to share.
 *
 * It deliberately never prints the key: copy the file over a channel you
 * trust. It does not touch a running server; restart it to use a new key.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { parseFlags } from "./flags.ts";
import { DEFAULT_KEY_FILE, writeNewKeyFile } from "../key_file.ts";

/** Where the command writes its output. */
export interface KeygenIo {
  /** Writes one line of program output. */
  stdout(line: string): void;
  /** How the user ran the server, for help hints. @default `server.ts` */
  readonly program?: string;
}

/** The `keygen --help` text. */
export const KEYGEN_USAGE = `Usage: server.ts keygen [--out FILE] [--force]

Writes a new pre-shared key: 32 random bytes as 64 hex characters, to a
file with mode 0600. Give the same file to the server and every client
(--key-file FILE, or its content in DOORMAN_KEY). The key is never printed.

Flags:
  --out FILE   the key file to write (default: ${DEFAULT_KEY_FILE})
  --force      replace FILE if it exists (default: off, refuse)
  -h, --help   print this help and exit (default: off)`;

/**
 * Runs `keygen` with the arguments that follow it.
 *
 * @param args The arguments after `keygen`.
 * @param io Where to print the result or the help text.
 * @returns The exit code: 0.
 * @throws {UsageError} If a flag is unknown, lacks its value, or an
 *   argument is left over.
 * @throws {Error} If the file exists without `--force`, or cannot be
 *   written.
 * @example Usage
 * ```ts ignore
 * const code = await runKeygenCommand(["--out", "my.key"], {
 *   stdout: (line) => console.log(line),
 * });
 * ```
 */
export async function runKeygenCommand(
  args: string[],
  io: KeygenIo,
): Promise<number> {
  const flags = parseKeygenArgs(args, io.program ?? "server.ts");
  if (flags.help) {
    io.stdout(KEYGEN_USAGE);
    return 0;
  }
  await writeNewKeyFile(flags.out, { force: flags.force });
  io.stdout(`wrote new key to ${JSON.stringify(flags.out)} (mode 0600)`);
  return 0;
}

interface KeygenFlags {
  out: string;
  force: boolean;
  help: boolean;
}

function parseKeygenArgs(args: string[], program: string): KeygenFlags {
  const { values } = parseFlags(args, {
    out: { type: "string", default: DEFAULT_KEY_FILE },
    force: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  }, { command: "keygen", help: `${program} keygen --help` });
  if (values.out === "") {
    throw new UsageError("Cannot use --out: the path is empty");
  }
  return { out: values.out, force: values.force, help: values.help };
}
