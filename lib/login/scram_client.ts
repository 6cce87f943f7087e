/**
 * Layer 4, login math: the client side of SCRAM-SHA-256, strings in and
 * strings out. `ScramClient` is a state machine: it builds client-first and
 * client-final and reads server-first and server-final, each method checks
 * that it runs at its step, and any failure is terminal.
 *
 * With `channelBinding` it binds the exchange to the doorman handshake (gs2
 * header `p=doorman-handshake,,`); without it (RFC 7677 vectors only) it
 * sends `n,,`. It does not carry messages (see `login.ts`) or support
 * authorization identities or mandatory extensions. The pieces it shares
 * with the server side live in `scram.ts`.
 *
 * @module
 */

import { toBase64, utf8 } from "../wire/bytes.ts";
import {
  constantTimeEqual,
  hmacSha256,
  pbkdf2Sha256,
  randomBytes,
} from "../wire/crypto.ts";
import { LoginRejectedError } from "../errors.ts";
import { saslprep } from "./saslprep.ts";
import {
  channelBindingValue,
  checkNonce,
  decodeBase64,
  deriveKeys,
  GS2_HEADER,
  malformed,
  MAX_SCRAM_ITERATIONS,
  MIN_SCRAM_ITERATIONS,
  NONCE_REGEXP,
  preparePassword,
  splitAttributes,
  xorBytes,
} from "./scram.ts";

const CLIENT_NONCE_BYTES = 24;
const ITERATIONS_REGEXP = /^[1-9][0-9]{0,15}$/;
const ERROR_VALUE_REGEXP = /^[a-z0-9-]{1,64}$/;

/** Options for {@link ScramClient}. */
export interface ScramClientOptions {
  /** Fixed client nonce, for test vectors only. @default 24 random bytes, base64 */
  readonly nonce?: string;
  /** Fewest iterations the server may ask for. @default {4096} */
  readonly minIterations?: number;
  /** Most iterations the server may ask for. @default {10000000} */
  readonly maxIterations?: number;
  /**
   * The handshake's `SessionKeys.channelBinding`: the exchange then uses
   * the gs2 header `p=doorman-handshake,,`. Without it the header is `n,,`
   * (for the RFC 7677 test vectors; a doorman server refuses it).
   *
   * @default {undefined}
   */
  readonly channelBinding?: Uint8Array;
  /**
   * Salted passwords kept across logins of one user and password, keyed by
   * iterations and salt: a hit skips PBKDF2 (the tunnel forwarder logs in
   * once per connection). Memory only; at most 4 entries are kept.
   */
  readonly saltedPasswords?: Map<string, Uint8Array>;
}

type ClientStep = "first" | "final" | "verify" | "done" | "busy" | "failed";

/**
 * The client side of one SCRAM-SHA-256 exchange: `clientFirst`, then
 * `clientFinal(serverFirst)`, then `verifyServerFinal(serverFinal)`.
 *
 * @example Usage
 * ```ts ignore
 * // `send` and `receive` carry login records (login.ts).
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
  #saltedPasswords: Map<string, Uint8Array> | undefined;
  #clientFirstBare = "";
  #gs2Header: string;
  #bindingData: Uint8Array;
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
    const binding = options?.channelBinding;
    this.#gs2Header = binding ? GS2_HEADER : "n,,";
    this.#bindingData = binding ? binding.slice() : new Uint8Array(0);
    this.#minIterations = options?.minIterations ?? MIN_SCRAM_ITERATIONS;
    this.#maxIterations = options?.maxIterations ?? MAX_SCRAM_ITERATIONS;
    this.#saltedPasswords = options?.saltedPasswords;
    if (
      !(this.#minIterations >= 1 && this.#maxIterations >= this.#minIterations)
    ) {
      throw new RangeError("Cannot use iteration range: it is empty");
    }
  }

  /**
   * Builds the client-first message.
   *
   * @returns `p=doorman-handshake,,n=<user>,r=<client nonce>` (with
   *   binding) or `n,,n=<user>,r=<client nonce>`.
   * @throws {Error} If called at another step.
   */
  clientFirst(): string {
    this.#enter("first", "build client-first message");
    this.#clientFirstBare = `n=${this.#userName},r=${this.#nonce}`;
    this.#step = "final";
    return `${this.#gs2Header}${this.#clientFirstBare}`;
  }

  /**
   * Reads the server-first message and builds the client-final message.
   *
   * @param serverFirst `r=<nonce>,s=<salt>,i=<iterations>`.
   * @returns `c=<base64(gs2 header ‖ binding data)>,r=<nonce>,p=<client
   *   proof>`.
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
    const cacheKey = `${iterations}:${toBase64(salt)}`;
    const saltedPassword = this.#saltedPasswords?.get(cacheKey) ??
      await pbkdf2Sha256(this.#password, salt, iterations);
    if (this.#saltedPasswords && !this.#saltedPasswords.has(cacheKey)) {
      if (this.#saltedPasswords.size >= 4) this.#saltedPasswords.clear();
      this.#saltedPasswords.set(cacheKey, saltedPassword);
    }
    this.#password = new Uint8Array(0);
    if (this.#step !== "busy") { // another call came in while deriving
      throw new Error("Cannot build client-final message: wrong step");
    }
    const clientKey = hmacSha256(saltedPassword, utf8("Client Key"));
    const { storedKey, serverKey } = deriveKeys(saltedPassword);
    const binding = channelBindingValue(this.#gs2Header, this.#bindingData);
    const withoutProof = `c=${binding},r=${nonce}`;
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
