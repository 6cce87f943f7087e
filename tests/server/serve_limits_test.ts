import assert from "node:assert/strict";
import { utf8 } from "../../lib/wire/bytes.ts";
import { connect } from "../../lib/client/connect.ts";
import {
  ClosedError,
  ConnectionError,
  KeyRejectedError,
  RefusedError,
} from "../../lib/errors.ts";
import { encodePreamble } from "../../lib/wire/key_schedule.ts";
import { CloseCode, RecordKind } from "../../lib/wire/protocol.ts";
import {
  delay,
  rawChannel,
  rawConnect,
  readUntilClosed,
  startTestServer,
  type TestServer,
  text,
  waitFor,
} from "../fixtures/server_fixture.ts";

/** How a connection attempt ended: connected, or the error class name. */
async function attempt(
  ts: TestServer,
  psk: Uint8Array = ts.psk,
): Promise<"connected" | "refused" | "key rejected"> {
  try {
    const client = await connect({ port: ts.port, psk });
    await client.close();
    return "connected";
  } catch (error) {
    if (error instanceof KeyRejectedError) return "key rejected";
    // A refused connection is closed before the handshake: the client sees
    // the end of the stream or a reset, depending on timing.
    if (
      error instanceof RefusedError || error instanceof ClosedError ||
      error instanceof ConnectionError
    ) {
      return "refused";
    }
    throw error;
  }
}

// --- Connection caps ---

Deno.test("serve() refuses a connection past maxConnections at once, and admits again once one closes", async () => {
  await using ts = await startTestServer({ maxConnections: 2 });
  const a = await ts.connect();
  const b = await ts.connect();
  assert.equal(text(await a.request("a")), "a");
  assert.equal(text(await b.request("b")), "b");
  assert.equal(await attempt(ts), "refused");
  assert.deepEqual(ts.events("limit").map((e) => e.reason), [
    "max connections (2)",
  ]);
  assert.deepEqual(ts.events("refused").map((e) => e.reason), [
    "max connections (2)",
  ]);
  assert.equal(text(await b.request("b still")), "b still");
  await a.close();
  assert.ok(await waitFor(() => ts.server.connections === 1));
  assert.equal(await attempt(ts), "connected");
});

Deno.test("serve() refuses new connections while maxStartups are stuck in the handshake", async () => {
  await using ts = await startTestServer({ maxStartups: 2 });
  const established = await ts.connect();
  assert.equal(text(await established.request("in")), "in");
  {
    // Two connections that never speak hold both startup slots.
    await using _stuck1 = await rawConnect(ts.port);
    await using _stuck2 = await rawConnect(ts.port);
    assert.ok(await waitFor(() => ts.events("accepted").length === 3));
    assert.equal(await attempt(ts), "refused");
    assert.deepEqual(ts.events("limit").map((e) => e.reason), [
      "max startups (2)",
    ]);
    // Established sessions do not hold startup slots.
    assert.equal(text(await established.request("still")), "still");
  }
  assert.ok(await waitFor(() => ts.server.connections === 1));
  assert.equal(await attempt(ts), "connected");
});

// --- Login deadline ---

Deno.test("serve() closes a silent client at the login deadline", async () => {
  await using ts = await startTestServer({ loginTimeoutMs: 200 });
  await using conn = await rawConnect(ts.port);
  const result = await readUntilClosed(conn);
  assert.ok(result.ended);
  // The server's preamble, then one failure frame (4 + 1 bytes).
  assert.equal(result.bytes, encodePreamble().length + 5);
  assert.ok(await waitFor(() => ts.events("handshake_failed").length === 1));
  assert.match(ts.events("handshake_failed")[0].reason ?? "", /deadline/);
  assert.ok(await waitFor(() => ts.server.connections === 0));
});

Deno.test("serve() closes a slowloris client that sends one byte at a time before it finishes", async () => {
  await using ts = await startTestServer({ loginTimeoutMs: 300 });
  await using conn = await rawConnect(ts.port);
  // A well-formed preamble and ClientHello: 8 + 4 + 65 bytes.
  const hello = Uint8Array.of(
    ...encodePreamble(),
    0,
    0,
    0,
    65,
    1,
    ...new Uint8Array(64).fill(9),
  );
  let closed = false;
  const reading = readUntilClosed(conn).then((result) => {
    closed = result.ended;
  });
  let sent = 0;
  while (sent < hello.length && !closed) {
    try {
      await conn.write(hello.subarray(sent, sent + 1));
    } catch {
      break;
    }
    sent++;
    await delay(40);
  }
  await reading;
  assert.ok(closed);
  assert.ok(sent < hello.length, `sent all ${sent} bytes before the close`);
  assert.match(ts.events("handshake_failed")[0]?.reason ?? "", /deadline/);
});

Deno.test("serve() closes a client that finishes the handshake but never logs in, at the deadline", async () => {
  await using ts = await startTestServer({
    loginTimeoutMs: 300,
    users: { alex: "alex password" },
  });
  await using raw = await rawChannel(ts.port, ts.psk);
  await assert.rejects(raw.channel.receive(), ClosedError);
  assert.ok(await waitFor(() => ts.events("handshake_failed").length === 1));
  assert.match(
    ts.events("handshake_failed")[0].reason ?? "",
    /login: client too slow/,
  );
  assert.equal(ts.events("authenticated").length, 1);
  assert.equal(ts.events("login_succeeded").length, 0);
});

// --- Idle timeout ---

