/**
 * Top layer (CLI): `client.ts`, the client program. Parses the flags, finds
 * the key (`--key-file`, `DOORMAN_KEY`, `doorman.key`) and the password
 * (`--password-file`, `DOORMAN_PASSWORD`, a hidden prompt), connects, and
 * hands the connection to a mode: interactive (`client_interactive.ts`),
 * pipe or `send` (`client_pipe.ts`). The login is `client_login.ts`.
 *
 * It does not print errors or choose exit codes for them: it throws, and
 * `client.ts` prints `client: <message>` and maps `exitCodeFor`. It never
 * prints a key or password.
 *
 * @module
 */

import type { Connection } from "../client/connection.ts";
import { UsageError } from "../errors.ts";
import { MAX_MESSAGE_BYTES_LIMIT } from "../wire/protocol.ts";
import type { ClientIo } from "./command_io.ts";
import { checkPasswordSource, connectAndLogIn } from "./client_login.ts";
import { runInteractive } from "./client_interactive.ts";
import { runForwardCommand } from "./forward_command.ts";
import {
  DEFAULT_REPLY_TIMEOUT_SECONDS,
  runPipe,
  runSend,
} from "./client_pipe.ts";
import { EXIT_CODES_TEXT } from "./exit_codes.ts";
import {
  parseFlags,
  parsePort,
  parseSeconds,
  positiveInteger,
  unknownCommand,
} from "./flags.ts";
import { findClientKey } from "./key_source.ts";
import { PASSWORD_ENV } from "./password_prompt.ts";
import { VERSION } from "./version.ts";

const DEFAULT_HOST = "127.0.0.1";
const DEFAULT_PORT = "9000";
const DEFAULT_TIMEOUT_SECONDS = "10";
const DEFAULT_MAX_MESSAGE_BYTES = "1048576";
const MAX_TIMEOUT_SECONDS = 86_400;

function synopsis(program: string): string {
  const pad = " ".repeat(program.length);
  return `Usage: ${program} [options]
       ${pad} send [options] [--] MESSAGE...
       ${pad} forward --listen [HOST:]PORT --target NAME [options]
       ${pad} stdio --target NAME [options]`;
}

const MODES = `Modes:
  (no command)  stdin is a terminal: interactive; each line typed at the
                ">>> " prompt is sent and its reply printed; /help lists
                the commands; /quit, Ctrl-D or Ctrl-C leaves
                stdin is not a terminal: pipe; each line of stdin (a final
                CR stripped, empty lines included) is one message; replies
                and pushed messages are printed as they arrive; exits once
                stdin ended and every message was confirmed
  send          sends each MESSAGE in order and prints each reply (nothing
                for a message the server only acknowledges) and each
                pushed message
  forward       tunnels each connection to a local port to a target the
                server offers (see "forward --help")
  stdio         tunnels stdin and stdout to a target (ssh ProxyCommand)

In pipe and send modes a chat message from you prints nothing (the server
only acknowledges it); messages from others in the room are printed.
Output to a terminal has control characters replaced; output to a file or
pipe is the bytes as received.`;

const OPTIONS_TEXT = `Options:
  --host HOST           server address (default ${DEFAULT_HOST})
  --port PORT           server port (default ${DEFAULT_PORT})
  --key-file FILE       key file: one "ID HEX" line, or a bare key (id default)
                        (default: $DOORMAN_KEY if set, else doorman.key;
                        never created)
  --user NAME           log in as NAME (default: no login)
  --password-file FILE  read the password from FILE's first line (default:
                        $${PASSWORD_ENV} if set, else a hidden prompt when
                        stdin is a terminal; 3 attempts there)
  --timeout SECONDS     deadline for connect, handshake and login
                        (default ${DEFAULT_TIMEOUT_SECONDS})
  --reply-timeout SECONDS  pipe and send: longest wait for the next
                        confirmation while messages are unconfirmed
                        (default ${DEFAULT_REPLY_TIMEOUT_SECONDS})
  --max-message-bytes N largest message sent or received, up to
                        ${MAX_MESSAGE_BYTES_LIMIT} (default ${DEFAULT_MAX_MESSAGE_BYTES})
  --allow-legacy-login  send the password in plaintext (inside the encrypted
                        channel) if the server asks for the legacy md5 login;
                        only for a server you trust (default: refuse, exit 4)
  --json                pipe and send: one JSON object per line,
                        {"message","reply"} or {"message","confirmed":true},
                        and {"push"} for pushed messages
  -h, --help            show this help
  -V, --version         show the version`;

/**
 * Usage of the client program.
 *
 * @param program How the user ran it, e.g. `deno task client`.
 * @returns The `--help` text.
 */
