/**
 * The code against the test vectors of docs/PROTOCOL.md: the real handshake
 * and channel reproduce every byte, the document shows every vector, and an
 * independent computation from the document's formulas (node:crypto and a
 * BigInt X25519, nothing from lib/) gives the same bytes.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
} from "node:crypto";
import {
  generateProtocolVectors,
  type ProtocolVectors,
  run32,
} from "./fixtures/gen_protocol_vectors.ts";
import * as protocol from "../lib/wire/protocol.ts";
import { parseClientKey, parseKeyEntries } from "../lib/key_file.ts";
import {
  encodeRefusal,
  parseRefusal,
  RefusalReason,
} from "../lib/wire/refusal.ts";
import { encodeProxyV2Header } from "../lib/server/proxy_header.ts";

/** Printed by tests/fixtures/gen_protocol_vectors.ts; shown in PROTOCOL.md. */
const VECTORS: ProtocolVectors = {
  clientShare:
    "79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a",
  serverShare:
    "675dd574ed7789310b3d2e7681f3790b466c773b1521fecf36577958371ea52f",
  sharedSecret:
    "d6fb939511b2381bc8599b4b8edc5968829450dfd7a87aebe78a703cd04cd54e",
  handshakeSecret:
    "9208f94c562712cab70ada9e34809d00cfabada095dc0922d45c93cc78868e22",
  clientHello:
    "646f6f726d616e020000004d01000102030405060708090a0b0c0d0e0f101112" +
    "131415161718191a1b1c1d1e1f79a631eede1bf9c98f12032cdeadd0e7a07939" +
    "8fc786b88cc846ec89af85a51a0b746573742d766563746f72",
  serverHello:
    "646f6f726d616e020000006102202122232425262728292a2b2c2d2e2f303132" +
    "333435363738393a3b3c3d3e3f675dd574ed7789310b3d2e7681f3790b466c77" +
    "3b1521fecf36577958371ea52f8c2855fcb0c2c52329df1193b9ea282504e410" +
    "ec71ced45fea9f63d985cef632",
  clientFinished:
    "0000002103e2f9d49214e7f85b136f35d165c73dc4b88bb41dfd163f1a7aa50b" +
    "5cb9b5f0d0",
  transcriptHash:
    "f29ba5d3a4d17e1dc69d455b7acadb0d65d5e4357f3857f61f8814fda5b6ce44",
  clientToServerKey:
    "9062c55aab9abdf96f779e7edd5d23cd4d19abfe7b6a3485326ee90e895784dd",
  serverToClientKey:
    "d8b423c89e7a62f01ca0dd34c2c7412077a49313dbec7d99dc8e4dd14f041796",
  channelBinding:
    "fe5f30bfa16f9af2edb03f296a6c218c53ec804a19aaba06a2e81bf0680c9233",
  clientRecord: "0000001a86547ea45781c9512f273e27d44352f3754f2b08b702f554279a",
  serverRecord: "0000001ae7a48f3f92871ac4a1b4f4a47806a3c027d603e3aea8cdfa1d39",
};

const PSK_TEXT = "doorman test vector key 32 bytes";
const KEY_ID = "test-vector";
/** The vector key as a key file line: `ID HEX` (HEX spells the 32 bytes). */
const KEY_LINE = "test-vector " +
  "646f6f726d616e207465737420766563746f72206b6579203332206279746573";

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

function hexOf(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0"))
    .join("");
}

function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (char) => char.charCodeAt(0));
}

function join(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const mac = createHmac("sha256", key);
  for (const part of parts) mac.update(part);
  return new Uint8Array(mac.digest());
}

function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

/** HKDF-Expand to 32 bytes: one block, T(1) = HMAC(prk, info || 0x01). */
function expand32(prk: Uint8Array, info: Uint8Array): Uint8Array {
  return hmac(prk, info, Uint8Array.of(1));
}

