import assert from "node:assert/strict";
import {
  concatBytes,
  fromBase64,
  fromHex,
  fromUtf8,
  readUint32,
  toBase64,
  toHex,
  utf8,
  writeUint32,
} from "../../lib/wire/bytes.ts";

Deno.test("concatBytes() joins parts into a new array", () => {
  const first = Uint8Array.of(1, 2);
  const joined = concatBytes(first, new Uint8Array(0), Uint8Array.of(3));
  assert.deepEqual(joined, Uint8Array.of(1, 2, 3));
  joined[0] = 9;
  assert.equal(first[0], 1);
  assert.deepEqual(concatBytes(), new Uint8Array(0));
});

Deno.test("writeUint32() and readUint32() use big-endian at an offset", () => {
  const bytes = new Uint8Array(6);
  writeUint32(bytes, 1, 0x01020304);
  assert.deepEqual(bytes, Uint8Array.of(0, 1, 2, 3, 4, 0));
  assert.equal(readUint32(bytes, 1), 0x01020304);
  writeUint32(bytes, 2, 0xffffffff);
  assert.equal(readUint32(bytes, 2), 0xffffffff);
});

Deno.test("writeUint32() and readUint32() respect a view's byteOffset", () => {
  const backing = new Uint8Array(8);
  const view = backing.subarray(3, 7);
  writeUint32(view, 0, 0xa1b2c3d4);
  assert.deepEqual(backing, Uint8Array.of(0, 0, 0, 0xa1, 0xb2, 0xc3, 0xd4, 0));
  assert.equal(readUint32(view, 0), 0xa1b2c3d4);
  assert.throws(() => readUint32(view, 1), RangeError);
});

Deno.test("toHex() and fromHex() round-trip every byte value", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const hex = toHex(all);
  assert.equal(hex.slice(0, 8), "00010203");
  assert.equal(hex.slice(-4), "feff");
  assert.deepEqual(fromHex(hex), all);
  assert.deepEqual(fromHex(hex.toUpperCase()), all);
  assert.equal(toHex(new Uint8Array(0)), "");
  assert.deepEqual(fromHex(""), new Uint8Array(0));
});

Deno.test("fromHex() rejects text that is not whole hex bytes", () => {
  for (const text of ["0", "abc", "zz", "0x00", "00 01", "-1", "0g"]) {
    assert.throws(() => fromHex(text), SyntaxError, JSON.stringify(text));
  }
});

/** RFC 4648 section 10. */
const BASE64_CASES = [
  ["", ""],
  ["f", "Zg=="],
  ["fo", "Zm8="],
  ["foo", "Zm9v"],
  ["foob", "Zm9vYg=="],
  ["fooba", "Zm9vYmE="],
  ["foobar", "Zm9vYmFy"],
];

Deno.test("toBase64() and fromBase64() match RFC 4648 section 10", () => {
  for (const [text, base64] of BASE64_CASES) {
    assert.equal(toBase64(utf8(text)), base64);
    assert.deepEqual(fromBase64(base64), utf8(text));
  }
});

Deno.test("toBase64() and fromBase64() round-trip every byte value", () => {
  for (let length = 0; length < 260; length += 37) {
    const bytes = Uint8Array.from({ length }, (_, i) => (i * 151) & 0xff);
    assert.deepEqual(fromBase64(toBase64(bytes)), bytes);
  }
});

Deno.test("fromBase64() rejects unpadded, URL-safe and spaced base64", () => {
  for (
    const text of [
      "Zg",
      "Zg=",
      "Zm8",
      "Zm9v\n",
      " Zm9v",
      "Zm-_",
      "Z===",
      "=Zm9",
    ]
  ) {
    assert.throws(() => fromBase64(text), SyntaxError, JSON.stringify(text));
  }
});

Deno.test("utf8() and fromUtf8() round-trip non-ASCII text", () => {
  const text = "na\u00efve \u{1f511} \u0434\u0432\u0435\u0440\u044c";
  assert.equal(fromUtf8(utf8(text)), text);
  assert.deepEqual(utf8("\u00e9"), Uint8Array.of(0xc3, 0xa9));
});

Deno.test("fromUtf8() rejects invalid UTF-8 with TypeError", () => {
  const bad = [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xc0, 0xaf]];
  for (const bytes of bad) {
    assert.throws(
      () => fromUtf8(Uint8Array.from(bytes)),
      TypeError,
      `${bytes}`,
    );
  }
});

Deno.test("fromBase64() rejects non-canonical padding bits", () => {
  for (const text of ["Zh==", "Zm9=", "Zg=", "Zm9v=", "Z==="]) {
    assert.throws(() => fromBase64(text), SyntaxError, text);
  }
  assert.deepEqual(fromBase64("Zg=="), utf8("f"));
  assert.deepEqual(fromBase64("Zm8="), utf8("fo"));
});
