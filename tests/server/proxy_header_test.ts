import assert from "node:assert/strict";
import { toHex } from "../../lib/wire/bytes.ts";
import {
  encodeProxyV2Header,
  PROXY_TLV_KEY_ID,
  PROXY_TLV_USER,
} from "../../lib/server/proxy_header.ts";
import { parseProxyV2 } from "../fixtures/tunnel_backend.ts";

Deno.test("encodeProxyV2Header(): IPv4, user and key id, byte for byte", () => {
  const header = encodeProxyV2Header({
    source: { hostname: "192.0.2.7", port: 50000 },
    destination: { hostname: "127.0.0.1", port: 6379 },
    user: "alice",
    keyId: "k1",
  });
  assert.equal(
    toHex(header),
    "0d0a0d0a000d0a515549540a" + // signature
      "21" + "11" + "0019" + // v2 PROXY, TCP over IPv4, 25 bytes follow
      "c0000207" + "7f000001" + "c350" + "18eb" + // addresses and ports
      "e00005616c696365" + // TLV 0xE0 "alice"
      "e100026b31", // TLV 0xE1 "k1"
  );
});

Deno.test("encodeProxyV2Header(): IPv6 (or mixed) addresses use family 0x21, and parse back", () => {
  const header = encodeProxyV2Header({
    source: { hostname: "2001:db8::1", port: 1 },
    destination: { hostname: "127.0.0.1", port: 2 },
    user: null,
  });
  const parsed = parseProxyV2(header);
  assert.ok(parsed);
  assert.equal(parsed.length, header.length);
  assert.equal(parsed.header.family, 0x21);
  assert.equal(parsed.header.sourceAddress, "2001:db8:0:0:0:0:0:1");
  assert.equal(parsed.header.destinationAddress, "0:0:0:0:0:ffff:7f00:1");
  assert.equal(parsed.header.sourcePort, 1);
  assert.equal(parsed.header.tlvs.size, 0);
  const withIds = parseProxyV2(encodeProxyV2Header({
    source: { hostname: "::ffff:10.0.0.1", port: 3 },
    destination: { hostname: "10.0.0.2", port: 4 },
    user: "ünï",
    keyId: "laptop",
  }));
  assert.equal(withIds?.header.family, 0x11);
  assert.equal(withIds?.header.sourceAddress, "10.0.0.1");
  assert.equal(withIds?.header.tlvs.get(PROXY_TLV_USER), "ünï");
  assert.equal(withIds?.header.tlvs.get(PROXY_TLV_KEY_ID), "laptop");
});

Deno.test("encodeProxyV2Header() refuses a host name and a TLV over 255 bytes", () => {
  assert.throws(() =>
    encodeProxyV2Header({
      source: { hostname: "localhost", port: 1 },
      destination: { hostname: "127.0.0.1", port: 2 },
    }), RangeError);
  assert.throws(() =>
    encodeProxyV2Header({
      source: { hostname: "127.0.0.1", port: 1 },
      destination: { hostname: "127.0.0.1", port: 2 },
      user: "x".repeat(256),
    }), RangeError);
});
