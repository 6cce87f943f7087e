/**
 * Byte helpers shared by every layer: concatenation, big-endian integers,
 * hex, base64 and UTF-8. Pure functions, no I/O.
 *
 * @module
 */

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** Joins byte arrays into one new array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Writes `value` as a 32-bit big-endian unsigned integer at `offset` (byte
 * by byte: a DataView per call showed in every per-message profile).
 */
export function writeUint32(target: Uint8Array, offset: number, value: number) {
  checkRoom(target, offset);
  target[offset] = value >>> 24;
  target[offset + 1] = (value >>> 16) & 0xff;
  target[offset + 2] = (value >>> 8) & 0xff;
  target[offset + 3] = value & 0xff;
}

/** Reads a 32-bit big-endian unsigned integer at `offset`. */
export function readUint32(source: Uint8Array, offset: number): number {
  checkRoom(source, offset);
  return ((source[offset] << 24) | (source[offset + 1] << 16) |
    (source[offset + 2] << 8) | source[offset + 3]) >>> 0;
}

function checkRoom(bytes: Uint8Array, offset: number): void {
  if (!(offset >= 0 && offset + 4 <= bytes.length)) {
    throw new RangeError(`Offset ${offset} is outside the bytes`);
  }
}

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += byte.toString(16).padStart(2, "0");
  return text;
}

const HEX_REGEXP = /^(?:[0-9a-fA-F]{2})*$/;

/**
 * Parses hex (either case) into bytes.
 *
 * @throws {SyntaxError} If `text` is not an even number of hex digits.
 */
export function fromHex(text: string): Uint8Array {
  if (!HEX_REGEXP.test(text)) throw new SyntaxError("Cannot parse hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}

/** Standard base64 (with padding) of `bytes`. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

// Canonical only: the unused bits before padding must be zero.
const BASE64_REGEXP =
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$/;

/**
 * Parses standard base64 (with padding).
 *
 * @throws {SyntaxError} If `text` is not canonical base64.
 */
export function fromBase64(text: string): Uint8Array {
  if (!BASE64_REGEXP.test(text)) throw new SyntaxError("Cannot parse base64");
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** UTF-8 encoding of `text`. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/**
 * Strict UTF-8 decoding.
 *
 * @throws {TypeError} If `bytes` is not valid UTF-8.
 */
export function fromUtf8(bytes: Uint8Array): string {
  return strictDecoder.decode(bytes);
}
