/**
 * Top layer (CLI): `client.ts`, the client program. Parses the flags, finds
 * the key (`--key-file`, `DOORMAN_KEY`, `doorman.key`) and the password
 * (`--password-file`, `DOORMAN_PASSWORD`, a hidden prompt), connects, and
 * hands the connection to a mode: interactive (`client_interactive.ts`),
 * pipe or `send` (`client_pipe.ts`, which also holds `ClientIo`).
 *
 * It does not print errors or choose exit codes for them: it throws, and
 * `client.ts` prints `client: <message>` and maps `exitCodeFor`. It never
 * prints a key or password.
 *
 * @module
 */

import { connect } from "../client/connect.ts";
import type { Connection } from "../client/connection.ts";
import { UsageError } from "../errors.ts";
import { resolvePsk } from "../key_file.ts";
import type { CommandIo } from "./command_io.ts";
import { runInteractive } from "./client_interactive.ts";
import { type ClientIo, runPipe, runSend } from "./client_pipe.ts";
import { parseFlags } from "./flags.ts";
import { runForwardCommand } from "./forward_command.ts";
import {
  MAX_PASSWORD_BYTES,
  PASSWORD_ENV,
  readPassword,
} from "./password_prompt.ts";
import { VERSION } from "./version.ts";

const DEFAULT_HOST = "127.0.0.1";
const DEFAULT_PORT = "9000";
const DEFAULT_TIMEOUT_SECONDS = "10";
const MAX_TIMEOUT_SECONDS = 86_400;
const MAX_PASSWORD_FILE_BYTES = 64 * 1024;
const SECONDS_REGEXP = /^[0-9]+(\.[0-9]+)?$/;

const SYNOPSIS = `Usage: client.ts [options]
       client.ts send [options] [--] MESSAGE...
       client.ts forward --listen [HOST:]PORT --target NAME [options]
       client.ts stdio --target NAME [options]`;

const MODES = `Modes:
  (no command)  stdin is a terminal: interactive; each line typed at the
                ">>> " prompt is sent and its reply printed; /quit, Ctrl-D
                or Ctrl-C leaves
                stdin is not a terminal: pipe; each line of stdin (a final
                CR stripped, empty lines included) is one message; replies
                and pushed messages are printed as they arrive; exits once
                stdin ended and every message was confirmed
  send          sends each MESSAGE in order and prints each reply (nothing
                for a message the server only acknowledges)
  forward       tunnels each connection to a local port to a target the
                server offers (see "client.ts forward --help")
  stdio         tunnels stdin and stdout to a target (ssh ProxyCommand)`;

const OPTIONS_TEXT = `Options:
  --host HOST           server address (default ${DEFAULT_HOST})
  --port PORT           server port (default ${DEFAULT_PORT})
  --key-file FILE       pre-shared key file (default: $DOORMAN_KEY if set,
                        else doorman.key; never created)
  --user NAME           log in as NAME (default: no login)
  --password-file FILE  read the password from FILE's first line (default:
                        $${PASSWORD_ENV} if set, else a hidden prompt when
                        stdin is a terminal)
  --timeout SECONDS     deadline for connect, handshake and login
                        (default ${DEFAULT_TIMEOUT_SECONDS})
  --json                pipe and send: one JSON object per line,
                        {"message","reply"} or {"message","confirmed":true},
                        and {"push"} for pushed messages (pipe mode)
  -h, --help            show this help
  -V, --version         show the version`;

/** The exit-code table, as `--help` and the README show it. */
export const CLIENT_EXIT_CODES = `Exit codes:
  0  success: every message sent was confirmed
  1  connection or runtime error (refused, reset, bad key file, ...)
  2  usage error (unknown flag, missing or bad value)
  3  key rejected (the pre-shared keys differ)
  4  login rejected (unknown user, wrong password, or login required)
  5  the server closed or timed out before confirming`;

/** Usage of `client.ts`. */
export const CLIENT_USAGE = `${SYNOPSIS}

Connects to a doorman server, proves the pre-shared key, logs in with
--user, then sends messages.

${MODES}

${OPTIONS_TEXT}

${CLIENT_EXIT_CODES}`;