// X25519 (RFC 7748 section 5) in BigInt, independent of lib/wire/crypto.ts.
const P = 2n ** 255n - 19n;
function mod(value: bigint): bigint {
  return ((value % P) + P) % P;
}
function power(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  for (let b = mod(base), e = exponent; e > 0n; e >>= 1n, b = mod(b * b)) {
    if (e & 1n) result = mod(result * b);
  }
  return result;
}
function littleEndian(bytes: Uint8Array): bigint {
  return bytes.reduceRight((sum, byte) => (sum << 8n) | BigInt(byte), 0n);
}
function x25519(scalar: Uint8Array, u: Uint8Array): Uint8Array {
  const k = scalar.slice();
  k[0] &= 248;
  k[31] = (k[31] & 127) | 64;
  const kn = littleEndian(k);
  const uBytes = u.slice();
  uBytes[31] &= 127;
  const x1 = mod(littleEndian(uBytes));
  let [x2, z2, x3, z3, swap] = [1n, 0n, x1, 1n, 0n];
  for (let t = 254n; t >= 0n; t--) {
    const bit = (kn >> t) & 1n;
    if (swap ^ bit) [x2, x3, z2, z3] = [x3, x2, z3, z2];
    swap = bit;
    const a = mod(x2 + z2), aa = mod(a * a), b = mod(x2 - z2), bb = mod(b * b);
    const e = mod(aa - bb), c = mod(x3 + z3), d = mod(x3 - z3);
    const da = mod(d * a), cb = mod(c * b);
    x3 = mod((da + cb) ** 2n);
    z3 = mod(x1 * mod((da - cb) ** 2n));
    x2 = mod(aa * bb);
    z2 = mod(e * (aa + 121665n * e));
  }
  if (swap) [x2, z2] = [x3, z3];
  let out = mod(x2 * power(z2, P - 2n));
  return Uint8Array.from({ length: 32 }, () => {
    const byte = Number(out & 255n);
    out >>= 8n;
    return byte;
  });
}
const BASE_POINT = Uint8Array.of(9, ...new Uint8Array(31));

Deno.test("generateProtocolVectors() reproduces the vectors of docs/PROTOCOL.md", async () => {
  assert.deepEqual(await generateProtocolVectors(), VECTORS);
});

Deno.test("docs/PROTOCOL.md shows every vector verbatim", async () => {
  const doc = (await Deno.readTextFile(
    new URL("../docs/PROTOCOL.md", import.meta.url),
  )).replaceAll(/\s+/g, "");
  for (const [name, value] of Object.entries(VECTORS)) {
    assert.ok(doc.includes(value), `${name} is missing from PROTOCOL.md`);
  }
  assert.ok(doc.includes(PSK_TEXT.replaceAll(" ", "")));
  assert.ok(doc.includes(KEY_LINE.replaceAll(" ", "")), "key file line");
  // The preamble, and the failure frame alone and after the preamble.
  for (
    const bytes of [
      "646f6f726d616e02",
      "000000017f",
      "646f6f726d616e02000000017f",
    ]
  ) {
    assert.ok(doc.includes(bytes), bytes);
  }
});

Deno.test("docs/PROTOCOL.md names every constant of lib/wire/protocol.ts", async () => {
  const doc = await Deno.readTextFile(
    new URL("../docs/PROTOCOL.md", import.meta.url),
  );
  const missing: string[] = [];
  for (const [name, value] of Object.entries(protocol)) {
    if (!doc.includes(`\`${name}\``)) missing.push(name);
    if (typeof value !== "object" || value instanceof Uint8Array) continue;
    for (const [key, member] of Object.entries(value)) {
      // Labels appear as their text, members of kinds and codes by name.
      const shown = typeof member === "string" ? `"${member}"` : `\`${key}\``;
      if (!doc.includes(shown)) missing.push(`${name}.${key}`);
    }
  }
  assert.deepEqual(missing, []);
});

Deno.test("docs/PROTOCOL.md lists every close code with its number and name", async () => {
  const doc = await Deno.readTextFile(
    new URL("../docs/PROTOCOL.md", import.meta.url),
  );
  const missing: string[] = [];
  for (const [name, code] of Object.entries(protocol.CloseCode)) {
    const row = new RegExp(`^\\|\\s*${code}\\s*\\|\\s*\`${name}\`\\s*\\|`, "m");
    if (!row.test(doc)) missing.push(`${code} ${name}`);
  }
  assert.deepEqual(missing, []);
});

Deno.test("the key file line and a bare key give the key bytes docs/PROTOCOL.md states", () => {
  const entry = parseClientKey(`${KEY_LINE}\n`, "vector");
  assert.equal(entry.id, KEY_ID);
  assert.deepEqual(entry.psk, ascii(PSK_TEXT));
  // A bare key (version 1 file): its trimmed bytes are the key, id default.
  assert.deepEqual(parseKeyEntries(`  ${PSK_TEXT}\n`, "bare"), [
    { id: "default", psk: ascii(PSK_TEXT) },
  ]);
});

