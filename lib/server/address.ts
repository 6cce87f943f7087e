/**
 * Server parts: IP address parsing for penalties and exemption lists.
 * `normalizeAddress` gives every address one spelling (IPv4-mapped IPv6 as
 * dotted IPv4, other IPv6 in RFC 5952 form), so one peer is one key;
 * `parseAddressList` turns entries such as `10.0.0.0/8` or `2001:db8::/32`
 * into a matcher.
 *
 * Pure: no `Deno.*`, no name resolution. It deliberately accepts only plain
 * literals: no host names, ports, brackets, zone ids (`%eth0`), or the
 * shorthand IPv4 forms of `inet_aton` (`10.1`, `010.0.0.1`, `0x0a.0.0.1`).
 *
 * @module
 */

const IPV4_REGEXP = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const HEX_GROUP_REGEXP = /^[0-9a-fA-F]{1,4}$/;
const PREFIX_REGEXP = /^\d{1,3}$/;
/** Longest IPv6 literal: eight groups with a dotted IPv4 tail. */
const MAX_IPV6_CHARS = 45;
/** Bytes of an address; IPv4 is held as IPv4-mapped IPv6 (`::ffff:a.b.c.d`). */
const ADDRESS_BYTES = 16;
/** Bits before the IPv4 part of a mapped address. */
const MAPPED_PREFIX_BITS = 96;

/** Something that says whether an address is on a list. */
export interface AddressMatcher {
  /**
   * Whether `address` is on the list. The address is normalised first, so
   * `::ffff:10.0.0.1` matches `10.0.0.0/8`; anything that is not an IP
   * address matches nothing.
   */
  matches(address: string): boolean;
}

/**
 * The one spelling of an IP address: IPv4 dotted decimal, IPv4-mapped IPv6
 * (`::ffff:10.0.0.1`, `::FFFF:a00:1`) as that IPv4 address, and any other
 * IPv6 address in RFC 5952 canonical form (lower case, no leading zeros,
 * the longest run of two or more zero groups written `::`).
 *
 * @param address An IPv4 or IPv6 literal, without port or brackets.
 * @returns The canonical form.
 * @throws {RangeError} If `address` is not an IPv4 or IPv6 literal.
 * @example Usage
 * ```ts
 * normalizeAddress("::FFFF:a00:1"); // "10.0.0.1"
 * normalizeAddress("2001:DB8:0:0:0:0:0:1"); // "2001:db8::1"
 * ```
 */
export function normalizeAddress(address: string): string {
  const bytes = parseAddressBytes(address);
  if (bytes === null) {
    throw new RangeError(
      `Cannot parse address ${quote(address)}: not an IPv4 or IPv6 address`,
    );
  }
  return formatAddressBytes(bytes);
}

/**
 * Parses a list of addresses and CIDR ranges into a matcher. Entries are
 * single addresses (`127.0.0.1`, `::1`) or ranges (`10.0.0.0/8`,
 * `2001:db8::/32`, `::ffff:192.168.0.0/112`); host bits set in a range are
 * ignored (`10.1.2.3/8` is `10.0.0.0/8`). IPv4 is compared in its mapped
 * IPv6 form, so a mapped range is the same as the IPv4 range, and an IPv6
 * range that contains `::ffff:0:0/96` (such as `::/0`) contains all of IPv4.
 *
 * @param entries The addresses and ranges, one per element.
 * @returns A matcher for the union of the entries (empty: matches nothing).
 * @throws {RangeError} If an entry is not an address or range.
 * @example Usage
 * ```ts
 * const exempt = parseAddressList(["127.0.0.1", "10.0.0.0/8"]);
 * exempt.matches("::ffff:10.9.8.7"); // true
 * ```
 */
export function parseAddressList(entries: readonly string[]): AddressMatcher {
  const ranges = entries.map(parseRange);
  return Object.freeze({
    matches(address: string): boolean {
      const bytes = parseAddressBytes(address);
      return bytes !== null &&
        ranges.some((range) => rangeContains(range, bytes));
    },
  });
}

interface AddressRange {
  readonly bytes: Uint8Array;
  /** Significant leading bits, 0..128 (IPv4 ranges are offset by 96). */
  readonly prefixBits: number;
}

function parseRange(entry: string): AddressRange {
  const slash = entry.indexOf("/");
  const addressText = slash === -1 ? entry : entry.slice(0, slash);
  const bytes = parseAddressBytes(addressText);
  if (bytes === null) {
    throw new RangeError(
      `Cannot parse address ${quote(entry)}: not an IPv4 or IPv6 address`,
    );
  }
  const isIpv4Text = !addressText.includes(":");
  const maxBits = isIpv4Text ? 32 : 128;
  if (slash === -1) return { bytes, prefixBits: ADDRESS_BYTES * 8 };
  const prefixText = entry.slice(slash + 1);
  if (!PREFIX_REGEXP.test(prefixText)) {
    throw new RangeError(
      `Cannot parse address ${
        quote(entry)
      }: prefix length must be 0 to ${maxBits}`,
    );
  }
  const prefix = Number(prefixText);
  if (prefix > maxBits) {
    throw new RangeError(
      `Cannot parse address ${
        quote(entry)
      }: prefix length ${prefix} exceeds ${maxBits}`,
    );
  }
  const prefixBits = isIpv4Text ? MAPPED_PREFIX_BITS + prefix : prefix;
  return { bytes: maskBytes(bytes, prefixBits), prefixBits };
}

