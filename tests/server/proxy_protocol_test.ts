import assert from "node:assert/strict";
import { ClosedError, ProtocolError } from "../../lib/errors.ts";
import {
  parseProxyHeader,
  PROXY_V2_SIGNATURE,
  readProxyHeader,
} from "../../lib/server/proxy_protocol.ts";
import { FrameReader } from "../../lib/wire/framing.ts";

const encoder = new TextEncoder();
const PREAMBLE = encoder.encode("doorman\x01");

/** A v2 header: PROXY/TCP over IPv4 (or IPv6 with 16-byte addresses). */
function v2(
  source: number[],
  destination: number[],
  ports: [number, number],
  options: { tlvs?: Uint8Array; command?: number; family?: number } = {},
): Uint8Array {
  const tlvs = options.tlvs ?? new Uint8Array(0);
  const body = new Uint8Array(2 * source.length + 4 + tlvs.length);
  body.set(source, 0);
  body.set(destination, source.length);
  new DataView(body.buffer).setUint16(2 * source.length, ports[0]);
  new DataView(body.buffer).setUint16(2 * source.length + 2, ports[1]);
  body.set(tlvs, 2 * source.length + 4);
  const out = new Uint8Array(16 + body.length);
  out.set(PROXY_V2_SIGNATURE);
  out[12] = 0x20 | (options.command ?? 1);
  out[13] = options.family ?? (source.length === 4 ? 0x11 : 0x21);
  new DataView(out.buffer).setUint16(14, body.length);
  out.set(body, 16);
  return out;
}