/** Usage of `client.ts send`. */
export const SEND_USAGE = `Usage: client.ts send [options] [--] MESSAGE...

Sends each MESSAGE in order and prints each reply on its own line (nothing
for a message the server only acknowledges); exits 0 only once every message
was confirmed. Put "--" before a message that starts with "-".

${OPTIONS_TEXT}

${CLIENT_EXIT_CODES}`;

const OPTIONS = {
  host: { type: "string", default: DEFAULT_HOST },
  port: { type: "string", default: DEFAULT_PORT },
  "key-file": { type: "string" },
  user: { type: "string" },
  "password-file": { type: "string" },
  timeout: { type: "string", default: DEFAULT_TIMEOUT_SECONDS },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
  version: { type: "boolean", short: "V", default: false },
} as const;

const DEFAULTS = {
  messages: [],
  host: DEFAULT_HOST,
  port: Number(DEFAULT_PORT),
  timeoutMs: Number(DEFAULT_TIMEOUT_SECONDS) * 1000,
  json: false,
} as const;

/** A parsed command line. */
export interface ClientCommand {
  /** `help`, `send-help` and `version` print and exit; the others connect. */
  readonly mode:
    | "help"
    | "send-help"
    | "version"
    | "interactive"
    | "pipe"
    | "send";
  /** The messages of `send`. */
  readonly messages: readonly string[];
  readonly host: string;
  readonly port: number;
  readonly keyFile?: string;
  readonly user?: string;
  readonly passwordFile?: string;
  readonly timeoutMs: number;
  readonly json: boolean;
}

/**
 * Parses the arguments of `client.ts`, without any I/O.
 *
 * @param args The command-line arguments.
 * @param options Whether stdin is a terminal (interactive or pipe mode).
 * @returns The mode and its settings.
 * @throws {UsageError} On an unknown flag or command, a bad value, `send`
 *   without a message, or `--password-file` without `--user`.
 */
export function parseClientArgs(
  args: string[],
  options: { stdinIsTerminal: boolean },
): ClientCommand {
  const { values, positionals } = parseFlags(args, OPTIONS, {
    command: "client",
    help: "client.ts --help",
    allowPositionals: true,
  });
  const [command, ...messages] = positionals;
  const send = command === "send";
  if (values.help) return { ...DEFAULTS, mode: send ? "send-help" : "help" };
  if (values.version) return { ...DEFAULTS, mode: "version" };
  const base = {
    messages: send ? messages : [],
    host: values.host,
    port: parsePort(values.port),
    keyFile: values["key-file"],
    user: values.user,
    passwordFile: values["password-file"],
    timeoutMs: parseTimeout(values.timeout),
    json: values.json,
  };
  if (command !== undefined && !send) {
    throw new UsageError(
      `Cannot run ${JSON.stringify(command)}: unknown command; ` +
        `see "client.ts --help"`,
    );
  }
  if (send && messages.length === 0) {
    throw new UsageError('Cannot run "send": missing MESSAGE');
  }
  if (base.passwordFile !== undefined && base.user === undefined) {
    throw new UsageError("Cannot use --password-file without --user");
  }
  if (base.user === "") throw new UsageError("Cannot use --user: empty name");
  const mode = send ? "send" : options.stdinIsTerminal ? "interactive" : "pipe";
  return { ...base, mode };
}

/**
 * Runs `client.ts` with `args`.
 *
 * @param args The command-line arguments.
 * @param io The console, stdin and environment.
 * @returns 0 once every message was confirmed (or after `--help`).
 * @throws {UsageError} On a bad command line or no way to read a password.
 * @throws {ConnectionError} If the server cannot be reached.
 * @throws {KeyRejectedError} If the pre-shared keys differ.
 * @throws {LoginRejectedError} If the login is refused or required.
 * @throws {ClosedError} If the server closes before confirming.
 * @throws {TimeoutError} If connect, handshake and login miss the deadline.
 * @example Usage
 * ```ts ignore
 * const code = await runClientCommand(["send", "hi"], denoClientIo());
 * ```
 */
