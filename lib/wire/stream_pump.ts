/**
 * Layer 5, streams (tunnels): moves one stream's bytes between a byte
 * socket (the target on the server, the local connection on the client)
 * and a Channel, both ways at once (`docs/PROTOCOL.md`).
 *
 * Socket bytes leave as `streamData` records as large as one read returns
 * (up to 64 KiB); the socket's EOF leaves as `streamEnd`; a peer's
 * `streamEnd` shuts the socket's writing half. A reset or failure on one
 * end reaches the other as a `close` with code `streamAborted`.
 *
 * Backpressure, and the memory bound per stream: a record received is
 * written to the socket before the next one is read, so a slow socket
 * stops this side reading the connection (TCP then stops the peer); and
 * once more than {@link STREAM_HIGH_WATER_BYTES} sealed bytes wait to be
 * written, reading the socket pauses until they are written. Per stream
 * that holds at most: the read buffer (≤ 64 KiB), the sealed queue
 * (≤ 128 KiB + one 64 KiB record) and the frame reader's buffer
 * (≤ 256 KiB, shared with the connection): under 520 KiB.
 *
 * It does not dial, listen, log or choose targets.
 *
 * @module
 */

import type { Channel, ChannelRecord, CloseInfo } from "./channel.ts";
import { writeAll } from "./framing.ts";
import { CloseCode, type CloseCodeValue, RecordKind } from "./protocol.ts";
import {
  checkEmptyStreamRecord,
  checkStreamData,
  MAX_STREAM_DATA_BYTES,
} from "./stream_records.ts";
import { ProtocolError } from "../errors.ts";

/** Sealed bytes queued to the peer past which the socket is not read. */
export const STREAM_HIGH_WATER_BYTES = 128 * 1024;
// Idle streams hold a small read buffer; it grows while reads fill it.
const INITIAL_READ_BYTES = 2048;

