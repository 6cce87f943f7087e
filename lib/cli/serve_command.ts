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
import { KeyRing, watchKeyRing } from "../server/key_ring.ts";
import { parseAddressList } from "../server/address.ts";
import { createLogger, type LogEvent, type Logger } from "../server/log.ts";
import type { ReloadEvent } from "../file_reloader.ts";
import { parseForwardTargets } from "../server/forward_targets.ts";
import { MAX_MESSAGE_BYTES_LIMIT } from "../wire/protocol.ts";
import {
  DEFAULT_SCRAM_ITERATIONS,
  MAX_SCRAM_ITERATIONS,
  MIN_SCRAM_ITERATIONS,
} from "../login/scram.ts";
import { verifyPassword } from "../login/verifier.ts";
import {
  serve,
  type ServeOptions,
  type SessionHandler,
} from "../server/serve.ts";
import { createChatService } from "../services/chat.ts";
import { echoService } from "../services/echo.ts";
import { upperService } from "../services/upper.ts";
import { UserStore } from "../users/user_store.ts";
import {
  defaultServerSecretPath,
  loadServerSecret,
} from "../server/server_secret.ts";
import { type CommandIo, listenToSignals } from "./command_io.ts";
import { EXIT_CODES_TEXT } from "./exit_codes.ts";
import {
  MAX_DURATION_SECONDS,
  parseFlags,
  parseSeconds,
  positiveInteger,
} from "./flags.ts";
import { findKey } from "./key_source.ts";
import { expandConfigArgs, formatConfig } from "./serve_config.ts";
import {
  SCALEOUT_OPTIONS,
  SCALEOUT_USAGE,
  setupScaleout,
} from "./serve_scaleout.ts";
import { maxStartupsFlag, runWorkersIfAsked } from "./workers.ts";

/** The services `--service` can name. */
export const SERVICES: Record<string, () => SessionHandler> = {
  chat: createChatService,
  echo: () => echoService,
  upper: () => upperService,
};

/** The flags of `serve`, for its `--help` and the program's. */
export const SERVE_OPTIONS_TEXT = `Options of serve:
  --host HOST              address to listen on (default 127.0.0.1)
  --port PORT              port to listen on; 0 picks a free one (default 9000)
  --key-file FILE          key ring: "ID HEX [users=A,B]" lines, or one bare
                           key (id default); mode 0600 required (default:
                           $DOORMAN_KEY if set, else doorman.key, created on
                           first run); reloaded on change and SIGHUP
  --users FILE             userinfo file of NAME|VERIFIER lines (default userinfo)
  --anonymous              accept clients after the key handshake alone (no login)
  --service NAME           chat, echo or upper (default chat)
  --max-connections N      most connections at once (default 10000)
  --max-startups N|START:RATE:FULL
                           connections still in handshake or login: a hard cap N,
                           or refuse RATE % from START on, all at FULL (default 64:30:128)
  --max-startups-per-source N  of those, most from one address (default 10)
  --max-logins-per-source N    logins from one address evaluated at once (default 4)
  --max-sessions-per-user N    open sessions of one user (default 64)
  --max-sessions-per-source N  open sessions from one address (default 256)
  --max-total-queue-bytes N    bytes queued across all sessions before the fullest
                           are closed as too slow (default 268435456)
  --handshake-timeout SECONDS  deadline for the key handshake (default 5)
  --login-timeout SECONDS  deadline for handshake plus login (default 10)
  --idle-timeout SECONDS   close sessions with no message either way for this
                           long; 0 never (default 0: pings keep quiet clients)
  --ping-interval SECONDS  ping a client silent this long; close it after 3
                           silent intervals (code 11); 0 never (default 30)
  --server-secret FILE     server-only secret for unknown users' fake salts,
                           created 0600 if missing (default
                           doorman-server-secret beside --users)
  --max-message-bytes N    largest message, up to 16777216 (default 1048576)
  --max-queue-bytes N      bytes queued to a slow client before it is closed
                           (default 4194304)
  --penalty-cap SECONDS    longest penalty after failed logins (default 60)
  --penalty-exempt LIST    addresses or CIDR ranges never penalised, comma-separated,
                           repeatable (default none)
  --iterations N           PBKDF2 iterations when upgrading md5 lines,
                           ${MIN_SCRAM_ITERATIONS} to ${MAX_SCRAM_ITERATIONS} (default 600000)
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
${SCALEOUT_USAGE}

Durations are in seconds, fractions allowed, at most ${MAX_DURATION_SECONDS}.
Signals: SIGINT/SIGTERM shut down gracefully (exit 0); SIGHUP reloads --users,
the key ring and, with --config, the allow/deny lists.`;

