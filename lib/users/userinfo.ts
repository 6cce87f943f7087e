/**
 * Users: the userinfo file format, parsed and formatted. Lines starting with
 * `#` and blank lines are comments; every other line is `NAME|VERIFIER`, the
 * verifier either PostgreSQL's stored SCRAM-SHA-256 secret
 * (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64) or a
 * legacy 32-hex-digit md5 of the name followed by the password.
 *
 * Parsing keeps comments and order, so rewriting a file preserves it. This
 * file does no file I/O, locking or md5 → SCRAM upgrade (see `user_store.ts`).
 * Error messages name the line, never the verifier.
 *
 * @module
 */

import { fromBase64, toBase64, utf8 } from "../wire/bytes.ts";
import { UserinfoSyntaxError } from "../errors.ts";
import { saslprep } from "../login/saslprep.ts";
import type { UserVerifier } from "../login/verifier.ts";
import {
  MAX_SCRAM_ITERATIONS,
  MIN_SCRAM_ITERATIONS,
  type ScramVerifier,
} from "../login/scram.ts";

// The verifier and the legacy hash belong to the login layer; the file
// format re-exports them for its callers.
export { legacyMd5Hex, type UserVerifier } from "../login/verifier.ts";

/** One line of a userinfo file. */
export type UserinfoLine =
  | { readonly kind: "comment"; readonly text: string }
  | {
    readonly kind: "user";
    readonly name: string;
    readonly verifier: UserVerifier;
  };

/** A parsed userinfo file: every line, comments included, in order. */
export interface Userinfo {
  /** The lines, without line endings. */
  readonly lines: readonly UserinfoLine[];
}

/** Longest user name, in UTF-8 bytes. */
export const MAX_USER_NAME_BYTES = 64;

const SCRAM_PREFIX = "SCRAM-SHA-256$";
const SCRAM_REGEXP = /^SCRAM-SHA-256\$([^:$]*):([^:$]*)\$([^:$]*):([^:$]*)$/;
const ITERATIONS_REGEXP = /^[1-9][0-9]{0,9}$/;
const MD5_REGEXP = /^[0-9a-fA-F]{32}$/;
const HEX_REGEXP = /^[0-9a-fA-F]+$/;
// deno-lint-ignore no-control-regex
const CONTROL_REGEXP = /[\x00-\x1f\x7f-\x9f]/;
const KEY_BYTES = 32;

/**
 * Parses a userinfo file.
 *
 * @param text The file's text (LF or CRLF line endings).
 * @returns Every line, in order.
 * @throws {UserinfoSyntaxError} At the first malformed line or duplicate
 *   name, with its 1-based number in `line`.
 * @example Usage
 * ```ts
 * const users = parseUserinfo("alex|94e4ccf5e2749b0bfe0428603738c0f9\n");
 * ```
 */
export function parseUserinfo(text: string): Userinfo {
  const rawLines = text.split("\n");
  if (rawLines[rawLines.length - 1] === "") rawLines.pop();
  const lines: UserinfoLine[] = [];
  const seen = new Set<string>();
  for (const [index, rawLine] of rawLines.entries()) {
    const lineText = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    const line = parseLine(lineText, index + 1);
    if (line.kind === "user") {
      if (seen.has(line.name)) {
        throw lineError(index + 1, "user name appears on an earlier line");
      }
      seen.add(line.name);
    }
    lines.push(line);
  }
  return { lines: Object.freeze(lines) };
}

/**
 * Formats a userinfo file; `parseUserinfo(formatUserinfo(u))` equals `u`.
 *
 * @param userinfo The lines to write.
 * @returns The text, each line ending in "\n" (`""` if there are none).
 * @throws {RangeError} If a comment is not blank or `#…`, or spans lines.
 * @example Usage
 * ```ts ignore
 * await Deno.writeTextFile(path, formatUserinfo(users));
 * ```
 */
export function formatUserinfo(userinfo: Userinfo): string {
  let text = "";
  for (const line of userinfo.lines) {
    if (line.kind === "comment") {
      if (!isComment(line.text) || /[\r\n]/.test(line.text)) {
        throw new RangeError("Cannot format userinfo: bad comment line");
      }
      text += `${line.text}\n`;
    } else {
      text += `${line.name}|${formatVerifier(line.verifier)}\n`;
    }
  }
  return text;
}

