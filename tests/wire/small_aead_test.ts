/**
 * The WebAssembly AEAD for small records must agree byte for byte with
 * `node:crypto`'s ChaCha20-Poly1305 (the one used above 2 KiB, and the one
 * the protocol vectors were made with), and must refuse what was tampered.
 */
import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import {
  openSmall,
  sealSmall,
  SMALL_RECORD_BYTES,
} from "../../lib/wire/small_aead.ts";
import { TAG_BYTES } from "../../lib/wire/protocol.ts";

function nodeSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Uint8Array {
  const cipher = createCipheriv("chacha20-poly1305", key, nonce, {
    authTagLength: TAG_BYTES,
  });
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  const body = cipher.update(plaintext);
  cipher.final();
  return new Uint8Array([...body, ...cipher.getAuthTag()]);
}

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

Deno.test("sealSmall matches node:crypto ChaCha20-Poly1305 at every size class up to the limit", () => {
  for (const size of [0, 1, 63, 64, 65, 1000, SMALL_RECORD_BYTES]) {
    const key = random(32);
    const nonce = random(12);
    const aad = random(4);
    const plaintext = random(size);
    const target = new Uint8Array(size + TAG_BYTES + 3);
    sealSmall(key, nonce, plaintext, aad, target, 3);
    const sealed = target.subarray(3);
    assert.deepEqual(
      sealed,
      nodeSeal(key, nonce, plaintext, aad),
      `size ${size}`,
    );
    const opened = openSmall(
      key,
      nonce,
      sealed.subarray(0, size),
      sealed.subarray(size),
      aad,
    );
    assert.deepEqual(opened, plaintext, `size ${size}`);
  }
});

Deno.test("sealSmall seals in place: the plaintext may be the target's own bytes", () => {
  const key = random(32);
  const nonce = random(12);
  const aad = random(4);
  const plaintext = random(100);
  const target = new Uint8Array(100 + TAG_BYTES);
  target.set(plaintext);
  sealSmall(key, nonce, target.subarray(0, 100), aad, target, 0);
  assert.deepEqual(target, nodeSeal(key, nonce, plaintext, aad));
});

Deno.test("openSmall returns null for a flipped bit in the ciphertext, tag, aad, nonce or key", () => {
  const key = random(32);
  const nonce = random(12);
  const aad = random(4);
  const plaintext = random(64);
  const sealed = nodeSeal(key, nonce, plaintext, aad);
  const flip = (bytes: Uint8Array, index: number) => {
    const copy = bytes.slice();
    copy[index] ^= 1;
    return copy;
  };
  const body = sealed.subarray(0, 64);
  const tag = sealed.subarray(64);
  assert.equal(openSmall(key, nonce, flip(body, 10), tag, aad), null);
  assert.equal(openSmall(key, nonce, body, flip(tag, 15), aad), null);
  assert.equal(openSmall(key, nonce, body, tag, flip(aad, 0)), null);
  assert.equal(openSmall(key, flip(nonce, 11), body, tag, aad), null);
  assert.equal(openSmall(flip(key, 31), nonce, body, tag, aad), null);
  assert.deepEqual(openSmall(key, nonce, body, tag, aad), plaintext);
});

Deno.test("the small AEAD refuses what it was not built for instead of misusing its scratch memory", () => {
  const key = random(32);
  const nonce = random(12);
  const aad = random(4);
  const target = new Uint8Array(SMALL_RECORD_BYTES + 1 + TAG_BYTES);
  assert.throws(
    () => sealSmall(key, nonce, random(SMALL_RECORD_BYTES + 1), aad, target, 0),
    RangeError,
  );
  assert.throws(
    () => sealSmall(random(16), nonce, random(8), aad, target, 0),
    RangeError,
  );
  assert.throws(
    () => sealSmall(key, random(8), random(8), aad, target, 0),
    RangeError,
  );
  assert.throws(
    () => openSmall(key, nonce, random(8), random(8), aad),
    RangeError,
  );
});
