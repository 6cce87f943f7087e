import assert from "node:assert/strict";
import { utf8 } from "../../lib/wire/bytes.ts";
import { connect } from "../../lib/client/connect.ts";
import {
  ClosedError,
  ConnectionError,
  FrameTooLargeError,
  KeyRejectedError,
  ProtocolError,
  TimeoutError,
} from "../../lib/errors.ts";
import { handshakeAsServer } from "../../lib/wire/handshake.ts";
import { encodePreamble } from "../../lib/wire/key_schedule.ts";
import { CloseCode } from "../../lib/wire/protocol.ts";
import type { Session } from "../../lib/server/session.ts";
import {
  readUntilClosed,
  startTestServer,
} from "../fixtures/server_fixture.ts";
import { closeQuietly, framed } from "../helpers.ts";

const decoder = new TextDecoder();
const text = (bytes: Uint8Array | null) =>
  bytes === null ? null : decoder.decode(bytes);

/** A listener that accepts one connection and hands it to `peer`. */
async function withRawServer(
  peer: (conn: Deno.Conn) => Promise<void>,
  client: (port: number) => Promise<void>,
): Promise<void> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    try {
      await peer(conn);
    } finally {
      closeQuietly(conn);
    }
  })();
  try {
    await client(listener.addr.port);
  } finally {
    await serving;
  }
}

Deno.test("connect() throws ConnectionError when nothing listens on the port", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  await assert.rejects(
    connect({ port, psk: new Uint8Array(32) }),
    (error: Error) => {
      assert.ok(error instanceof ConnectionError);
      assert.equal(error.message, `Cannot connect to 127.0.0.1:${port}`);
      return true;
    },
  );
});

Deno.test("connect() throws KeyRejectedError when the keys differ", async () => {
  await using ts = await startTestServer({ penaltyExempt: ["127.0.0.1"] });
  await assert.rejects(
    connect({ port: ts.port, psk: new Uint8Array(32).fill(3) }),
    KeyRejectedError,
  );
});

Deno.test("connect() throws TypeError for a user without a password", async () => {
  await assert.rejects(
    connect({ port: 1, psk: new Uint8Array(32), user: "alex" }),
    TypeError,
  );
});

Deno.test('connect() throws ProtocolError "no doorman reply" when the server stays silent past timeoutMs', async () => {
  await withRawServer(
    async (conn) => void await readUntilClosed(conn),
    async (port) => {
      await assert.rejects(
        connect({ port, psk: new Uint8Array(32), timeoutMs: 100 }),
        (error: Error) =>
          error instanceof ProtocolError &&
          error.message ===
            `No doorman reply from 127.0.0.1:${port}; is this a doorman port?`,
      );
    },
  );
});

Deno.test("connect() throws TimeoutError when a doorman server goes silent after its preamble", async () => {
  await withRawServer(
    async (conn) => {
      await conn.write(encodePreamble());
      await readUntilClosed(conn);
    },
    async (port) => {
      await assert.rejects(
        connect({ port, psk: new Uint8Array(32), timeoutMs: 100 }),
        TimeoutError,
      );
    },
  );
});

Deno.test("connect() throws ProtocolError when the server is not doorman", async () => {
  await withRawServer(
    async (conn) => {
      await conn.write(utf8("HTTP/1.1 400 Bad Request\r\n\r\n"));
      await readUntilClosed(conn);
    },
    async (port) => {
      await assert.rejects(
        connect({ port, psk: new Uint8Array(32) }),
        ProtocolError,
      );
    },
  );
});

Deno.test("Connection.send() resolves with the reply, or null for an acknowledgement", async () => {
  await using ts = await startTestServer({
    handler: async (session) => {
      for await (const message of session) {
        if (message.text() !== "quiet") message.reply(`re: ${message.text()}`);
      }
    },
  });
  const client = await ts.connect();
  assert.equal(client.user, null);
  assert.equal(text(await client.send("hello")), "re: hello");
  assert.equal(await client.send("quiet"), null);
  assert.equal(text(await client.request("again")), "re: again");
  await assert.rejects(client.request("quiet"), ProtocolError);
  // Binary and empty messages survive.
  assert.equal(text(await client.send(new Uint8Array(0))), "re: ");
});

Deno.test("Connection.send() throws RangeError above maxMessageBytes and stays usable", async () => {
  await using ts = await startTestServer();
  const client = await ts.connect({ maxMessageBytes: 100 });
  await assert.rejects(client.send("x".repeat(101)), RangeError);
  assert.equal(text(await client.request("x".repeat(100))), "x".repeat(100));
});

