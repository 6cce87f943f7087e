/**
 * Key: the key file format, without I/O (docs/PROTOCOL.md, "Keys and key
 * files"). Entry lines `ID HEX [users=a,b] [added=TIME]` with `#` comments
 * (the key is the 32 bytes HEX spells), or a bare key (version 1 files: the
 * trimmed content's bytes are the key, id `default`). `key_file.ts` reads,
 * finds and writes the files and re-exports all of this.
 *
 * It never puts a key in an error message: a bad line is named by number.
 *
 * @module
 */

import { fromHex, toHex, utf8 } from "./wire/bytes.ts";
import type { HandshakeKey } from "./wire/handshake.ts";
import {
  DEFAULT_KEY_ID,
  KEY_BYTES,
  KEY_ID_REGEXP,
  MIN_PSK_BYTES,
} from "./wire/protocol.ts";

/**
 * One key of a key file: its id, its bytes, and a ring entry's options.
 *
 * @example Usage
 * ```ts
 * const [entry] = parseKeyEntries(
 *   `laptop ${"ab".repeat(32)} users=alice\n`,
 *   "DOORMAN_KEY",
 * );
 * entry.users; // ["alice"]
 * ```
 */
export interface KeyEntry extends HandshakeKey {
  /** Users who may log in with this key; absent: any user. */
  readonly users?: readonly string[];
  /** When `key add` wrote it (ISO 8601), if recorded. */
  readonly added?: string;
}

/**
 * Turns key file content or `DOORMAN_KEY` into a key: surrounding ASCII
 * whitespace (space, tab, CR, LF) is trimmed.
 *
 * @param content The raw bytes, or text (taken as UTF-8).
 * @param where Where it came from, for the error: `key file "x"`.
 * @returns The key bytes.
 * @throws {RangeError} If fewer than 16 bytes remain (the key is never
 *   shown).
 * @example Usage
 * ```ts
 * const psk = parsePsk("0123456789abcdef0123\n", "DOORMAN_KEY"); // 20 bytes
 * ```
 */
export function parsePsk(
  content: Uint8Array | string,
  where: string,
): Uint8Array {
  const bytes = typeof content === "string" ? utf8(content) : content;
  let start = 0;
  let end = bytes.length;
  while (start < end && isAsciiWhitespace(bytes[start])) start++;
  while (end > start && isAsciiWhitespace(bytes[end - 1])) end--;
  const length = end - start;
  if (length < MIN_PSK_BYTES) {
    throw new RangeError(
      `Cannot use key from ${where}: ${length} bytes, at least ${MIN_PSK_BYTES} required`,
    );
  }
  return bytes.slice(start, end);
}

const ENTRY_REGEXP = /^(\S+)[ \t]+([0-9A-Fa-f]{64})((?:[ \t]+\S+)*)[ \t]*$/;
const LOOKS_LIKE_ENTRY_REGEXP = /^[A-Za-z0-9._-]+[ \t]+[0-9A-Fa-f]{32,}\b/;

/**
 * Parses key file content (or `DOORMAN_KEY`) in either form: entry lines
 * `ID HEX [users=a,b] [added=TIME]` with `#` comments, or a bare key (id
 * `default`, bytes as {@link parsePsk} gives them). The content is in the
 * entry form when any line is a comment or looks like an entry.
 *
 * @param content The raw bytes, or text (taken as UTF-8).
 * @param where Where it came from, for errors: `key file "x"`.
 * @returns The keys, in file order; empty for a ring of comments only.
 * @throws {SyntaxError} If an entry line is malformed (named by number, never
 *   shown) or an id repeats.
 * @throws {RangeError} If a bare key is shorter than 16 bytes.
 * @example Usage
 * ```ts
 * const [entry] = parseKeyEntries("0123456789abcdef0123\n", "DOORMAN_KEY");
 * entry.id; // "default"
 * ```
 */