/**
 * Looks up a user by exact name.
 *
 * @param userinfo The parsed file.
 * @param name The user name.
 * @returns The user's verifier, or `null` if there is no such user.
 * @example Usage
 * ```ts
 * const users = parseUserinfo("# demo\n");
 * const verifier = findUser(users, "alex"); // null
 * ```
 */
export function findUser(
  userinfo: Userinfo,
  name: string,
): UserVerifier | null {
  for (const line of userinfo.lines) {
    if (line.kind === "user" && line.name === name) return line.verifier;
  }
  return null;
}

/**
 * Adds a user, or replaces the user's verifier where its line stands.
 *
 * @param userinfo The parsed file (left unchanged).
 * @param name The user name.
 * @param verifier The new verifier.
 * @returns A new `Userinfo`.
 * @throws {RangeError} If the name is invalid (see `validateUserName`) or an
 *   md5 verifier is not 32 hex digits.
 * @example Usage
 * ```ts
 * import { createScramVerifier } from "../login/scram.ts";
 * const scram = await createScramVerifier("pencil", { iterations: 4096 });
 * const users = setUser({ lines: [] }, "alex", { kind: "scram-sha-256", scram });
 * ```
 */
export function setUser(
  userinfo: Userinfo,
  name: string,
  verifier: UserVerifier,
): Userinfo {
  validateUserName(name);
  const checked = checkVerifier(verifier);
  const line: UserinfoLine = { kind: "user", name, verifier: checked };
  const lines = [...userinfo.lines];
  const index = lines.findIndex((old) =>
    old.kind === "user" && old.name === name
  );
  if (index === -1) lines.push(line);
  else lines[index] = line;
  return { lines: Object.freeze(lines) };
}

/**
 * Removes a user's line.
 *
 * @param userinfo The parsed file (left unchanged).
 * @param name The user name.
 * @returns A new `Userinfo`.
 * @throws {RangeError} If there is no such user.
 * @example Usage
 * ```ts
 * const users = removeUser(parseUserinfo(""), "alex");
 * ```
 */
export function removeUser(userinfo: Userinfo, name: string): Userinfo {
  const lines = userinfo.lines.filter((line) =>
    line.kind !== "user" || line.name !== name
  );
  if (lines.length === userinfo.lines.length) {
    throw new RangeError(
      `Cannot remove user: no user named ${JSON.stringify(name)}`,
    );
  }
  return { lines: Object.freeze(lines) };
}

/**
 * Checks that `name` can be a user name: 1 to 64 bytes of well-formed UTF-8,
 * no `|`, no control character, no leading or trailing whitespace, and
 * unchanged by SASLprep (clients send the prepared name, so any other name
 * could never log in).
 *
 * @param name The candidate name.
 * @throws {RangeError} With the reason, if it cannot.
 * @example Usage
 * ```ts
 * validateUserName("alex");
 * ```
 */
export function validateUserName(name: string): void {
  const problem = userNameProblem(name);
  if (problem !== null) {
    throw new RangeError(`Cannot use user name: ${problem}`);
  }
}

/**
 * Parses PostgreSQL's stored SCRAM-SHA-256 secret.
 *
 * @param text `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
 * @returns The verifier.
 * @throws {SyntaxError} If `text` is malformed; the message never includes it.
 * @example Usage
 * ```ts ignore
 * const scram = parseScramVerifier(line.split("|")[1]);
 * ```
 */
export function parseScramVerifier(text: string): ScramVerifier {
  const match = SCRAM_REGEXP.exec(text);
  if (match === null) {
    throw new SyntaxError(
      "Cannot parse SCRAM verifier: expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>",
    );
  }
  const [, iterationsText, saltText, storedKeyText, serverKeyText] = match;
  const iterations = Number(iterationsText);
  if (
    !ITERATIONS_REGEXP.test(iterationsText) ||
    iterations < MIN_SCRAM_ITERATIONS || iterations > MAX_SCRAM_ITERATIONS
  ) {
    throw new SyntaxError(
      `Cannot parse SCRAM verifier: iteration count must be a number from ${MIN_SCRAM_ITERATIONS} to ${MAX_SCRAM_ITERATIONS}`,
    );
  }
  const salt = decodeField(saltText, "salt");
  if (salt.length === 0) {
    throw new SyntaxError("Cannot parse SCRAM verifier: salt is empty");
  }
  const storedKey = decodeField(storedKeyText, "StoredKey");
  const serverKey = decodeField(serverKeyText, "ServerKey");
  if (storedKey.length !== KEY_BYTES || serverKey.length !== KEY_BYTES) {
    throw new SyntaxError(
      `Cannot parse SCRAM verifier: StoredKey and ServerKey must be ${KEY_BYTES} bytes`,
    );
  }
  return { iterations, salt, storedKey, serverKey };
}

