/**
 * The client core: `connect()` dials the server, runs the handshake and
 * (with a user) the login, then hands the channel to a `Connection`
 * (`connection.ts`), which carries messages. On the wire it drives the
 * handshake and login layers; it sends no message records itself.
 *
 * It does not parse flags or print: client.ts and lib/cli/ do.
 *
 * @module
 */

import { type Channel, openChannel } from "../wire/channel.ts";
import { ConnectionError, TimeoutError } from "../errors.ts";
import { FrameReader } from "../wire/framing.ts";
import { raceSignal, timeoutSignal } from "../wire/deadline.ts";
import { handshakeAsClient } from "../wire/handshake.ts";
import { loginAsClient } from "../login/login.ts";
import { Connection } from "./connection.ts";
import { DEFAULT_PING_INTERVAL_MS } from "../wire/liveness.ts";
import {
  DEFAULT_KEY_ID,
  DEFAULT_MAX_MESSAGE_BYTES,
  HANDSHAKE_TIMEOUT_MS,
  RECORD_OVERHEAD_BYTES,
} from "../wire/protocol.ts";

/**
 * Options of {@link connect}. Only `psk` is required; give `user` and
 * `password` to log in.
 *
 * @example Usage
 * ```ts
 * const options: ConnectOptions = {
 *   host: "example.net",
 *   psk: new TextEncoder().encode("a shared secret of 16+ bytes"),
 *   user: "bob",
 *   password: "correct horse battery staple",
 * };
 * ```
 */
export interface ConnectOptions {
  /**
   * Server host name or address.
   *
   * @default {"127.0.0.1"}
   */
  host?: string;
  /**
   * Server port.
   *
   * @default {9000}
   */
  port?: number;
  /**
   * The pre-shared key, at least 16 bytes; the server must hold the same
   * one. Required: there is no default.
   */
  psk: Uint8Array;
  /**
   * The id of the key, sent in clear (the server's ring entry).
   *
   * @default {"default"}
   */
  keyId?: string;
  /**
   * User to log in as; without one, no login is attempted.
   *
   * @default {undefined}
   */
  user?: string;
  /**
   * The user's password; required when `user` is set.
   *
   * @default {undefined}
   */
  password?: string;
  /**
   * Deadline for connect, handshake and login, in ms.
   *
   * @default {10000}
   */
  timeoutMs?: number;
  /**
   * Largest message sent or received, in bytes.
   *
   * @default {1048576}
   */
  maxMessageBytes?: number;
  /**
   * Answer a server that asks for the legacy md5 login with the plaintext
   * password. Off by default: anyone holding the pre-shared key could pose
   * as the server and ask; without it such a login fails with
   * `LoginRejectedError` and the password is never sent.
   *
   * @default {false}
   */
  allowLegacyLogin?: boolean;
  /**
   * After this many ms without hearing from the server, send a ping; a
   * server silent for 3 intervals is closed with code 11
   * (`peerUnresponsive`). 0 turns pings off.
   *
   * @default {30000}
   */
  pingIntervalMs?: number;
}

/**
 * Connects to a doorman server, proves the key, and logs in when
 * `options.user` is set.
 *
 * The handshake checks the server's key proof too, so a server without the
 * key cannot pose as the real one; with a user, the server's SCRAM
 * signature is checked as well.
 *
 * @param options The server's address, the key, and the login.
 * @returns The open connection.
 * @throws {TypeError} If `user` is given without `password`.
 * @throws {RangeError} If the key is shorter than 16 bytes.
 * @throws {ConnectionError} If the server cannot be reached.
 * @throws {KeyRejectedError} If the pre-shared keys differ.
 * @throws {LoginRejectedError} If the login is refused, or the server asks
 *   for the legacy plaintext method without `allowLegacyLogin`.
 * @throws {RefusedError} If the server refused the connection before the
 *   handshake (its `reason` and `retryAfterSeconds`).
 * @throws {TimeoutError} If the deadline passes first.
 * @example Usage
 * ```ts ignore
 * const psk = await readKeyFile("doorman.key");
 * const conn = await connect({ host: "example.net", port: 9000, psk });
 * console.log(new TextDecoder().decode(await conn.request("hello")));
 * await conn.close();
 * ```
 */
export async function connect(options: ConnectOptions): Promise<Connection> {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const channel = await dialLoggedIn(options);
  channel.maxRecordBytes = maxMessageBytes + RECORD_OVERHEAD_BYTES;
  return new Connection(channel, {
    user: options.user ?? null,
    maxMessageBytes,
    pingIntervalMs: options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
  });
}

/**
 * Connects, runs the handshake and logs in, under one deadline: what
 * {@link connect} and a tunnel's stream (stream.ts) share.
 *
 * @param options The server, key and login; `saltedPasswords` lets a
 *   forwarder skip PBKDF2 on later logins.
 * @returns The logged-in channel (its record limit still the pre-login one).
 * @throws {ConnectionError} If the server cannot be reached.
 * @throws {TimeoutError} If the deadline passes first.
 */
export async function dialLoggedIn(
  options: ConnectOptions & { saltedPasswords?: Map<string, Uint8Array> },
): Promise<Channel> {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 9000;
  if (options.user !== undefined && options.password === undefined) {
    throw new TypeError("Cannot log in: a password is required with a user");
  }
  using deadline = timeoutSignal(options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS);
  let conn: Deno.TcpConn | null = null;
  try {
    const connecting = Deno.connect({ hostname: host, port });
    // A late connection (after the deadline) is closed, never leaked.
    connecting.then(
      (late) => deadline.signal.aborted && late.close(),
      () => {},
    );
    conn = await raceSignal(
      connecting,
      deadline.signal,
      `Cannot connect to ${host}:${port}: timed out`,
    ).catch((error) => {
      if (error instanceof TimeoutError) throw error;
      throw new ConnectionError(`Cannot connect to ${host}:${port}`, {
        cause: error,
      });
    });
    conn.setNoDelay(true);
    conn.setKeepAlive(true); // a vanished server is noticed, eventually
    const framed = { conn, reader: new FrameReader(conn) };
    const key = { id: options.keyId ?? DEFAULT_KEY_ID, psk: options.psk };
    const keys = await handshakeAsClient(framed, key, {
      signal: deadline.signal,
      server: `${host}:${port}`,
    });
    const channel = openChannel(framed, keys, { role: "client" });
    if (options.user !== undefined) {
      await loginAsClient(
        channel,
        {
          user: options.user,
          password: options.password ?? "",
          saltedPasswords: options.saltedPasswords,
        },
        {
          signal: deadline.signal,
          channelBinding: keys.channelBinding,
          allowLegacyLogin: options.allowLegacyLogin,
        },
      );
    }
    return channel;
  } catch (error) {
    try {
      conn?.close();
    } catch {
      // Already closed.
    }
    throw error;
  }
}