Deno.test("the BigInt X25519 used below matches RFC 7748 section 6.1", () => {
  const alice = hex(
    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
  );
  const bob = hex(
    "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
  );
  assert.equal(
    hexOf(x25519(alice, BASE_POINT)),
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
  );
  assert.equal(
    hexOf(x25519(alice, x25519(bob, BASE_POINT))),
    "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
  );
});

Deno.test("the vector messages have the layout docs/PROTOCOL.md gives", () => {
  const clientWrite = hex(VECTORS.clientHello);
  const serverWrite = hex(VECTORS.serverHello);
  const finished = hex(VECTORS.clientFinished);
  const preamble = hex("646f6f726d616e02"); // "doorman", version 2
  assert.deepEqual(clientWrite.subarray(0, 8), preamble);
  // Length 77 = 66 + 11, kind 01.
  assert.deepEqual(clientWrite.subarray(8, 13), hex("0000004d01"));
  assert.deepEqual(clientWrite.subarray(13, 45), run32(0x00));
  assert.equal(hexOf(clientWrite.subarray(45, 77)), VECTORS.clientShare);
  // key_id_length (u8) then the key id, in clear.
  assert.equal(clientWrite[77], KEY_ID.length);
  assert.deepEqual(clientWrite.subarray(78), ascii(KEY_ID));
  assert.equal(clientWrite.length, 8 + 4 + 66 + 11);

  assert.deepEqual(serverWrite.subarray(0, 8), preamble);
  assert.deepEqual(serverWrite.subarray(8, 13), hex("0000006102"));
  assert.deepEqual(serverWrite.subarray(13, 45), run32(0x20));
  assert.equal(hexOf(serverWrite.subarray(45, 77)), VECTORS.serverShare);
  assert.equal(serverWrite.length, 8 + 4 + 97);

  assert.deepEqual(finished.subarray(0, 5), hex("0000002103"));
  assert.equal(finished.length, 4 + 33);
  for (const record of [VECTORS.clientRecord, VECTORS.serverRecord]) {
    // 4-byte header = 26: kind (1) + id (4) + 5 bytes of text + tag (16).
    assert.deepEqual(hex(record).subarray(0, 4), hex("0000001a"));
  }
});

Deno.test("the key schedule of docs/PROTOCOL.md, computed with node:crypto alone, gives the vectors", () => {
  const psk = ascii(PSK_TEXT);
  assert.equal(psk.length, 32);
  const clientWrite = hex(VECTORS.clientHello);
  const serverWrite = hex(VECTORS.serverHello);
  const preambleC = clientWrite.subarray(0, 8);
  const c1 = clientWrite.subarray(12);
  // The key file line spells the key's 32 bytes in hex.
  assert.deepEqual(hex(KEY_LINE.split(" ")[1]), psk);
  const preambleS = serverWrite.subarray(0, 8);
  const s1 = serverWrite.subarray(12);
  const c2 = hex(VECTORS.clientFinished).subarray(4);

  // Shares and the X25519 shared secret, from the fixed private keys.
  const clientShare = x25519(run32(0x40), BASE_POINT);
  const serverShare = x25519(run32(0x60), BASE_POINT);
  assert.equal(hexOf(clientShare), VECTORS.clientShare);
  assert.equal(hexOf(serverShare), VECTORS.serverShare);
  const dh = x25519(run32(0x60), clientShare);
  assert.deepEqual(x25519(run32(0x40), serverShare), dh);
  assert.equal(hexOf(dh), VECTORS.sharedSecret);

  // derived = HKDF-Expand(HKDF-Extract(0^32, PSK), "doorman v2 derived", 32);
  // node's hkdfSync does extract-then-expand in one call.
  const derived = new Uint8Array(
    hkdfSync(
      "sha256",
      psk,
      new Uint8Array(32),
      ascii("doorman v2 derived"),
      32,
    ),
  );
  const hs = hmac(derived, dh); // HKDF-Extract(salt = derived, IKM = dh)
  assert.equal(hexOf(hs), VECTORS.handshakeSecret);

  // S1's proof covers PC || C1 || PS || S1 without its proof.
  const serverFinishedKey = expand32(hs, ascii("doorman v2 server finished"));
  const serverProof = hmac(
    serverFinishedKey,
    sha256(preambleC, c1, preambleS, s1.subarray(0, 65)),
  );
  assert.deepEqual(s1.subarray(65), serverProof);

  // C2's proof covers PC || C1 || PS || S1.
  const clientFinishedKey = expand32(hs, ascii("doorman v2 client finished"));
  const clientProof = hmac(
    clientFinishedKey,
    sha256(preambleC, c1, preambleS, s1),
  );
  assert.deepEqual(c2, join(Uint8Array.of(0x03), clientProof));

  const th = sha256(preambleC, c1, preambleS, s1, c2);
  assert.equal(hexOf(th), VECTORS.transcriptHash);
  const c2s = expand32(hs, join(ascii("doorman v2 c2s key"), th));
  const s2c = expand32(hs, join(ascii("doorman v2 s2c key"), th));
  assert.equal(hexOf(c2s), VECTORS.clientToServerKey);
  assert.equal(hexOf(s2c), VECTORS.serverToClientKey);
  const binding = expand32(hs, join(ascii("doorman v2 scram binding"), th));
  assert.equal(hexOf(binding), VECTORS.channelBinding);

  // First record each way: counter 0, AAD = the frame header.
  const records = [
    { frame: hex(VECTORS.clientRecord), key: c2s, plain: "1000000001hello" },
    { frame: hex(VECTORS.serverRecord), key: s2c, plain: "1100000001HELLO" },
  ];
  for (const { frame, key, plain } of records) {
    const decipher = createDecipheriv(
      "chacha20-poly1305",
      key,
      new Uint8Array(12),
      { authTagLength: 16 },
    );
    decipher.setAAD(frame.subarray(0, 4), {
      plaintextLength: frame.length - 20,
    });
    decipher.setAuthTag(frame.subarray(-16));
    const plaintext = join(
      decipher.update(frame.subarray(4, -16)),
      decipher.final(),
    );
    assert.deepEqual(
      plaintext,
      join(hex(plain.slice(0, 10)), ascii(plain.slice(10))),
    );
  }
});

