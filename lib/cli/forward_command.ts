/**
 * Top layer (CLI): `client.ts forward --listen [HOST:]PORT --target NAME`
 * (a local forwarder, lib/client/forward.ts) and `client.ts stdio --target
 * NAME` (one stream on stdin and stdout, for ssh's ProxyCommand and
 * scripts). The password is read once, at startup; the forwarder keeps the
 * salted password in memory so later connections skip PBKDF2.
 *
 * It holds no tunnel logic, and never prints a key or password.
 *
 * @module
 */

import { startForwarder } from "../client/forward.ts";
import { dialStream, runStream, streamError } from "../client/stream.ts";
import type { StreamSocket } from "../wire/stream_pump.ts";
import { UsageError } from "../errors.ts";
import { TARGET_NAME_REGEXP } from "../wire/stream_records.ts";
import { readPasswordFile } from "./client_login.ts";
import type { ClientIo } from "./command_io.ts";
import { EXIT_CODES_TEXT } from "./exit_codes.ts";
import { findClientKey } from "./key_source.ts";
import { parseFlags, positiveInteger } from "./flags.ts";
import { PASSWORD_ENV, readPassword } from "./password_prompt.ts";

/**
 * Usage of `client.ts forward` and `client.ts stdio`.
 *
 * @returns The help text.
 */
export function forwardUsage(): string {
  return `Usage: client.ts forward --listen [HOST:]PORT --target NAME [options]
       client.ts stdio --target NAME [options]

Tunnels TCP through a doorman server to a target it offers
(server.ts serve --forward NAME=HOST:PORT).

  forward  listens on HOST:PORT (default host 127.0.0.1); each accepted
           connection gets its own doorman connection and stream. Prints
           "listening on HOST:PORT" on stdout once ready, one line per
           connection on stderr (open; close with bytes up and down and
           ms), and runs until SIGINT or SIGTERM
  stdio    one stream on stdin and stdout, e.g.
           ssh -o ProxyCommand='client.ts stdio --target ssh' host

Options:
  --listen [HOST:]PORT  forward: the local address to listen on
  --target NAME         the target's name on the server
  --host HOST           server address (default 127.0.0.1)
  --port PORT           server port (default 9000)
  --key-file FILE       pre-shared key file (default: $DOORMAN_KEY if set,
                        else doorman.key; never created)
  --user NAME           log in as NAME (default: no login)
  --password-file FILE  read the password from FILE's first line (default:
                        $${PASSWORD_ENV} if set, else a hidden prompt when
                        stdin is a terminal; asked once, at startup)
  --timeout SECONDS     deadline for connect, handshake and login (default 10)
  --warm N              forward: logged-in connections kept ready, so a new
                        local connection skips handshake and login (default 2)
  --max-idle N          forward: connections kept after a stream ended cleanly
                        both ways, to carry the next stream (default 16;
                        0 with --warm 0: one connection per stream, as spiped)
  -h, --help            show this help

${EXIT_CODES_TEXT}`;
}

