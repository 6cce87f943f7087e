/**
 * Layer 4, login math: SCRAM-SHA-256 (RFC 5802 with RFC 7677), strings in and
 * strings out. `ScramClient` and `ScramServer` are state machines: each method
 * checks that it runs at its step, and any failure is terminal. Verifiers
 * use PostgreSQL's rules (`preparePassword`), so a line PostgreSQL stored
 * logs in here.
 *
 * This file does not carry messages (see `login.ts`), read user files (see
 * `userinfo.ts`), or support channel binding or authorization identities:
 * doorman's channel is already bound to a pre-shared key.
 *
 * @module
 */

import { fromBase64, toBase64, utf8 } from "./bytes.ts";
import {
  constantTimeEqual,
  hmacSha256,
  pbkdf2Sha256,
  randomBytes,
  sha256,
} from "./crypto.ts";
import { LoginRejectedError, ProtocolError } from "./errors.ts";
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

const SALT_BYTES = 16;
const CLIENT_NONCE_BYTES = 24;
const SERVER_NONCE_BYTES = 18;
/** base64("n,,"): the gs2 header doorman clients send. */
const CHANNEL_BINDING = "biws";
const NONCE_REGEXP = /^[\x21-\x2b\x2d-\x7e]+$/;
const SASLNAME_REGEXP = /^(?:[^\0=,]|=2C|=3D)+$/;
const ITERATIONS_REGEXP = /^[1-9][0-9]{0,15}$/;
const ATTRIBUTE_REGEXP = /^[a-zA-Z]=/;
const ERROR_VALUE_REGEXP = /^[a-z0-9-]{1,64}$/;

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
 * A verifier for a user who does not exist: a salt stable per user (so two
 * attempts see the same salt) and random keys (so no proof ever matches).
 *
 * @param fakeSaltKey A server secret; never the pre-shared key itself.
 * @param user The claimed user name.
 * @param iterations The iteration count real verifiers use.
 * @returns A verifier shaped like a real one.
 * @example Usage
 * ```ts
 * const verifier = fakeScramVerifier(secret, "mallory", 600_000);
 * ```
 */
export function fakeScramVerifier(
  fakeSaltKey: Uint8Array,
  user: string,
  iterations: number,
): ScramVerifier {
  const salt = hmacSha256(fakeSaltKey, utf8("doorman fake salt"), utf8(user))
    .slice(0, SALT_BYTES);
  return {
    iterations,
    salt,
    storedKey: randomBytes(32),
    serverKey: randomBytes(32),
  };
}

/** Options for {@link ScramClient}. */
export interface ScramClientOptions {
  /** Fixed client nonce, for test vectors only. @default 24 random bytes, base64 */
  readonly nonce?: string;
  /** Fewest iterations the server may ask for. @default {4096} */
  readonly minIterations?: number;
  /** Most iterations the server may ask for. @default {10000000} */
  readonly maxIterations?: number;
}

type ClientStep = "first" | "final" | "verify" | "done" | "busy" | "failed";

/**
 * The client side of one SCRAM-SHA-256 exchange: `clientFirst`, then
 * `clientFinal(serverFirst)`, then `verifyServerFinal(serverFinal)`.
 *
 * @example Usage
 * ```ts
 * const client = new ScramClient("user", "pencil");
 * send(client.clientFirst());
 * send(await client.clientFinal(await receive()));
 * client.verifyServerFinal(await receive());
 * ```
 */
export class ScramClient {
  #step: ClientStep = "first";
  #userName: string;
  #password: Uint8Array;
  #nonce: string;
  #minIterations: number;
  #maxIterations: number;
  #clientFirstBare = "";
  #serverSignature: Uint8Array = new Uint8Array(0);

  /**
   * Starts a client exchange for one login attempt.
   *
   * @param user The user name (SASLprep is applied here).
   * @param password The password (prepared as PostgreSQL does).
   * @param options Nonce and the accepted iteration range.
   * @throws {RangeError} If the user name is empty or refused by SASLprep,
   *   or the nonce or iteration range is invalid.
   */
  constructor(user: string, password: string, options?: ScramClientOptions) {
    const prepared = saslprep(user);
    if (prepared === "") throw new RangeError("Cannot use user name: empty");
    this.#userName = prepared.replaceAll("=", "=3D").replaceAll(",", "=2C");
    this.#password = preparePassword(password);
    this.#nonce = checkNonce(
      options?.nonce ?? toBase64(randomBytes(CLIENT_NONCE_BYTES)),
    );
    this.#minIterations = options?.minIterations ?? MIN_SCRAM_ITERATIONS;
    this.#maxIterations = options?.maxIterations ?? MAX_SCRAM_ITERATIONS;
    if (
      !(this.#minIterations >= 1 && this.#maxIterations >= this.#minIterations)
    ) {
      throw new RangeError("Cannot use iteration range: it is empty");
    }
  }

