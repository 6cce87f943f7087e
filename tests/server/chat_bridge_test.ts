import assert from "node:assert/strict";
import type { Connection } from "../../lib/client/connection.ts";
import type { LogEvent } from "../../lib/server/log.ts";
import { createChatService } from "../../lib/services/chat.ts";
import {
  connectChatBridge,
  parseBrokerUrl,
} from "../../lib/server/chat_bridge.ts";
import { startTestServer, waitFor } from "../fixtures/server_fixture.ts";
import {
  freePort,
  skipWithout,
  startNats,
} from "../fixtures/external_fixture.ts";

const decoder = new TextDecoder();

function listen(connection: Connection): string[] {
  const lines: string[] = [];
  (async () => {
    for await (const push of connection) lines.push(decoder.decode(push));
  })().catch(() => {});
  return lines;
}

Deno.test("parseBrokerUrl() accepts nats://HOST:PORT only", () => {
  assert.equal(parseBrokerUrl("nats://127.0.0.1:4222"), "127.0.0.1:4222");
  assert.equal(parseBrokerUrl("nats://broker.lan:4222"), "broker.lan:4222");
  for (
    const bad of ["127.0.0.1:4222", "nats://h", "nats://h:99999", "http://h:1"]
  ) {
    assert.throws(() => parseBrokerUrl(bad), RangeError, bad);
  }
});

Deno.test({
  name:
    "chat through NATS: clients on two servers see each other, joins and leaves, in order; a broker restart loses only lines sent while it was down",
  ignore: skipWithout("nats-server"),
  async fn() {
    const natsPort = freePort();
    let nats = await startNats(natsPort);
    // Stops whichever nats-server runs last, even when a step below throws.
    await using _stopNats = { [Symbol.asyncDispose]: () => nats.stop() };
    const events: LogEvent[] = [];
    const logger = { log: (event: LogEvent) => void events.push(event) };
    const url = `nats://127.0.0.1:${natsPort}`;
    await using bridgeA = connectChatBridge({
      url,
      logger,
      reconnectWaitMs: 100,
    });
    await using bridgeB = connectChatBridge({
      url,
      logger,
      reconnectWaitMs: 100,
    });
    await Promise.all([bridgeA.ready(), bridgeB.ready()]);
    const users = { alex: "alex pw", bob: "bob pw" };
    await using serverA = await startTestServer({
      handler: createChatService({ bridge: bridgeA }),
      users,
    });
    await using serverB = await startTestServer({
      handler: createChatService({ bridge: bridgeB }),
      users,
    });
    try {
      const alex = await serverA.connect({ user: "alex", password: "alex pw" });
      const alexHears = listen(alex);
      const bob = await serverB.connect({ user: "bob", password: "bob pw" });
      const bobHears = listen(bob);
      assert.ok(await waitFor(() => alexHears.includes("* bob joined")));
      for (let i = 0; i < 20; i++) await alex.send(`line ${i}`);
      await bob.send("hi alex");
      assert.ok(await waitFor(() => bobHears.length >= 20));
      assert.deepEqual(
        bobHears.slice(0, 20),
        Array.from({ length: 20 }, (_, i) => `alex: line ${i}`),
      );
      assert.ok(await waitFor(() => alexHears.includes("bob: hi alex")));

      await nats.stop();
      assert.ok(await waitFor(() => !bridgeA.connected && !bridgeB.connected));
      await alex.send("while down");
      await bob.send("local still works");
      nats = await startNats(natsPort);
      assert.ok(
        await waitFor(() => bridgeA.connected && bridgeB.connected, {
          tries: 300,
          everyMs: 50,
        }),
      );
      await alex.send("after restart");
      assert.ok(await waitFor(() => bobHears.includes("alex: after restart")));
      assert.equal(bobHears.includes("alex: while down"), false);
      assert.ok(
        events.some((e) =>
          e.event === "broker" && e.reason?.startsWith("disconnected")
        ),
      );
      assert.ok(
        events.some((e) => e.event === "broker" && e.reason === "reconnected"),
      );
      await bob.close();
      assert.ok(await waitFor(() => alexHears.includes("* bob left")));
      await alex.close();
    } finally {
      await nats.stop();
    }
  },
});
