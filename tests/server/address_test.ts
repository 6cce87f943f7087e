import assert from "node:assert/strict";
import {
  normalizeAddress,
  parseAddressList,
} from "../../lib/server/address.ts";

const CANONICAL_CASES: [input: string, expected: string][] = [
  ["127.0.0.1", "127.0.0.1"],
  ["0.0.0.0", "0.0.0.0"],
  ["255.255.255.255", "255.255.255.255"],
  ["::ffff:10.0.0.1", "10.0.0.1"],
  ["::FFFF:a00:1", "10.0.0.1"],
  ["0:0:0:0:0:ffff:0a00:0001", "10.0.0.1"],
  ["::", "::"],
  ["::1", "::1"],
  ["0:0:0:0:0:0:0:1", "::1"],
  ["1::", "1::"],
  ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
  ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
  // RFC 5952 §4.2.2: a single zero group is not compressed.
  ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
  ["2001:db8::1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
  // §4.2.3: the longest run wins; the first one on a tie.
  ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
  ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
  ["fe80:0:0:0:1:0:0:0", "fe80::1:0:0:0"],
  ["fe80:0:0:1:0:0:0:0", "fe80:0:0:1::"],
  ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
  ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
  ["::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"],
  // An embedded IPv4 tail that is not a mapped address stays IPv6.
  ["::1.2.3.4", "::102:304"],
  ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
  ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"],
  ["::ffff:0:1.2.3.4", "::ffff:0:102:304"],
];

for (const [input, expected] of CANONICAL_CASES) {
  Deno.test(`normalizeAddress() turns "${input}" into "${expected}"`, () => {
    assert.equal(normalizeAddress(input), expected);
  });
}

const GARBAGE = [
  "",
  "localhost",
  "1.2.3",
  "1.2.3.4.5",
  "256.0.0.1",
  "01.2.3.4",
  "1.2.3.04",
  "0x7f.0.0.1",
  "1.2.3.4 ",
  " 1.2.3.4",
  "1.2.3.4:80",
  "1.2.3.-4",
  ":::",
  "1::2::3",
  ":1::2",
  "1::2:",
  ":1:2:3:4:5:6:7",
  "1:2:3:4:5:6:7:",
  "1:2:3:4:5:6:7",
  "1:2:3:4:5:6:7:8:9",
  "1:2:3:4:5:6:7::8",
  "::1:2:3:4:5:6:7:8",
  "12345::",
  "g::1",
  "[::1]",
  "fe80::1%eth0",
  "::1.2.3.4:5",
  "1.2.3.4::",
  "::ffff:1.2.3",
  "::ffff:256.1.1.1",
  "1:2:3:4:5:6:7:1.2.3.4",
  "::1/128",
  "１.2.3.4",
];

Deno.test("normalizeAddress() rejects every malformed address", () => {
  for (const input of GARBAGE) {
    assert.throws(
      () => normalizeAddress(input),
      (error: unknown) =>
        error instanceof RangeError &&
        error.message.startsWith(
          `Cannot parse address ${JSON.stringify(input)}:`,
        ),
      input,
    );
  }
});

Deno.test("normalizeAddress() escapes control characters in its error", () => {
  assert.throws(() => normalizeAddress("1.2.3.4\nforged"), {
    message: 'Cannot parse address "1.2.3.4\\nforged": not an IPv4 or IPv6 ' +
      "address",
  });
});

Deno.test("parseAddressList() matches single addresses exactly", () => {
  const list = parseAddressList(["127.0.0.1", "::1"]);
  assert.equal(list.matches("127.0.0.1"), true);
  assert.equal(list.matches("127.0.0.2"), false);
  assert.equal(list.matches("::1"), true);
  assert.equal(list.matches("0:0:0:0:0:0:0:1"), true);
  assert.equal(list.matches("::2"), false);
});

Deno.test("parseAddressList() matches IPv4 CIDR ranges", () => {
  const list = parseAddressList(["10.0.0.0/8", "192.168.1.128/25"]);
  assert.equal(list.matches("10.0.0.0"), true);
  assert.equal(list.matches("10.255.255.255"), true);
  assert.equal(list.matches("11.0.0.0"), false);
  assert.equal(list.matches("9.255.255.255"), false);
  assert.equal(list.matches("192.168.1.128"), true);
  assert.equal(list.matches("192.168.1.255"), true);
  assert.equal(list.matches("192.168.1.127"), false);
});

Deno.test("parseAddressList() matches IPv6 CIDR ranges", () => {
  const list = parseAddressList(["2001:db8::/32", "fe80::/10"]);
  assert.equal(list.matches("2001:db8::1"), true);
  assert.equal(list.matches("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), true);
  assert.equal(list.matches("2001:db9::"), false);
  assert.equal(list.matches("fe80::1"), true);
  assert.equal(list.matches("febf:ffff::1"), true);
  assert.equal(list.matches("fec0::1"), false);
});

Deno.test("parseAddressList() masks host bits set in a range", () => {
  const list = parseAddressList(["10.1.2.3/8", "2001:db8::1/32"]);
  assert.equal(list.matches("10.200.0.1"), true);
  assert.equal(list.matches("2001:db8:1::"), true);
});

Deno.test("parseAddressList() accepts every prefix length from 0 to the width", () => {
  for (let prefix = 0; prefix <= 32; prefix++) {
    const list = parseAddressList([`255.255.255.255/${prefix}`]);
    assert.equal(list.matches("255.255.255.255"), true, `/${prefix}`);
    assert.equal(list.matches("0.0.0.0"), prefix === 0, `/${prefix}`);
  }
  for (let prefix = 0; prefix <= 128; prefix++) {
    const list = parseAddressList([
      `ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/${prefix}`,
    ]);
    assert.equal(list.matches("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), true);
    assert.equal(list.matches("::"), prefix === 0, `/${prefix}`);
  }
});

Deno.test("parseAddressList() matches a range boundary bit by bit", () => {
  const list = parseAddressList(["172.16.0.0/12"]);
  assert.equal(list.matches("172.31.255.255"), true);
  assert.equal(list.matches("172.32.0.0"), false);
  assert.equal(list.matches("172.15.255.255"), false);
});

Deno.test("parseAddressList() matches the mapped IPv6 form of an IPv4 entry", () => {
  const list = parseAddressList(["10.0.0.0/8", "127.0.0.1"]);
  assert.equal(list.matches("::ffff:10.1.2.3"), true);
  assert.equal(list.matches("::FFFF:a01:203"), true);
  assert.equal(list.matches("::ffff:127.0.0.1"), true);
  assert.equal(list.matches("::ffff:11.0.0.1"), false);
  // Not mapped: the IPv4-compatible form is another address.
  assert.equal(list.matches("::10.1.2.3"), false);
});

Deno.test("parseAddressList() treats a mapped range as the IPv4 range", () => {
  const list = parseAddressList(["::ffff:192.168.0.0/112"]);
  assert.equal(list.matches("192.168.1.1"), true);
  assert.equal(list.matches("192.168.255.255"), true);
  assert.equal(list.matches("192.169.0.0"), false);
  assert.equal(list.matches("::ffff:192.168.3.4"), true);
});

Deno.test("parseAddressList() keeps IPv4 out of IPv6 ranges that exclude it", () => {
  const list = parseAddressList(["2001:db8::/32", "::1"]);
  assert.equal(list.matches("127.0.0.1"), false);
  assert.equal(list.matches("0.0.0.1"), false);
});

Deno.test("parseAddressList() returns false for garbage candidates", () => {
  const list = parseAddressList(["0.0.0.0/0", "::/0"]);
  for (const input of GARBAGE) assert.equal(list.matches(input), false, input);
  assert.equal(list.matches("1.2.3.4"), true);
});

Deno.test("parseAddressList() with no entries matches nothing", () => {
  assert.equal(parseAddressList([]).matches("127.0.0.1"), false);
});

const BAD_ENTRIES: [entry: string, reason: string][] = [
  ["", "not an IPv4 or IPv6 address"],
  ["example.com", "not an IPv4 or IPv6 address"],
  ["10.0.0.0/", "prefix length must be 0 to 32"],
  ["10.0.0.0/8/8", "prefix length must be 0 to 32"],
  ["10.0.0.0/-1", "prefix length must be 0 to 32"],
  ["10.0.0.0/1a", "prefix length must be 0 to 32"],
  ["10.0.0.0/ 8", "prefix length must be 0 to 32"],
  ["10.0.0.0/33", "prefix length 33 exceeds 32"],
  ["::/129", "prefix length 129 exceeds 128"],
  ["::/1000", "prefix length must be 0 to 128"],
  ["/8", "not an IPv4 or IPv6 address"],
  ["10.0.0/8", "not an IPv4 or IPv6 address"],
];

Deno.test("parseAddressList() rejects each bad entry with its reason", () => {
  for (const [entry, reason] of BAD_ENTRIES) {
    assert.throws(
      () => parseAddressList(["127.0.0.1", entry]),
      (error: unknown) =>
        error instanceof RangeError &&
        error.message ===
          `Cannot parse address ${JSON.stringify(entry)}: ${reason}`,
      entry,
    );
  }
});
