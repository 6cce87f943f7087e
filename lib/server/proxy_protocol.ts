/**
 * Server parts: the PROXY protocol header (HAProxy's `doc/proxy-protocol.txt`,
 * versions 1 and 2) that a load balancer sends before the doorman preamble
 * to say who the client really is. It reads that header from the wire,
 * exactly and never past its end (what follows stays in the frame reader
 * for the handshake), with a size bound, and parses it, TLVs included.
 *
 * The header is untrusted input: every length is checked before it is used,
 * nothing is allocated from a declared length above `maxBytes`, and any
 * deviation from the spec is a `ProtocolError`. Whether the sender may send
 * a header at all (`--proxy-protocol-from`) is decided by the caller.
 *
 * Why not npm `proxy-protocol-js`: it parses a complete buffer only (the
 * hard part here is knowing how much to read, bounded), leaves v2 TLVs as
 * raw bytes and accepts v1 lines the spec forbids, so this small parser is
 * the smaller dependency. It does not verify the CRC32C TLV (it is kept as
 * a TLV) and does not decode the SSL sub-TLVs.
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";
import { normalizeAddress } from "./address.ts";

/** The 12 bytes that open a version 2 header. */
export const PROXY_V2_SIGNATURE: Uint8Array = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);
/** Longest version 1 line, CRLF included (spec: 107). */
export const MAX_PROXY_V1_BYTES = 107;
/** Fixed part of a version 2 header: signature, ver/cmd, fam, length. */
export const PROXY_V2_FIXED_BYTES = 16;
/**
 * Default bound of a whole header: the spec's advice that a header fit in
 * one 536-byte segment (the IPv4 minimum MSS).
 */
export const DEFAULT_MAX_PROXY_HEADER_BYTES = 536;
/** Shortest version 1 line: `PROXY UNKNOWN\r\n`. */
const MIN_PROXY_V1_BYTES = 15;
const V1_REGEXP =
  /^PROXY (TCP4|TCP6) ([0-9a-fA-F:.]{1,45}) ([0-9a-fA-F:.]{1,45}) (0|[1-9]\d{0,4}) (0|[1-9]\d{0,4})\r\n$/;
const V1_UNKNOWN_PREFIX = "PROXY UNKNOWN";
const ADDRESS_BLOCK_BYTES = { 1: 12, 2: 36, 3: 216 } as const;

/** One address and port carried by a header. */
export interface ProxyEndpoint {
  /** The address in its one spelling (`normalizeAddress`). */
  readonly address: string;
  /** The TCP port. */
  readonly port: number;
}

/** One version 2 Type-Length-Value field. */
export interface ProxyTlv {
  /** The type byte (0x01 ALPN, 0x02 AUTHORITY, 0x05 UNIQUE_ID, …). */
  readonly type: number;
  /** The value bytes (a copy). */
  readonly value: Uint8Array;
}

/** A parsed PROXY header. */
export interface ProxyHeader {
  /** 1 (text) or 2 (binary). */
  readonly version: 1 | 2;
  /**
   * `proxy`: the connection was relayed for `source`; `local`: the proxy
   * speaks for itself (health checks), so the connection's own address holds.
   */
  readonly command: "proxy" | "local";
  /** The client, or `null` when the header carries no TCP address. */
  readonly source: ProxyEndpoint | null;
  /** Where the client connected to, or `null` likewise. */
  readonly destination: ProxyEndpoint | null;
  /** Version 2 TLVs in order; always empty for version 1. */
  readonly tlvs: readonly ProxyTlv[];
  /** Bytes the header took on the wire. */
  readonly length: number;
}

/** What the header is read from: the connection's frame reader. */
export interface ExactByteReader {
  /** Exactly `n` bytes, or `null` if the stream ended before the first. */
  readExact(n: number): Promise<Uint8Array | null>;
}

/** Options of {@link readProxyHeader}. */
export interface ReadProxyHeaderOptions {
  /**
   * Largest header accepted, in bytes; a longer one is refused before its
   * body is read.
   *
   * @default {536}
   */
  maxBytes?: number;
}