function rangeContains(range: AddressRange, bytes: Uint8Array): boolean {
  const masked = maskBytes(bytes, range.prefixBits);
  for (let i = 0; i < ADDRESS_BYTES; i++) {
    if (masked[i] !== range.bytes[i]) return false;
  }
  return true;
}

/** A copy of `bytes` with every bit after the first `prefixBits` cleared. */
function maskBytes(bytes: Uint8Array, prefixBits: number): Uint8Array {
  const out = new Uint8Array(ADDRESS_BYTES);
  for (let i = 0; i < ADDRESS_BYTES; i++) {
    const bits = Math.min(8, Math.max(0, prefixBits - i * 8));
    out[i] = bytes[i] & ((0xff00 >> bits) & 0xff);
  }
  return out;
}

const HOST_PORT_REGEXP = /^(\[[0-9a-fA-F:.]+\]|[^/:\s[\]]+):(\d{1,5})$/;

/**
 * Splits `HOST:PORT` or `[IPv6]:PORT` (the one parser of the flags'
 * addresses: `--metrics`, `--broker`, the workers' metrics ports).
 *
 * @param text The address and port.
 * @returns The host (without brackets) and the port, or `null` if `text`
 *   is not of that form or the port is above 65535.
 * @example Usage
 * ```ts
 * parseHostPort("[::1]:9100"); // { hostname: "::1", port: 9100 }
 * ```
 */
export function parseHostPort(
  text: string,
): { hostname: string; port: number } | null {
  const match = HOST_PORT_REGEXP.exec(text);
  if (match === null || Number(match[2]) > 65535) return null;
  return { hostname: match[1].replace(/^\[|\]$/g, ""), port: Number(match[2]) };
}

/**
 * 16 bytes (IPv4 in its mapped form), or `null` if not an IP literal.
 *
 * @param text An IPv4 or IPv6 literal, without port or brackets.
 * @returns The address bytes, or `null`.
 */
export function parseAddressBytes(text: string): Uint8Array | null {
  if (!text.includes(":")) {
    const ipv4 = parseIpv4(text);
    if (ipv4 === null) return null;
    const bytes = new Uint8Array(ADDRESS_BYTES);
    bytes[10] = 0xff;
    bytes[11] = 0xff;
    bytes.set(ipv4, 12);
    return bytes;
  }
  return parseIpv6(text);
}

function parseIpv4(text: string): number[] | null {
  const match = IPV4_REGEXP.exec(text);
  if (match === null) return null;
  const octets: number[] = [];
  for (const part of match.slice(1)) {
    // A leading zero reads as octal to inet_aton: refuse the ambiguity.
    if (part.length > 1 && part.startsWith("0")) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    octets.push(octet);
  }
  return octets;
}

function parseIpv6(text: string): Uint8Array | null {
  if (text.length > MAX_IPV6_CHARS) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const compressed = halves.length === 2;
  const head = parseGroups(halves[0], { lastMayBeIpv4: !compressed });
  const tail = compressed
    ? parseGroups(halves[1], { lastMayBeIpv4: true })
    : [];
  if (head === null || tail === null) return null;
  const groupCount = head.length + tail.length;
  // "::" stands for at least one zero group.
  if (compressed ? groupCount > 7 : groupCount !== 8) return null;
  const words = [
    ...head,
    ...new Array<number>(8 - groupCount).fill(0),
    ...tail,
  ];
  const bytes = new Uint8Array(ADDRESS_BYTES);
  words.forEach((word, i) => {
    bytes[i * 2] = word >> 8;
    bytes[i * 2 + 1] = word & 0xff;
  });
  return bytes;
}

/** Colon-separated 16-bit groups; an IPv4 tail counts as two groups. */
function parseGroups(
  text: string,
  options: { lastMayBeIpv4: boolean },
): number[] | null {
  if (text === "") return [];
  const parts = text.split(":");
  const words: number[] = [];
  for (const [i, part] of parts.entries()) {
    if (HEX_GROUP_REGEXP.test(part)) {
      words.push(parseInt(part, 16));
      continue;
    }
    const ipv4 = options.lastMayBeIpv4 && i === parts.length - 1
      ? parseIpv4(part)
      : null;
    if (ipv4 === null) return null;
    words.push((ipv4[0] << 8) | ipv4[1], (ipv4[2] << 8) | ipv4[3]);
  }
  return words;
}

function isIpv4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

function formatAddressBytes(bytes: Uint8Array): string {
  if (isIpv4Mapped(bytes)) return Array.from(bytes.subarray(12)).join(".");
  const words: number[] = [];
  for (let i = 0; i < 8; i++) {
    words.push((bytes[i * 2] << 8) | bytes[i * 2 + 1]);
  }
  // RFC 5952 §4.2: compress the longest run of two or more zero groups,
  // the first one if two runs tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && words[start + length] === 0) length++;
    if (length > bestLength) {
      bestStart = start;
      bestLength = length;
    }
  }
  const hex = words.map((word) => word.toString(16));
  if (bestStart === -1) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}

/** A value quoted for a message, with any control character escaped. */
function quote(value: string): string {
  return JSON.stringify(value);
}
