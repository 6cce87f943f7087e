/**
 * Layer 3, records: after the handshake every frame is one ChaCha20-Poly1305
 * record, sealed with the sender's direction key under a counter nonce, with
 * the frame header as associated data. A tampered, replayed, reordered,
 * truncated or injected record fails to open and ends the channel; a `close`
 * record ends it cleanly, so a cut connection is told apart from a clean end.
 *
 * Writes are queued and coalesced by the frame writer: records sealed
 * before the microtask queue drains leave in one write. It does not know what records mean beyond `close`.
 *
 * @module
 */

import { fromUtf8, utf8 } from "./bytes.ts";
import { open, sealInto } from "./crypto.ts";
import { ClosedError, KeyRejectedError, ProtocolError } from "../errors.ts";
import { settlesBefore, timeoutSignal } from "./deadline.ts";
import { FrameWriter } from "./framing.ts";
import type { FramedConn } from "./framing.ts";
import type { SessionKeys } from "./key_schedule.ts";
import {
  BATCH_ENTRY_HEADER,
  MAX_BATCH_RECORD_BYTES,
  MAX_BATCHED_RECORD,
  Outbox,
} from "./outbox.ts";
import { CLOSE_FLUSH_TIMEOUT_MS } from "./messages.ts";
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

export { MAX_BATCH_RECORD_BYTES } from "./outbox.ts";

const MAX_COUNTER = Number.MAX_SAFE_INTEGER;
// One nonce and one header for every channel: sealing and opening are
// synchronous, and each writes all of what it reads (the nonce's first 4
// bytes are always 0), so none needs its own; three views each cost every
// idle connection ~0.3 KiB (bench: idle memory).
const SHARED_NONCE = new Uint8Array(RECORD_NONCE_BYTES);
const SHARED_HEADER = new Uint8Array(FRAME_HEADER_BYTES);

/**
 * An encrypted, authenticated, ordered record stream over one connection.
 * Keys and counters span calls, hence a class.
 */
export class Channel {
  #framed: FramedConn;
  // Views into one buffer (see the constructor): an ArrayBuffer each cost
  // every idle connection ~0.3 KiB (bench: idle memory). The nonces and
  // the header opened against are SHARED_NONCE and SHARED_HEADER.
  #sendKey: Uint8Array;
  #receiveKey: Uint8Array;
  #sendCounter = 0;
  #receiveCounter = 0;
  #maxRecordBytes: number;
  #writer: FrameWriter;
  // After login, records held back to be sealed together at the next flush.
  #outbox = new Outbox();
  #batching = false;
  // The body of the batch being handed out, and where its next record
  // starts: records are cut one per receive(), so a batch of 5,000 tiny
  // records costs its 16 KiB, not 5,000 objects at once.
  #batchBody: Uint8Array | null = null;
  #batchOffset = 0;
  #closeInfo: CloseInfo | null = null;
  #closed = false;
  #held: ChannelRecord | null = null;