/** The socket end of a stream: a `Deno.TcpConn`, or stdin plus stdout. */
export interface StreamSocket {
  read(target: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  /** Shuts the writing half down: the other end reads EOF. */
  closeWrite(): Promise<void>;
  close(): void;
}

/** How a stream ended, as {@link pumpStream} reports it. */
export interface StreamResult {
  /** Bytes read from the socket and sent to the peer. */
  readonly sent: number;
  /** Bytes received from the peer and written to the socket. */
  readonly received: number;
  /**
   * `ended`: both halves closed cleanly, the channel is still open (it may
   * close or, on the client's side, carry the next stream); `aborted`: this
   * side failed or was reset, and sent a close with `code`; `closed`: the
   * peer closed or the connection failed (`info` holds the peer's close).
   */
  readonly outcome: "ended" | "aborted" | "closed";
  /** Why, in a few words (empty for `ended`). */
  readonly reason: string;
  /** The close code sent (`aborted`) or received (`closed`, if any). */
  readonly code?: number;
}

/** Options of {@link pumpStream}. */
export interface PumpOptions {
  /** What the socket is, for reasons: `target "redis"`, `local connection`. */
  label: string;
  /** The client waits for `streamOpened` before writing to its socket. */
  awaitOpened?: boolean;
  /** Called once `streamOpened` arrived (with `awaitOpened`). */
  onOpened?: () => void;
  /**
   * A receive already pending on the channel (a pooled connection watches
   * for the server's close while idle): the first record is read from it.
   */
  firstReceive?: Promise<ChannelRecord | null>;
  /** Called on every record either way (idle timeouts). */
  onActivity?: () => void;
  /**
   * Stops the stream: the channel is closed with `stop.code` and
   * `stop.reason`, and the socket closed.
   */
  signal?: AbortSignal;
}

/** Why a caller stopped a stream: the close sent to the peer. */
export interface StreamStop {
  readonly code: CloseCodeValue;
  readonly reason: string;
}

interface Failure {
  outcome: "aborted" | "closed";
  reason: string;
  code?: number;
}

/**
 * Pumps one stream both ways until it ends, cleanly or not.
 *
 * @param channel The connection, logged in and (server) past `streamOpen`.
 * @param socket The local end of the stream.
 * @param options Labels, the opened handshake, activity and stop.
 * @returns How it ended and the bytes moved each way; never rejects.
 * @example Usage
 * ```ts ignore
 * const result = await pumpStream(channel, target, { label: 'target "db"' });
 * if (result.outcome === "ended") await channel.close(0, "stream ended");
 * ```
 */
export async function pumpStream(
  channel: Channel,
  socket: StreamSocket,
  options: PumpOptions,
): Promise<StreamResult> {
  const counts = { sent: 0, received: 0 };
  let failure: Failure | null = null;
  const { promise: failed, resolve: wake } = Promise.withResolvers<void>();
  const fail = (next: Failure) => {
    if (failure) return;
    failure = next;
    wake();
  };
  const onStop = () => {
    const stop = options.signal?.reason as StreamStop | undefined;
    fail({
      outcome: "aborted",
      reason: stop?.reason ?? "stopped",
      code: stop?.code ?? CloseCode.normal,
    });
  };
  if (options.signal?.aborted) onStop();
  options.signal?.addEventListener("abort", onStop, { once: true });
  const both = Promise.all([
    socketToChannel(channel, socket, { options, counts, fail }),
    channelToSocket(channel, socket, { options, counts, fail }),
  ]);
  try {
    await Promise.race([both, failed]);
  } finally {
    options.signal?.removeEventListener("abort", onStop);
  }
  const end = failure as Failure | null;
  if (!end) {
    closeSocket(socket);
    return { ...counts, outcome: "ended", reason: "" };
  }
  closeSocket(socket);
  if (end.outcome === "aborted") {
    await channel.close(end.code as CloseCodeValue, end.reason, {
      signal: AbortSignal.timeout(2000),
    });
  } else {
    channel.abort();
  }
  // Let the other direction notice and settle before reporting.
  await both.catch(() => {});
  return { ...counts, ...end };
}

interface Pump {
  options: PumpOptions;
  counts: { sent: number; received: number };
  fail(failure: Failure): void;
}

async function socketToChannel(
  channel: Channel,
  socket: StreamSocket,
  pump: Pump,
): Promise<void> {
  let buffer = new Uint8Array(INITIAL_READ_BYTES);
  while (true) {
    let count: number | null;
    try {
      count = await socket.read(buffer);
    } catch (error) {
      pump.fail(localSocketFailed(pump.options.label, error));
      return;
    }
    try {
      if (count === null) {
        channel.send(RecordKind.streamEnd);
        return;
      }
      // The channel may keep the bytes it is given until its next flush
      // (records sent while a write is pending are sealed together then),
      // so it gets bytes this loop never reads into again: a full buffer
      // is handed over (the next read gets a new one), a partial read is
      // copied out (the queue then holds exactly the bytes it counts).
      if (count === buffer.length) {
        channel.send(RecordKind.streamData, buffer);
        buffer = new Uint8Array(Math.min(count * 4, MAX_STREAM_DATA_BYTES));
      } else {
        channel.send(RecordKind.streamData, buffer.slice(0, count));
        if (count < INITIAL_READ_BYTES && buffer.length > count * 16) {
          buffer = new Uint8Array(INITIAL_READ_BYTES);
        }
      }
      pump.counts.sent += count;
      pump.options.onActivity?.();
      if (channel.queuedBytes > STREAM_HIGH_WATER_BYTES) {
        await channel.flushed();
      }
    } catch (error) {
      pump.fail({ outcome: "closed", reason: describe(error) });
      return;
    }
  }
}

async function channelToSocket(
  channel: Channel,
  socket: StreamSocket,
  pump: Pump,
): Promise<void> {
  let opened = !pump.options.awaitOpened;
  let pending = pump.options.firstReceive;
  while (true) {
    let record;
    try {
      record = await (pending ?? channel.receive());
      pending = undefined;
    } catch (error) {
      pump.fail({ outcome: "closed", reason: describe(error) });
      return;
    }
    if (record === null) {
      const info: CloseInfo | null = channel.closeInfo;
      pump.fail({
        outcome: "closed",
        reason: info?.reason || "peer closed",
        code: info?.code,
      });
      return;
    }
    pump.options.onActivity?.();
    try {
      if (!opened) {
        if (record.kind !== RecordKind.streamOpened) {
          throw new ProtocolError(
            `Expected stream opened, got record kind ${record.kind}`,
          );
        }
        checkEmptyStreamRecord(record.body, "stream opened");
        opened = true;
        pump.options.onOpened?.();
        continue;
      }
      if (record.kind === RecordKind.streamData) {
        checkStreamData(record.body);
      } else if (record.kind === RecordKind.streamEnd) {
        checkEmptyStreamRecord(record.body, "stream end");
      } else {
        throw new ProtocolError(`Unexpected record kind ${record.kind}`);
      }
    } catch (error) {
      pump.fail({
        outcome: "aborted",
        reason: `protocol error: ${describe(error)}`,
        code: CloseCode.protocolError,
      });
      return;
    }
    try {
      if (record.kind === RecordKind.streamEnd) {
        await socket.closeWrite();
        return;
      }
      await writeAll(socket, record.body);
      pump.counts.received += record.body.length;
    } catch (error) {
      pump.fail(localSocketFailed(pump.options.label, error));
      return;
    }
  }
}

function closeSocket(socket: StreamSocket): void {
  try {
    socket.close();
  } catch {
    // Already closed.
  }
}

/** The local socket failed mid-stream: the stream aborts. */
function localSocketFailed(label: string, error: unknown) {
  return {
    outcome: "aborted" as const,
    reason: `${label} ${resetWord(error)}`,
    code: CloseCode.streamAborted,
  };
}

function resetWord(error: unknown): string {
  const cause = error instanceof Error && error.cause ? error.cause : error;
  if (cause instanceof Deno.errors.ConnectionReset) return "reset";
  if (cause instanceof Deno.errors.BrokenPipe) return "closed early";
  return `failed: ${describe(error)}`;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
