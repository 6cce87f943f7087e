/**
 * Layer 3, records: after the handshake every frame is one ChaCha20-Poly1305
 * record, sealed with the sender's direction key under a counter nonce, with
 * the frame header as associated data. A tampered, replayed, reordered,
 * truncated or injected record fails to open and ends the channel; a `close`
 * record ends it cleanly, so a cut connection is told apart from a clean end.
 *
 * Writes are queued and coalesced: records sealed in the same tick leave in
 * one write. It does not know what records mean beyond `close`.
 *
 * @module
 */

import { fromUtf8, utf8 } from "./bytes.ts";
import { open, sealInto } from "./crypto.ts";
import {
  ClosedError,
  ConnectionError,
  KeyRejectedError,
  ProtocolError,
} from "../errors.ts";
import { takeWriteBatch, writeAll } from "./framing.ts";
import type { FramedConn } from "./framing.ts";
import type { SessionKeys } from "./key_schedule.ts";
import {
  type CloseCodeValue,
  FAILURE_BYTES,
  FRAME_HEADER_BYTES,
  HandshakeKind,
  MAX_PREAUTH_FRAME_BYTES,
  RECORD_NONCE_BYTES,
  RecordKind,
  TAG_BYTES,
} from "./protocol.ts";

/** One opened record. `body` is valid until the next `receive()`. */
export interface ChannelRecord {
  readonly kind: number;
  readonly body: Uint8Array;
}

/**
 * Why a channel ended cleanly: the peer's `close` record.
 *
 * @example Usage
 * ```ts ignore
 * const info = await conn.closed;
 * if (info?.code === CloseCode.idleTimeout) console.log(info.reason);
 * ```
 */
export interface CloseInfo {
  /** The close code, normally one of `CloseCode`. */
  readonly code: number;
  /** The close reason, in a few words. */
  readonly reason: string;
}

/** Options of {@link openChannel}. */
export interface ChannelOptions {
  /** Which side of the handshake we were. */
  role: "client" | "server";
  /** Largest record accepted; starts at the pre-login limit. */
  maxRecordBytes?: number;
}

const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

/**
 * An encrypted, authenticated, ordered record stream over one connection.
 * Keys and counters span calls, hence a class.
 */
export class Channel {
  #framed: FramedConn;
  #sendKey: Uint8Array;
  #receiveKey: Uint8Array;
  #sendNonce = new Uint8Array(RECORD_NONCE_BYTES);
  #receiveNonce = new Uint8Array(RECORD_NONCE_BYTES);
  #receiveHeader = new Uint8Array(FRAME_HEADER_BYTES);
  #sendCounter = 0;
  #receiveCounter = 0;
  #maxRecordBytes: number;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #writing = false;
  #writeError: Error | null = null;
  #flushWaiters: { resolve(): void; reject(error: Error): void }[] = [];
  #closeInfo: CloseInfo | null = null;
  #closed = false;
  #held: ChannelRecord | null = null;

  constructor(framed: FramedConn, keys: SessionKeys, options: ChannelOptions) {
    this.#framed = framed;
    const client = options.role === "client";
    this.#sendKey = client ? keys.clientToServer : keys.serverToClient;
    this.#receiveKey = client ? keys.serverToClient : keys.clientToServer;
    this.#maxRecordBytes = options.maxRecordBytes ?? MAX_PREAUTH_FRAME_BYTES;
  }

  /** The peer's close record, once one arrived. */
  get closeInfo(): CloseInfo | null {
    return this.#closeInfo;
  }

  /** Sealed bytes waiting to be written. */
  get queuedBytes(): number {
    return this.#pendingBytes;
  }

  /** Sets the largest record accepted from now on (raised after login). */
  set maxRecordBytes(bytes: number) {
    this.#maxRecordBytes = bytes;
  }