export async function runClientCommand(
  args: string[],
  io: ClientIo,
): Promise<number> {
  if (args[0] === "forward" || args[0] === "stdio") {
    return await runForwardCommand(args[0], args.slice(1), io);
  }
  const command = parseClientArgs(args, {
    stdinIsTerminal: io.stdinIsTerminal,
  });
  if (command.mode === "help" || command.mode === "send-help") {
    io.stdout(command.mode === "help" ? CLIENT_USAGE : SEND_USAGE);
    return 0;
  }
  if (command.mode === "version") {
    io.stdout(`doorman-client ${VERSION}`);
    return 0;
  }
  checkPasswordSource(command, io);
  const { psk } = await resolvePsk({ keyFile: command.keyFile, env: io.env });
  const password = await findPassword(command, io);
  const connection = await connect({
    host: command.host,
    port: command.port,
    psk,
    user: command.user,
    password,
    timeoutMs: command.timeoutMs,
  });
  try {
    await runMode(command, connection, io);
  } finally {
    await connection.close();
  }
  return 0;
}

function runMode(
  command: ClientCommand,
  connection: Connection,
  io: ClientIo,
): Promise<void> {
  switch (command.mode) {
    case "interactive":
      return runInteractive(connection, io);
    case "send":
      return runSend(connection, io, {
        messages: command.messages,
        json: command.json,
      });
    default:
      return runPipe(connection, io, { json: command.json });
  }
}

/** Fails early when `--user` has no password source and no terminal. */
function checkPasswordSource(command: ClientCommand, io: CommandIo): void {
  if (
    command.user !== undefined && command.passwordFile === undefined &&
    io.env(PASSWORD_ENV) === undefined && !io.stdinIsTerminal
  ) {
    throw new UsageError(
      "Cannot read password: stdin is not a terminal; " +
        `use --password-file or ${PASSWORD_ENV}`,
    );
  }
}

/** The password for `--user`: a file, the environment, or a prompt. */
async function findPassword(
  command: ClientCommand,
  io: CommandIo,
): Promise<string | undefined> {
  if (command.user === undefined) return undefined;
  if (command.passwordFile !== undefined) {
    return await readPasswordFile(command.passwordFile);
  }
  return await readPassword(io, {
    fromStdin: false,
    confirm: false,
    prompt: `Password for ${JSON.stringify(command.user)}: `,
  });
}

/**
 * The first line of `path` (a final CR stripped).
 *
 * @throws {UsageError} If that line is empty, too long or not UTF-8.
 * @throws {Error} If the file cannot be read.
 */
export async function readPasswordFile(path: string): Promise<string> {
  const where = `Cannot read password file ${JSON.stringify(path)}`;
  let bytes: Uint8Array;
  try {
    using file = await Deno.open(path, { read: true });
    bytes = await readFirstLine(file);
  } catch (error) {
    throw new Error(where, { cause: error });
  }
  if (bytes.at(-1) === 0x0d) bytes = bytes.subarray(0, -1);
  if (bytes.length === 0) throw new UsageError(`${where}: first line empty`);
  if (bytes.length > MAX_PASSWORD_BYTES) {
    throw new UsageError(
      `${where}: longer than ${MAX_PASSWORD_BYTES} bytes`,
    );
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`${where}: not UTF-8`);
  }
}

/** Reads up to the first LF (or a bounded amount); the LF excluded. */
async function readFirstLine(file: Deno.FsFile): Promise<Uint8Array> {
  const content = new Uint8Array(MAX_PASSWORD_FILE_BYTES);
  let length = 0;
  while (length < content.length) {
    const count = await file.read(content.subarray(length));
    if (count === null) break;
    const newline = content.subarray(length, length + count).indexOf(0x0a);
    if (newline !== -1) return content.slice(0, length + newline);
    length += count;
  }
  return content.slice(0, length);
}

function parsePort(text: string): number {
  const port = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new UsageError(
      `Cannot use --port ${JSON.stringify(text)}: expected 1 to 65535`,
    );
  }
  return port;
}

function parseTimeout(text: string): number {
  const seconds = SECONDS_REGEXP.test(text) ? Number(text) : NaN;
  if (!(seconds > 0 && seconds <= MAX_TIMEOUT_SECONDS)) {
    throw new UsageError(
      `Cannot use --timeout ${JSON.stringify(text)}: expected seconds ` +
        `above 0, at most ${MAX_TIMEOUT_SECONDS}`,
    );
  }
  return Math.ceil(seconds * 1000);
}