/**
 * Usage of `serve`.
 *
 * @param program How the user ran the server, e.g. `deno task serve`.
 * @returns The `serve --help` text.
 */
export function serveUsage(program = "server.ts"): string {
  return `Usage: ${program} [serve] [options]

Runs a doorman server. Prints "listening on HOST:PORT" on stdout once ready;
logs go to stderr, one line per event.

${SERVE_OPTIONS_TEXT}

${EXIT_CODES_TEXT}`;
}

/** Usage of `server.ts serve`. */
export const SERVE_USAGE: string = serveUsage();

const OPTIONS = {
  host: { type: "string", default: "127.0.0.1" },
  port: { type: "string", default: "9000" },
  "key-file": { type: "string" },
  users: { type: "string", default: "userinfo" },
  anonymous: { type: "boolean", default: false },
  service: { type: "string", default: "chat" },
  "max-connections": { type: "string", default: "10000" },
  "max-startups": { type: "string", default: "64:30:128" },
  "max-startups-per-source": { type: "string", default: "10" },
  "max-logins-per-source": { type: "string", default: "4" },
  "max-sessions-per-user": { type: "string", default: "64" },
  "max-sessions-per-source": { type: "string", default: "256" },
  "max-total-queue-bytes": { type: "string", default: "268435456" },
  "handshake-timeout": { type: "string", default: "5" },
  "login-timeout": { type: "string", default: "10" },
  "idle-timeout": { type: "string", default: "0" },
  "ping-interval": { type: "string", default: "30" },
  "server-secret": { type: "string" },
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
  ...SCALEOUT_OPTIONS,
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
  const program = io.program ?? "server.ts";
  const commandLine = args;
  args = await expandConfigArgs(args, OPTIONS);
  const { values } = parseFlags(args, OPTIONS, {
    command: "serve",
    help: `${program} --help`,
  });
  if (values.help) {
    io.stdout(serveUsage(program));
    return 0;
  }
  if (values["print-config"]) {
    io.stdout(formatConfig(values, OPTIONS));
    return 0;
  }
  const workerExit = await runWorkersIfAsked(values, { args: commandLine, io });
  if (workerExit !== null) return workerExit;
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
  const scaleout = setupScaleout(values, {
    args: commandLine,
    logger: createLogger({ format, write: (line) => io.stderr(line) }),
    specs: OPTIONS,
  });
  const logger = scaleout.logger;
  const options = buildOptions(values, logger);
  const key = await findKey(io, {
    keyFile: values["key-file"],
    createIfMissing: true,
    strictMode: true,
  });
  if (key.created) {
    io.stderr(
      `server: created a new key file "${key.created}" (mode 0600); copy it to your clients`,
    );
  }
  const users = values.anonymous ? null : await UserStore.open(values.users, {
    onEvent: (event) => logger.log(event),
    strictMode: true,
  });
  const keys = new KeyRing(key.entries);
  logger.log({ event: "keys_loaded", count: keys.ids().length });
  const ring = key.path === undefined ? null : watchKeyRing(key.path, keys, {
    onEvent: (event) => logger.log(keyRingEvent(event)),
  });
  const serverSecret = users
    ? await openServerSecret(values["server-secret"], values.users, logger)
    : undefined;
  // Listen for signals before announcing readiness: a script may send
  // SIGTERM as soon as it reads the "listening on" line.
  const signals = listenForSignals(users, ring, scaleout.reload);
  try {
    users?.watch();
    const server = listen(
      () =>
        serve(
          { ...options, ...scaleout.options, keys, users, serverSecret },
          scaleout.handler(values.service, service),
        ),
      options,
    );
    scaleout.attach(server);
    const { hostname, port } = server.addr;
    io.stdout(`listening on ${hostname}:${port}`);
    if (users) await warnAboutDemoUser(users, hostname, logger);
    await Promise.race([signals.stopped, scaleout.parentGone]);
    await server.shutdown();
    return 0;
  } finally {
    signals.remove();
    users?.close();
    ring?.close();
    await scaleout.close();
  }
}

