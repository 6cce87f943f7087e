import assert from "node:assert/strict";
import { serve, type ServeOptions } from "../../lib/server/serve.ts";
import { resolveServeOptions } from "../../lib/server/serve_options.ts";

const psk = new TextEncoder().encode("a shared secret of 16+ bytes");

/** A port that was free a moment ago. */
function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/** Each bad option, and the option name its error must give. */
const BAD_OPTIONS: [Partial<ServeOptions>, string][] = [
  [{ penaltyExempt: ["x"] }, "penaltyExempt"],
  [{ penaltyExempt: ["10.0.0.0/33"] }, "penaltyExempt"],
  [{ maxConnections: 1.5 }, "maxConnections"],
  [{ maxConnections: 0 }, "maxConnections"],
  [{ maxStartups: -1 }, "maxStartups"],
  [{ maxStartups: "10:30:5" }, "maxStartups"],
  [{ maxStartupsPerSource: 0 }, "maxStartupsPerSource"],
  [{ maxLoginsPerSource: 1.5 }, "maxLoginsPerSource"],
  [{ maxSessionsPerUser: 0 }, "maxSessionsPerUser"],
  [{ maxSessionsPerSource: -1 }, "maxSessionsPerSource"],
  [{ maxTotalQueueBytes: 0 }, "maxTotalQueueBytes"],
  [{ handshakeTimeoutMs: 0 }, "handshakeTimeoutMs"],
  [{ pingIntervalMs: -1 }, "pingIntervalMs"],
  [{ proxyProtocolFrom: ["not an address"] }, "proxyProtocolFrom"],
  [{ serverSecret: new Uint8Array(4) }, "serverSecret"],
  [{ penaltyBaseMs: -1 }, "penaltyBaseMs"],
  [{ penaltyCapMs: -5 }, "penaltyCapMs"],
  [{ penaltyCapMs: Number.NaN }, "penaltyCapMs"],
  [{ idleTimeoutMs: -1 }, "idleTimeoutMs"],
  [{ loginTimeoutMs: 0 }, "loginTimeoutMs"],
  [{ loginTimeoutMs: 3_000_000_000 }, "loginTimeoutMs"],
  [{ shutdownTimeoutMs: Infinity }, "shutdownTimeoutMs"],
  [{ maxQueueBytes: 0 }, "maxQueueBytes"],
  [{ maxMessageBytes: 17 * 1024 * 1024 }, "maxMessageBytes"],
  [{ iterations: 10 }, "iterations"],
  [{ psk: new Uint8Array(4) }, "pre-shared key"],
];

Deno.test("serve() checks every option before it binds the port, naming serve's option", () => {
  for (const [bad, name] of BAD_OPTIONS) {
    const port = freePort();
    assert.throws(
      () => serve({ psk, port, ...bad }, () => {}),
      (error: Error) =>
        error instanceof RangeError &&
        error.message.startsWith("Cannot serve: ") &&
        error.message.includes(name),
      JSON.stringify(bad),
    );
    // The port is free again: serve() never bound it.
    using again = Deno.listen({ hostname: "127.0.0.1", port });
    assert.equal(again.addr.port, port);
  }
});

Deno.test("resolveServeOptions() rejects a port out of range and a non-array penaltyExempt", () => {
  assert.throws(() => resolveServeOptions({ psk, port: 70_000 }), /port/);
  assert.throws(
    () =>
      resolveServeOptions({
        psk,
        penaltyExempt: "10.0.0.0/8" as unknown as string[],
      }),
    /penaltyExempt/,
  );
});

Deno.test("resolveServeOptions() accepts the defaults and valid values", () => {
  const settings = resolveServeOptions({
    psk,
    penaltyExempt: ["127.0.0.1", "10.0.0.0/8"],
    idleTimeoutMs: 0,
    penaltyBaseMs: 0,
  });
  assert.equal(settings.maxConnections, 10_000);
  assert.deepEqual(settings.penaltyExempt, ["127.0.0.1", "10.0.0.0/8"]);
});
