/**
 * Layer 2, before the handshake: the server's refusal (see
 * docs/PROTOCOL.md). A server that refuses a connection before any
 * crypto writes its 8-byte preamble, then one frame whose payload is
 * `0x7d ‖ reason u8 ‖ retryAfterSeconds u16 BE`, then closes. The client
 * reads it where it expects the ServerHello and throws `RefusedError`.
 *
 * The frame is unauthenticated (no key has been proved yet): a client only
 * reports it, it never trusts it for anything else. This file encodes and
 * parses; it neither decides to refuse (server/admission.ts) nor writes.
 *
 * @module
 */

import { concatBytes } from "./bytes.ts";
import { RefusedError } from "../errors.ts";
import { encodeFrame } from "./framing.ts";
import { encodePreamble } from "./key_schedule.ts";
import { HandshakeKind } from "./protocol.ts";

/** Refusal frame payload size: kind, reason, retry-after. */
export const REFUSAL_BYTES = 4;
/** Largest retry-after a refusal can carry, in seconds. */
export const MAX_RETRY_AFTER_SECONDS = 0xffff;

/** Why a server refused a connection: the reason byte of a refusal. */
export const RefusalReason = {
  /** The server is at its cap on open connections. */
  tooManyConnections: 1,
  /** The server is at its cap on connections in handshake or login. */
  tooManyStartups: 2,
  /** The client's address failed too often and is penalised. */
  penalty: 3,
  /** The server is shutting down. */
  shuttingDown: 4,
  /** The client's address is not allowed. */
  addressDenied: 5,
  /** The client's address has too many connections in startup. */
  tooManyFromAddress: 6,
} as const;

/** One of the values of {@link RefusalReason}. */
export type RefusalReasonValue =
  typeof RefusalReason[keyof typeof RefusalReason];

const REASON_TEXT: Record<number, string> = {
  [RefusalReason.tooManyConnections]: "too many connections",
  [RefusalReason.tooManyStartups]: "too many connections starting",
  [RefusalReason.penalty]: "too many failed attempts from your address",
  [RefusalReason.shuttingDown]: "server shutting down",
  [RefusalReason.addressDenied]: "your address is not allowed",
  [RefusalReason.tooManyFromAddress]:
    "too many connections starting from your address",
};

/**
 * The words a client shows for a reason code; unknown codes say so.
 *
 * @param reason The reason byte.
 * @returns A few words, lower case.
 */
export function describeRefusalReason(reason: number): string {
  return REASON_TEXT[reason] ?? `reason ${reason}`;
}

/**
 * The bytes a refusing server writes: preamble, then the refusal frame.
 *
 * @param reason Why, one of {@link RefusalReason}.
 * @param retryAfterSeconds When to retry; rounded up, clamped to 0..65535.
 * @returns 8 + 4 + 4 = 16 bytes.
 */
export function encodeRefusal(
  reason: RefusalReasonValue,
  retryAfterSeconds: number,
): Uint8Array {
  const seconds = Math.min(
    MAX_RETRY_AFTER_SECONDS,
    Math.max(
      0,
      Math.ceil(Number.isFinite(retryAfterSeconds) ? retryAfterSeconds : 0),
    ),
  );
  const payload = Uint8Array.of(
    HandshakeKind.refusal,
    reason,
    seconds >> 8,
    seconds & 0xff,
  );
  return concatBytes(encodePreamble(), encodeFrame(payload));
}

/**
 * The error a refusal frame stands for, or `null` if `frame` is not one.
 *
 * @param frame A handshake frame payload read where the ServerHello was
 *   expected.
 * @returns A `RefusedError` carrying the reason and retry-after, or `null`.
 */
export function parseRefusal(frame: Uint8Array): RefusedError | null {
  if (frame.length !== REFUSAL_BYTES || frame[0] !== HandshakeKind.refusal) {
    return null;
  }
  const reason = frame[1];
  const retryAfterSeconds = (frame[2] << 8) | frame[3];
  return new RefusedError(
    `server refused the connection: ${
      describeRefusalReason(reason)
    }; retry in ${retryAfterSeconds} s`,
    { reason, retryAfterSeconds },
  );
}