/** A reader over fixed bytes that hands them out `chunk` bytes at a time. */
function readerOver(bytes: Uint8Array, chunk = 7): FrameReader {
  let offset = 0;
  return new FrameReader({
    read(target: Uint8Array): Promise<number | null> {
      if (offset >= bytes.length) return Promise.resolve(null);
      const n = Math.min(chunk, target.length, bytes.length - offset);
      target.set(bytes.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
  });
}

const IPV6_SOURCE = [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1];
const IPV6_DEST = [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 2];

Deno.test("parseProxyHeader() reads v1 TCP4, TCP6 and UNKNOWN lines", () => {
  const tcp4 = parseProxyHeader(
    encoder.encode("PROXY TCP4 192.0.2.1 198.51.100.2 50000 9000\r\n"),
  );
  assert.deepEqual(tcp4.source, { address: "192.0.2.1", port: 50000 });
  assert.deepEqual(tcp4.destination, { address: "198.51.100.2", port: 9000 });
  assert.equal(tcp4.version, 1);
  const tcp6 = parseProxyHeader(
    encoder.encode("PROXY TCP6 2001:DB8::1 ::ffff:10.0.0.1 1 65535\r\n"),
  );
  assert.deepEqual(tcp6.source, { address: "2001:db8::1", port: 1 });
  assert.deepEqual(tcp6.destination, { address: "10.0.0.1", port: 65535 });
  const unknown = parseProxyHeader(encoder.encode("PROXY UNKNOWN\r\n"));
  assert.equal(unknown.source, null);
  const unknownRest = parseProxyHeader(
    encoder.encode("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"),
  );
  assert.equal(unknownRest.source, null);
});

Deno.test("parseProxyHeader() reads v2 IPv4, IPv6, LOCAL and TLVs", () => {
  const tlvs = new Uint8Array([0x05, 0, 3, 0x61, 0x62, 0x63, 0x04, 0, 0]);
  const ipv4 = parseProxyHeader(
    v2([192, 0, 2, 1], [127, 0, 0, 1], [40000, 9000], { tlvs }),
  );
  assert.deepEqual(ipv4.source, { address: "192.0.2.1", port: 40000 });
  assert.deepEqual(ipv4.destination, { address: "127.0.0.1", port: 9000 });
  assert.equal(ipv4.command, "proxy");
  assert.deepEqual(ipv4.tlvs.map((tlv) => [tlv.type, [...tlv.value]]), [
    [5, [0x61, 0x62, 0x63]],
    [4, []],
  ]);
  const ipv6 = parseProxyHeader(v2(IPV6_SOURCE, IPV6_DEST, [1, 2]));
  assert.deepEqual(ipv6.source, { address: "2001:db8::1", port: 1 });
  const local = parseProxyHeader(
    v2([1, 2, 3, 4], [5, 6, 7, 8], [1, 2], { command: 0 }),
  );
  assert.equal(local.command, "local");
  assert.equal(local.source, null);
  const udp = parseProxyHeader(
    v2([1, 2, 3, 4], [5, 6, 7, 8], [1, 2], { family: 0x12 }),
  );
  assert.equal(udp.source, null);
});

const BAD_V1 = [
  "PROXY TCP4 192.0.2.1 192.0.2.2 50000 9000\n", // no CR
  "PROXY TCP4 192.0.2.1 192.0.2.2 50000 9000 \r\n", // trailing space
  "PROXY TCP4  192.0.2.1 192.0.2.2 50000 9000\r\n", // two spaces
  "PROXY TCP4 192.0.2.1 192.0.2.2 050000 9000\r\n", // leading zero
  "PROXY TCP4 192.0.2.1 192.0.2.2 65536 9000\r\n", // port too big
  "PROXY TCP4 ::1 192.0.2.2 1 2\r\n", // IPv6 under TCP4
  "PROXY TCP6 192.0.2.1 ::1 1 2\r\n", // IPv4 under TCP6
  "PROXY TCP4 192.0.2.256 192.0.2.2 1 2\r\n", // bad octet
  "PROXY TCP4 010.0.0.1 192.0.2.2 1 2\r\n", // octal-looking
  "PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n", // not TCP
  "proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n", // lower case
  "PROXY UNKNOWNX\r\n",
  `PROXY UNKNOWN ${"a".repeat(100)}\r\n`, // over 107 bytes
];

Deno.test("parseProxyHeader() rejects each malformed v1 line", () => {
  for (const line of BAD_V1) {
    assert.throws(
      () => parseProxyHeader(encoder.encode(line)),
      ProtocolError,
      JSON.stringify(line),
    );
  }
});

Deno.test("parseProxyHeader() rejects each malformed v2 header", () => {
  const good = v2([1, 2, 3, 4], [5, 6, 7, 8], [1, 2]);
  const mutate = (at: number, value: number) => {
    const copy = good.slice();
    copy[at] = value;
    return copy;
  };
  const bad = [
    mutate(3, 0x0b), // signature
    mutate(12, 0x11), // version 1 nibble
    mutate(12, 0x22), // command 2
    mutate(13, 0x41), // family 4
    mutate(13, 0x13), // transport 3
    mutate(15, 11), // length below the IPv4 block
    mutate(15, 13), // length beyond the bytes
    v2([1, 2, 3, 4], [5, 6, 7, 8], [1, 2], {
      tlvs: new Uint8Array([1, 0, 9, 1]), // TLV overruns
    }),
    v2([1, 2, 3, 4], [5, 6, 7, 8], [1, 2], {
      tlvs: new Uint8Array([1, 0]), // TLV header cut short
    }),
  ];
  for (const [i, bytes] of bad.entries()) {
    assert.throws(() => parseProxyHeader(bytes), ProtocolError, `case ${i}`);
  }
});

Deno.test("readProxyHeader() stops exactly at the header's end", async () => {
  for (
    const header of [
      encoder.encode("PROXY TCP4 192.0.2.1 192.0.2.2 50000 9000\r\n"),
      encoder.encode("PROXY UNKNOWN\r\n"),
      v2([1, 2, 3, 4], [5, 6, 7, 8], [1, 2]),
      v2(IPV6_SOURCE, IPV6_DEST, [1, 2], { tlvs: new Uint8Array([4, 0, 0]) }),
    ]
  ) {
    for (const chunk of [1, 5, 64]) {
      const reader = readerOver(
        new Uint8Array([...header, ...PREAMBLE]),
        chunk,
      );
      const parsed = await readProxyHeader(reader);
      assert.equal(parsed.length, header.length);
      assert.deepEqual(await reader.readExact(PREAMBLE.length), PREAMBLE);
    }
  }
});

Deno.test("readProxyHeader() refuses a missing header (a doorman preamble)", async () => {
  const hello = new Uint8Array([...PREAMBLE, 0, 0, 0, 65, ...new Array(65)]);
  await assert.rejects(() => readProxyHeader(readerOver(hello)), ProtocolError);
});

Deno.test("readProxyHeader() refuses an oversized header before reading its body", async () => {
  const big = v2([1, 2, 3, 4], [5, 6, 7, 8], [1, 2], {
    tlvs: new Uint8Array([4, 0x02, 0x00, ...new Array(512).fill(0)]),
  });
  let served = 0;
  const reader = new FrameReader({
    read(target: Uint8Array): Promise<number | null> {
      if (served >= 16) return Promise.resolve(null);
      target.set(big.subarray(0, 16));
      served = 16;
      return Promise.resolve(16);
    },
  });
  await assert.rejects(() => readProxyHeader(reader), /exceed 536/);
  const longLine = encoder.encode(`PROXY TCP4 ${"1".repeat(200)}\r\n`);
  await assert.rejects(
    () => readProxyHeader(readerOver(longLine)),
    ProtocolError,
  );
});

/** A small deterministic generator (xorshift32), so failures replay. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x100000000;
  };
}

Deno.test("readProxyHeader() fails only with ProtocolError or ClosedError on mutated and random input", async () => {
  const next = random(0x5eed);
  const seeds = [
    encoder.encode("PROXY TCP4 192.0.2.1 192.0.2.2 50000 9000\r\n"),
    encoder.encode("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"),
    v2([1, 2, 3, 4], [5, 6, 7, 8], [1, 2], {
      tlvs: new Uint8Array([5, 0, 2, 1, 2]),
    }),
    v2(IPV6_SOURCE, IPV6_DEST, [1, 2]),
  ];
  for (let round = 0; round < 3000; round++) {
    let bytes: Uint8Array;
    if (round % 4 === 3) {
      bytes = new Uint8Array(Math.floor(next() * 120));
      for (let i = 0; i < bytes.length; i++) bytes[i] = next() * 256;
    } else {
      const seed = seeds[Math.floor(next() * seeds.length)];
      bytes = seed.slice(
        0,
        Math.max(1, Math.floor(next() * (seed.length + 1))),
      );
      const flips = 1 + Math.floor(next() * 3);
      for (let i = 0; i < flips; i++) {
        bytes[Math.floor(next() * bytes.length)] = next() * 256;
      }
    }
    const input = new Uint8Array([...bytes, ...PREAMBLE]);
    const reader = readerOver(input, 1 + Math.floor(next() * 16));
    try {
      const header = await readProxyHeader(reader);
      // Whatever it accepted, it must not have read past the header.
      assert.ok(header.length <= bytes.length + PREAMBLE.length);
      assert.equal(reader.buffered + header.length <= input.length, true);
    } catch (error) {
      assert.ok(
        error instanceof ProtocolError || error instanceof ClosedError,
        `round ${round}: ${error}`,
      );
    }
  }
});
