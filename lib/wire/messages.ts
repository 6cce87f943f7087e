/**
 * Layer 5, written down once: the "Messages" and "Close" sections of
 * `docs/PROTOCOL.md` as code. Message ids (numbering, wrap-around, the u32
 * on the wire), what each close code means at both ends (the error a server
 * closes with, the error a client's unconfirmed work fails with, which
 * closes are clean) and how long a close record may take to leave.
 *
 * Both ends and the login layer use it; nothing here does I/O. Adding a
 * close code is a one-file change: name it in `CloseCode` (protocol.ts, the
 * wire constants) and it gets a reason from its name and fails a client's
 * unconfirmed work with a `ClosedError`; give it an entry in
 * {@link CLOSE_MEANINGS} (this file) only when it means more than that.
 *
 * @module
 */

import { readUint32, writeUint32 } from "./bytes.ts";
import type { CloseInfo } from "./channel.ts";
import {
  ClosedError,
  FrameTooLargeError,
  LoginFailure,
  LoginRejectedError,
  LoginRequiredError,
  ProtocolError,
} from "../errors.ts";
import {
  CloseCode,
  type CloseCodeValue,
  MESSAGE_ID_BYTES,
} from "./protocol.ts";

/** The id of a connection's first message. */
export const FIRST_MESSAGE_ID = 1;
/** The largest message id (2^32 − 1); the next one is {@link FIRST_MESSAGE_ID}. */
export const MAX_MESSAGE_ID = 0xffff_ffff;

/**
 * How long a close record may take to leave before the connection is cut
 * anyway, in ms: one value for every close, by either end.
 */
export const CLOSE_FLUSH_TIMEOUT_MS = 2000;

/**
 * The id after `id`: 1, 2, 3, … 2^32 − 1, then 1 again (never 0).
 *
 * @param id The current id.
 * @returns The next id.
 * @example Usage
 * ```ts
 * nextMessageId(1); // 2
 * nextMessageId(0xffff_ffff); // 1
 * ```
 */
export function nextMessageId(id: number): number {
  return id >= MAX_MESSAGE_ID ? FIRST_MESSAGE_ID : id + 1;
}

/**
 * The 4 big-endian bytes of a message id, as `message`, `reply` and `ack`
 * records start.
 *
 * @param id The id, 1 to 2^32 − 1.
 * @returns A new 4-byte array.
 * @example Usage
 * ```ts
 * encodeMessageId(258); // Uint8Array [0, 0, 1, 2]
 * ```
 */
export function encodeMessageId(id: number): Uint8Array {
  const bytes = new Uint8Array(MESSAGE_ID_BYTES);
  writeUint32(bytes, 0, id);
  return bytes;
}

/**
 * Splits the body of a `message`, `reply` or `ack` record into its id and
 * the bytes after it.
 *
 * @param body The record body (kind byte removed).
 * @param what The record's name, for the error: `"Message"`.
 * @returns The id, and the rest of the body (a view, not a copy).
 * @throws {ProtocolError} If the body is shorter than an id.
 * @example Usage
 * ```ts
 * const { id, data } = splitMessageId(Uint8Array.of(0, 0, 0, 7, 104, 105), "Message");
 * // id 7, data "hi"
 * ```
 */
export function splitMessageId(
  body: Uint8Array,
  what: string,
): { id: number; data: Uint8Array } {
  if (body.length < MESSAGE_ID_BYTES) {
    throw new ProtocolError(`${what} record too short`);
  }
  return { id: readUint32(body, 0), data: body.subarray(MESSAGE_ID_BYTES) };
}

/** What a close code means beyond "the connection is over". */
export interface CloseMeaning {
  /** The reason sent when the sender has none more precise. */
  readonly reason?: string;
  /** A clean end: the client's iteration ends without an error. */
  readonly clean?: boolean;
  /** The error a client's unconfirmed work fails with. */
  readonly error?: (info: CloseInfo) => Error;
}

/**
 * The close codes that mean more than their name says. A code missing here
 * is sent with its name in words as the reason, and fails a client's
 * unconfirmed work with a `ClosedError` carrying the server's reason.
 */
