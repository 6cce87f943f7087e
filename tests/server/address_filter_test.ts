import assert from "node:assert/strict";
import { AddressFilter } from "../../lib/server/address_filter.ts";

Deno.test("AddressFilter.permits() admits everyone without lists", () => {
  const filter = new AddressFilter();
  assert.equal(filter.empty, true);
  assert.equal(filter.permits("192.0.2.1"), true);
  assert.equal(filter.permits("2001:db8::1"), true);
});

Deno.test("AddressFilter.permits() applies allow, then deny, on normalised addresses", () => {
  const filter = new AddressFilter({
    allow: ["10.0.0.0/8", "2001:db8::/32"],
    deny: ["10.6.6.0/24"],
  });
  const cases: [string, boolean][] = [
    ["10.1.2.3", true],
    ["::ffff:10.1.2.3", true],
    ["::FFFF:a01:203", true],
    ["10.6.6.6", false],
    ["::ffff:10.6.6.6", false],
    ["192.0.2.1", false],
    ["2001:DB8::5", true],
    ["not an address", false],
  ];
  for (const [address, expected] of cases) {
    assert.equal(filter.permits(address), expected, address);
  }
});

Deno.test("AddressFilter.update() swaps the lists, keeping the old ones on error", () => {
  const filter = new AddressFilter({ deny: ["127.0.0.2"] });
  assert.equal(filter.permits("127.0.0.2"), false);
  assert.throws(() => filter.update({ deny: ["300.0.0.1"] }), RangeError);
  assert.equal(filter.permits("127.0.0.2"), false);
  filter.update({ deny: [] });
  assert.equal(filter.permits("127.0.0.2"), true);
});