/**
 * Reads one PROXY header (v1 or v2) from `reader`, exactly: the bytes after
 * it stay in the reader. Bound it in time with `raceSignal`.
 *
 * @param reader The connection's reader.
 * @param options The size bound.
 * @returns The parsed header.
 * @throws {ProtocolError} If the bytes are not a valid header (a doorman
 *   preamble where a header was expected included), the header is longer
 *   than `maxBytes`, or the stream ends inside it.
 * @example Usage
 * ```ts ignore
 * const reader = new FrameReader(conn);
 * const header = await readProxyHeader(reader);
 * const client = header.source?.address ?? conn.remoteAddr.hostname;
 * ```
 */
export async function readProxyHeader(
  reader: ExactByteReader,
  options: ReadProxyHeaderOptions = {},
): Promise<ProxyHeader> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_PROXY_HEADER_BYTES;
  const start = await readSome(reader, MIN_PROXY_V1_BYTES);
  if (start[0] === PROXY_V2_SIGNATURE[0]) {
    const fixed = concat(start, await readSome(reader, 1));
    checkV2Fixed(fixed);
    const bodyBytes = (fixed[14] << 8) | fixed[15];
    if (PROXY_V2_FIXED_BYTES + bodyBytes > maxBytes) {
      throw new ProtocolError(
        `Cannot read PROXY header: ${
          PROXY_V2_FIXED_BYTES + bodyBytes
        } bytes exceed ${maxBytes}`,
      );
    }
    const body = bodyBytes === 0
      ? new Uint8Array(0)
      : await readSome(reader, bodyBytes);
    return parseProxyHeader(concat(fixed, body));
  }
  let line = start;
  const limit = Math.min(MAX_PROXY_V1_BYTES, maxBytes);
  while (!endsWithCrlf(line)) {
    if (line.length >= limit || !startsWithText(line, "PROXY ")) {
      throw new ProtocolError(
        "Cannot read PROXY header: not a PROXY protocol v1 or v2 header",
      );
    }
    line = concat(line, await readSome(reader, 1));
  }
  return parseProxyHeader(line);
}

/**
 * Parses one complete PROXY header, v1 or v2, that fills `bytes` exactly.
 *
 * @param bytes The header, nothing before or after it.
 * @returns The parsed header.
 * @throws {ProtocolError} If `bytes` is not exactly one valid header.
 * @example Usage
 * ```ts
 * const line = "PROXY TCP4 192.0.2.1 192.0.2.2 50000 9000\r\n";
 * parseProxyHeader(new TextEncoder().encode(line)).source?.address; // "192.0.2.1"
 * ```
 */
export function parseProxyHeader(bytes: Uint8Array): ProxyHeader {
  if (bytes.length >= PROXY_V2_FIXED_BYTES && bytes[0] === 0x0d) {
    return parseV2(bytes);
  }
  return parseV1(bytes);
}

function parseV1(bytes: Uint8Array): ProxyHeader {
  if (bytes.length > MAX_PROXY_V1_BYTES || !endsWithCrlf(bytes)) {
    throw invalid("v1 line must end with CRLF within 107 bytes");
  }
  for (const byte of bytes) {
    if (byte > 0x7e) throw invalid("v1 line is not ASCII");
  }
  const line = new TextDecoder().decode(bytes);
  if (line.startsWith(V1_UNKNOWN_PREFIX)) {
    const rest = line.slice(V1_UNKNOWN_PREFIX.length);
    if (rest !== "\r\n" && !rest.startsWith(" ")) {
      throw invalid("v1 protocol must be TCP4, TCP6 or UNKNOWN");
    }
    if (rest.indexOf("\r") !== rest.length - 2 || rest.includes("\n\r")) {
      throw invalid("v1 line has a stray CR");
    }
    return header(1, "proxy", null, null, [], bytes.length);
  }
  const match = V1_REGEXP.exec(line);
  if (match === null) throw invalid("v1 line is not well formed");
  const [, protocol, sourceText, destinationText, sourcePort, destPort] = match;
  const wantIpv6 = protocol === "TCP6";
  const source = endpoint(sourceText, Number(sourcePort), wantIpv6);
  const destination = endpoint(destinationText, Number(destPort), wantIpv6);
  return header(1, "proxy", source, destination, [], bytes.length);
}

function endpoint(
  text: string,
  port: number,
  wantIpv6: boolean,
): ProxyEndpoint {
  if (text.includes(":") !== wantIpv6 || port > 65535) {
    throw invalid("v1 address does not match its protocol");
  }
  try {
    return { address: normalizeAddress(text), port };
  } catch {
    throw invalid("v1 address is not an IP address");
  }
}