export function clientUsage(program = "client.ts"): string {
  return `${synopsis(program)}

Connects to a doorman server, proves the pre-shared key, logs in with
--user, then sends messages.

${MODES}

${OPTIONS_TEXT}

${EXIT_CODES_TEXT}`;
}

/**
 * Usage of the client's `send` command.
 *
 * @param program How the user ran it, e.g. `deno task client`.
 * @returns The `send --help` text.
 */
export function sendUsage(program = "client.ts"): string {
  return `Usage: ${program} send [options] [--] MESSAGE...

Sends each MESSAGE in order and prints each reply on its own line (nothing
for a message the server only acknowledges, as chat does for your own
messages) and each message pushed by the server (chat from others); exits 0
only once every message was confirmed. Put "--" before a message that starts
with "-".

${OPTIONS_TEXT}

${EXIT_CODES_TEXT}`;
}

/** Usage of `client.ts`. */
export const CLIENT_USAGE: string = clientUsage();

/** Usage of `client.ts send`. */
export const SEND_USAGE: string = sendUsage();

const OPTIONS = {
  host: { type: "string", default: DEFAULT_HOST },
  port: { type: "string", default: DEFAULT_PORT },
  "key-file": { type: "string" },
  user: { type: "string" },
  "password-file": { type: "string" },
  timeout: { type: "string", default: DEFAULT_TIMEOUT_SECONDS },
  "reply-timeout": {
    type: "string",
    default: String(DEFAULT_REPLY_TIMEOUT_SECONDS),
  },
  "max-message-bytes": { type: "string", default: DEFAULT_MAX_MESSAGE_BYTES },
  json: { type: "boolean", default: false },
  "allow-legacy-login": { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
  version: { type: "boolean", short: "V", default: false },
} as const;

const DEFAULTS = {
  messages: [],
  host: DEFAULT_HOST,
  port: Number(DEFAULT_PORT),
  timeoutMs: Number(DEFAULT_TIMEOUT_SECONDS) * 1000,
  replyTimeoutMs: DEFAULT_REPLY_TIMEOUT_SECONDS * 1000,
  maxMessageBytes: Number(DEFAULT_MAX_MESSAGE_BYTES),
  json: false,
  allowLegacyLogin: false,
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
  /** Longest wait for the next confirmation (pipe and send). */
  readonly replyTimeoutMs: number;
  /** Largest message sent or received. */
  readonly maxMessageBytes: number;
  readonly json: boolean;
  /** `--allow-legacy-login`: answer a legacy md5 request. */
  readonly allowLegacyLogin: boolean;
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
  options: { stdinIsTerminal: boolean; program?: string },
): ClientCommand {
  const program = options.program ?? "client.ts";
  const { values, positionals } = parseFlags(args, OPTIONS, {
    command: "client",
    help: `${program} --help`,
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
    timeoutMs: parseSeconds(values.timeout, "--timeout", {
      min: 0.001,
      max: MAX_TIMEOUT_SECONDS,
    }),
    replyTimeoutMs: parseSeconds(values["reply-timeout"], "--reply-timeout", {
      min: 0.001,
    }),
    maxMessageBytes: positiveInteger(
      values["max-message-bytes"],
      "--max-message-bytes",
      { min: 1, max: MAX_MESSAGE_BYTES_LIMIT },
    ),
    json: values.json,
    allowLegacyLogin: values["allow-legacy-login"],
  };
  if (command !== undefined && !send) {
    throw unknownCommand(
      command,
      ["send", "forward", "stdio"],
      `${program} --help`,
    );
  }
  if (send && messages.length === 0) {
    throw new UsageError(
      `Cannot run "send": missing MESSAGE; see "${program} send --help"`,
    );
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
  const program = io.program ?? "client.ts";
  const command = parseClientArgs(args, {
    stdinIsTerminal: io.stdinIsTerminal,
    program,
  });
  if (command.mode === "help" || command.mode === "send-help") {
    io.stdout(
      command.mode === "help" ? clientUsage(program) : sendUsage(program),
    );
    return 0;
  }
  if (command.mode === "version") {
    io.stdout(`doorman-client ${VERSION}`);
    return 0;
  }
  checkPasswordSource(command, io);
  const key = await findClientKey(io, command.keyFile);
  const connection = await connectAndLogIn(command, io, key);
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
  const options = {
    json: command.json,
    replyTimeoutMs: command.replyTimeoutMs,
    maxLineBytes: command.maxMessageBytes,
  };
  switch (command.mode) {
    case "interactive":
      return runInteractive(connection, io);
    case "send":
      return runSend(connection, io, {
        ...options,
        messages: command.messages,
      });
    default:
      return runPipe(connection, io, options);
  }
}