/**
 * Formats a verifier as PostgreSQL stores it.
 *
 * @param verifier The verifier.
 * @returns `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
 * @example Usage
 * ```ts
 * import { createScramVerifier } from "../login/scram.ts";
 * formatScramVerifier(await createScramVerifier("pencil", { iterations: 4096 }));
 * ```
 */
export function formatScramVerifier(verifier: ScramVerifier): string {
  return `${SCRAM_PREFIX}${verifier.iterations}:${toBase64(verifier.salt)}$${
    toBase64(verifier.storedKey)
  }:${toBase64(verifier.serverKey)}`;
}

function parseLine(text: string, lineNumber: number): UserinfoLine {
  if (isComment(text)) return { kind: "comment", text };
  const bar = text.indexOf("|");
  if (bar === -1) {
    throw lineError(lineNumber, 'expected NAME|VERIFIER, found no "|"');
  }
  const name = text.slice(0, bar);
  const problem = userNameProblem(name);
  if (problem !== null) throw lineError(lineNumber, problem);
  return {
    kind: "user",
    name,
    verifier: parseVerifier(text.slice(bar + 1), lineNumber),
  };
}

function parseVerifier(text: string, lineNumber: number): UserVerifier {
  if (text.startsWith(SCRAM_PREFIX)) {
    try {
      return { kind: "scram-sha-256", scram: parseScramVerifier(text) };
    } catch (error) {
      const reason = error instanceof Error
        ? error.message.replace(/^Cannot parse SCRAM verifier: /, "")
        : "";
      throw lineError(lineNumber, `bad SCRAM verifier: ${reason}`);
    }
  }
  if (MD5_REGEXP.test(text)) return { kind: "md5", md5Hex: text.toLowerCase() };
  if (HEX_REGEXP.test(text)) {
    throw lineError(lineNumber, "md5 verifier must be 32 hex digits");
  }
  throw lineError(
    lineNumber,
    "unknown verifier: expected SCRAM-SHA-256$… or 32 hex digits",
  );
}

function formatVerifier(verifier: UserVerifier): string {
  return verifier.kind === "md5"
    ? verifier.md5Hex
    : formatScramVerifier(verifier.scram);
}

function checkVerifier(verifier: UserVerifier): UserVerifier {
  if (verifier.kind === "scram-sha-256") {
    try {
      parseScramVerifier(formatScramVerifier(verifier.scram)); // shape check
    } catch (error) {
      throw new RangeError("Cannot set user: bad SCRAM verifier", {
        cause: error,
      });
    }
    return verifier;
  }
  if (!MD5_REGEXP.test(verifier.md5Hex)) {
    throw new RangeError("Cannot set user: md5 verifier must be 32 hex digits");
  }
  return { kind: "md5", md5Hex: verifier.md5Hex.toLowerCase() };
}

function userNameProblem(name: string): string | null {
  if (name === "") return "name is empty";
  if (!name.isWellFormed()) return "name is not valid UTF-8";
  if (utf8(name).length > MAX_USER_NAME_BYTES) {
    return `name is longer than ${MAX_USER_NAME_BYTES} bytes in UTF-8`;
  }
  if (name.includes("|")) return 'name contains "|"';
  if (CONTROL_REGEXP.test(name)) return "name contains a control character";
  if (name.trim() !== name) return "name starts or ends with whitespace";
  let prepared: string;
  try {
    prepared = saslprep(name);
  } catch {
    return "name contains characters SASLprep prohibits";
  }
  if (prepared !== name) {
    return `name is not in SASLprep form (clients send ${
      JSON.stringify(prepared)
    })`;
  }
  return null;
}

function isComment(text: string): boolean {
  return text.startsWith("#") || text.trim() === "";
}

function decodeField(text: string, field: string): Uint8Array {
  try {
    return fromBase64(text);
  } catch (error) {
    throw new SyntaxError(
      `Cannot parse SCRAM verifier: ${field} is not base64`,
      {
        cause: error,
      },
    );
  }
}

function lineError(lineNumber: number, reason: string): UserinfoSyntaxError {
  return new UserinfoSyntaxError(
    `Cannot parse userinfo line ${lineNumber}: ${reason}`,
    lineNumber,
  );
}
