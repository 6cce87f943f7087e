/**
 * Layer 5, streams (tunnels): the bodies of the stream records
 * (`docs/PROTOCOL.md`). `streamOpen` carries a target name;
 * `streamOpened` and `streamEnd` are empty; `streamData` carries 1 to
 * 65536 bytes. Pure functions, no I/O: `stream_pump.ts` moves the bytes.
 *
 * @module
 */

import { fromUtf8, utf8 } from "./bytes.ts";
import { ProtocolError } from "../errors.ts";
import { TAG_BYTES } from "./protocol.ts";

/** Most bytes one `streamData` record carries. */
export const MAX_STREAM_DATA_BYTES = 65536;
/** Largest stream record frame: kind byte, data and tag. */
export const MAX_STREAM_RECORD_BYTES = 1 + MAX_STREAM_DATA_BYTES + TAG_BYTES;
/** Longest target name, in bytes. */
export const MAX_TARGET_NAME_BYTES = 64;
/** What a target name may hold: letters, digits, `.`, `_` and `-`. */
export const TARGET_NAME_REGEXP = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The body of a `streamOpen` record: the target name, as ASCII.
 *
 * @param target The target name.
 * @returns The record body.
 * @throws {RangeError} If the name is empty, too long or has other
 *   characters than letters, digits, `.`, `_` and `-`.
 * @example Usage
 * ```ts
 * const body = encodeStreamOpen("redis"); // 72 65 64 69 73
 * ```
 */
export function encodeStreamOpen(target: string): Uint8Array {
  if (!TARGET_NAME_REGEXP.test(target)) {
    throw new RangeError(
      `Cannot use target name ${
        JSON.stringify(target)
      }: expected 1 to 64 letters, digits, ".", "_" or "-"`,
    );
  }
  return utf8(target);
}

/**
 * Reads the target name of a `streamOpen` record body.
 *
 * @param body The record body.
 * @returns The target name.
 * @throws {ProtocolError} If the body is not a valid target name.
 * @example Usage
 * ```ts
 * decodeStreamOpen(new TextEncoder().encode("redis")); // "redis"
 * ```
 */
export function decodeStreamOpen(body: Uint8Array): string {
  if (body.length < 1 || body.length > MAX_TARGET_NAME_BYTES) {
    throw new ProtocolError(
      `Cannot read stream open: target name of ${body.length} bytes`,
    );
  }
  let name: string;
  try {
    name = fromUtf8(body);
  } catch (error) {
    throw new ProtocolError("Cannot read stream open: bad UTF-8", {
      cause: error,
    });
  }
  if (!TARGET_NAME_REGEXP.test(name)) {
    throw new ProtocolError("Cannot read stream open: bad target name");
  }
  return name;
}

/**
 * Checks the body of an empty stream record (`streamOpened`, `streamEnd`).
 *
 * @param body The record body.
 * @param what The record's name, for the error.
 * @throws {ProtocolError} If the body is not empty.
 * @example Usage
 * ```ts
 * checkEmptyStreamRecord(new Uint8Array(0), "stream end");
 * ```
 */
export function checkEmptyStreamRecord(body: Uint8Array, what: string): void {
  if (body.length !== 0) {
    throw new ProtocolError(`Cannot read ${what}: body must be empty`);
  }
}

/**
 * Checks the body of a `streamData` record: 1 to 65536 bytes.
 *
 * @param body The record body.
 * @throws {ProtocolError} If it is empty or larger.
 * @example Usage
 * ```ts
 * checkStreamData(new Uint8Array(10));
 * ```
 */
export function checkStreamData(body: Uint8Array): void {
  if (body.length < 1 || body.length > MAX_STREAM_DATA_BYTES) {
    throw new ProtocolError(
      `Cannot read stream data: ${body.length} bytes, expected 1 to ${MAX_STREAM_DATA_BYTES}`,
    );
  }
}
