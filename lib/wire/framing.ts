/**
 * Layer 1, frames: a 4-byte big-endian length, then that many bytes. Reads
 * are exact whatever way TCP splits or merges the bytes, and a declared
 * length above the caller's limit is rejected before anything is allocated.
 * This layer knows nothing of what frames carry.
 *
 * **The idle read path.** Reading starts here, and every idle connection
 * waits on it for its next frame: `FrameReader.readFrame` → `Channel.receive`
 * → the session's receive (server) or read loop (client). On that path,
 * write promise chains, not async functions, and create promises lazily: a
 * suspended async frame or an unused resolver costs memory on every idle
 * connection (`deno task bench`, idle memory). Code on the path points here
 * with "idle read path (framing.ts)" instead of repeating this.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { writeUint32 } from "./bytes.ts";
import { ClosedError, ConnectionError, FrameTooLargeError } from "../errors.ts";
import { FRAME_HEADER_BYTES } from "./protocol.ts";

/** What frames are read from: a `Deno.Conn`, or anything shaped like one. */
export interface ByteSource {
  read(target: Uint8Array): Promise<number | null>;
}

/** What frames are written to. */
export interface ByteSink {
  write(bytes: Uint8Array): Promise<number>;
}

/** A connection with its frame reader: what the handshake and the channel run over. */
export interface FramedConn {
  readonly conn: { write(bytes: Uint8Array): Promise<number>; close(): void };
  readonly reader: FrameReader;
}

// 512 bytes hold every message before login (the pre-login frame limit),
// so an idle connection keeps only that; 256 KiB hold several 64 KiB
// records, so bulk transfers read them without an allocation of their own.
const INITIAL_BUFFER_BYTES = 512;
const MAX_BUFFER_BYTES = 256 * 1024;
// After this many reads that used under 1/16 of a grown buffer, it shrinks.
const QUIET_READS_BEFORE_SHRINK = 16;

/**
 * Reads frames and raw bytes from a stream through one growing buffer. The
 * buffer starts small, so an idle connection costs little, doubles (up to
 * 256 KiB) whenever a read fills it, so busy connections make few reads, and
 * shrinks back once traffic is light again.
 * State (the buffered bytes) spans calls, hence a class.
 */
export class FrameReader {
  #source: ByteSource;
  #buffer = new Uint8Array(INITIAL_BUFFER_BYTES);
  #start = 0;
  #end = 0;
  #quietReads = 0;

  constructor(source: ByteSource) {
    this.#source = source;
  }

