import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import {
  addressListFlag,
  hostPort,
  SCALEOUT_OPTIONS,
  setupScaleout,
} from "../../lib/cli/serve_scaleout.ts";
import { silentLogger } from "../../lib/server/log.ts";

const context = { args: [], logger: silentLogger, specs: SCALEOUT_OPTIONS };

Deno.test("addressListFlag() splits commas, repeats and blanks, and checks each entry", () => {
  assert.deepEqual(
    addressListFlag({ allow: ["10.0.0.0/8, ::1", "", "192.0.2.1"] }, "allow"),
    ["10.0.0.0/8", "::1", "192.0.2.1"],
  );
  assert.throws(
    () => addressListFlag({ deny: ["300.0.0.1"] }, "deny"),
    (error: Error) =>
      error instanceof UsageError &&
      error.message.startsWith("Cannot use --deny: "),
  );
});

Deno.test("hostPort() reads HOST:PORT and [IPv6]:PORT", () => {
  assert.deepEqual(hostPort("127.0.0.1:9100", "--metrics"), {
    hostname: "127.0.0.1",
    port: 9100,
  });
  assert.deepEqual(hostPort("[::1]:0", "--metrics"), {
    hostname: "::1",
    port: 0,
  });
  for (const bad of ["9100", "host:", "host:70000", "a b:1"]) {
    assert.throws(() => hostPort(bad, "--metrics"), UsageError, bad);
  }
});

Deno.test("setupScaleout() refuses bad scale-out flags with a UsageError", () => {
  const bad = [
    { metrics: "nowhere" },
    { broker: "http://127.0.0.1:4222" },
    { "broker-penalties": true },
    { "proxy-protocol-from": ["not-an-address"] },
  ];
  for (const values of bad) {
    assert.throws(
      () => setupScaleout(values, context),
      UsageError,
      JSON.stringify(values),
    );
  }
});

Deno.test("setupScaleout() without scale-out flags changes nothing in serve()", async () => {
  const scaleout = setupScaleout({}, context);
  assert.deepEqual(scaleout.options, {
    proxyProtocolFrom: [],
    addressFilter: null,
    metrics: null,
    reusePort: false,
    penaltyShare: null,
  });
  await scaleout.close();
});
