/**
 * Pure crypto: randomness, SHA-256, HMAC, HKDF, PBKDF2, X25519, the record
 * AEAD and constant-time comparison. This file alone chooses the
 * implementation of each primitive, by measurement (Deno 2.9, this
 * machine): `node:crypto` costs 1–4 µs per small call where Web Crypto
 * costs ~130 µs, so X25519 and records over 2 KiB use `node:crypto`,
 * records up to 2 KiB libsodium's WebAssembly (`small_aead.ts`: 5–6x
 * cheaper per small record than a `node:crypto` cipher object); SHA-256
 * and HMAC use `@noble/hashes` (see its import); only PBKDF2, which runs
 * once per login on the client, uses Web Crypto (600,000 iterations: 66 ms
 * against 262 ms in `node:crypto`).
 *
 * ChaCha20-Poly1305 was chosen for records over AES-256-GCM because
 * `node:crypto` seals it at ~1.3 GB/s against ~100 MB/s for AES-GCM here.
 *
 * @module
 */

// @noble/hashes (pinned, audited) computes SHA-256 and HMAC on the JS heap:
// per small call it is faster here than node:crypto (3.5 µs against 4.5 µs),
// and it leaves no native buffers behind, which kept a handshake's worth of
// resident memory alive per connection (bench: 22.2 → 20.3 KiB idle).
// deno-lint-ignore no-import-prefix
import { hmac } from "npm:@noble/hashes@2.4.0/hmac.js";
// deno-lint-ignore no-import-prefix
import { sha256 as nobleSha256 } from "npm:@noble/hashes@2.4.0/sha2.js";
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
  timingSafeEqual,
} from "node:crypto";
import { concatBytes, fromHex } from "./bytes.ts";
import { TAG_BYTES } from "./protocol.ts";
import { openSmall, sealSmall, SMALL_RECORD_BYTES } from "./small_aead.ts";

/** `n` bytes from the system's CSPRNG. */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  // getRandomValues fills at most 65536 bytes per call.
  for (let offset = 0; offset < n; offset += 65536) {
    crypto.getRandomValues(out.subarray(offset, offset + 65536));
  }
  return out;
}

/** SHA-256 of the concatenation of `parts`. */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = nobleSha256.create();
  for (const part of parts) hash.update(part);
  return hash.digest();
}

/** HMAC-SHA256 of the concatenation of `parts` under `key`. */
export function hmacSha256(
  key: Uint8Array,
  ...parts: Uint8Array[]
): Uint8Array {
  const mac = hmac.create(nobleSha256, key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

/** MD5 hex digest, for legacy userinfo lines only. */
export function md5Hex(data: Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

/** HKDF-Extract (RFC 5869) with SHA-256: HMAC(salt, ikm). */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hmacSha256(salt, ikm);
}

/** HKDF-Expand (RFC 5869) with SHA-256, `length` ≤ 255 × 32 bytes. */
export function hkdfExpand(
  prk: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  const out = new Uint8Array(length);
  let previous: Uint8Array = new Uint8Array(0);
  for (let i = 0, offset = 0; offset < length; i++) {
    previous = hmacSha256(prk, previous, info, Uint8Array.of(i + 1));
    out.set(previous.subarray(0, length - offset), offset);
    offset += previous.length;
  }
  return out;
}

/**
 * PBKDF2-HMAC-SHA256 (Web Crypto: ~5x faster here than `node:crypto`).
 *
 * @param password The already prepared password bytes.
 * @param salt The salt.
 * @param iterations The iteration count.
 * @returns 32 derived bytes.
 */
export async function pbkdf2Sha256(
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    password as Uint8Array<ArrayBuffer>,
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    {
      name: "PBKDF2",
      hash: "SHA-256",
      salt: salt as Uint8Array<ArrayBuffer>,
      iterations,
    },
    key,
    256,
  );
  return new Uint8Array(bits);
}

/**
 * Constant-time equality of two byte arrays. Different lengths compare
 * unequal (length is not secret in any of our uses).
 */
export function constantTimeEqual(
  left: Uint8Array,
  right: Uint8Array,
): boolean {
  return left.length === right.length && timingSafeEqual(left, right);
}

// DER prefixes that wrap a raw 32-byte X25519 key (RFC 8410).
const X25519_PKCS8_PREFIX = fromHex("302e020100300506032b656e04220420");
const X25519_SPKI_PREFIX = fromHex("302a300506032b656e032100");

/** An ephemeral X25519 key pair; `publicKey` is the raw 32-byte share. */
export interface X25519KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: Uint8Array;
}