  /**
   * Builds the client-first message.
   *
   * @returns `n,,n=<user>,r=<client nonce>`.
   * @throws {Error} If called at another step.
   */
  clientFirst(): string {
    this.#enter("first", "build client-first message");
    this.#clientFirstBare = `n=${this.#userName},r=${this.#nonce}`;
    this.#step = "final";
    return `n,,${this.#clientFirstBare}`;
  }

  /**
   * Reads the server-first message and builds the client-final message.
   *
   * @param serverFirst `r=<nonce>,s=<salt>,i=<iterations>`.
   * @returns `c=biws,r=<nonce>,p=<client proof>`.
   * @throws {ProtocolError} If the message is malformed or the server nonce
   *   does not extend the client nonce.
   * @throws {LoginRejectedError} If the iteration count is out of range.
   * @throws {Error} If called at another step.
   */
  async clientFinal(serverFirst: string): Promise<string> {
    this.#enter("final", "build client-final message");
    const { nonce, salt, iterations } = parseServerFirst(serverFirst);
    if (!nonce.startsWith(this.#nonce) || nonce === this.#nonce) {
      throw malformed("server-first", "nonce does not extend the client's");
    }
    if (iterations < this.#minIterations || iterations > this.#maxIterations) {
      throw new LoginRejectedError(
        `Cannot log in: server asks for ${iterations} iterations, outside ${this.#minIterations} to ${this.#maxIterations}`,
      );
    }
    const saltedPassword = await pbkdf2Sha256(this.#password, salt, iterations);
    this.#password = new Uint8Array(0);
    if (this.#step !== "busy") { // another call came in while deriving
      throw new Error("Cannot build client-final message: wrong step");
    }
    const clientKey = hmacSha256(saltedPassword, utf8("Client Key"));
    const { storedKey, serverKey } = deriveKeys(saltedPassword);
    const withoutProof = `c=${CHANNEL_BINDING},r=${nonce}`;
    const authMessage = utf8(
      `${this.#clientFirstBare},${serverFirst},${withoutProof}`,
    );
    const clientProof = xorBytes(clientKey, hmacSha256(storedKey, authMessage));
    this.#serverSignature = hmacSha256(serverKey, authMessage);
    this.#step = "verify";
    return `${withoutProof},p=${toBase64(clientProof)}`;
  }

  /**
   * Checks the server-final message: the server proves it knew the verifier.
   *
   * @param serverFinal `v=<server signature>` or `e=<error>`.
   * @throws {LoginRejectedError} If the server refused the login or its
   *   signature is wrong.
   * @throws {ProtocolError} If the message is malformed.
   * @throws {Error} If called at another step.
   */
  verifyServerFinal(serverFinal: string): void {
    this.#enter("verify", "verify server-final message");
    const [[key, value]] = splitAttributes(serverFinal, "server-final");
    if (key === "e") {
      const detail = ERROR_VALUE_REGEXP.test(value) ? ` (${value})` : "";
      throw new LoginRejectedError(
        `Cannot log in: server rejected the user or password${detail}`,
      );
    }
    if (key !== "v") throw malformed("server-final", "expected v= or e=");
    const signature = decodeBase64(value, "server-final");
    if (!constantTimeEqual(signature, this.#serverSignature)) {
      throw new LoginRejectedError(
        "Cannot log in: server signature is wrong (the server does not hold this user's verifier)",
      );
    }
    this.#step = "done";
  }

  /** Moves to "busy" (left there if the step throws: failure is terminal). */
  #enter(expected: ClientStep, action: string): void {
    const current = this.#step;
    this.#step = current === expected ? "busy" : "failed";
    if (current !== expected) throw new Error(`Cannot ${action}: wrong step`);
  }
}

/** Options for {@link ScramServer}. */
export interface ScramServerOptions {
  /** Fixed server nonce part, for test vectors only. @default 18 random bytes, base64 */
  readonly nonce?: string;
}

type ServerStep = "first" | "verifier" | "final" | "done" | "busy" | "failed";

/**
 * The server side of one SCRAM-SHA-256 exchange: `receiveClientFirst` (which
 * names the user), `serverFirst(verifier)`, then `receiveClientFinal`.
 *
 * @example Usage
 * ```ts
 * const server = new ScramServer();
 * const user = server.receiveClientFirst(await receive());
 * send(server.serverFirst(findVerifier(user)));
 * const { ok, serverFinal } = server.receiveClientFinal(await receive());
 * send(serverFinal);
 * ```
 */
export class ScramServer {
  #step: ServerStep = "first";
  #serverNonce: string;
  #clientFirstBare = "";
  #nonce = "";
  #serverFirst = "";
  #verifier: ScramVerifier | null = null;

  /**
   * Starts a server exchange for one login attempt.
   *
   * @param options The fixed nonce part, for tests.
   * @throws {RangeError} If the nonce is not printable ASCII without ",".
   */
  constructor(options?: ScramServerOptions) {
    this.#serverNonce = checkNonce(
      options?.nonce ?? toBase64(randomBytes(SERVER_NONCE_BYTES)),
    );
  }

  /**
   * Reads the client-first message.
   *
   * @param clientFirst `n,,n=<user>,r=<client nonce>`.
   * @returns The user name, unescaped.
   * @throws {ProtocolError} If the message is malformed, asks for channel
   *   binding, or names an authorization identity.
   * @throws {Error} If called at another step.
   */
  receiveClientFirst(clientFirst: string): string {
    this.#enter("first", "read client-first message");
    const [flag, authzid, ...bare] = clientFirst.split(",");
    if (flag === "y" || flag.startsWith("p=")) {
      throw malformed("client-first", "channel binding is not supported");
    }
    if (authzid?.startsWith("a=")) {
      throw malformed(
        "client-first",
        "authorization identity is not supported",
      );
    }
    if (flag !== "n" || authzid !== "") {
      throw malformed("client-first", "bad gs2 header");
    }
    this.#clientFirstBare = bare.join(",");
    const [user, nonce] = splitAttributes(
      this.#clientFirstBare,
      "client-first",
    );
    if (
      user[0] !== "n" || !SASLNAME_REGEXP.test(user[1]) ||
      nonce?.[0] !== "r" || !NONCE_REGEXP.test(nonce[1])
    ) {
      throw malformed("client-first", "expected user name then nonce");
    }
    this.#nonce = nonce[1] + this.#serverNonce;
    this.#step = "verifier";
    return user[1].replaceAll("=2C", ",").replaceAll("=3D", "=");
  }

  /**
   * Builds the server-first message for the user's verifier (or a fake one).
   *
   * @param verifier The stored or fake verifier.
   * @returns `r=<client nonce + server nonce>,s=<salt>,i=<iterations>`.
   * @throws {RangeError} If the verifier's iteration count is not a positive
   *   integer or its salt is empty.
   * @throws {Error} If called at another step.
   */
  serverFirst(verifier: ScramVerifier): string {
    this.#enter("verifier", "build server-first message");
    const { iterations, salt } = verifier;
    if (!Number.isSafeInteger(iterations) || iterations < 1 || !salt.length) {
      throw new RangeError("Cannot use SCRAM verifier: bad iterations or salt");
    }
    this.#verifier = verifier;
    this.#serverFirst = `r=${this.#nonce},s=${toBase64(salt)},i=${iterations}`;
    this.#step = "final";
    return this.#serverFirst;
  }

  /**
   * Reads the client-final message and checks the proof in constant time.
   *
   * @param clientFinal `c=biws,r=<nonce>,p=<client proof>`.
   * @returns `ok` and the server-final message to send: `v=<server
   *   signature>` if the proof is right, else `e=invalid-proof`.
   * @throws {ProtocolError} If the message is malformed, or its channel
   *   binding or nonce differ from the exchange's.
   * @throws {Error} If called at another step.
   */
  receiveClientFinal(
    clientFinal: string,
  ): { ok: boolean; serverFinal: string } {
    this.#enter("final", "read client-final message");
    const verifier = this.#verifier;
    if (verifier === null) throw new Error("Cannot read client-final message");
    const attributes = splitAttributes(clientFinal, "client-final");
    const [binding, nonce] = attributes;
    const proof = attributes[attributes.length - 1];
    if (
      attributes.length < 3 || binding[0] !== "c" || nonce[0] !== "r" ||
      proof[0] !== "p"
    ) {
      throw malformed("client-final", "expected c=, r=, then p=");
    }
    if (binding[1] !== CHANNEL_BINDING) {
      throw malformed("client-final", "channel binding data differs");
    }
    if (nonce[1] !== this.#nonce) {
      throw malformed("client-final", "nonce differs");
    }
    const clientProof = decodeBase64(proof[1], "client-final");
    if (clientProof.length !== verifier.storedKey.length) {
      throw malformed("client-final", "proof has the wrong length");
    }
    const withoutProof = clientFinal.slice(0, clientFinal.lastIndexOf(",p="));
    const authMessage = utf8(
      `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`,
    );
    const clientSignature = hmacSha256(verifier.storedKey, authMessage);
    const clientKey = xorBytes(clientProof, clientSignature);
    const ok = constantTimeEqual(sha256(clientKey), verifier.storedKey);
    this.#step = "done";
    if (!ok) return { ok, serverFinal: "e=invalid-proof" };
    const serverSignature = hmacSha256(verifier.serverKey, authMessage);
    return { ok, serverFinal: `v=${toBase64(serverSignature)}` };
  }

  /** Moves to "busy" (left there if the step throws: failure is terminal). */
  #enter(expected: ServerStep, action: string): void {
    const current = this.#step;
    this.#step = current === expected ? "busy" : "failed";
    if (current !== expected) throw new Error(`Cannot ${action}: wrong step`);
  }
}