export function parseKeyEntries(
  content: Uint8Array | string,
  where: string,
): KeyEntry[] {
  const text = typeof content === "string"
    ? content
    : new TextDecoder().decode(content);
  const lines = text.split(/\r?\n/).map((line) => line.trim());
  if (keyFileForm(text) === "bare") {
    return [{ id: DEFAULT_KEY_ID, psk: parsePsk(content, where) }];
  }
  const entries: KeyEntry[] = [];
  const seen = new Set<string>();
  lines.forEach((line, index) => {
    if (line === "" || line.startsWith("#")) return;
    const entry = parseEntryLine(line);
    if (entry === null) {
      throw new SyntaxError(
        `Cannot read keys from ${where}: line ${
          index + 1
        } is not "ID HEX [users=NAME,...]" (ID: 1 to 64 of A-Z a-z 0-9 . _ -, HEX: 64 hex digits)`,
      );
    }
    if (seen.has(entry.id)) {
      throw new SyntaxError(
        `Cannot read keys from ${where}: line ${index + 1} repeats key id ${
          JSON.stringify(entry.id)
        }`,
      );
    }
    seen.add(entry.id);
    entries.push(entry);
  });
  return entries;
}

/**
 * Which form key file text is in: `entries` when any line is a `#`
 * comment or looks like `ID HEX`, else `bare` (a version 1 key).
 *
 * @param text The content.
 * @returns The form.
 * @example Usage
 * ```ts
 * keyFileForm("# ring\n"); // "entries"
 * ```
 */
export function keyFileForm(text: string): "entries" | "bare" {
  return text.split(/\r?\n/).map((line) => line.trim()).some((line) =>
      line.startsWith("#") || LOOKS_LIKE_ENTRY_REGEXP.test(line)
    )
    ? "entries"
    : "bare";
}

/**
 * Parses a client's key: exactly one key, in either form.
 *
 * @param content The raw bytes, or text.
 * @param where Where it came from, for errors.
 * @returns The key and its id.
 * @throws {SyntaxError} If the content is malformed or holds several keys.
 * @throws {RangeError} If a bare key is shorter than 16 bytes.
 * @example Usage
 * ```ts
 * const key = parseClientKey(`laptop ${"ab".repeat(32)}`, "DOORMAN_KEY");
 * key.id; // "laptop"
 * ```
 */
export function parseClientKey(
  content: Uint8Array | string,
  where: string,
): KeyEntry {
  const entries = parseKeyEntries(content, where);
  if (entries.length !== 1) {
    throw new SyntaxError(
      `Cannot use keys from ${where}: a client's key file holds one key, found ${entries.length}`,
    );
  }
  return entries[0];
}

/**
 * Formats one entry as a key file line (no newline): `ID HEX [users=...]
 * [added=...]`. Only bytes of a 32-byte key can be written this way.
 *
 * @param entry The key; its psk must be 32 bytes.
 * @returns The line.
 * @throws {RangeError} If the key is not 32 bytes or the id is malformed.
 * @example Usage
 * ```ts
 * formatKeyEntry({ id: "laptop", psk: new Uint8Array(32) });
 * ```
 */
export function formatKeyEntry(entry: KeyEntry): string {
  if (!KEY_ID_REGEXP.test(entry.id) || entry.psk.length !== KEY_BYTES) {
    throw new RangeError(
      `Cannot write key ${
        JSON.stringify(entry.id)
      }: needs a valid id and 32 key bytes`,
    );
  }
  const options = [
    ...(entry.users ? [`users=${entry.users.join(",")}`] : []),
    ...(entry.added ? [`added=${entry.added}`] : []),
  ];
  return [entry.id, toHex(entry.psk), ...options].join(" ");
}

function parseEntryLine(line: string): KeyEntry | null {
  const match = ENTRY_REGEXP.exec(line);
  if (!match || !KEY_ID_REGEXP.test(match[1])) return null;
  const entry: {
    id: string;
    psk: Uint8Array;
    users?: string[];
    added?: string;
  } = { id: match[1], psk: fromHex(match[2].toLowerCase()) };
  for (const option of match[3].trim().split(/[ \t]+/)) {
    if (option === "") continue;
    const equals = option.indexOf("=");
    if (equals < 1) return null;
    const name = option.slice(0, equals);
    const value = option.slice(equals + 1);
    if (name === "users" && entry.users === undefined) {
      entry.users = value.split(",").filter((user) => user !== "");
      if (entry.users.length === 0) return null;
    } else if (name === "added" && entry.added === undefined && value) {
      entry.added = value;
    } else {
      return null;
    }
  }
  return entry;
}

function isAsciiWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0d || byte === 0x0a;
}