/**
 * An X25519 key pair: fresh, or from a fixed 32-byte private key (test
 * vectors only).
 */
export function generateX25519(fixedPrivateKey?: Uint8Array): X25519KeyPair {
  let privateKey: KeyObject;
  let publicKey: KeyObject;
  if (fixedPrivateKey) {
    privateKey = createPrivateKey({
      key: Buffer.from(concatBytes(X25519_PKCS8_PREFIX, fixedPrivateKey)),
      format: "der",
      type: "pkcs8",
    });
    publicKey = createPublicKey(privateKey);
  } else {
    // Exporting the generated public key costs ~3 µs; deriving it again
    // from the private key with createPublicKey costs ~18 µs.
    ({ privateKey, publicKey } = generateKeyPairSync("x25519"));
  }
  const spki = publicKey.export({ format: "der", type: "spki" });
  return { privateKey, publicKey: new Uint8Array(spki.subarray(-32)) };
}

/**
 * The X25519 shared secret between our private key and the peer's raw share.
 *
 * @throws {RangeError} If the share is malformed or of small order (the
 *   shared secret would be all zeros, RFC 7748 §6.1).
 */
export function x25519SharedSecret(
  privateKey: KeyObject,
  peerShare: Uint8Array,
): Uint8Array {
  let secret: Uint8Array;
  try {
    const publicKey = createPublicKey({
      key: Buffer.from(concatBytes(X25519_SPKI_PREFIX, peerShare)),
      format: "der",
      type: "spki",
    });
    secret = new Uint8Array(diffieHellman({ privateKey, publicKey }));
  } catch (error) {
    throw new RangeError("Cannot use key share", { cause: error });
  }
  if (secret.every((byte) => byte === 0)) {
    throw new RangeError("Cannot use key share: small-order point");
  }
  return secret;
}

const AEAD = "chacha20-poly1305";

/**
 * Seals the concatenation of `parts` with ChaCha20-Poly1305 and writes the
 * ciphertext then the 16-byte tag into `target` at `offset` (which must have
 * room for the parts' total length + 16). A part may already lie at its
 * place in `target`. The parts are copied into place and sealed with one
 * `update()`: each call costs an op and a new Buffer (3–6 µs here), far
 * more than copying even 64 KiB (~0.6 µs).
 */
export function sealInto(
  key: Uint8Array,
  nonce: Uint8Array,
  parts: readonly Uint8Array[],
  aad: Uint8Array,
  target: Uint8Array,
  offset: number,
): void {
  let end = offset;
  for (const part of parts) {
    // Skipped when the part is already in place (the outbox builds there).
    if (
      part.buffer !== target.buffer ||
      part.byteOffset !== target.byteOffset + end
    ) {
      target.set(part, end);
    }
    end += part.length;
  }
  const plaintext = target.subarray(offset, end);
  if (plaintext.length <= SMALL_RECORD_BYTES) {
    sealSmall(key, nonce, plaintext, aad, target, offset);
    return;
  }
  const cipher = createCipheriv(AEAD, key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  target.set(cipher.update(plaintext), offset);
  cipher.final();
  target.set(cipher.getAuthTag(), end);
}

/**
 * Opens a ChaCha20-Poly1305 `sealed` (ciphertext then 16-byte tag).
 *
 * @returns The plaintext, or `null` if authentication failed.
 */
export function open(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Uint8Array | null {
  if (sealed.length < TAG_BYTES) return null;
  const split = sealed.length - TAG_BYTES;
  if (split <= SMALL_RECORD_BYTES) {
    return openSmall(
      key,
      nonce,
      sealed.subarray(0, split),
      sealed.subarray(split),
      aad,
    );
  }
  const decipher = createDecipheriv(AEAD, key, nonce, {
    authTagLength: TAG_BYTES,
  });
  decipher.setAAD(aad, { plaintextLength: split });
  decipher.setAuthTag(sealed.subarray(split));
  const plaintext = decipher.update(sealed.subarray(0, split));
  try {
    decipher.final();
  } catch {
    return null; // authentication failed; the caller raises the typed error
  }
  return new Uint8Array(plaintext.buffer, plaintext.byteOffset, split);
}
