/**
 * Layer 4, login math: the SCRAM-SHA-256 (RFC 5802 with RFC 7677) pieces both
 * sides share. `createScramVerifier` builds what a server stores for a
 * password, with PostgreSQL's rules (`preparePassword`), so a line PostgreSQL
 * stored logs in here; the helpers split and check the text messages
 * `scram_client.ts` and `scram_server.ts` exchange.
 *
 * This file puts nothing on the wire and runs no exchange: the state machines
 * are `ScramClient` (`scram_client.ts`) and `ScramServer` (`scram_server.ts`).
 * Channel binding is doorman's own type, `doorman-handshake` (gs2 header
 * `p=doorman-handshake,,`, binding data `SessionKeys.channelBinding`), so a
 * login relayed between two handshakes fails (docs/PROTOCOL.md).
 * It does not carry messages (see `login.ts`), read user files (see
 * `userinfo.ts`), or support authorization identities.
 *
 * @module
 */

import { concatBytes, fromBase64, toBase64, utf8 } from "../wire/bytes.ts";
import {
  hmacSha256,
  pbkdf2Sha256,
  randomBytes,
  sha256,
} from "../wire/crypto.ts";
import { ProtocolError } from "../errors.ts";
import { saslprep } from "./saslprep.ts";

/**
 * What a server stores for a user instead of the password (RFC 5802 §3).
 * It lets the server check a login without being able to log in itself.
 *
 * @example Usage
 * ```ts ignore
 * const verifier: ScramVerifier = await createScramVerifier("hunter2");
 * verifier.iterations; // 600000
 * ```
 */
export interface ScramVerifier {
  /** The PBKDF2 iteration count. */
  readonly iterations: number;
  /** The PBKDF2 salt. */
  readonly salt: Uint8Array;
  /** SHA-256(ClientKey). */
  readonly storedKey: Uint8Array;
  /** HMAC(SaltedPassword, "Server Key"). */
  readonly serverKey: Uint8Array;
}

/** Iterations for new verifiers (OWASP's 2023 advice for PBKDF2-SHA256). */
export const DEFAULT_SCRAM_ITERATIONS = 600_000;
/** Fewest iterations accepted (RFC 7677's minimum). */
export const MIN_SCRAM_ITERATIONS = 4096;
/** Most iterations a client will compute unless told otherwise. */
export const MAX_SCRAM_ITERATIONS = 10_000_000;

/** Bytes of salt in a new verifier. */
export const SALT_BYTES = 16;
/** base64("n,,"): the `c=` value without channel binding (RFC 7677 vectors only). */
export const CHANNEL_BINDING = "biws";
/** The channel-binding type doorman clients and servers use. */
export const CHANNEL_BINDING_TYPE = "doorman-handshake";
/** The gs2 header a doorman client sends: `p=doorman-handshake,,`. */
export const GS2_HEADER = `p=${CHANNEL_BINDING_TYPE},,`;
/** A nonce: printable ASCII without ",". */
export const NONCE_REGEXP = /^[\x21-\x2b\x2d-\x7e]+$/;
const ATTRIBUTE_REGEXP = /^[a-zA-Z]=/;

/**
 * The `c=` value of client-final: base64 of the gs2 header followed by the
 * binding data (RFC 5802 §7, `cbind-input`).
 *
 * @param gs2Header The gs2 header as sent in client-first (with its `,,`).
 * @param bindingData The channel-binding data; empty without binding.
 * @returns The base64 text.
 * @example Usage
 * ```ts
 * channelBindingValue("n,,", new Uint8Array(0)); // "biws"
 * ```
 */
export function channelBindingValue(
  gs2Header: string,
  bindingData: Uint8Array,
): string {
  return toBase64(concatBytes(utf8(gs2Header), bindingData));
}

/**
 * Turns a password into the bytes PBKDF2 hashes, as PostgreSQL does: ASCII
 * unchanged, else SASLprep (stored profile) as UTF-8, else, if SASLprep
 * refuses it, the raw UTF-8. PostgreSQL checks prohibited characters before
 * NFKC and the package after, which can differ for rare compatibility
 * characters only.
 *
 * @param password The password as typed.
 * @returns The bytes to hash.
 * @example Usage
 * ```ts
 * preparePassword("I\u00ADX"); // utf8("IX")
 * ```
 */
export function preparePassword(password: string): Uint8Array {
  // deno-lint-ignore no-control-regex
  if (/^[\x00-\x7f]*$/.test(password)) return utf8(password);
  try {
    return utf8(saslprep(password, { allowUnassigned: false }));
  } catch (error) {
    if (error instanceof RangeError) return utf8(password);
    throw error;
  }
}

