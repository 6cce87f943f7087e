/**
 * Liveness end to end (docs/PROTOCOL.md): the server pings quiet
 * clients from its one sweeper and closes an unresponsive one with code 11;
 * a client that answers stays however quiet; the client pings a quiet
 * server and gives up on a silent one; the idle timeout is off by default
 * and counts messages in either direction.
 *
 * @module
 */

import assert from "node:assert/strict";
import { connect } from "../../lib/client/connect.ts";
import { openChannel } from "../../lib/wire/channel.ts";
import { FrameReader } from "../../lib/wire/framing.ts";
import { handshakeAsServer } from "../../lib/wire/handshake.ts";
import { ClosedError } from "../../lib/errors.ts";
import { resolveServeOptions } from "../../lib/server/serve_options.ts";
import { randomBytes } from "../../lib/wire/crypto.ts";
import { CloseCode, RecordKind } from "../../lib/wire/protocol.ts";
import { PING_BODY_BYTES } from "../../lib/wire/liveness.ts";
import {
  delay,
  rawChannel,
  startTestServer,
} from "../fixtures/server_fixture.ts";
import { closeQuietly } from "../helpers.ts";

const INTERVAL_MS = 100; // generous: a stalled test process must not look dead
const decoder = new TextDecoder();

Deno.test("serve() pings a quiet client that answers, and keeps it past many intervals", async () => {
  await using ts = await startTestServer({ pingIntervalMs: INTERVAL_MS });
  await using raw = await rawChannel(ts.port, ts.psk);
  let pings = 0;
  while (pings < 8) { // 8 pings: well past 3 intervals of quiet
    const record = await raw.channel.receive();
    assert.equal(record?.kind, RecordKind.ping);
    assert.equal(record.body.length, PING_BODY_BYTES);
    raw.channel.send(RecordKind.pong, record.body.slice());
    pings++;
  }
  raw.channel.send(
    RecordKind.message,
    Uint8Array.of(0, 0, 0, 1),
    Uint8Array.of(0x68, 0x69),
  );
  // Pings may still arrive before the reply.
  for (let i = 0; i < 20; i++) {
    const record = await raw.channel.receive();
    if (record?.kind === RecordKind.ping) {
      raw.channel.send(RecordKind.pong, record.body.slice());
      continue;
    }
    assert.equal(record?.kind, RecordKind.reply);
    assert.equal(decoder.decode(record.body.subarray(4)), "hi");
    break;
  }
  assert.equal(ts.events("closed").length, 0);
});

Deno.test("serve() closes a client that answers nothing with code 11 after 3 intervals", async () => {
  await using ts = await startTestServer({ pingIntervalMs: INTERVAL_MS });
  await using raw = await rawChannel(ts.port, ts.psk);
  let pings = 0;
  for (let i = 0; i < 20; i++) {
    const record = await raw.channel.receive();
    if (record === null) break;
    assert.equal(record.kind, RecordKind.ping);
    pings++;
  }
  assert.ok(pings >= 1 && pings <= 3, `pings: ${pings}`);
  assert.deepEqual(raw.channel.closeInfo, {
    code: CloseCode.peerUnresponsive,
    reason: "peer unresponsive: nothing heard for 0.3 s (3 ping intervals)",
  });
  assert.match(String(ts.events("closed")[0]?.reason), /peer unresponsive/);
});

Deno.test("connect() answers the server's pings: a quiet client stays connected", async () => {
  await using ts = await startTestServer({ pingIntervalMs: INTERVAL_MS });
  const conn = await ts.connect({ pingIntervalMs: 0 });
  await delay(INTERVAL_MS * 8); // pacing: many intervals of quiet
  assert.equal(decoder.decode(await conn.request("still here")), "still here");
  assert.equal(ts.events("closed").length, 0);
});

/** A server that holds the key, finishes the handshake, then plays dead. */
function startSilentServer(psk: Uint8Array) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const heard = (async () => {
    const conn = await listener.accept();
    listener.close();
    const kinds: number[] = [];
    let close = null;
    try {
      const framed = { conn, reader: new FrameReader(conn) };
      const keys = await handshakeAsServer(framed, psk);
      const channel = openChannel(framed, keys, { role: "server" });
      for (let i = 0; i < 20; i++) {
        const record = await channel.receive().catch(() => null);
        if (record === null) break;
        kinds.push(record.kind); // never answered
      }
      close = channel.closeInfo;
    } finally {
      closeQuietly(conn);
    }
    return { kinds, close };
  })();
  return { port: listener.addr.port, heard };
}

Deno.test("connect() pings a silent server and closes it with code 11 after 3 intervals", async () => {
  const psk = randomBytes(32);
  const server = startSilentServer(psk);
  const conn = await connect({
    port: server.port,
    psk,
    pingIntervalMs: INTERVAL_MS,
  });
  const sent = conn.send("anyone there?");
  await assert.rejects(sent, (error: Error) => {
    assert.ok(error instanceof ClosedError);
    assert.match(error.message, /^Server unresponsive: peer unresponsive/);
    return true;
  });
  assert.equal(await conn.closed, null);
  const { kinds, close } = await server.heard;
  assert.equal(kinds[0], RecordKind.message);
  assert.ok(kinds.slice(1).every((kind) => kind === RecordKind.ping));
  assert.ok(kinds.length >= 2, `records: ${kinds}`);
  assert.equal(close?.code, CloseCode.peerUnresponsive);
});

Deno.test("serve() has no idle timeout by default", () => {
  const settings = resolveServeOptions({ psk: randomBytes(32) });
  assert.equal(settings.idleTimeoutMs, 0);
  assert.equal(settings.pingIntervalMs, 30_000);
});

Deno.test("serve()'s idle timeout counts messages the server sends too", async () => {
  const idleMs = 200;
  const pushes = 12; // 12 × 50 ms: three times the idle timeout
  await using ts = await startTestServer({
    idleTimeoutMs: idleMs,
    handler: async (session) => {
      for (let i = 0; i < pushes; i++) {
        session.push(`tick ${i}`);
        await delay(50);
      }
      await session.closed;
    },
  });
  const conn = await ts.connect({ pingIntervalMs: 0 });
  const received: string[] = [];
  for await (const push of conn) {
    received.push(decoder.decode(push));
    if (received.length === pushes) break;
  }
  assert.equal(received.length, pushes);
  // Then, with no message either way, the idle timeout applies.
  assert.equal((await conn.closed)?.code, CloseCode.idleTimeout);
});

Deno.test("serve() does not judge a client while its handler holds a message (it is not reading)", async () => {
  await using ts = await startTestServer({
    pingIntervalMs: INTERVAL_MS,
    handler: async (session) => {
      for await (const message of session) {
        await delay(INTERVAL_MS * 6); // pacing: twice the give-up time
        message.reply(message.data);
      }
    },
  });
  const conn = await ts.connect({ pingIntervalMs: 0 });
  assert.equal(decoder.decode(await conn.request("slow")), "slow");
  assert.equal(ts.events("closed").length, 0);
});
