import assert from "node:assert/strict";
import { openChannel } from "../../lib/wire/channel.ts";
import type { SessionKeys } from "../../lib/wire/key_schedule.ts";
import {
  answerLiveness,
  livenessVerdict,
  PEER_TIMEOUT_INTERVALS,
  PING_BODY_BYTES,
  sendPing,
  unresponsiveReason,
} from "../../lib/wire/liveness.ts";
import { ProtocolError } from "../../lib/errors.ts";
import { RecordKind } from "../../lib/wire/protocol.ts";
import { framed, seededBytes, tcpPair } from "../helpers.ts";

const KEYS: SessionKeys = {
  clientToServer: seededBytes(31, 32),
  serverToClient: seededBytes(32, 32),
  transcriptHash: new Uint8Array(32),
  channelBinding: new Uint8Array(32),
};

Deno.test("livenessVerdict() pings after one silent interval, once per interval, and gives up after three", () => {
  const intervalMs = 1000;
  const cases: [number, number, number, string][] = [
    // heardAt, pingedAt, now → verdict
    [0, 0, 999, "alive"],
    [0, 0, 1000, "ping"],
    [0, 1000, 1500, "alive"], // pinged half an interval ago
    [0, 1000, 2000, "ping"], // a second ping, one interval later
    [0, 2000, 2999, "alive"],
    [0, 2000, 3000, "unresponsive"], // 3 intervals of silence
    [2500, 2000, 3000, "alive"], // heard the pong
    [0, 0, 5000, "unresponsive"],
  ];
  for (const [heardAt, pingedAt, now, verdict] of cases) {
    assert.equal(
      livenessVerdict({ heardAt, pingedAt }, { now, intervalMs }),
      verdict,
      JSON.stringify({ heardAt, pingedAt, now }),
    );
  }
  assert.equal(PEER_TIMEOUT_INTERVALS, 3);
});

Deno.test("livenessVerdict() with interval 0 never pings and never gives up", () => {
  assert.equal(
    livenessVerdict({ heardAt: 0, pingedAt: 0 }, { now: 1e12, intervalMs: 0 }),
    "alive",
  );
});

Deno.test("unresponsiveReason() names the silence and the interval count", () => {
  assert.equal(
    unresponsiveReason(30_000),
    "peer unresponsive: nothing heard for 90 s (3 ping intervals)",
  );
});

Deno.test("answerLiveness() answers a ping with a pong of the same 8 bytes and swallows a pong", async () => {
  await using pair = await tcpPair();
  const client = openChannel(framed(pair.client), KEYS, { role: "client" });
  const server = openChannel(framed(pair.server), KEYS, { role: "server" });
  sendPing(client, 0x0102_0304_0506);
  const ping = await server.receive();
  assert.equal(ping?.kind, RecordKind.ping);
  assert.deepEqual([...ping!.body], [0, 0, 1, 2, 3, 4, 5, 6]);
  assert.equal(answerLiveness(server, ping!), true);
  const pong = await client.receive();
  assert.equal(pong?.kind, RecordKind.pong);
  assert.deepEqual([...pong!.body], [0, 0, 1, 2, 3, 4, 5, 6]);
  assert.equal(answerLiveness(client, pong!), true);
  assert.equal(
    answerLiveness(client, { kind: RecordKind.push, body: new Uint8Array(1) }),
    false,
  );
  client.abort();
  server.abort();
});

Deno.test("answerLiveness() rejects a ping or pong whose body is not 8 bytes", () => {
  for (const kind of [RecordKind.ping, RecordKind.pong]) {
    for (const length of [0, 7, 9]) {
      assert.throws(
        () =>
          answerLiveness({} as never, { kind, body: new Uint8Array(length) }),
        ProtocolError,
      );
    }
  }
  assert.equal(PING_BODY_BYTES, 8);
});