/** A key ring reload as a log event: counts or a reason, never a key. */
function keyRingEvent(event: ReloadEvent): LogEvent {
  if (event.kind === "applied") {
    return {
      event: "keys_loaded",
      count: event.count,
      detail:
        `added ${event.added}, removed ${event.removed}, changed ${event.changed}`,
    };
  }
  return { event: "keys_reload_failed", reason: event.reason };
}

function buildOptions(
  values: Record<string, string | boolean | string[] | undefined>,
  logger: Logger,
): Omit<ServeOptions, "psk"> {
  const number = (name: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
    positiveInteger(String(values[name]), `--${name}`, { min, max });
  const seconds = (name: string, min = 1) =>
    parseSeconds(String(values[name]), `--${name}`, { min });
  const exempt = (values["penalty-exempt"] as string[] | undefined ?? [])
    .flatMap((entry) => entry.split(","))
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  return {
    host: String(values.host),
    port: number("port", 0, 65535),
    logger,
    maxConnections: number("max-connections", 1),
    maxStartups: validMaxStartups(String(values["max-startups"])),
    maxStartupsPerSource: number("max-startups-per-source", 1),
    maxLoginsPerSource: number("max-logins-per-source", 1),
    maxSessionsPerUser: number("max-sessions-per-user", 1),
    maxSessionsPerSource: number("max-sessions-per-source", 1),
    maxTotalQueueBytes: number("max-total-queue-bytes", 1),
    handshakeTimeoutMs: seconds("handshake-timeout"),
    loginTimeoutMs: seconds("login-timeout"),
    idleTimeoutMs: seconds("idle-timeout", 0),
    pingIntervalMs: seconds("ping-interval", 0),
    maxMessageBytes: number("max-message-bytes", 1, MAX_MESSAGE_BYTES_LIMIT),
    maxQueueBytes: number("max-queue-bytes", 1),
    penaltyCapMs: seconds("penalty-cap", 0),
    penaltyExempt: validExempt(exempt),
    iterations: number(
      "iterations",
      MIN_SCRAM_ITERATIONS,
      MAX_SCRAM_ITERATIONS,
    ),
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

/** Runs `start` (which listens), naming the address if it is in use. */
function listen<T>(start: () => T, address: { host?: string; port?: number }) {
  try {
    return start();
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `Cannot listen on ${address.host}:${address.port}: address already ` +
          "in use (another server running? try --port)",
      );
    }
    throw error;
  }
}

/** The server secret: `--server-secret`, else beside the user file. */
async function openServerSecret(
  flag: string | undefined,
  usersPath: string,
  logger: Logger,
): Promise<Uint8Array> {
  const path = flag ?? defaultServerSecretPath(usersPath);
  const { secret, created } = await loadServerSecret(path);
  if (created) {
    // Worth a line: a second creation (file lost or moved) changes every
    // unknown name's fake salt.
    logger.log({
      event: "server_secret_created",
      reason: `${JSON.stringify(path)} (mode 0600); keep it with the user file`,
    });
  }
  return secret;
}

function validMaxStartups(text: string): string {
  maxStartupsFlag(text);
  return text;
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
 * reloads the users, then the config's lists, and the key ring. `remove()`
 * uninstalls them.
 */
function listenForSignals(
  users: UserStore | null,
  ring: { reload(options: { forced: boolean }): Promise<void> } | null,
  reload: () => Promise<void>,
) {
  const { promise: stopped, resolve } = Promise.withResolvers<void>();
  const listeners: [Deno.Signal, () => void][] = [
    ["SIGINT", resolve],
    ["SIGTERM", resolve],
    ["SIGHUP", () => {
      void (users?.reload() ?? Promise.resolve()).then(reload, reload);
      void ring?.reload({ forced: true });
    }],
  ];
  const remove = listenToSignals(listeners);
  return { stopped, remove };
}

const DEMO_PASSWORD = "123456";

/**
 * Warns when a user still has the demo password and the server listens
 * beyond loopback. Checks each user's verifier against the demo password;
 * only the shipped demo line is expected to match.
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
  return verifier !== null &&
    await verifyPassword(verifier, name, DEMO_PASSWORD);
}
