/**
 * Layer 3, records: liveness (docs/PROTOCOL.md). After login either
 * side may send a `ping` record (0x20, 8 opaque bytes); the other answers
 * with a `pong` record (0x21) carrying the same 8 bytes. A side that has
 * heard no record for one interval sends a ping; a peer silent for
 * {@link PEER_TIMEOUT_INTERVALS} intervals is closed with code 11
 * (`peerUnresponsive`). A peer that answers pings stays connected however
 * quiet it is.
 *
 * This file decides and encodes; it holds no timer. The server's one
 * sweeper and each client connection's timer call {@link livenessVerdict}
 * with their own clock, so an idle connection costs two numbers, not a
 * timer.
 *
 * @module
 */

import type { Channel, ChannelRecord } from "./channel.ts";
import { ProtocolError } from "../errors.ts";
import { RecordKind } from "./protocol.ts";

/** Default interval: a side that heard nothing for this long sends a ping. */
export const DEFAULT_PING_INTERVAL_MS = 30_000;
/** A peer silent for this many intervals is closed as unresponsive. */
export const PEER_TIMEOUT_INTERVALS = 3;
/** Bytes of a ping body (and of the pong that answers it). */
export const PING_BODY_BYTES = 8;

/**
 * What a side should do now: nothing, send a ping, or give up on the peer.
 *
 * @example Usage
 * ```ts
 * const verdict: LivenessVerdict = livenessVerdict(
 *   { heardAt: 0, pingedAt: 0 },
 *   { now: 31_000, intervalMs: 30_000 },
 * ); // "ping"
 * ```
 */
export type LivenessVerdict = "alive" | "ping" | "unresponsive";

/** When a side last heard any record from its peer, and last pinged it. */
export interface LivenessClock {
  /** `Date.now()` of the last record received (any kind). */
  readonly heardAt: number;
  /** `Date.now()` of the last ping sent (0: never). */
  readonly pingedAt: number;
}

/**
 * Decides what to do about a peer, from one clock reading.
 *
 * @param clock When the peer was last heard and last pinged.
 * @param at The time now and the ping interval (0: pings off).
 * @returns `"unresponsive"` once silent for 3 intervals, else `"ping"` once
 *   silent for an interval with no ping sent within the last interval,
 *   else `"alive"`.
 * @example Usage
 * ```ts
 * livenessVerdict({ heardAt: 0, pingedAt: 0 }, { now: 90_000, intervalMs: 30_000 }); // "unresponsive"
 * ```
 */
export function livenessVerdict(
  clock: LivenessClock,
  at: { now: number; intervalMs: number },
): LivenessVerdict {
  const { now, intervalMs } = at;
  if (!(intervalMs > 0)) return "alive";
  const silent = now - clock.heardAt;
  if (silent >= intervalMs * PEER_TIMEOUT_INTERVALS) return "unresponsive";
  if (silent >= intervalMs && now - clock.pingedAt >= intervalMs) {
    return "ping";
  }
  return "alive";
}

/**
 * Sends a ping whose body is `now` as a 64-bit big-endian number (opaque to
 * the peer, which only echoes it).
 *
 * @param channel The open channel.
 * @param now The sender's clock, `Date.now()`.
 * @throws {ClosedError} If the channel is closed.
 */
export function sendPing(channel: Channel, now: number): void {
  const body = new Uint8Array(PING_BODY_BYTES);
  new DataView(body.buffer).setBigUint64(0, BigInt(Math.max(0, now)));
  channel.send(RecordKind.ping, body);
}

/**
 * Handles a `ping` (answered at once with a `pong` echoing its body) or a
 * `pong` (nothing to do: hearing it was the point).
 *
 * @param channel The channel the record came from.
 * @param record The record just received.
 * @returns Whether the record was a ping or pong (then the caller skips it).
 * @throws {ProtocolError} If a ping or pong body is not 8 bytes.
 */
export function answerLiveness(
  channel: Channel,
  record: ChannelRecord,
): boolean {
  if (record.kind !== RecordKind.ping && record.kind !== RecordKind.pong) {
    return false;
  }
  if (record.body.length !== PING_BODY_BYTES) {
    throw new ProtocolError(
      `Cannot read ${
        record.kind === RecordKind.ping ? "ping" : "pong"
      } record: body is ${record.body.length} bytes, ${PING_BODY_BYTES} expected`,
    );
  }
  if (record.kind === RecordKind.ping) {
    channel.send(RecordKind.pong, record.body.slice());
  }
  return true;
}

/**
 * The close reason sent with code 11, in a few words.
 *
 * @param intervalMs The ping interval.
 * @returns For example `peer unresponsive: nothing heard for 90 s (3 ping intervals)`.
 */
export function unresponsiveReason(intervalMs: number): string {
  const silence = (intervalMs * PEER_TIMEOUT_INTERVALS) / 1000;
  return `peer unresponsive: nothing heard for ${silence} s (${PEER_TIMEOUT_INTERVALS} ping intervals)`;
}