Deno.test("Connection fails with a ProtocolError when a reply exceeds its maxMessageBytes", async () => {
  await using ts = await startTestServer({
    handler: async (session) => {
      for await (const message of session) message.reply("y".repeat(1000));
    },
  });
  const client = await ts.connect({ maxMessageBytes: 100 });
  await assert.rejects(client.request("small"), FrameTooLargeError);
  assert.equal(await client.closed, null);
});

Deno.test("Connection.send() after close() rejects with ClosedError", async () => {
  await using ts = await startTestServer();
  const client = await ts.connect();
  await client.close();
  await assert.rejects(client.send("late"), ClosedError);
  // close() again is harmless.
  await client.close();
  assert.deepEqual(await client.closed, null);
});

Deno.test("Connection.close() waits for every sent message to be confirmed", async () => {
  const release = Promise.withResolvers<void>();
  const received = Promise.withResolvers<void>();
  await using ts = await startTestServer({
    handler: async (session) => {
      for await (const message of session) {
        received.resolve();
        await release.promise;
        message.reply(`done ${message.text()}`);
      }
    },
  });
  const client = await ts.connect();
  const replies = [client.send("a"), client.send("b")];
  await received.promise;
  let closed = false;
  const closing = client.close().then(() => closed = true);
  const duringClose = client.send("during close");
  assert.equal(closed, false);
  release.resolve();
  assert.deepEqual((await Promise.all(replies)).map(text), [
    "done a",
    "done b",
  ]);
  await closing;
  assert.ok(closed);
  // A message sent once close() has begun is refused, not raced.
  await assert.rejects(duringClose, ClosedError);
});

Deno.test("Connection rejects every unconfirmed message when the server closes", async () => {
  let serverSession: Session | null = null;
  const received = Promise.withResolvers<void>();
  await using ts = await startTestServer({
    handler: async (session) => {
      serverSession = session;
      for await (const _message of session) {
        received.resolve();
        await session.closed;
      }
    },
  });
  const client = await ts.connect();
  const pending = [client.send("1"), client.send("2"), client.send("3")];
  await received.promise;
  serverSession!.close(CloseCode.tooSlow, "going away", { immediately: true });
  for (const result of await Promise.allSettled(pending)) {
    assert.equal(result.status, "rejected");
    assert.ok(result.reason instanceof ClosedError);
    assert.match(result.reason.message, /going away/);
  }
  assert.deepEqual(await client.closed, {
    code: CloseCode.tooSlow,
    reason: "going away",
  });
});

Deno.test("Connection yields pushes in order and ends iteration on a normal close", async () => {
  await using ts = await startTestServer({
    handler: async (session) => {
      for await (const message of session) {
        const count = Number(message.text());
        for (let i = 0; i < count; i++) session.push(`push ${i}`);
        message.reply("sent");
        session.close(CloseCode.normal, "done");
      }
    },
  });
  const client = await ts.connect();
  // The reply comes after the pushes: more than the 1024 buffered before
  // reading pauses, so they must be consumed while the reply is awaited.
  const reply = client.request("3000");
  const pushes: string[] = [];
  for await (const push of client) {
    pushes.push(text(push)!);
    if (pushes.length > 3000) break;
  }
  assert.equal(text(await reply), "sent");
  assert.equal(pushes.length, 3000);
  assert.deepEqual(pushes, Array.from({ length: 3000 }, (_, i) => `push ${i}`));
  assert.deepEqual(await client.closed, { code: 0, reason: "done" });
});

Deno.test("Connection iteration throws the close error after an abnormal close", async () => {
  await using ts = await startTestServer({
    handler: (session) => {
      session.push("last words");
      return session.close(CloseCode.handlerError, "handler error");
    },
  });
  const client = await ts.connect();
  const pushes: string[] = [];
  await assert.rejects(async () => {
    for await (const push of client) pushes.push(text(push)!);
  }, ClosedError);
  assert.deepEqual(pushes, ["last words"]);
  assert.equal((await client.closed)?.code, CloseCode.handlerError);
});

Deno.test("Connection.closed resolves null and sends reject when the connection is cut without a close", async () => {
  const psk = new Uint8Array(32).fill(5);
  const handshaken = Promise.withResolvers<void>();
  const cut = Promise.withResolvers<void>();
  await withRawServer(
    async (conn) => {
      await handshakeAsServer(framed(conn), psk);
      handshaken.resolve();
      await cut.promise;
    },
    async (port) => {
      const client = await connect({ port, psk });
      await handshaken.promise;
      const pending = client.send("into the void");
      cut.resolve();
      await assert.rejects(pending, (error: Error) => {
        assert.ok(error instanceof ClosedError);
        assert.match(error.message, /without an authenticated close/);
        return true;
      });
      assert.equal(await client.closed, null);
      await assert.rejects(async () => {
        for await (const _push of client) assert.fail("no pushes");
      }, ClosedError);
    },
  );
});