export const CLOSE_MEANINGS: Readonly<Record<number, CloseMeaning>> = {
  [CloseCode.normal]: { reason: "closed", clean: true },
  [CloseCode.shuttingDown]: { reason: "server shutting down", clean: true },
  [CloseCode.loginFailed]: {
    error: () =>
      new LoginRejectedError("Login rejected: unknown user or wrong password"),
  },
  [CloseCode.loginRequired]: {
    error: () =>
      new LoginRejectedError("Server requires a login: give a user name"),
  },
};

/**
 * The name of a close code, as in `CloseCode` and PROTOCOL.md.
 *
 * @param code A close code.
 * @returns Its name (`"tooSlow"`), or `"code N"` for an unknown one.
 */
export function closeCodeName(code: number): string {
  for (const [name, value] of Object.entries(CloseCode)) {
    if (value === code) return name;
  }
  return `code ${code}`;
}

/**
 * The reason sent with a close code when the sender has no better one.
 *
 * @param code A close code.
 * @returns A few lower-case words: `"idle timeout"`, `"login failed"`.
 * @example Usage
 * ```ts
 * import { CloseCode } from "./protocol.ts";
 * closeReason(CloseCode.idleTimeout); // "idle timeout"
 * ```
 */
export function closeReason(code: CloseCodeValue): string {
  return CLOSE_MEANINGS[code]?.reason ??
    closeCodeName(code).replace(/[A-Z]/g, (upper) => ` ${upper.toLowerCase()}`);
}

/**
 * Whether a close ends a client's connection cleanly (codes 0 and 1): then
 * nothing is reported as an error beyond what was still unconfirmed.
 *
 * @param info The peer's close record, or `null` for a cut connection.
 * @returns `true` for a clean end.
 */
export function isCleanClose(info: CloseInfo | null): boolean {
  return info !== null && CLOSE_MEANINGS[info.code]?.clean === true;
}

/**
 * The error a close means for whatever was still unconfirmed.
 *
 * @param info The peer's close record, or `null` for a cut connection.
 * @param context The start of a `ClosedError`'s message.
 * @returns A `LoginRejectedError` for codes 2 and 3, else a `ClosedError`
 *   with the peer's reason.
 * @example Usage
 * ```ts
 * import { CloseCode } from "./protocol.ts";
 * errorForClose({ code: CloseCode.tooSlow, reason: "client too slow" });
 * // ClosedError "Server closed the connection: client too slow"
 * ```
 */
export function errorForClose(
  info: CloseInfo | null,
  context = "Server closed the connection",
): Error {
  const meaning = info ? CLOSE_MEANINGS[info.code] : undefined;
  if (info && meaning?.error) return meaning.error(info);
  const why = info ? `: ${info.reason}` : "";
  return new ClosedError(`${context}${why}`);
}

/** A close code and the reason sent with it. */
export interface CloseFor {
  readonly code: CloseCodeValue;
  readonly reason: string;
}

/**
 * The close record a server sends for an error that ends a connection.
 *
 * @param error What failed.
 * @param options `maxMessageBytes` once logged in (an oversized frame
 *   before login is a protocol error).
 * @returns The code and reason, or `null` when the error is not the peer's
 *   doing (a broken connection): then no close record is sent.
 * @example Usage
 * ```ts
 * import { LoginRequiredError } from "../errors.ts";
 * closeForError(new LoginRequiredError()); // loginRequired, "login required"
 * ```
 */
export function closeForError(
  error: unknown,
  options: { maxMessageBytes?: number } = {},
): CloseFor | null {
  let code: CloseCodeValue;
  let reason: string | undefined;
  if (error instanceof LoginFailure) code = CloseCode.loginFailed;
  else if (error instanceof LoginRequiredError) code = CloseCode.loginRequired;
  else if (
    error instanceof FrameTooLargeError && options.maxMessageBytes !== undefined
  ) {
    code = CloseCode.messageTooLarge;
    reason = `message larger than ${options.maxMessageBytes} bytes`;
  } else if (error instanceof ProtocolError) code = CloseCode.protocolError;
  else return null;
  return { code, reason: reason ?? closeReason(code) };
}
