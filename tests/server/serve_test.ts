import assert from "node:assert/strict";
import { utf8 } from "../../lib/wire/bytes.ts";
import { connect } from "../../lib/client/connect.ts";
import { ClosedError, ConnectionError } from "../../lib/errors.ts";
import { encodeFrame } from "../../lib/wire/framing.ts";
import { encodePreamble } from "../../lib/wire/key_schedule.ts";
import { CloseCode, RecordKind } from "../../lib/wire/protocol.ts";
import { serve } from "../../lib/server/serve.ts";
import type { Session } from "../../lib/server/session.ts";
import {
  rawChannel,
  rawConnect,
  readUntilClosed,
  startTestServer,
  waitFor,
} from "../fixtures/server_fixture.ts";

const decoder = new TextDecoder();
const text = (bytes: Uint8Array | null) =>
  bytes === null ? null : decoder.decode(bytes);

Deno.test("serve() answers 300 concurrent echo clients, every reply intact and in order", async () => {
  await using ts = await startTestServer({
    maxStartups: 1000,
    maxStartupsPerSource: 1000,
    // One deadline for handshake and login, as before the split: 300
    // handshakes at once on a loaded machine may take more than 5 s.
    handshakeTimeoutMs: 10_000,
  });
  const clients = 300;
  const perClient = 5;
  const results = await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const client = await ts.connect({ timeoutMs: 60_000 });
      const messages = Array.from(
        { length: perClient },
        (_, j) => `client ${i} message ${j} ${"x".repeat((i * 7 + j) % 100)}`,
      );
      // Pipelined: all sent before any reply is awaited.
      const replies = await Promise.all(messages.map((m) => client.request(m)));
      await client.close();
      return { messages, replies: replies.map(text) };
    }),
  );
  for (const { messages, replies } of results) {
    assert.deepEqual(replies, messages);
  }
  assert.ok(await waitFor(() => ts.server.connections === 0));
  assert.equal(ts.events("login_succeeded").length, 0);
  assert.equal(ts.events("closed").length, clients);
  assert.deepEqual(ts.events("error"), []);
  assert.deepEqual(ts.events("refused"), []);
});

Deno.test("serve() reports the real port and counts open connections", async () => {
  await using ts = await startTestServer();
  assert.notEqual(ts.port, 0);
  assert.equal(ts.server.addr.hostname, "127.0.0.1");
  assert.deepEqual(ts.events("listening").map((e) => e.address), [
    `127.0.0.1:${ts.port}`,
  ]);
  assert.equal(ts.server.connections, 0);
  const a = await ts.connect();
  const b = await ts.connect();
  assert.ok(await waitFor(() => ts.server.connections === 2));
  await a.close();
  await b.close();
  assert.ok(await waitFor(() => ts.server.connections === 0));
});

Deno.test("serve() rejects out-of-range options with RangeError", () => {
  const psk = new Uint8Array(32);
  const bad = [
    { maxMessageBytes: 0 },
    { maxMessageBytes: 16 * 1024 * 1024 + 1 },
    { maxConnections: 0 },
    { maxStartups: 0 },
    { loginTimeoutMs: 0 },
  ];
  for (const options of bad) {
    assert.throws(
      () => serve({ port: 0, psk, ...options }, () => {}),
      RangeError,
      JSON.stringify(options),
    );
  }
});

// --- Shutdown ---

Deno.test("Server.shutdown() closes connected clients with shuttingDown and resolves finished", async () => {
  await using ts = await startTestServer();
  const clients = await Promise.all([1, 2, 3].map(() => ts.connect()));
  for (const client of clients) {
    assert.equal(text(await client.request("hi")), "hi");
  }
  let finished = false;
  ts.server.finished.then(() => finished = true);
  await ts.server.shutdown();
  await ts.server.finished;
  assert.ok(finished);
  for (const client of clients) {
    const info = await client.closed;
    assert.equal(info?.code, CloseCode.shuttingDown);
    await assert.rejects(client.send("late"), ClosedError);
  }
  assert.equal(ts.server.connections, 0);
  assert.deepEqual(ts.events("shutdown").map((e) => e.count), [3]);
  // No new connections once shut down.
  await assert.rejects(
    connect({ port: ts.port, psk: ts.psk }),
    ConnectionError,
  );
});

Deno.test("Server.shutdown() lets the message in hand get its reply first", async () => {
  const started = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  await using ts = await startTestServer({
    handler: async (session) => {
      for await (const message of session) {
        started.resolve();
        await release.promise;
        message.reply(`done ${message.text()}`);
      }
    },
  });
  const client = await ts.connect();
  const reply = client.request("slow");
  await started.promise;
  const shutdown = ts.server.shutdown();
  assert.ok(await waitFor(() => ts.events("shutdown").length === 1));
  release.resolve();
  assert.equal(text(await reply), "done slow");
  await shutdown;
  assert.equal((await client.closed)?.code, CloseCode.shuttingDown);
});