  /** Bytes received but not yet consumed. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /**
   * Reads exactly `n` raw bytes (a copy).
   *
   * @returns The bytes, or `null` if the stream ended before the first one.
   * @throws {ClosedError} If the stream ends after some but not all bytes.
   */
  async readExact(n: number): Promise<Uint8Array | null> {
    if (!(await this.#fill(n, "bytes"))) return null;
    const bytes = this.#buffer.slice(this.#start, this.#start + n);
    this.#start += n;
    return bytes;
  }

  /**
   * Reads one frame whose declared length is at most `maxBytes`.
   *
   * @param maxBytes The largest payload accepted.
   * @returns The payload, or `null` if the stream ended cleanly between
   *   frames. The bytes may be a view into the reader's buffer, valid until
   *   the next read: copy them to keep them.
   * @throws {FrameTooLargeError} If the declared length exceeds `maxBytes`.
   * @throws {ClosedError} If the stream ends inside a frame.
   * @throws {ConnectionError} If reading fails.
   */
  readFrame(maxBytes: number): Promise<Uint8Array | null> {
    // Not an async function: idle read path (framing.ts).
    if (this.#end - this.#start < FRAME_HEADER_BYTES) {
      return this.#fill(FRAME_HEADER_BYTES, "frame").then((more) =>
        more ? this.#readAfterHeader(maxBytes) : null
      );
    }
    return this.#readAfterHeader(maxBytes);
  }

  /** The rest of {@link readFrame}, once the header is buffered. */
  async #readAfterHeader(maxBytes: number): Promise<Uint8Array> {
    const buffer = this.#buffer;
    const start = this.#start;
    const length = ((buffer[start] << 24) | (buffer[start + 1] << 16) |
      (buffer[start + 2] << 8) | buffer[start + 3]) >>> 0;
    if (length > maxBytes) {
      throw new FrameTooLargeError(
        `Cannot read frame: declared length ${length} exceeds ${maxBytes} bytes`,
      );
    }
    this.#start += FRAME_HEADER_BYTES;
    if (length > this.#buffer.length) return await this.#readLarge(length);
    if (this.#end - this.#start < length) {
      await this.#fill(length, "frame", true);
    }
    const payload = this.#buffer.subarray(this.#start, this.#start + length);
    this.#start += length;
    return payload;
  }

  /** A frame larger than the buffer is read straight into its own array. */
  async #readLarge(length: number): Promise<Uint8Array> {
    const payload = new Uint8Array(length);
    let filled = this.#end - this.#start;
    payload.set(this.#buffer.subarray(this.#start, this.#end));
    this.#start = this.#end = 0;
    while (filled < length) {
      const n = await this.#read(payload.subarray(filled));
      if (n === null) throw this.#endedInside("frame", filled, length);
      filled += n;
    }
    return payload;
  }

  /**
   * Ensures `n` bytes are buffered. Resolves false on a clean end before any
   * byte of this unit (unless `inside` says we are already within a frame).
   * A loop of reads written as a promise chain: idle read path (module
   * comment).
   */
  #fill(n: number, unit: string, inside = false): Promise<boolean> {
    if (this.#end - this.#start >= n) return Promise.resolve(true);
    if (this.#start === this.#end) this.#maybeShrink();
    if (this.#buffer.length - this.#start < n) this.#compact(n);
    const got = this.#end - this.#start;
    const target = this.#buffer.subarray(this.#end);
    return this.#read(target).then((read) => {
      if (read === null) {
        if (got === 0 && !inside) return false;
        throw this.#endedInside(unit, got, n);
      }
      this.#end += read;
      if (read === target.length) {
        this.#quietReads = 0;
        this.#grow();
      } else if (read < this.#buffer.length / 16) {
        this.#quietReads++;
      }
      return this.#fill(n, unit, inside);
    });
  }

  /** An empty, grown buffer that has seen only small reads goes back. */
  #maybeShrink(): void {
    if (
      this.#buffer.length > INITIAL_BUFFER_BYTES &&
      this.#quietReads >= QUIET_READS_BEFORE_SHRINK
    ) {
      this.#buffer = new Uint8Array(INITIAL_BUFFER_BYTES);
      this.#start = this.#end = 0;
      this.#quietReads = 0;
    }
  }

  #compact(needed: number): void {
    if (needed > this.#buffer.length) {
      const bigger = new Uint8Array(needed);
      bigger.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = bigger;
    } else {
      this.#buffer.copyWithin(0, this.#start, this.#end);
    }
    this.#end -= this.#start;
    this.#start = 0;
  }

  #grow(): void {
    if (this.#buffer.length >= MAX_BUFFER_BYTES) return;
    const bigger = new Uint8Array(this.#buffer.length * 2);
    bigger.set(this.#buffer.subarray(this.#start, this.#end));
    this.#end -= this.#start;
    this.#start = 0;
    this.#buffer = bigger;
  }

  // Not an async function: idle read path (framing.ts).
  #read(target: Uint8Array): Promise<number | null> {
    const wrap = (error: unknown) => {
      throw new ConnectionError("Cannot read from connection", {
        cause: error,
      });
    };
    try {
      return this.#source.read(target).catch(wrap);
    } catch (error) {
      return Promise.reject(wrap(error));
    }
  }

  #endedInside(unit: string, got: number, wanted: number): ClosedError {
    return new ClosedError(
      `Cannot read ${unit}: connection closed after ${got} of ${wanted} bytes`,
    );
  }
}

/** Writes all of `bytes`, however many calls the sink needs. */
export async function writeAll(sink: ByteSink, bytes: Uint8Array) {
  let offset = 0;
  try {
    while (offset < bytes.length) {
      offset += await sink.write(bytes.subarray(offset));
    }
  } catch (error) {
    throw new ConnectionError("Cannot write to connection", { cause: error });
  }
}

/** A frame: 4-byte big-endian length, then `payload`. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  writeUint32(frame, 0, payload.length);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/** Frames from this size on are written alone rather than copied into a batch. */
const LARGE_FRAME_BYTES = 16 * 1024;
/** Most bytes joined into one write. */
const MAX_BATCH_BYTES = 256 * 1024;