  /**
   * Reads and opens the next record.
   *
   * @returns The record, or `null` once the peer sent an authenticated close
   *   (see {@link closeInfo}).
   * @throws {ProtocolError} If a record fails to open or is malformed.
   * @throws {ClosedError} If the connection ends without a close record.
   * @throws {KeyRejectedError} If the server rejected our key proof.
   */
  receive(): Promise<ChannelRecord | null> {
    if (this.#held) {
      const held = this.#held;
      this.#held = null;
      return Promise.resolve(held);
    }
    if (this.#closeInfo) return Promise.resolve(null);
    // A promise chain, not an async function: idle connections wait here,
    // and a suspended async frame each would cost memory (bench: idle).
    return this.#framed.reader.readFrame(this.#maxRecordBytes)
      .then((frame) => this.#openFrame(frame));
  }

  /**
   * Makes the next `receive()` return `record` again: the server peeks at
   * the first record after login to choose a message session or a stream.
   */
  unreceive(record: ChannelRecord): void {
    this.#held = record;
  }

  #openFrame(frame: Uint8Array | null): ChannelRecord | null {
    if (frame === null) {
      throw new ClosedError(
        "Connection cut without an authenticated close",
      );
    }
    if (
      this.#receiveCounter === 0 && frame.length === FAILURE_BYTES &&
      frame[0] === HandshakeKind.failure
    ) {
      throw new KeyRejectedError(
        "Peer rejected the handshake: the pre-shared keys differ",
      );
    }
    const plaintext = open(
      this.#receiveKey,
      nextNonce(this.#receiveNonce, this.#receiveCounter++),
      frame,
      writeLength(this.#receiveHeader, frame.length),
    );
    if (plaintext === null || plaintext.length === 0) {
      throw new ProtocolError(
        "Cannot open record: authentication failed (tampered, replayed, reordered or injected)",
      );
    }
    const kind = plaintext[0];
    const body = plaintext.subarray(1);
    if (kind === RecordKind.close) {
      this.#closeInfo = parseClose(body);
      return null;
    }
    return { kind, body };
  }

  /**
   * Seals one record now and queues it for writing; records sealed in the
   * same tick leave in one write. The plaintext is `kind` then `parts`.
   *
   * @throws {ConnectionError} If an earlier write failed.
   */
  send(kind: number, ...parts: Uint8Array[]): void {
    if (this.#writeError) throw this.#writeError;
    if (this.#closed) throw new ClosedError("Cannot send: channel closed");
    if (this.#sendCounter >= MAX_COUNTER) {
      throw new ProtocolError("Cannot send: record counter exhausted");
    }
    let length = 1 + TAG_BYTES;
    for (const part of parts) length += part.length;
    const frame = new Uint8Array(FRAME_HEADER_BYTES + length);
    const header = writeLength(frame.subarray(0, FRAME_HEADER_BYTES), length);
    parts.unshift(kindByte(kind));
    sealInto(
      this.#sendKey,
      nextNonce(this.#sendNonce, this.#sendCounter++),
      parts,
      header,
      frame,
      FRAME_HEADER_BYTES,
    );
    this.#pending.push(frame);
    this.#pendingBytes += frame.length;
    if (!this.#writing) {
      this.#writing = true;
      queueMicrotask(() => this.#pump());
    }
  }

  /** Resolves once every queued record is written. */
  flushed(): Promise<void> {
    if (this.#writeError) return Promise.reject(this.#writeError);
    if (!this.#writing) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#flushWaiters.push({ resolve, reject });
    });
  }

  /**
   * Sends an authenticated close record, waits for queued records to leave
   * (at most until `signal` aborts), then closes the connection.
   */
  async close(
    code: CloseCodeValue,
    reason: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    if (this.#closed) return;
    try {
      this.send(RecordKind.close, Uint8Array.of(code), utf8(reason));
      this.#closed = true;
      const flushed = this.flushed();
      if (options.signal) {
        await untilFlushedOrAborted(flushed, options.signal);
      } else {
        await flushed;
      }
    } catch {
      // Closing anyway: the peer is gone or too slow to take the close.
    } finally {
      this.abort();
    }
  }

  /** Closes the connection at once, without a close record. */
  abort(): void {
    this.#closed = true;
    try {
      this.#framed.conn.close();
    } catch {
      // Already closed.
    }
  }

  async #pump(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = takeWriteBatch(this.#pending);
        await writeAll(this.#framed.conn, batch);
        this.#pendingBytes -= batch.length;
      }
      this.#writing = false;
      for (const waiter of this.#flushWaiters.splice(0)) waiter.resolve();
    } catch (error) {
      this.#writeError = error instanceof Error
        ? error
        : new ConnectionError("Cannot write to connection");
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#writing = false;
      for (const waiter of this.#flushWaiters.splice(0)) {
        waiter.reject(this.#writeError);
      }
    }
  }
}

/** Opens a channel over a connection whose handshake produced `keys`. */
export function openChannel(
  framed: FramedConn,
  keys: SessionKeys,
  options: ChannelOptions,
): Channel {
  return new Channel(framed, keys, options);
}

/** Writes `counter` big-endian into the last 8 bytes of `nonce`. */
function nextNonce(nonce: Uint8Array, counter: number): Uint8Array {
  const view = new DataView(nonce.buffer, nonce.byteOffset);
  view.setUint32(4, Math.floor(counter / 0x1_0000_0000));
  view.setUint32(8, counter >>> 0);
  return nonce;
}

/** Writes `length` big-endian into the 4 bytes of `header`. */
function writeLength(header: Uint8Array, length: number): Uint8Array {
  header[0] = length >>> 24;
  header[1] = (length >>> 16) & 0xff;
  header[2] = (length >>> 8) & 0xff;
  header[3] = length & 0xff;
  return header;
}

// One shared read-only byte per record kind, so sending allocates none.
const KIND_BYTES = Array.from(
  { length: 256 },
  (_, kind) => Uint8Array.of(kind),
);

function kindByte(kind: number): Uint8Array {
  const byte = KIND_BYTES[kind];
  if (!byte) throw new RangeError(`Cannot send record kind ${kind}`);
  return byte;
}

function parseClose(body: Uint8Array): CloseInfo {
  if (body.length < 1) {
    throw new ProtocolError("Cannot read close record: empty");
  }
  try {
    return { code: body[0], reason: fromUtf8(body.subarray(1)) };
  } catch (error) {
    throw new ProtocolError("Cannot read close record: bad UTF-8", {
      cause: error,
    });
  }
}

/** Waits for `flushed`, or for `signal` to abort, whichever is first. */
async function untilFlushedOrAborted(
  flushed: Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  if (signal.aborted) return;
  let onAbort = () => {};
  const aborted = new Promise<void>((resolve) => onAbort = resolve);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    await Promise.race([flushed, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