/** StoredKey and ServerKey from SaltedPassword (RFC 5802 §3). */
function deriveKeys(
  saltedPassword: Uint8Array,
): { storedKey: Uint8Array; serverKey: Uint8Array } {
  return {
    storedKey: sha256(hmacSha256(saltedPassword, utf8("Client Key"))),
    serverKey: hmacSha256(saltedPassword, utf8("Server Key")),
  };
}

/** Parses `r=…,s=…,i=…[,extensions]`, refusing a mandatory extension. */
function parseServerFirst(
  text: string,
): { nonce: string; salt: Uint8Array; iterations: number } {
  const attributes = splitAttributes(text, "server-first");
  if (attributes[0][0] === "m") {
    throw malformed("server-first", "mandatory extension is not supported");
  }
  const [nonce, salt, iterations] = attributes;
  if (nonce[0] !== "r" || salt?.[0] !== "s" || iterations?.[0] !== "i") {
    throw malformed("server-first", "expected r=, s=, then i=");
  }
  const saltBytes = decodeBase64(salt[1], "server-first");
  if (!NONCE_REGEXP.test(nonce[1]) || saltBytes.length === 0) {
    throw malformed("server-first", "bad nonce or salt");
  }
  if (!ITERATIONS_REGEXP.test(iterations[1])) {
    throw malformed("server-first", "bad iteration count");
  }
  return { nonce: nonce[1], salt: saltBytes, iterations: +iterations[1] };
}

