/**
 * The client core, tunnels: `dialStream()` dials the server, runs the
 * handshake and login, and sends `streamOpen` naming a target
 * (`docs/PROTOCOL.md`); `runStream()` then pumps a local socket
 * through it until both halves are closed, an end is reset, or the server
 * refuses the target. One connection carries one stream here.
 *
 * It does not listen or print: `forward.ts` and lib/cli/ do.
 *
 * @module
 */

import type { Channel, ChannelRecord, CloseInfo } from "../wire/channel.ts";
import { ClosedError } from "../errors.ts";
import { CloseCode, RecordKind } from "../wire/protocol.ts";
import {
  encodeStreamOpen,
  MAX_STREAM_RECORD_BYTES,
} from "../wire/stream_records.ts";
import {
  pumpStream,
  type StreamResult,
  type StreamSocket,
} from "../wire/stream_pump.ts";
import { type ConnectOptions, dialLoggedIn } from "./connect.ts";

export type { StreamResult, StreamSocket } from "../wire/stream_pump.ts";

/** Options of {@link dialStream}: where, who, and the target. */
export interface StreamOptions extends Omit<ConnectOptions, "maxMessageBytes"> {
  /** The target name the server offers (`--forward NAME=...`). */
  target: string;
  /**
   * Salted passwords kept across connections, so only the first login
   * pays for PBKDF2: pass the same (initially empty) map to every call.
   *
   * @default {undefined}
   */
  saltedPasswords?: Map<string, Uint8Array>;
}

/**
 * Connects, proves the key, logs in (with `options.user`) and asks for a
 * stream to `options.target`. The server's answer (`streamOpened`, or a
 * close refusing the target) is read by {@link runStream}.
 *
 * @param options The server, key, login and target.
 * @returns The channel, with `streamOpen` sent.
 * @throws {RangeError} If the target name is invalid.
 * @throws {ConnectionError} If the server cannot be reached.
 * @throws {KeyRejectedError} If the pre-shared keys differ.
 * @throws {LoginRejectedError} If the login is refused.
 * @throws {TimeoutError} If connect, handshake and login miss the deadline.
 * @example Usage
 * ```ts ignore
 * const channel = await dialStream({ psk, user, password, target: "redis" });
 * const result = await runStream(channel, localConn, { target: "redis" });
 * ```
 */
export async function dialStream(options: StreamOptions): Promise<Channel> {
  const channel = await dialChannel(options);
  openStreamOn(channel, options.target);
  return channel;
}

/**
 * Sends `streamOpen` naming `target` on a logged-in channel with no stream
 * in progress (new, warm, or whose last stream ended cleanly both ways).
 *
 * @param channel The channel.
 * @param target The target name.
 * @throws {RangeError} If the target name is invalid.
 * @throws {Error} If the channel can no longer send.
 */
export function openStreamOn(channel: Channel, target: string): void {
  channel.send(RecordKind.streamOpen, encodeStreamOpen(target));
}

/**
 * Connects, proves the key and logs in, without opening a stream: a warm
 * connection for a pool.
 *
 * @param options The server, key and login (`target` is only checked).
 * @returns The logged-in channel.
 * @throws {ConnectionError} If the server cannot be reached.
 * @throws {KeyRejectedError} If the pre-shared keys differ.
 * @throws {LoginRejectedError} If the login is refused.
 * @throws {TimeoutError} If connect, handshake and login miss the deadline.
 */
export async function dialChannel(options: StreamOptions): Promise<Channel> {
  encodeStreamOpen(options.target); // checks the name before dialing
  const channel = await dialLoggedIn(options);
  channel.maxRecordBytes = MAX_STREAM_RECORD_BYTES;
  return channel;
}

/**
 * Pumps `socket` through the stream until it ends, then closes the
 * connection (normally after a clean end).
 *
 * @param channel A channel from {@link dialStream}.
 * @param socket The local end: a connection, or stdin and stdout.
 * @param options The target (for reasons) and a signal that stops it.
 * @returns The bytes each way and how it ended; never rejects.
 * @example Usage
 * ```ts ignore
 * const result = await runStream(channel, conn, { target: "redis" });
 * console.log(result.outcome, result.sent, result.received);
 * ```
 */
export async function runStream(
  channel: Channel,
  socket: StreamSocket,
  options: {
    target: string;
    signal?: AbortSignal;
    onOpened?: () => void;
    /** A receive already pending (a pooled channel's watch). */
    firstReceive?: Promise<ChannelRecord | null>;
    /** Leave the channel open after a clean end, for the next stream. */
    keepOpen?: boolean;
  },
): Promise<StreamResult> {
  const result = await pumpStream(channel, socket, {
    label: "local connection",
    awaitOpened: true,
    onOpened: options.onOpened,
    signal: options.signal,
    firstReceive: options.firstReceive,
  });
  if (result.outcome === "ended" && !options.keepOpen) {
    await channel.close(CloseCode.normal, "stream ended", {
      signal: AbortSignal.timeout(2000),
    });
  }
  return result;
}

/**
 * The error a stream's end means to a caller that needs success (`stdio`):
 * `null` after a clean end.
 *
 * @param result What {@link runStream} returned.
 * @param target The target name, for the message.
 * @returns The error, or `null`.
 */
export function streamError(
  result: StreamResult,
  target: string,
): Error | null {
  if (result.outcome === "ended") return null;
  if (result.outcome === "closed" && result.code !== undefined) {
    return new ClosedError(
      `Server closed the stream to "${target}": ${
        describeClose({
          code: result.code,
          reason: result.reason,
        })
      }`,
    );
  }
  return new ClosedError(
    `Stream to "${target}" ${result.outcome}: ${result.reason}`,
  );
}

function describeClose(info: CloseInfo): string {
  return info.reason || `close code ${info.code}`;
}