  constructor(framed: FramedConn, keys: SessionKeys, options: ChannelOptions) {
    this.#framed = framed;
    this.#writer = new FrameWriter(framed.conn, {
      beforeFlush: () => this.#sealOutbox(),
    });
    const client = options.role === "client";
    const sendKey = client ? keys.clientToServer : keys.serverToClient;
    const receiveKey = client ? keys.serverToClient : keys.clientToServer;
    // Copied, so the handshake's buffers are released. No closure here
    // refers to these buffers, so `beforeFlush` keeps only `this`.
    const both = new Uint8Array(sendKey.length + receiveKey.length);
    both.set(sendKey);
    both.set(receiveKey, sendKey.length);
    this.#sendKey = both.subarray(0, sendKey.length);
    this.#receiveKey = both.subarray(sendKey.length);
    this.#maxRecordBytes = options.maxRecordBytes ?? MAX_PREAUTH_FRAME_BYTES;
  }

  /** The peer's close record, once one arrived. */
  get closeInfo(): CloseInfo | null {
    return this.#closeInfo;
  }

  /** Sealed bytes waiting to be written. */
  get queuedBytes(): number {
    return this.#writer.queuedBytes + this.#outbox.bytes;
  }

  /**
   * Sets the largest record accepted from now on, once login is over (or
   * the handshake, on a server without users). It never goes below
   * {@link MAX_BATCH_RECORD_BYTES}, and from now on records are held until
   * the next write and leave sealed together as one batch record: both
   * peers accept batches after login (docs/PROTOCOL.md).
   */
  set maxRecordBytes(bytes: number) {
    this.#maxRecordBytes = Math.max(bytes, MAX_BATCH_RECORD_BYTES);
    this.#batching = true;
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
    if (this.#batchBody) return Promise.resolve(this.#nextBatched());
    if (this.#closeInfo) return Promise.resolve(null);
    // A promise chain, not an async function: idle read path (framing.ts).
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
      nextNonce(SHARED_NONCE, this.#receiveCounter++),
      frame,
      writeLength(SHARED_HEADER, frame.length),
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
    if (kind === RecordKind.batch) {
      if (!this.#batching) {
        throw new ProtocolError("Cannot open record: batch before login");
      }
      checkBatch(body);
      this.#batchBody = body;
      this.#batchOffset = 0;
      return this.#nextBatched();
    }
    return { kind, body };
  }

  /** The next record of the current batch (checked whole by checkBatch). */
  #nextBatched(): ChannelRecord {
    const body = this.#batchBody as Uint8Array;
    const offset = this.#batchOffset;
    const start = offset + BATCH_ENTRY_HEADER;
    const end = start + ((body[offset] << 8) | body[offset + 1]);
    this.#batchOffset = end;
    if (end === body.length) this.#batchBody = null;
    return { kind: body[start], body: body.subarray(start + 1, end) };
  }

  /**
   * Queues one record, whose plaintext is `kind` then `parts`; records sent
   * in the same burst leave in one write. Before login each is sealed at
   * once. After login one that fits a batch is copied into the outbox and
   * sealed with the others held there just before the write (one record, or
   * one batch); a larger one is sealed at once, after those held before it.
   * Either way the caller may reuse `parts` as soon as this returns.
   *
   * @throws {ConnectionError} If an earlier write failed.
   */
  send(kind: number, ...parts: Uint8Array[]): void {
    const writeError = this.#writer.error;
    if (writeError) throw writeError;
    if (this.#closed) throw new ClosedError("Cannot send: channel closed");
    if (this.#sendCounter >= MAX_COUNTER) {
      throw new ProtocolError("Cannot send: record counter exhausted");
    }
    const kindPart = kindByte(kind);
    let length = 0;
    for (const part of parts) length += part.length;
    if (
      this.#batching && kind !== RecordKind.close &&
      1 + length <= MAX_BATCHED_RECORD
    ) {
      if (!this.#outbox.add(kind, parts, length)) {
        this.#sealOutbox();
        this.#outbox.add(kind, parts, length);
      }
      this.#writer.wake();
      return;
    }
    this.#sealOutbox();
    parts.unshift(kindPart);
    const frame = new Uint8Array(FRAME_HEADER_BYTES + 1 + length + TAG_BYTES);
    this.#sealAt(frame, 0, parts, 1 + length);
  }

  /** Seals what the outbox holds, in place, as one record. */
  #sealOutbox(): void {
    const held = this.#outbox.take();
    if (held === null) return;
    const { buffer, start, end } = held;
    const plaintextStart = start + FRAME_HEADER_BYTES;
    this.#sealAt(
      buffer,
      start,
      [buffer.subarray(plaintextStart, end)],
      end - plaintextStart,
    );
  }

  /**
   * Seals the concatenation of `parts` into `buffer` as the frame starting
   * at `start` (header, ciphertext, tag) and queues that frame. A part may
   * be the very bytes it is sealed over.
   */
  #sealAt(
    buffer: Uint8Array,
    start: number,
    parts: Uint8Array[],
    plaintextLength: number,
  ): void {
    const length = plaintextLength + TAG_BYTES;
    const header = writeLength(
      buffer.subarray(start, start + FRAME_HEADER_BYTES),
      length,
    );
    sealInto(
      this.#sendKey,
      nextNonce(SHARED_NONCE, this.#sendCounter++),
      parts,
      header,
      buffer,
      start + FRAME_HEADER_BYTES,
    );
    this.#writer.write(
      buffer.subarray(start, start + FRAME_HEADER_BYTES + length),
    );
  }

  /** Resolves once every queued record is written. */
  flushed(): Promise<void> {
    return this.#writer.flushed();
  }

  /**
   * Sends an authenticated close record, waits for queued records to leave
   * (at most until `options.signal` aborts, by default
   * `CLOSE_FLUSH_TIMEOUT_MS`), then closes the connection.
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
      using deadline = timeoutSignal(CLOSE_FLUSH_TIMEOUT_MS);
      await settlesBefore(this.flushed(), options.signal ?? deadline.signal);
    } catch {
      // Closing anyway: the peer is gone or too slow to take the close.
    } finally {
      this.abort();
    }
  }

  /** Closes the connection at once, without a close record. */
  abort(): void {
    this.#closed = true;
    this.#outbox.clear();
    try {
      this.#framed.conn.close();
    } catch {
      // Already closed.
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

/**
 * Writes `counter` big-endian into the last 8 bytes of `nonce` (byte by
 * byte: a DataView per record cost ~3% of a round trip's server CPU).
 */
function nextNonce(nonce: Uint8Array, counter: number): Uint8Array {
  const high = Math.floor(counter / 0x1_0000_0000);
  const low = counter >>> 0;
  nonce[4] = high >>> 24;
  nonce[5] = (high >>> 16) & 0xff;
  nonce[6] = (high >>> 8) & 0xff;
  nonce[7] = high & 0xff;
  nonce[8] = low >>> 24;
  nonce[9] = (low >>> 16) & 0xff;
  nonce[10] = (low >>> 8) & 0xff;
  nonce[11] = low & 0xff;
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

/**
 * Checks a batch body's structure before any of its records is handed out:
 * at least one entry, each with a length of 1 or more that stays inside the
 * body, none a close or a batch.
 *
 * @throws {ProtocolError} If the batch is malformed.
 */
function checkBatch(body: Uint8Array): void {
  if (body.length === 0) {
    throw new ProtocolError("Cannot read batch record: empty");
  }
  let offset = 0;
  while (offset < body.length) {
    if (body.length - offset < BATCH_ENTRY_HEADER + 1) {
      throw new ProtocolError("Cannot read batch record: truncated entry");
    }
    const length = (body[offset] << 8) | body[offset + 1];
    const start = offset + BATCH_ENTRY_HEADER;
    if (length === 0 || start + length > body.length) {
      throw new ProtocolError("Cannot read batch record: bad entry length");
    }
    const kind = body[start];
    if (kind === RecordKind.close || kind === RecordKind.batch) {
      throw new ProtocolError(
        `Cannot read batch record: record kind ${kind} cannot be batched`,
      );
    }
    offset = start + length;
  }
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