/** Splits a SCRAM message into `[key, value]` pairs; never empty. */
function splitAttributes(text: string, what: string): [string, string][] {
  const parts = text.split(",");
  if (!parts.every((part) => ATTRIBUTE_REGEXP.test(part))) {
    throw malformed(what, "expected comma-separated attributes");
  }
  return parts.map((part) => [part[0], part.slice(2)]);
}

function decodeBase64(text: string, what: string): Uint8Array {
  try {
    return fromBase64(text);
  } catch {
    throw malformed(what, "bad base64"); // the reason is all SyntaxError says
  }
}

function malformed(what: string, detail: string): ProtocolError {
  return new ProtocolError(`Cannot parse ${what} message: ${detail}`);
}

function checkNonce(nonce: string): string {
  if (NONCE_REGEXP.test(nonce)) return nonce;
  throw new RangeError('Cannot use nonce: not printable ASCII without ","');
}

function isIterationCount(value: number): boolean {
  return Number.isInteger(value) && value >= MIN_SCRAM_ITERATIONS &&
    value <= MAX_SCRAM_ITERATIONS;
}

function xorBytes(left: Uint8Array, right: Uint8Array): Uint8Array {
  const out = new Uint8Array(left.length);
  for (let i = 0; i < out.length; i++) out[i] = left[i] ^ right[i];
  return out;
}
