/**
 * The records a channel holds back after login, built in place: each held
 * record is appended to the plaintext of one `batch` record (docs/PROTOCOL.md,
 * "Batch records"), inside the very buffer that becomes its frame. Sealing
 * then encrypts that buffer where it lies, so a held record is copied once
 * (from the caller's parts) and a burst costs one allocation, not one per
 * record plus one for the batch and one for the frame.
 *
 * A lone held record leaves as an ordinary record: its entry header is
 * skipped and its frame starts 3 bytes later in the same buffer.
 *
 * @module
 */

import { FRAME_HEADER_BYTES, RecordKind, TAG_BYTES } from "./protocol.ts";

/** Most plaintext bytes of one batch record (docs/PROTOCOL.md). */
export const MAX_BATCH_PLAINTEXT = 16 * 1024;
/** Every receiver accepts a batch record this big once login is over. */
export const MAX_BATCH_RECORD_BYTES = MAX_BATCH_PLAINTEXT + TAG_BYTES;
/** Bytes before each inner record of a batch: its u16 BE length. */
export const BATCH_ENTRY_HEADER = 2;
/** The largest record (kind byte and body) a batch can hold. */
export const MAX_BATCHED_RECORD = MAX_BATCH_PLAINTEXT - 1 - BATCH_ENTRY_HEADER;

// The batch plaintext starts after the frame header; its kind byte is first.
const PLAINTEXT_START = FRAME_HEADER_BYTES;
const FIRST_ENTRY = PLAINTEXT_START + 1;

/**
 * One record ready to seal in place: `buffer[start, start + 4)` is room for
 * the frame header, the plaintext follows up to `end`, and 16 bytes after it
 * are room for the tag. The frame is `buffer[start, end + 16)`.
 */
export interface HeldRecord {
  readonly buffer: Uint8Array;
  readonly start: number;
  readonly end: number;
}

/**
 * Held records, in order, as one batch under construction. State (the buffer
 * being filled) spans calls, hence a class; an empty outbox holds no buffer,
 * so an idle connection pays for none (bench: idle memory).
 */
export class Outbox {
  #buffer: Uint8Array | null = null;
  #end = FIRST_ENTRY;
  #count = 0;

  /** Plaintext bytes held: the batch's kind byte and every entry. */
  get bytes(): number {
    return this.#count === 0 ? 0 : this.#end - PLAINTEXT_START;
  }

  /** Whether no record is held. */
  get empty(): boolean {
    return this.#count === 0;
  }

  /**
   * Appends one record (`kind`, then `parts`), copying the parts, so the
   * caller may reuse them at once.
   *
   * @param length The parts' total length.
   * @returns `false`, appending nothing, if the record does not fit the
   *   batch being built: the caller takes the batch first, or sends a record
   *   longer than {@link MAX_BATCHED_RECORD} alone.
   */
  add(kind: number, parts: readonly Uint8Array[], length: number): boolean {
    const entry = 1 + length;
    const end = this.#end + BATCH_ENTRY_HEADER + entry;
    if (end - PLAINTEXT_START > MAX_BATCH_PLAINTEXT) return false;
    const buffer = this.#room(end);
    let offset = this.#end;
    buffer[offset++] = entry >>> 8;
    buffer[offset++] = entry & 0xff;
    buffer[offset++] = kind;
    for (const part of parts) {
      buffer.set(part, offset);
      offset += part.length;
    }
    this.#end = end;
    this.#count++;
    return true;
  }

  /**
   * Takes what is held as one record to seal in place: a batch record, or
   * the one record as itself. Afterwards the outbox is empty.
   *
   * @returns The record, or `null` if nothing is held.
   */
  take(): HeldRecord | null {
    const buffer = this.#buffer;
    if (this.#count === 0 || buffer === null) return null;
    const end = this.#end;
    const lone = this.#count === 1;
    this.clear();
    if (lone) {
      // The entry's length becomes the last 2 bytes of the frame header.
      const start = FIRST_ENTRY + BATCH_ENTRY_HEADER - FRAME_HEADER_BYTES;
      return { buffer, start, end };
    }
    buffer[PLAINTEXT_START] = RecordKind.batch;
    return { buffer, start: 0, end };
  }

  /** Drops every held record. */
  clear(): void {
    this.#buffer = null;
    this.#end = FIRST_ENTRY;
    this.#count = 0;
  }

  /**
   * The buffer, grown to hold `end` bytes and a tag after them: first just
   * that (a lone record, the usual case, costs its own size), then doubled
   * as a burst adds records.
   */
  #room(end: number): Uint8Array {
    const needed = end + TAG_BYTES;
    const buffer = this.#buffer;
    if (buffer !== null && buffer.length >= needed) return buffer;
    const grown = new Uint8Array(
      buffer === null ? needed : Math.min(
        Math.max(needed, 2 * buffer.length),
        FRAME_HEADER_BYTES + MAX_BATCH_RECORD_BYTES,
      ),
    );
    if (buffer !== null) grown.set(buffer.subarray(0, this.#end));
    this.#buffer = grown;
    return grown;
  }
}