/** Options for {@link createScramVerifier}. */
export interface CreateScramVerifierOptions {
  /** PBKDF2 iterations. @default {600000} */
  readonly iterations?: number;
  /** The salt. @default 16 random bytes */
  readonly salt?: Uint8Array;
}

/**
 * Builds the verifier a server stores for `password`.
 *
 * @param password The password as typed.
 * @param options Iterations and salt.
 * @returns The verifier.
 * @throws {RangeError} If iterations are outside 4096..10,000,000 or the
 *   salt is empty.
 * @example Usage
 * ```ts
 * const verifier = await createScramVerifier("pencil");
 * ```
 */
export async function createScramVerifier(
  password: string,
  options?: CreateScramVerifierOptions,
): Promise<ScramVerifier> {
  const iterations = options?.iterations ?? DEFAULT_SCRAM_ITERATIONS;
  if (!isIterationCount(iterations)) {
    throw new RangeError(
      `Cannot create SCRAM verifier: iterations must be an integer from ${MIN_SCRAM_ITERATIONS} to ${MAX_SCRAM_ITERATIONS}`,
    );
  }
  const salt = options?.salt ?? randomBytes(SALT_BYTES);
  if (salt.length === 0) {
    throw new RangeError("Cannot create SCRAM verifier: salt is empty");
  }
  const saltedPassword = await pbkdf2Sha256(
    preparePassword(password),
    salt,
    iterations,
  );
  const { storedKey, serverKey } = deriveKeys(saltedPassword);
  return { iterations, salt: salt.slice(), storedKey, serverKey };
}

/**
 * StoredKey and ServerKey from SaltedPassword (RFC 5802 §3).
 *
 * @param saltedPassword PBKDF2 of the prepared password.
 * @returns The two keys a verifier holds.
 */
export function deriveKeys(
  saltedPassword: Uint8Array,
): { storedKey: Uint8Array; serverKey: Uint8Array } {
  return {
    storedKey: sha256(hmacSha256(saltedPassword, utf8("Client Key"))),
    serverKey: hmacSha256(saltedPassword, utf8("Server Key")),
  };
}

/**
 * Splits a SCRAM message into `[key, value]` pairs; never empty.
 *
 * @param text The message.
 * @param what The message's name, for the error.
 * @returns The attributes in order.
 * @throws {ProtocolError} If a part is not `<letter>=<value>`.
 */
export function splitAttributes(
  text: string,
  what: string,
): [string, string][] {
  const parts = text.split(",");
  if (!parts.every((part) => ATTRIBUTE_REGEXP.test(part))) {
    throw malformed(what, "expected comma-separated attributes");
  }
  return parts.map((part) => [part[0], part.slice(2)]);
}

/**
 * Decodes a base64 attribute value.
 *
 * @param text The base64 text.
 * @param what The message's name, for the error.
 * @returns The bytes.
 * @throws {ProtocolError} If the text is not base64.
 */
export function decodeBase64(text: string, what: string): Uint8Array {
  try {
    return fromBase64(text);
  } catch {
    throw malformed(what, "bad base64"); // the reason is all SyntaxError says
  }
}

/**
 * The error for a message that does not parse.
 *
 * @param what The message's name.
 * @param detail What is wrong with it.
 * @returns The error to throw.
 */
export function malformed(what: string, detail: string): ProtocolError {
  return new ProtocolError(`Cannot parse ${what} message: ${detail}`);
}

/**
 * Checks a nonce a caller chose.
 *
 * @param nonce The nonce.
 * @returns The nonce, unchanged.
 * @throws {RangeError} If it is not printable ASCII without ",".
 */
export function checkNonce(nonce: string): string {
  if (NONCE_REGEXP.test(nonce)) return nonce;
  throw new RangeError('Cannot use nonce: not printable ASCII without ","');
}

function isIterationCount(value: number): boolean {
  return Number.isInteger(value) && value >= MIN_SCRAM_ITERATIONS &&
    value <= MAX_SCRAM_ITERATIONS;
}

/**
 * XORs two byte arrays of the same length (proof ↔ key).
 *
 * @param left The first array; its length is the result's.
 * @param right The second array.
 * @returns A new array.
 */
export function xorBytes(left: Uint8Array, right: Uint8Array): Uint8Array {
  const out = new Uint8Array(left.length);
  for (let i = 0; i < out.length; i++) out[i] = left[i] ^ right[i];
  return out;
}
