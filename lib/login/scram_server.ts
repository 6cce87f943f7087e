/**
 * Layer 4, login math: the server side of SCRAM-SHA-256, strings in and
 * strings out. `ScramServer` is a state machine: it reads client-first
 * (which names the user) and client-final, builds server-first and
 * server-final, checks the proof in constant time, and any failure is
 * terminal. `fakeScramVerifier` stands in for a user who does not exist.
 *
 * With `channelBinding` it requires the client to bind the exchange to the
 * doorman handshake (gs2 header `p=doorman-handshake,,`) and refuses `n` and
 * `y`. It does not carry messages (see `login.ts`), look up users (see
 * `user_store.ts`), or support authorization identities.
 * The pieces it shares with the client side live in `scram.ts`.
 *
 * @module
 */

import { toBase64, utf8 } from "../wire/bytes.ts";
import {
  constantTimeEqual,
  hmacSha256,
  randomBytes,
  sha256,
} from "../wire/crypto.ts";
import {
  CHANNEL_BINDING_TYPE,
  channelBindingValue,
  checkNonce,
  decodeBase64,
  malformed,
  NONCE_REGEXP,
  SALT_BYTES,
  type ScramVerifier,
  splitAttributes,
  xorBytes,
} from "./scram.ts";

const SERVER_NONCE_BYTES = 18;
const SASLNAME_REGEXP = /^(?:[^\0=,]|=2C|=3D)+$/;

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
 * const secret = crypto.getRandomValues(new Uint8Array(32));
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

/** Options for {@link ScramServer}. */
export interface ScramServerOptions {
  /** Fixed server nonce part, for test vectors only. @default 18 random bytes, base64 */
  readonly nonce?: string;
  /**
   * The handshake's `SessionKeys.channelBinding`. With it, the client must
   * send the gs2 header `p=doorman-handshake,,` and bind to exactly these
   * bytes; without it (RFC 7677 vectors only) only `n,,` is accepted.
   *
   * @default {undefined}
   */
  readonly channelBinding?: Uint8Array;
}

/** Why {@link ScramServer.receiveClientFinal} refused a login. */
export type ScramFailureReason =
  | "invalid-proof"
  | "channel-bindings-dont-match";

type ServerStep = "first" | "verifier" | "final" | "done" | "busy" | "failed";

/**
 * The server side of one SCRAM-SHA-256 exchange: `receiveClientFirst` (which
 * names the user), `serverFirst(verifier)`, then `receiveClientFinal`.
 *
 * @example Usage
 * ```ts ignore
 * // `send` and `receive` carry login records (login.ts).
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
  #bindingData: Uint8Array | null;
  #gs2Header = "";

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
    this.#bindingData = options?.channelBinding?.slice() ?? null;
  }

  /**
   * Reads the client-first message.
   *
   * @param clientFirst `p=doorman-handshake,,n=<user>,r=<client nonce>`
   *   (with `channelBinding`) or `n,,n=<user>,r=<client nonce>`.
   * @returns The user name, unescaped.
   * @throws {ProtocolError} If the message is malformed, its gs2 flag is not
   *   the one required (`n` or `y` when binding is required, another binding
   *   type), or it names an authorization identity.
   * @throws {Error} If called at another step.
   */
  receiveClientFirst(clientFirst: string): string {
    this.#enter("first", "read client-first message");
    const [flag, authzid, ...bare] = clientFirst.split(",");
    if (authzid?.startsWith("a=")) {
      throw malformed(
        "client-first",
        "authorization identity is not supported",
      );
    }
    if (authzid !== "") throw malformed("client-first", "bad gs2 header");
    checkGs2Flag(flag, this.#bindingData !== null);
    this.#gs2Header = `${flag},,`;
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
   * @param clientFinal `c=<base64(gs2 header ‖ binding data)>,r=<nonce>,
   *   p=<client proof>`.
   * @returns `ok` and the server-final message to send: `v=<server
   *   signature>` if the binding and proof are right, else
   *   `e=channel-bindings-dont-match` or `e=invalid-proof` (`reason`).
   * @throws {ProtocolError} If the message is malformed or its nonce differs
   *   from the exchange's.
   * @throws {Error} If called at another step.
   */
  receiveClientFinal(
    clientFinal: string,
  ): { ok: boolean; serverFinal: string; reason?: ScramFailureReason } {
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
    if (nonce[1] !== this.#nonce) {
      throw malformed("client-final", "nonce differs");
    }
    const expectedBinding = channelBindingValue(
      this.#gs2Header,
      this.#bindingData ?? new Uint8Array(0),
    );
    if (!constantTimeEqual(utf8(binding[1]), utf8(expectedBinding))) {
      // A login relayed from another handshake: refused like a wrong proof.
      this.#step = "done";
      const reason = "channel-bindings-dont-match";
      return { ok: false, serverFinal: `e=${reason}`, reason };
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
    if (!ok) {
      return { ok, serverFinal: "e=invalid-proof", reason: "invalid-proof" };
    }
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

/**
 * Checks the gs2 channel-binding flag of client-first (RFC 5802 §6, §7).
 * With binding required, only `p=doorman-handshake` passes: `n` (client
 * does not bind) and `y` (client thinks the server cannot bind) are what a
 * relaying or downgrading man in the middle would send. Without binding,
 * only `n` passes.
 */
function checkGs2Flag(flag: string, bindingRequired: boolean): void {
  if (!bindingRequired) {
    if (flag === "n") return;
    throw malformed("client-first", "channel binding is not supported");
  }
  if (flag === `p=${CHANNEL_BINDING_TYPE}`) return;
  if (flag === "n" || flag === "y") {
    throw malformed(
      "client-first",
      `channel binding "${CHANNEL_BINDING_TYPE}" is required, client sent "${flag}"`,
    );
  }
  if (flag.startsWith("p=")) {
    throw malformed("client-first", "unsupported channel binding type");
  }
  throw malformed("client-first", "bad gs2 header");
}
