/**
 * Layer 2 math, the handshake's key schedule (docs/PROTOCOL.md, "Key
 * schedule"): the TLS 1.3 PSK-DHE shape cut down to one suite. An early
 * secret from the pre-shared key, a handshake secret from the X25519 shared
 * secret, one finished key per direction for the proofs, and traffic keys
 * bound to the whole transcript, plus the SCRAM channel binding. Pure
 * functions and the `Transcript` accumulator: no I/O, no randomness
 * (handshake.ts drives them over the wire).
 *
 * @module
 */

import { concatBytes, utf8 } from "./bytes.ts";
import { hkdfExpand, hkdfExtract, hmacSha256, sha256 } from "./crypto.ts";
import {
  KdfLabel,
  KEY_BYTES,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
} from "./protocol.ts";

/** The result of a handshake: one key per direction, and the binding. */
export interface SessionKeys {
  /** Key of the records the client sends. */
  readonly clientToServer: Uint8Array;
  /** Key of the records the server sends. */
  readonly serverToClient: Uint8Array;
  /** SHA-256 of the whole handshake transcript. */
  readonly transcriptHash: Uint8Array;
  /**
   * SCRAM channel binding data (`p=doorman-handshake`):
   * `HKDF-Expand(hs, "doorman v2 scram binding" || th, 32)`, equal on both
   * ends of one handshake and different on any other.
   */
  readonly channelBinding: Uint8Array;
}

/**
 * The handshake transcript: every message appended in wire order (both
 * preambles and the frame payloads, without length headers), hashed at
 * each point where a proof or the session keys need it.
 *
 * @example Usage
 * ```ts
 * const transcript = new Transcript();
 * transcript.append(Uint8Array.of(1, 2), Uint8Array.of(3));
 * const hash = transcript.hash(); // SHA-256 of 01 02 03
 * ```
 */
export class Transcript {
  #parts: Uint8Array[] = [];

  /**
   * Adds messages to the end of the transcript.
   *
   * @param parts The bytes, in wire order.
   */
  append(...parts: Uint8Array[]): void {
    this.#parts.push(...parts);
  }

  /**
   * SHA-256 of everything appended so far, optionally followed by
   * `pending` (bytes about to be appended, such as a message without its
   * proof).
   *
   * @param pending Bytes hashed after the transcript but not appended.
   * @returns The 32-byte hash.
   */
  hash(...pending: Uint8Array[]): Uint8Array {
    return sha256(...this.#parts, ...pending);
  }
}

/** HKDF-Expand `info` prefix of {@link SessionKeys.channelBinding} (UTF-8). */
export const SCRAM_BINDING_LABEL = "doorman v2 scram binding";

/** The preamble this code sends: magic then version. */
export function encodePreamble(version = PROTOCOL_VERSION): Uint8Array {
  return concatBytes(PROTOCOL_MAGIC, Uint8Array.of(version));
}

/**
 * The part of the key schedule that depends on the key alone:
 * `HKDF-Expand(HKDF-Extract(0^32, psk), "derived")`, the salt of the
 * handshake secret. A server may compute it once per key.
 */
export function deriveEarlySalt(psk: Uint8Array): Uint8Array {
  const early = hkdfExtract(new Uint8Array(KEY_BYTES), psk);
  return hkdfExpand(early, utf8(KdfLabel.derived), KEY_BYTES);
}

/** Options of {@link deriveHandshakeSecret}. */
export interface HandshakeSecretOptions {
  /** `deriveEarlySalt(psk)`, if already known. */
  earlySalt?: Uint8Array;
}

/**
 * The key schedule's handshake secret:
 * `HKDF-Extract(HKDF-Expand(HKDF-Extract(0^32, psk), "derived"), dh)`.
 */
export function deriveHandshakeSecret(
  psk: Uint8Array,
  sharedSecret: Uint8Array,
  options: HandshakeSecretOptions = {},
): Uint8Array {
  const salt = options.earlySalt ?? deriveEarlySalt(psk);
  return hkdfExtract(salt, sharedSecret);
}

/** The proof of one direction over a transcript hash. */
export function computeProof(
  handshakeSecret: Uint8Array,
  label: string,
  transcriptHash: Uint8Array,
): Uint8Array {
  const finishedKey = hkdfExpand(handshakeSecret, utf8(label), KEY_BYTES);
  return hmacSha256(finishedKey, transcriptHash);
}

/**
 * The session keys, bound to the hash of the whole transcript, and the SCRAM
 * channel binding (computed when first read).
 */
export function deriveSessionKeys(
  handshakeSecret: Uint8Array,
  transcriptHash: Uint8Array,
): SessionKeys {
  const expand = (label: string) =>
    hkdfExpand(
      handshakeSecret,
      concatBytes(utf8(label), transcriptHash),
      KEY_BYTES,
    );
  // The binding is derived on first use: a server without users never pays
  // for it, and `hs` is kept only as long as these keys are referenced.
  let channelBinding: Uint8Array | undefined;
  return {
    clientToServer: expand(KdfLabel.clientToServer),
    serverToClient: expand(KdfLabel.serverToClient),
    transcriptHash,
    get channelBinding() {
      return channelBinding ??= expand(KdfLabel.scramBinding);
    },
  };
}
