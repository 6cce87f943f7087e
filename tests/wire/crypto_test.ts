import assert from "node:assert/strict";
import { concatBytes, fromHex, toHex, utf8 } from "../../lib/wire/bytes.ts";
import {
  constantTimeEqual,
  generateX25519,
  hkdfExpand,
  hkdfExtract,
  hmacSha256,
  md5Hex,
  open,
  pbkdf2Sha256,
  randomBytes,
  sealInto,
  sha256,
  x25519SharedSecret,
} from "../../lib/wire/crypto.ts";

Deno.test("sha256() matches FIPS 180-2 'abc' across parts", () => {
  assert.equal(
    toHex(sha256(utf8("a"), utf8("bc"))),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

Deno.test("hmacSha256() matches RFC 4231 test case 2", () => {
  assert.equal(
    toHex(
      hmacSha256(utf8("Jefe"), utf8("what do ya want "), utf8("for nothing?")),
    ),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
});

/** RFC 5869 test case 1. */
const HKDF_CASE_1 = {
  ikm: new Uint8Array(22).fill(0x0b),
  salt: fromHex("000102030405060708090a0b0c"),
  info: fromHex("f0f1f2f3f4f5f6f7f8f9"),
  prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
  okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf" +
    "34007208d5b887185865",
};

Deno.test("hkdfExtract() and hkdfExpand() match RFC 5869 test case 1", () => {
  const { ikm, salt, info, prk, okm } = HKDF_CASE_1;
  const extracted = hkdfExtract(salt, ikm);
  assert.equal(toHex(extracted), prk);
  assert.equal(toHex(hkdfExpand(extracted, info, 42)), okm);
  // Shorter outputs are prefixes; 32 bytes is one HMAC block.
  assert.equal(toHex(hkdfExpand(extracted, info, 32)), okm.slice(0, 64));
  assert.equal(hkdfExpand(extracted, info, 0).length, 0);
});

Deno.test("pbkdf2Sha256() matches RFC 7914 section 11 (first 32 bytes)", async () => {
  assert.equal(
    toHex(await pbkdf2Sha256(utf8("passwd"), utf8("salt"), 1)),
    "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc",
  );
});

Deno.test("md5Hex() matches RFC 1321 examples", () => {
  assert.equal(md5Hex(new Uint8Array(0)), "d41d8cd98f00b204e9800998ecf8427e");
  assert.equal(md5Hex(utf8("abc")), "900150983cd24fb0d6963f7d28e17f72");
});

/** RFC 7748 section 6.1. */
const X25519_CASE = {
  alicePrivate: fromHex(
    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
  ),
  alicePublic:
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
  bobPrivate: fromHex(
    "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
  ),
  bobPublic: "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
  shared: "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
};

Deno.test("generateX25519() and x25519SharedSecret() match RFC 7748 section 6.1", () => {
  const alice = generateX25519(X25519_CASE.alicePrivate);
  const bob = generateX25519(X25519_CASE.bobPrivate);
  assert.equal(toHex(alice.publicKey), X25519_CASE.alicePublic);
  assert.equal(toHex(bob.publicKey), X25519_CASE.bobPublic);
  assert.equal(
    toHex(x25519SharedSecret(alice.privateKey, bob.publicKey)),
    X25519_CASE.shared,
  );
  assert.equal(
    toHex(x25519SharedSecret(bob.privateKey, alice.publicKey)),
    X25519_CASE.shared,
  );
});

Deno.test("generateX25519() makes a fresh 32-byte share each call", () => {
  const first = generateX25519();
  const second = generateX25519();
  assert.equal(first.publicKey.length, 32);
  assert.notDeepEqual(first.publicKey, second.publicKey);
  assert.deepEqual(
    x25519SharedSecret(first.privateKey, second.publicKey),
    x25519SharedSecret(second.privateKey, first.publicKey),
  );
});

Deno.test("x25519SharedSecret() rejects small-order and malformed shares with RangeError", () => {
  const { privateKey } = generateX25519();
  const bad = [
    new Uint8Array(32), // 0
    Uint8Array.of(1, ...new Uint8Array(31)), // 1
    // A point of order 8 (RFC 7748 section 7 and libsodium's blocklist).
    fromHex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    new Uint8Array(31),
    new Uint8Array(33),
  ];
  for (const share of bad) {
    assert.throws(
      () => x25519SharedSecret(privateKey, share),
      RangeError,
      toHex(share),
    );
  }
});

/** RFC 8439 section 2.8.2. */
const AEAD_CASE = {
  key: fromHex(
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
  ),
  nonce: fromHex("070000004041424344454647"),
  aad: fromHex("50515253c0c1c2c3c4c5c6c7"),
  plaintext: utf8(
    "Ladies and Gentlemen of the class of '99: If I could offer you only " +
      "one tip for the future, sunscreen would be it.",
  ),
  sealed: "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
    "3ff4def08e4b7a9de576d26586cec64b6116" +
    "1ae10b594f09e26a7e902ecbd0600691",
};

Deno.test("sealInto() matches RFC 8439 section 2.8.2 with the plaintext in parts", () => {
  const { key, nonce, aad, plaintext, sealed } = AEAD_CASE;
  const target = new Uint8Array(3 + plaintext.length + 16);
  const parts = [
    plaintext.subarray(0, 1),
    plaintext.subarray(1, 50),
    new Uint8Array(0),
    plaintext.subarray(50),
  ];
  sealInto(key, nonce, parts, aad, target, 3);
  assert.deepEqual(target.subarray(0, 3), new Uint8Array(3));
  assert.equal(toHex(target.subarray(3)), sealed);
});

Deno.test("open() matches RFC 8439 section 2.8.2", () => {
  const { key, nonce, aad, plaintext, sealed } = AEAD_CASE;
  assert.deepEqual(open(key, nonce, fromHex(sealed), aad), plaintext);
});

Deno.test("open() returns null on a wrong key, nonce, AAD, tag or length", () => {
  const { key, nonce, aad, sealed } = AEAD_CASE;
  const bytes = fromHex(sealed);
  const flip = (source: Uint8Array, index: number) => {
    const copy = source.slice();
    copy[index] ^= 1;
    return copy;
  };
  assert.equal(open(flip(key, 0), nonce, bytes, aad), null);
  assert.equal(open(key, flip(nonce, 11), bytes, aad), null);
  assert.equal(open(key, nonce, bytes, flip(aad, 0)), null);
  assert.equal(open(key, nonce, flip(bytes, 0), aad), null);
  assert.equal(open(key, nonce, flip(bytes, bytes.length - 1), aad), null);
  assert.equal(open(key, nonce, bytes.subarray(1), aad), null);
  assert.equal(open(key, nonce, bytes.subarray(0, 15), aad), null);
  assert.equal(open(key, nonce, new Uint8Array(0), aad), null);
});

Deno.test("open() opens an empty plaintext sealed by sealInto()", () => {
  const { key, nonce, aad } = AEAD_CASE;
  const target = new Uint8Array(16);
  sealInto(key, nonce, [], aad, target, 0);
  assert.deepEqual(open(key, nonce, target, aad), new Uint8Array(0));
});

Deno.test("constantTimeEqual() compares contents and lengths", () => {
  const bytes = Uint8Array.of(1, 2, 3);
  assert.equal(constantTimeEqual(bytes, Uint8Array.of(1, 2, 3)), true);
  assert.equal(constantTimeEqual(bytes, Uint8Array.of(1, 2, 4)), false);
  assert.equal(constantTimeEqual(bytes, Uint8Array.of(1, 2)), false);
  assert.equal(constantTimeEqual(bytes, concatBytes(bytes, bytes)), false);
  assert.equal(
    constantTimeEqual(new Uint8Array(0), new Uint8Array(0)),
    true,
  );
});

Deno.test("randomBytes() fills arrays beyond the 65536-byte getRandomValues limit", () => {
  assert.equal(randomBytes(0).length, 0);
  const bytes = randomBytes(200_000);
  assert.equal(bytes.length, 200_000);
  // Each 64 KiB piece was filled: no piece is all zeros.
  for (let offset = 0; offset < bytes.length; offset += 65536) {
    const piece = bytes.subarray(offset, offset + 65536);
    assert.ok(piece.some((byte) => byte !== 0), `piece at ${offset}`);
  }
  assert.notDeepEqual(randomBytes(32), randomBytes(32));
});

Deno.test("sealInto() and open() agree on both sides of the 2 KiB switch between the two AEAD implementations", () => {
  const { key, nonce } = AEAD_CASE;
  const aad = fromHex("00000810");
  for (const size of [2047, 2048, 2049, 4096, 65536]) {
    const plaintext = randomBytes(size);
    const target = new Uint8Array(size + 16);
    sealInto(key, nonce, [plaintext], aad, target, 0);
    assert.deepEqual(open(key, nonce, target, aad), plaintext, `size ${size}`);
    target[size - 1] ^= 1;
    assert.equal(open(key, nonce, target, aad), null, `size ${size}`);
  }
});