Deno.test("serve() closes an idle session with idleTimeout", async () => {
  await using ts = await startTestServer({ idleTimeoutMs: 200 });
  const client = await ts.connect();
  assert.equal(text(await client.request("once")), "once");
  const info = await client.closed;
  assert.equal(info?.code, CloseCode.idleTimeout);
  assert.equal(info?.reason, "idle timeout");
  assert.ok(await waitFor(() => ts.events("closed").length === 1));
  assert.equal(ts.events("closed")[0].reason, "idle timeout");
  await assert.rejects(client.send("too late"), ClosedError);
});

Deno.test("serve() with idleTimeoutMs 0 never closes an idle session", async () => {
  await using ts = await startTestServer({ idleTimeoutMs: 0 });
  const client = await ts.connect();
  assert.equal(text(await client.request("first")), "first");
  await delay(100);
  assert.equal(text(await client.request("second")), "second");
});

// --- Message size ---

Deno.test("serve() closes a client that sends more than maxMessageBytes with messageTooLarge", async () => {
  await using ts = await startTestServer({ maxMessageBytes: 1024 });
  const client = await ts.connect({ maxMessageBytes: 1 << 20 });
  const largest = "a".repeat(1024);
  assert.equal(text(await client.request(largest)), largest);
  await assert.rejects(
    client.send("b".repeat(1025)),
    (error: Error) => {
      assert.ok(error instanceof ClosedError, String(error));
      assert.match(error.message, /message larger than 1024 bytes/);
      return true;
    },
  );
  const info = await client.closed;
  assert.equal(info?.code, CloseCode.messageTooLarge);
  const other = await ts.connect();
  assert.equal(text(await other.request("small")), "small");
});

// --- Bounded outgoing queue ---

Deno.test("Session.push() closes a client that does not read once maxQueueBytes are queued, with tooSlow", async () => {
  const chunk = new Uint8Array(32 * 1024).fill(7);
  const flooded = Promise.withResolvers<number>();
  await using ts = await startTestServer({
    maxQueueBytes: 64 * 1024,
    handler: async (session) => {
      for await (const _message of session) {
        let pushed = 0;
        // Bounded: the kernel buffers hold a few MiB at most.
        while (pushed < 20_000 && session.push(chunk)) {
          pushed++;
          await delay(0);
        }
        flooded.resolve(pushed);
      }
    },
  });
  await using raw = await rawChannel(ts.port, ts.psk);
  raw.channel.maxRecordBytes = 1 << 20;
  raw.channel.send(RecordKind.message, Uint8Array.of(0, 0, 0, 1), utf8("go"));
  const pushed = await flooded.promise;
  assert.ok(pushed < 20_000, "the queue bound was never hit");
  // Now drain: every push that was accepted, then the close.
  let received = 0;
  for (let i = 0; i <= pushed; i++) {
    const record = await raw.channel.receive();
    if (record === null) break;
    assert.equal(record.kind, RecordKind.push);
    assert.equal(record.body.length, chunk.length);
    received++;
  }
  assert.equal(received, pushed);
  assert.equal(raw.channel.closeInfo?.code, CloseCode.tooSlow);
  assert.match(raw.channel.closeInfo?.reason ?? "", /too slow/);
  assert.ok(await waitFor(() => ts.events("closed").length === 1));
  assert.match(ts.events("closed")[0].reason ?? "", /too slow/);
});

// --- Penalties ---

Deno.test("serve() refuses an address after repeated wrong-key attempts, only until the penalty cap", async () => {
  const capMs = 1000;
  await using ts = await startTestServer({
    penaltyBaseMs: 20,
    penaltyCapMs: capMs,
  });
  const wrongKey = new Uint8Array(32).fill(1);
  const outcomes: string[] = [];
  for (let i = 0; i < 40 && !outcomes.includes("refused"); i++) {
    outcomes.push(await attempt(ts, wrongKey));
  }
  assert.deepEqual(outcomes.slice(0, 3), [
    "key rejected",
    "key rejected",
    "key rejected",
  ]);
  assert.equal(outcomes.at(-1), "refused");
  const penalties = ts.events("penalty");
  assert.equal(penalties[0].reason, "delaying");
  assert.ok(penalties.some((e) => e.reason === "refusing address"));
  assert.ok(penalties.every((e) => e.address === "127.0.0.1"));
  assert.ok(penalties.every((e) => (e.ms ?? 0) <= capMs));
  assert.match(ts.events("refused")[0].reason ?? "", /^penalty: \d+ s left$/);
  // The refusal lasts at most the cap; then the right key gets in.
  assert.ok(
    await waitFor(async () => await attempt(ts) === "connected", {
      tries: 100,
      everyMs: 100,
    }),
    "still refused long after the cap",
  );
});

Deno.test("serve() never penalises an exempt address", async () => {
  await using ts = await startTestServer({
    penaltyBaseMs: 20,
    penaltyCapMs: 60_000,
    penaltyExempt: ["127.0.0.1"],
  });
  const wrongKey = new Uint8Array(32).fill(1);
  for (let i = 0; i < 8; i++) {
    assert.equal(await attempt(ts, wrongKey), "key rejected");
  }
  assert.equal(await attempt(ts), "connected");
  assert.deepEqual(ts.events("penalty"), []);
  assert.deepEqual(ts.events("refused"), []);
  assert.equal(ts.events("handshake_failed").length, 8);
});

Deno.test("serve() never penalises an address inside an exempt CIDR range", async () => {
  await using ts = await startTestServer({
    penaltyBaseMs: 20,
    penaltyExempt: ["127.0.0.0/8"],
  });
  const wrongKey = new Uint8Array(32).fill(2);
  for (let i = 0; i < 5; i++) {
    assert.equal(await attempt(ts, wrongKey), "key rejected");
  }
  assert.deepEqual(ts.events("penalty"), []);
  assert.equal(await attempt(ts), "connected");
});