function checkV2Fixed(fixed: Uint8Array): void {
  for (let i = 0; i < PROXY_V2_SIGNATURE.length; i++) {
    if (fixed[i] !== PROXY_V2_SIGNATURE[i]) {
      throw invalid("v2 signature does not match");
    }
  }
  if (fixed[12] >> 4 !== 2) throw invalid("v2 version nibble is not 2");
  if ((fixed[12] & 0x0f) > 1) throw invalid("v2 command is not LOCAL or PROXY");
  const family = fixed[13] >> 4;
  const transport = fixed[13] & 0x0f;
  if (family > 3) throw invalid("v2 address family is unknown");
  if (transport > 2) throw invalid("v2 transport is unknown");
}

function parseV2(bytes: Uint8Array): ProxyHeader {
  checkV2Fixed(bytes);
  const bodyBytes = (bytes[14] << 8) | bytes[15];
  if (bytes.length !== PROXY_V2_FIXED_BYTES + bodyBytes) {
    throw invalid("v2 length does not match the bytes given");
  }
  const command = (bytes[12] & 0x0f) === 0 ? "local" : "proxy";
  const family = bytes[13] >> 4;
  const transport = bytes[13] & 0x0f;
  const addressBytes = family === 0
    ? 0
    : ADDRESS_BLOCK_BYTES[family as 1 | 2 | 3];
  if (bodyBytes < addressBytes) {
    throw invalid("v2 length is shorter than its address block");
  }
  const body = bytes.subarray(PROXY_V2_FIXED_BYTES);
  let source: ProxyEndpoint | null = null;
  let destination: ProxyEndpoint | null = null;
  // Only TCP over IPv4/IPv6 carries an address doorman can use; LOCAL,
  // UNSPEC, UNIX and UDP leave the connection's own address in force.
  if (
    command === "proxy" && transport === 1 && (family === 1 || family === 2)
  ) {
    const size = family === 1 ? 4 : 16;
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    source = {
      address: formatRaw(body.subarray(0, size)),
      port: view.getUint16(2 * size),
    };
    destination = {
      address: formatRaw(body.subarray(size, 2 * size)),
      port: view.getUint16(2 * size + 2),
    };
  }
  const tlvs = parseTlvs(body.subarray(addressBytes));
  return header(2, command, source, destination, tlvs, bytes.length);
}

/** TLVs fill the rest of the header exactly; any overrun is an error. */
function parseTlvs(bytes: Uint8Array): ProxyTlv[] {
  const tlvs: ProxyTlv[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < 3) throw invalid("v2 TLV header is cut short");
    const type = bytes[offset];
    const length = (bytes[offset + 1] << 8) | bytes[offset + 2];
    offset += 3;
    if (length > bytes.length - offset) {
      throw invalid("v2 TLV length overruns the header");
    }
    tlvs.push({ type, value: bytes.slice(offset, offset + length) });
    offset += length;
  }
  return tlvs;
}

function formatRaw(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) {
    words.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  }
  return normalizeAddress(words.join(":"));
}

function header(
  version: 1 | 2,
  command: "proxy" | "local",
  source: ProxyEndpoint | null,
  destination: ProxyEndpoint | null,
  tlvs: ProxyTlv[],
  length: number,
): ProxyHeader {
  return { version, command, source, destination, tlvs, length };
}

async function readSome(
  reader: ExactByteReader,
  n: number,
): Promise<Uint8Array> {
  const bytes = await reader.readExact(n);
  if (bytes === null) {
    throw new ProtocolError(
      "Cannot read PROXY header: the connection closed before it",
    );
  }
  return bytes;
}

function concat(head: Uint8Array, tail: Uint8Array): Uint8Array {
  const out = new Uint8Array(head.length + tail.length);
  out.set(head);
  out.set(tail, head.length);
  return out;
}

function endsWithCrlf(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[bytes.length - 2] === 0x0d &&
    bytes[bytes.length - 1] === 0x0a;
}

function startsWithText(bytes: Uint8Array, text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    if (bytes[i] !== text.charCodeAt(i)) return false;
  }
  return true;
}

function invalid(detail: string): ProtocolError {
  return new ProtocolError(`Cannot parse PROXY header: ${detail}`);
}
