/**
 * Top layer (CLI): `server.ts serve`, flags to `serve()` options, signals to
 * shutdown and reload, events to log lines on stderr, and the one
 * `listening on HOST:PORT` line on stdout that scripts wait for.
 *
 * It holds no server logic: lib/server/serve.ts does.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { resolvePsk } from "../key_file.ts";
import { parseAddressList } from "../server/limits.ts";
import { parseForwardTargets } from "../server/forward_targets.ts";
import { createLogger, type Logger } from "../server/log.ts";
import { MAX_MESSAGE_BYTES_LIMIT } from "../wire/protocol.ts";
import {
  DEFAULT_SCRAM_ITERATIONS,
  MIN_SCRAM_ITERATIONS,
} from "../login/scram.ts";
import { ScramClient } from "../login/scram_client.ts";
import { ScramServer } from "../login/scram_server.ts";
import {
  serve,
  type ServeOptions,
  type SessionHandler,
} from "../server/serve.ts";
import { createChatService } from "../services/chat.ts";
import { echoService } from "../services/echo.ts";
import { upperService } from "../services/upper.ts";
import { UserStore } from "../users/user_store.ts";
import { legacyMd5Hex } from "../users/userinfo.ts";
import type { CommandIo } from "./command_io.ts";
import { parseFlags, positiveInteger } from "./flags.ts";

/** The services `--service` can name. */
export const SERVICES: Record<string, () => SessionHandler> = {
  chat: createChatService,
  echo: () => echoService,
  upper: () => upperService,
};

/** Usage of `server.ts serve`. */
export const SERVE_USAGE = `Usage: server.ts [serve] [options]

Runs a doorman server. Prints "listening on HOST:PORT" on stdout once ready;
logs go to stderr, one line per event.

Options:
  --host HOST              address to listen on (default 127.0.0.1)
  --port PORT              port to listen on; 0 picks a free one (default 9000)
  --key-file FILE          pre-shared key file (default: $DOORMAN_KEY if set,
                           else doorman.key, created on first run)
  --users FILE             userinfo file of NAME|VERIFIER lines (default userinfo)
  --anonymous              accept clients after the key handshake alone (no login)
  --service NAME           chat, echo or upper (default chat)
  --max-connections N      most connections at once (default 10000)
  --max-startups N         most connections still in handshake or login (default 128)
  --login-timeout SECONDS  deadline for handshake plus login (default 10)
  --idle-timeout SECONDS   close sessions silent this long; 0 never (default 600)
  --max-message-bytes N    largest message, up to 16777216 (default 1048576)
  --max-queue-bytes N      bytes queued to a slow client before it is closed
                           (default 4194304)
  --penalty-cap SECONDS    longest penalty after failed logins (default 60)
  --penalty-exempt LIST    addresses or CIDR ranges never penalised, comma-separated,
                           repeatable (default none)
  --iterations N           PBKDF2 iterations when upgrading md5 lines (default 600000)
  --shutdown-timeout SECONDS  time given to messages in flight on SIGINT/SIGTERM
                           (default 5)
  --log-format FORMAT      text or json (default text)
  --forward NAME=HOST:PORT  a tunnel target clients may open streams to
                           (client.ts forward/stdio --target NAME); repeatable
  --forward-users NAME=USER,key:ID,...  only these users (or key ids) may use
                           target NAME (default: every logged-in user); repeatable
  --forward-proxy-protocol NAME  send target NAME a PROXY protocol v2 header
                           (client address and port, user and key id TLVs
                           0xE0 and 0xE1); repeatable
  -h, --help               show this help

Signals: SIGINT/SIGTERM shut down gracefully (exit 0); SIGHUP reloads --users.`;

const OPTIONS = {
  host: { type: "string", default: "127.0.0.1" },
  port: { type: "string", default: "9000" },
  "key-file": { type: "string" },
  users: { type: "string", default: "userinfo" },
  anonymous: { type: "boolean", default: false },
  service: { type: "string", default: "chat" },
  "max-connections": { type: "string", default: "10000" },
  "max-startups": { type: "string", default: "128" },
  "login-timeout": { type: "string", default: "10" },
  "idle-timeout": { type: "string", default: "600" },
  "max-message-bytes": { type: "string", default: "1048576" },
  "max-queue-bytes": { type: "string", default: "4194304" },
  "penalty-cap": { type: "string", default: "60" },
  "penalty-exempt": { type: "string", multiple: true },
  iterations: { type: "string", default: String(DEFAULT_SCRAM_ITERATIONS) },
  "shutdown-timeout": { type: "string", default: "5" },
  "log-format": { type: "string", default: "text" },
  forward: { type: "string", multiple: true },
  "forward-users": { type: "string", multiple: true },
  "forward-proxy-protocol": { type: "string", multiple: true },
  help: { type: "boolean", short: "h", default: false },
} as const;

/**
 * Runs `server.ts serve` until SIGINT or SIGTERM.
 *
 * @param args The arguments after `serve`.
 * @param io Console and environment.
 * @returns The exit code.
 * @throws {UsageError} On a bad flag.
 */