/**
 * The one frame writer (the channel's records, the bench's raw baseline):
 * whole frames are queued and written in order by one pump; frames queued
 * while a write is in flight leave together in the next write (small ones
 * joined into one buffer of at most 256 KiB, large ones alone, uncopied),
 * so a burst of records costs one syscall. The first write of a burst
 * waits for the microtask queue to drain, so every answer to frames that
 * arrived together is queued before it leaves. After a failed write every
 * later `write` throws and every waiter rejects with the same error.
 * The queue spans calls, hence a class.
 */
export class FrameWriter {
  #sink: ByteSink;
  #beforeFlush: (() => void) | null;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #writing = false;
  #error: Error | null = null;
  #flushWaiters: { resolve(): void; reject(error: Error): void }[] = [];

  /**
   * @param sink Where frames go.
   * @param options `beforeFlush` runs before each write; it may queue more
   *   frames (the channel seals records it held back, see {@link wake}).
   */
  constructor(sink: ByteSink, options: { beforeFlush?: () => void } = {}) {
    this.#sink = sink;
    this.#beforeFlush = options.beforeFlush ?? null;
  }

  /** Bytes queued and not yet written. */
  get queuedBytes(): number {
    return this.#pendingBytes;
  }

  /** Whether a flush is scheduled or a write is in flight. */
  get busy(): boolean {
    return this.#writing;
  }

  /** The error that ended writing, if a write failed. */
  get error(): Error | null {
    return this.#error;
  }

  /**
   * Queues one whole frame (header included); it leaves with the frames
   * queued before the microtask queue drains.
   *
   * @throws {ConnectionError} If an earlier write failed.
   */
  write(frame: Uint8Array): void {
    if (this.#error) throw this.#error;
    this.#pending.push(frame);
    this.#pendingBytes += frame.length;
    this.wake();
  }

  /**
   * Schedules a flush without queuing a frame: `beforeFlush` will run and
   * may queue some.
   *
   * @throws {ConnectionError} If an earlier write failed.
   */
  wake(): void {
    if (this.#error) throw this.#error;
    if (!this.#writing) {
      this.#writing = true;
      // After the microtasks, not among them: a burst of frames already
      // read is answered in microtasks, and a flush scheduled as one of
      // them left after the first answer, one syscall per record (pipelined
      // 64-byte messages: 31,400 sends in 5 s against 1,386, and 37% less
      // server CPU per message). setImmediate runs once the microtask queue
      // is empty, before the event loop polls again: no timer clamping.
      setImmediate(() => this.#pump());
    }
  }

  /** Resolves once every queued frame is written; rejects if a write fails. */
  flushed(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (!this.#writing) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#flushWaiters.push({ resolve, reject });
    });
  }

  async #pump(): Promise<void> {
    try {
      this.#beforeFlush?.();
      while (this.#pending.length > 0) {
        const batch = takeWriteBatch(this.#pending);
        await writeAll(this.#sink, batch);
        this.#pendingBytes -= batch.length;
        this.#beforeFlush?.();
      }
      this.#writing = false;
      for (const waiter of this.#flushWaiters.splice(0)) waiter.resolve();
    } catch (error) {
      this.#error = error instanceof Error
        ? error
        : new ConnectionError("Cannot write to connection");
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#writing = false;
      for (const waiter of this.#flushWaiters.splice(0)) {
        waiter.reject(this.#error);
      }
    }
  }
}

/**
 * Removes the next write from the queue: a large frame alone, or small
 * frames joined into one buffer of at most 256 KiB (one syscall for many
 * records, without copying large ones).
 */
function takeWriteBatch(pending: Uint8Array[]): Uint8Array {
  let count = 0;
  let length = 0;
  while (
    count < pending.length && pending[count].length < LARGE_FRAME_BYTES &&
    length + pending[count].length <= MAX_BATCH_BYTES
  ) {
    length += pending[count++].length;
  }
  if (count <= 1) return pending.shift() as Uint8Array;
  const batch = new Uint8Array(length);
  let offset = 0;
  for (const frame of pending.splice(0, count)) {
    batch.set(frame, offset);
    offset += frame.length;
  }
  return batch;
}
