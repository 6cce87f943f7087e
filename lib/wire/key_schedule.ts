/**
 * Layer 2 math, the handshake's key schedule (docs/PROTOCOL.md, "Key
 * schedule"): the TLS 1.3 PSK-DHE shape cut down to one suite. An early
 * secret from the pre-shared key, a handshake secret from the X25519 shared
 * secret, one finished key per direction for the proofs, and traffic keys
 * bound to the whole transcript. Pure functions: no I/O, no randomness
 * (handshake.ts drives them over the wire).
 *
 * @module
 */

import { concatBytes, utf8 } from "./bytes.ts";
import { hkdfExpand, hkdfExtract, hmacSha256 } from "./crypto.ts";
import {
  KdfLabel,
  KEY_BYTES,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
} from "./protocol.ts";

/** The result of a handshake: one key per direction. */
export interface SessionKeys {
  /** Key of the records the client sends. */
  readonly clientToServer: Uint8Array;
  /** Key of the records the server sends. */
  readonly serverToClient: Uint8Array;
  /** SHA-256 of the whole handshake transcript. */
  readonly transcriptHash: Uint8Array;
  /**
   * SCRAM channel-binding data for this handshake (`p=doorman-handshake`):
   * `HKDF-Expand(handshakeSecret, "doorman v2 scram binding" ‖
   * transcriptHash, 32)`, like TLS's `tls-exporter`.
   */
  readonly channelBinding: Uint8Array;
}

/** HKDF-Expand `info` prefix of {@link SessionKeys.channelBinding} (UTF-8). */
export const SCRAM_BINDING_LABEL = "doorman v2 scram binding";

/** The preamble this code sends: magic then version. */
export function encodePreamble(version = PROTOCOL_VERSION): Uint8Array {
  return concatBytes(PROTOCOL_MAGIC, Uint8Array.of(version));
}

/**
 * The key schedule's handshake secret:
 * `HKDF-Extract(HKDF-Expand(HKDF-Extract(0^32, psk), "derived"), dh)`.
 */
export function deriveHandshakeSecret(
  psk: Uint8Array,
  sharedSecret: Uint8Array,
): Uint8Array {
  const early = hkdfExtract(new Uint8Array(KEY_BYTES), psk);
  const salt = hkdfExpand(early, utf8(KdfLabel.derived), KEY_BYTES);
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

/** The session keys, bound to the hash of the whole transcript. */
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
  return {
    clientToServer: expand(KdfLabel.clientToServer),
    serverToClient: expand(KdfLabel.serverToClient),
    transcriptHash,
    channelBinding: expand(SCRAM_BINDING_LABEL),
  };
}