export async function runServeCommand(
  args: string[],
  io: CommandIo,
): Promise<number> {
  const { values } = parseFlags(args, OPTIONS, {
    command: "serve",
    help: "server.ts serve --help",
  });
  if (values.help) {
    io.stdout(SERVE_USAGE);
    return 0;
  }
  const service = SERVICES[values.service];
  if (!service) {
    throw new UsageError(
      `Cannot use --service "${values.service}": choose chat, echo or upper`,
    );
  }
  const format = values["log-format"];
  if (format !== "text" && format !== "json") {
    throw new UsageError(`Cannot use --log-format "${format}": text or json`);
  }
  const logger = createLogger({ format, write: (line) => io.stderr(line) });
  const options = buildOptions(values, logger);
  const key = await resolvePsk({
    keyFile: values["key-file"],
    env: io.env,
    createIfMissing: true,
  });
  if (key.created) {
    io.stderr(
      `server: created a new key file "${key.created}" (mode 0600); copy it to your clients`,
    );
  }
  const users = values.anonymous ? null : await UserStore.open(values.users, {
    onEvent: (event) => logger.log(event),
  });
  // Listen for signals before announcing readiness: a script may send
  // SIGTERM as soon as it reads the "listening on" line.
  const signals = listenForSignals(users);
  try {
    users?.watch();
    const server = serve({ ...options, psk: key.psk, users }, service());
    const { hostname, port } = server.addr;
    io.stdout(`listening on ${hostname}:${port}`);
    if (users) await warnAboutDemoUser(users, hostname, logger);
    await signals.stopped;
    await server.shutdown();
    return 0;
  } finally {
    signals.remove();
    users?.close();
  }
}

function buildOptions(
  values: Record<string, string | boolean | string[] | undefined>,
  logger: Logger,
): Omit<ServeOptions, "psk"> {
  const number = (name: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
    positiveInteger(String(values[name]), `--${name}`, { min, max });
  const seconds = (name: string, min = 1) => number(name, min) * 1000;
  const exempt = (values["penalty-exempt"] as string[] | undefined ?? [])
    .flatMap((entry) => entry.split(","))
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  return {
    host: String(values.host),
    port: number("port", 0, 65535),
    logger,
    maxConnections: number("max-connections", 1),
    maxStartups: number("max-startups", 1),
    loginTimeoutMs: seconds("login-timeout"),
    idleTimeoutMs: seconds("idle-timeout", 0),
    maxMessageBytes: number("max-message-bytes", 1, MAX_MESSAGE_BYTES_LIMIT),
    maxQueueBytes: number("max-queue-bytes", 1),
    penaltyCapMs: seconds("penalty-cap", 0),
    penaltyExempt: validExempt(exempt),
    iterations: number("iterations", MIN_SCRAM_ITERATIONS),
    shutdownTimeoutMs: seconds("shutdown-timeout", 0),
    forwardTargets: forwardTargetsFrom(values),
  };
}

function forwardTargetsFrom(
  values: Record<string, string | boolean | string[] | undefined>,
) {
  try {
    return parseForwardTargets({
      forward: values.forward as string[] | undefined,
      users: values["forward-users"] as string[] | undefined,
      proxyProtocol: values["forward-proxy-protocol"] as string[] | undefined,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function validExempt(entries: string[]): string[] {
  try {
    parseAddressList(entries);
  } catch (error) {
    throw new UsageError(
      `Cannot use --penalty-exempt: ${(error as Error).message}`,
    );
  }
  return entries;
}

/**
 * Installs the signal listeners: SIGINT/SIGTERM resolve `stopped`, SIGHUP
 * reloads the users. `remove()` uninstalls them.
 */
function listenForSignals(users: UserStore | null) {
  const { promise: stopped, resolve } = Promise.withResolvers<void>();
  const listeners: [Deno.Signal, () => void][] = [
    ["SIGINT", resolve],
    ["SIGTERM", resolve],
    ["SIGHUP", () => void users?.reload()],
  ];
  const added = listeners.filter(([signal, listener]) => {
    try {
      Deno.addSignalListener(signal, listener);
      return true;
    } catch {
      return false; // Not every signal exists on every platform (Windows).
    }
  });
  const remove = () => {
    for (const [signal, listener] of added) {
      Deno.removeSignalListener(signal, listener);
    }
  };
  return { stopped, remove };
}

const DEMO_PASSWORD = "123456";

/**
 * Warns when a user still has the demo password and the server listens
 * beyond loopback. Runs one SCRAM exchange in-process per user; only the
 * shipped demo line is expected to match.
 */
async function warnAboutDemoUser(
  users: UserStore,
  hostname: string,
  logger: Logger,
): Promise<void> {
  if (hostname.startsWith("127.") || hostname === "::1") return;
  for (const name of users.userNames()) {
    if (await hasDemoPassword(users, name)) {
      logger.log({
        event: "warning",
        user: name,
        reason:
          `demo user with the demo password is enabled on ${hostname}; change it with "server.ts user passwd ${name}"`,
      });
    }
  }
}

async function hasDemoPassword(users: UserStore, name: string) {
  const verifier = users.lookup(name);
  if (!verifier) return false;
  if (verifier.kind === "md5") {
    return verifier.md5Hex === legacyMd5Hex(name, DEMO_PASSWORD);
  }
  try {
    const server = new ScramServer();
    const client = new ScramClient(name, DEMO_PASSWORD);
    server.receiveClientFirst(client.clientFirst());
    const final = await client.clientFinal(server.serverFirst(verifier.scram));
    return server.receiveClientFinal(final).ok;
  } catch {
    return false;
  }
}
