/**
 * Server parts, tunnels: the PROXY protocol v2 header a target flagged with
 * `--forward-proxy-protocol` receives before the stream's bytes
 * (haproxy's proxy-protocol.txt, section 2.2): the doorman client's real
 * address and port as the source, the server's end of the target
 * connection as the destination, and two custom TLVs naming who logged in:
 * {@link PROXY_TLV_USER} (0xE0) and {@link PROXY_TLV_KEY_ID} (0xE1), UTF-8,
 * each present only when known. Pure: bytes in, bytes out. The parser of
 * incoming headers lives elsewhere (`proxy_protocol.ts`).
 *
 * @module
 */

import { utf8 } from "../wire/bytes.ts";
import { parseAddressBytes } from "./address.ts";
import { PROXY_V2_SIGNATURE } from "./proxy_protocol.ts";

/** TLV type of the logged-in user name (the first custom type). */
export const PROXY_TLV_USER = 0xe0;
/** TLV type of the id of the key the client proved. */
export const PROXY_TLV_KEY_ID = 0xe1;

const VERSION_PROXY = 0x21; // version 2, command PROXY
const TCP_OVER_IPV4 = 0x11;
const TCP_OVER_IPV6 = 0x21;
const MAX_TLV_VALUE_BYTES = 255;

/** What a PROXY v2 header says. */
export interface ProxyHeaderFields {
  /** The doorman client's address and port. */
  readonly source: { readonly hostname: string; readonly port: number };
  /** The server's local end of the connection to the target. */
  readonly destination: { readonly hostname: string; readonly port: number };
  /** The logged-in user, if any. */
  readonly user?: string | null;
  /** The id of the key the client proved, if known. */
  readonly keyId?: string | null;
}

/**
 * Encodes a PROXY protocol v2 header (command PROXY, TCP). Both addresses
 * IPv4 (or IPv4-mapped) give family 0x11 with 12 address bytes; otherwise
 * both are written as IPv6 (0x21, 36 bytes). Then the TLVs, user first.
 *
 * @param fields The addresses, user and key id.
 * @returns The header bytes.
 * @throws {RangeError} If an address is not an IP literal, or a user or
 *   key id is longer than 255 bytes.
 * @example Usage
 * ```ts
 * const header = encodeProxyV2Header({
 *   source: { hostname: "192.0.2.7", port: 50000 },
 *   destination: { hostname: "127.0.0.1", port: 6379 },
 *   user: "alice",
 * });
 * header.length; // 16 + 12 + 3 + 5
 * ```
 */
export function encodeProxyV2Header(fields: ProxyHeaderFields): Uint8Array {
  const source = addressBytes(fields.source.hostname);
  const destination = addressBytes(fields.destination.hostname);
  const ipv4 = isMapped(source) && isMapped(destination);
  const tlvs: Uint8Array[] = [];
  if (fields.user) tlvs.push(tlv(PROXY_TLV_USER, fields.user));
  if (fields.keyId) tlvs.push(tlv(PROXY_TLV_KEY_ID, fields.keyId));
  const addressLength = ipv4 ? 12 : 36;
  let length = addressLength;
  for (const part of tlvs) length += part.length;
  const header = new Uint8Array(16 + length);
  const view = new DataView(header.buffer);
  header.set(PROXY_V2_SIGNATURE, 0);
  header[12] = VERSION_PROXY;
  header[13] = ipv4 ? TCP_OVER_IPV4 : TCP_OVER_IPV6;
  view.setUint16(14, length);
  let offset = 16;
  const ipBytes = ipv4 ? 4 : 16;
  header.set(ipv4 ? source.subarray(12) : source, offset);
  header.set(ipv4 ? destination.subarray(12) : destination, offset + ipBytes);
  offset += 2 * ipBytes;
  view.setUint16(offset, fields.source.port);
  view.setUint16(offset + 2, fields.destination.port);
  offset += 4;
  for (const part of tlvs) {
    header.set(part, offset);
    offset += part.length;
  }
  return header;
}

function addressBytes(hostname: string): Uint8Array {
  const bytes = parseAddressBytes(hostname.replace(/^\[|\]$/g, ""));
  if (bytes === null) {
    throw new RangeError(
      `Cannot encode PROXY header: ${
        JSON.stringify(hostname)
      } is not an IP address`,
    );
  }
  return bytes;
}

function isMapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

function tlv(type: number, text: string): Uint8Array {
  const value = utf8(text);
  if (value.length > MAX_TLV_VALUE_BYTES) {
    throw new RangeError(
      `Cannot encode PROXY header: TLV 0x${
        type.toString(16)
      } of ${value.length} bytes`,
    );
  }
  const out = new Uint8Array(3 + value.length);
  out[0] = type;
  out[1] = value.length >>> 8;
  out[2] = value.length & 0xff;
  out.set(value, 3);
  return out;
}