Deno.test("Server.shutdown() twice returns the same completion", async () => {
  await using ts = await startTestServer();
  const client = await ts.connect();
  assert.equal(text(await client.request("in session")), "in session");
  await Promise.all([ts.server.shutdown(), ts.server.shutdown()]);
  assert.equal((await client.closed)?.code, CloseCode.shuttingDown);
  assert.equal(ts.events("shutdown").length, 1);
});

// --- Failures of one connection stay in that connection ---

Deno.test("serve() closes a client whose handler throws with handlerError; others keep working", async () => {
  await using ts = await startTestServer({
    handler: async (session) => {
      for await (const message of session) {
        if (message.text() === "boom") throw new Error("handler exploded");
        message.reply(message.data);
      }
    },
  });
  const victim = await ts.connect();
  const bystander = await ts.connect();
  assert.equal(text(await bystander.request("before")), "before");
  assert.equal(text(await victim.request("ok")), "ok");
  await assert.rejects(victim.send("boom"), ClosedError);
  const info = await victim.closed;
  assert.equal(info?.code, CloseCode.handlerError);
  assert.equal(info?.reason, "handler error");
  assert.equal(text(await bystander.request("after")), "after");
  const errors = ts.events("error");
  assert.equal(errors.length, 1);
  assert.match(errors[0].detail ?? "", /handler failed: handler exploded/);
});

Deno.test("serve() closes a connection that sends garbage and keeps serving others", async () => {
  await using ts = await startTestServer();
  const garbage = [
    utf8("GET / HTTP/1.1\r\nHost: example\r\n\r\n"),
    new Uint8Array(600).fill(0xff),
    // A valid preamble, then a frame far over the pre-login limit.
    Uint8Array.of(...encodePreamble(), 0x7f, 0xff, 0xff, 0xff),
    // A valid preamble, then a hello of the wrong size.
    Uint8Array.of(...encodePreamble(), ...encodeFrame(new Uint8Array(10))),
  ];
  for (const bytes of garbage) {
    await using conn = await rawConnect(ts.port);
    await conn.write(bytes);
    const result = await readUntilClosed(conn);
    assert.ok(result.ended, "the server closed the connection");
    const client = await ts.connect();
    assert.equal(text(await client.request("still here")), "still here");
    await client.close();
  }
  assert.ok(await waitFor(() => ts.events("handshake_failed").length === 4));
  assert.ok(await waitFor(() => ts.server.connections === 0));
});

Deno.test("serve() survives a client that disappears mid-frame, in the handshake and in a session", async () => {
  await using ts = await startTestServer();
  // Mid-handshake: preamble and half a ClientHello.
  {
    await using conn = await rawConnect(ts.port);
    await conn.write(
      Uint8Array.of(...encodePreamble(), 0, 0, 0, 65, 1, 2, 3, 4, 5),
    );
  }
  assert.ok(await waitFor(() => ts.events("handshake_failed").length === 1));
  // Mid-record, after the handshake.
  {
    await using raw = await rawChannel(ts.port, ts.psk);
    await raw.conn.write(Uint8Array.of(0, 0, 0, 100, 1, 2, 3, 4, 5, 6, 7, 8));
  }
  assert.ok(await waitFor(() => ts.events("closed").length === 1));
  assert.match(ts.events("closed")[0].reason ?? "", /closed after 8 of 100/);
  const client = await ts.connect();
  assert.equal(text(await client.request("fine")), "fine");
  await client.close();
  assert.ok(await waitFor(() => ts.server.connections === 0));
  assert.deepEqual(ts.events("error"), []);
});

Deno.test("serve() closes a session that breaks the message protocol with protocolError", async () => {
  await using ts = await startTestServer();
  await using raw = await rawChannel(ts.port, ts.psk);
  // Message id 2 where 1 is due.
  raw.channel.send(RecordKind.message, Uint8Array.of(0, 0, 0, 2), utf8("x"));
  assert.equal(await raw.channel.receive(), null);
  assert.equal(raw.channel.closeInfo?.code, CloseCode.protocolError);
  const client = await ts.connect();
  assert.equal(text(await client.request("ok")), "ok");
  await client.close();
});

Deno.test("serve() hands the handler the session's user, id and address", async () => {
  const seen: { user: string | null; id: number; host: string }[] = [];
  await using ts = await startTestServer({
    users: { alex: "alex password" },
    handler: async (session: Session) => {
      seen.push({
        user: session.user,
        id: session.id,
        host: session.remoteAddr.hostname,
      });
      for await (const message of session) message.reply(message.data);
    },
  });
  const client = await ts.connect({ user: "alex", password: "alex password" });
  assert.equal(client.user, "alex");
  assert.equal(text(await client.request("x")), "x");
  await client.close();
  assert.equal(seen.length, 1);
  assert.equal(seen[0].user, "alex");
  assert.equal(seen[0].host, "127.0.0.1");
  assert.ok(seen[0].id >= 1);
  assert.deepEqual(ts.events("login_succeeded").map((e) => e.user), ["alex"]);
});