/** Shown in PROTOCOL.md, "Refusal, stream record and PROXY header". */
const OTHER_VECTORS = {
  refusal: "646f6f726d616e02000000047d030004",
  streamData: "3268656c6c6f",
  proxyHeader: "0d0a0d0a000d0a515549540a21110019c00002077f000001c35018eb" +
    "e00005616c696365e100026b31",
};

Deno.test("encodeRefusal() and parseRefusal() match the refusal vector of docs/PROTOCOL.md", () => {
  const bytes = encodeRefusal(RefusalReason.penalty, 4);
  assert.equal(hexOf(bytes), OTHER_VECTORS.refusal);
  const refused = parseRefusal(bytes.subarray(12));
  assert.ok(refused);
  assert.equal(refused.reason, 3);
  assert.equal(refused.retryAfterSeconds, 4);
  assert.equal(
    refused.message,
    "server refused the connection: too many failed attempts from your address; retry in 4 s",
  );
});

Deno.test("a streamData record body has the layout docs/PROTOCOL.md gives", () => {
  assert.equal(protocol.RecordKind.streamData, 0x32);
  assert.equal(
    hexOf(join(Uint8Array.of(protocol.RecordKind.streamData), ascii("hello"))),
    OTHER_VECTORS.streamData,
  );
});

Deno.test("encodeProxyV2Header() matches the PROXY header vector of docs/PROTOCOL.md", () => {
  const header = encodeProxyV2Header({
    source: { hostname: "192.0.2.7", port: 50000 },
    destination: { hostname: "127.0.0.1", port: 6379 },
    user: "alice",
    keyId: "k1",
  });
  assert.equal(header.length, 41);
  assert.equal(hexOf(header), OTHER_VECTORS.proxyHeader);
});

Deno.test("docs/PROTOCOL.md shows the refusal, stream and PROXY vectors verbatim", async () => {
  const doc = (await Deno.readTextFile(
    new URL("../docs/PROTOCOL.md", import.meta.url),
  )).replaceAll(/\s+/g, "");
  for (const [name, value] of Object.entries(OTHER_VECTORS)) {
    assert.ok(doc.includes(value), `${name} is missing from PROTOCOL.md`);
  }
});

Deno.test("docs/PROTOCOL.md carries no statement of protocol version 1 logins or defaults", async () => {
  const doc = await Deno.readTextFile(
    new URL("../docs/PROTOCOL.md", import.meta.url),
  );
  // v1: SCRAM without channel binding, and a 10-minute idle default.
  for (const stale of ["n,,n=", "c=biws", "10 min"]) {
    assert.ok(!doc.includes(stale), `PROTOCOL.md still says ${stale}`);
  }
  assert.ok(doc.includes("p=doorman-handshake,,n=<user>,r=<client nonce>"));
});