const OPTIONS = {
  listen: { type: "string" },
  target: { type: "string" },
  host: { type: "string", default: "127.0.0.1" },
  port: { type: "string", default: "9000" },
  "key-file": { type: "string" },
  user: { type: "string" },
  "password-file": { type: "string" },
  timeout: { type: "string", default: "10" },
  warm: { type: "string", default: "2" },
  "max-idle": { type: "string", default: "16" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const LISTEN_REGEXP =
  /^(?:(?:\[([0-9A-Fa-f:.]+)\]|([^:\s\[\]]+)):)?([0-9]{1,5})$/;

/**
 * Runs `client.ts forward` (until SIGINT/SIGTERM) or `client.ts stdio`
 * (until the stream ends).
 *
 * @param mode `forward` or `stdio`.
 * @param args The arguments after the mode.
 * @param io The console, stdin and environment.
 * @returns 0 after a clean stop (forward) or a clean end (stdio).
 * @throws {UsageError} On a bad flag or no way to read a password.
 * @throws {ClosedError} If stdio's stream is refused or aborted.
 */
export async function runForwardCommand(
  mode: "forward" | "stdio",
  args: string[],
  io: ClientIo,
): Promise<number> {
  const { values } = parseFlags(args, OPTIONS, {
    command: mode,
    help: `client.ts ${mode} --help`,
  });
  if (values.help) {
    io.stdout(forwardUsage());
    return 0;
  }
  const target = values.target ?? "";
  if (!TARGET_NAME_REGEXP.test(target)) {
    throw new UsageError(
      `Cannot run "${mode}": --target NAME is required (letters, digits, ".", "_", "-")`,
    );
  }
  const listen = mode === "forward" ? parseListen(values.listen) : null;
  const pool = {
    warm: positiveInteger(values.warm, "--warm", { min: 0, max: 1000 }),
    maxIdle: positiveInteger(values["max-idle"], "--max-idle", {
      min: 0,
      max: 10_000,
    }),
  };
  const port = Number(values.port);
  if (!/^[0-9]{1,5}$/.test(values.port) || !(port >= 1 && port <= 65535)) {
    throw new UsageError(
      `Cannot use --port "${values.port}": expected 1 to 65535`,
    );
  }
  const seconds = Number(values.timeout);
  if (!(seconds > 0 && seconds <= 86_400)) {
    throw new UsageError(
      `Cannot use --timeout "${values.timeout}": expected seconds`,
    );
  }
  if (values["password-file"] !== undefined && values.user === undefined) {
    throw new UsageError("Cannot use --password-file without --user");
  }
  const key = await findClientKey(io, values["key-file"]);
  const password = values.user === undefined
    ? undefined
    : values["password-file"] !== undefined
    ? await readPasswordFile(values["password-file"])
    : await readPassword(io, {
      fromStdin: false,
      confirm: false,
      prompt: `Password for ${JSON.stringify(values.user)}: `,
    });
  const stream = {
    host: values.host,
    port,
    psk: key.psk,
    keyId: key.id,
    user: values.user,
    password,
    timeoutMs: Math.ceil(seconds * 1000),
    target,
    saltedPasswords: new Map<string, Uint8Array>(),
  };
  if (listen === null) return await runStdio(stream);
  const forwarder = startForwarder({
    listen,
    stream,
    log: (line) => io.stderr(line),
    ...pool,
  });
  const stop = Promise.withResolvers<void>();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, stop.resolve);
  try {
    io.stdout(`listening on ${forwarder.addr.hostname}:${forwarder.addr.port}`);
    await stop.promise;
    await forwarder.stop();
    return 0;
  } finally {
    for (const signal of signals) {
      Deno.removeSignalListener(signal, stop.resolve);
    }
  }
}

async function runStdio(
  stream: Parameters<typeof dialStream>[0],
): Promise<number> {
  const channel = await dialStream(stream);
  const result = await runStream(channel, stdioSocket(), {
    target: stream.target,
  });
  const error = streamError(result, stream.target);
  if (error) throw error;
  return 0;
}

/** stdin and stdout as one stream socket. */
function stdioSocket(): StreamSocket {
  return {
    read: (target) => Deno.stdin.read(target),
    write: (bytes) => Deno.stdout.write(bytes),
    closeWrite: () => {
      Deno.stdout.close();
      return Promise.resolve();
    },
    close: () => {
      for (const file of [Deno.stdin, Deno.stdout]) {
        try {
          file.close();
        } catch {
          // Already closed.
        }
      }
    },
  };
}

function parseListen(text: string | undefined): {
  hostname: string;
  port: number;
} {
  const match = LISTEN_REGEXP.exec(text ?? "");
  const port = match ? Number(match[3]) : NaN;
  if (!match || !(port >= 0 && port <= 65535)) {
    throw new UsageError(
      `Cannot run "forward": --listen [HOST:]PORT is required, got ${
        JSON.stringify(text ?? "")
      }`,
    );
  }
  return { hostname: match[1] ?? match[2] ?? "127.0.0.1", port };
}
