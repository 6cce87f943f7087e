import assert from "node:assert/strict";
import { utf8 } from "../../lib/wire/bytes.ts";
import { type Channel, openChannel } from "../../lib/wire/channel.ts";
import { Connection } from "../../lib/client/connection.ts";
import {
  ClosedError,
  FrameTooLargeError,
  ProtocolError,
} from "../../lib/errors.ts";
import type { SessionKeys } from "../../lib/wire/key_schedule.ts";
import {
  CloseCode,
  RECORD_OVERHEAD_BYTES,
  RecordKind,
} from "../../lib/wire/protocol.ts";
import { type IncomingMessage, Session } from "../../lib/server/session.ts";
import { framed, seededBytes, tcpPair } from "../helpers.ts";

const KEYS: SessionKeys = {
  clientToServer: seededBytes(11, 32),
  serverToClient: seededBytes(12, 32),
  transcriptHash: new Uint8Array(32),
  channelBinding: new Uint8Array(32),
};
const BIG = 1 << 20;
const decoder = new TextDecoder();
const text = (bytes: Uint8Array | null) =>
  bytes === null ? null : decoder.decode(bytes);

interface SessionPair extends AsyncDisposable {
  readonly session: Session;
  /** The client side as the client library sees it. */
  readonly client: Connection;
  /** The client's raw channel, for records the library never sends. */
  readonly clientChannel: Channel;
}

/**
 * A Session over a loopback connection with a client Connection on the other
 * end. Disposal aborts both sides and waits for them to settle.
 */
async function sessionPair(
  options: { maxQueueBytes?: number; maxMessageBytes?: number } = {},
): Promise<SessionPair> {
  const pair = await tcpPair();
  const maxMessageBytes = options.maxMessageBytes ?? BIG;
  const serverChannel = openChannel(framed(pair.server), KEYS, {
    role: "server",
    maxRecordBytes: maxMessageBytes + RECORD_OVERHEAD_BYTES,
  });
  const clientChannel = openChannel(framed(pair.client), KEYS, {
    role: "client",
    maxRecordBytes: BIG + RECORD_OVERHEAD_BYTES,
  });
  const session = new Session(serverChannel, {
    id: 7,
    user: "alex",
    remoteAddr: pair.server.remoteAddr as Deno.NetAddr,
    maxQueueBytes: options.maxQueueBytes ?? 4 * BIG,
    maxMessageBytes,
  });
  const client = new Connection(clientChannel, {
    user: "alex",
    maxMessageBytes: BIG,
  });
  return {
    session,
    client,
    clientChannel,
    async [Symbol.asyncDispose]() {
      session.terminate("test over");
      await session.closed;
      clientChannel.abort();
      await client.closed;
      await pair[Symbol.asyncDispose]();
    },
  };
}

/** The next message from the session's iterator, or `null` at its end. */
async function next(
  iterator: AsyncIterator<IncomingMessage>,
): Promise<IncomingMessage | null> {
  const result = await iterator.next();
  return result.done ? null : result.value;
}

Deno.test("Session yields messages with ids from 1, their bytes and text", async () => {
  await using p = await sessionPair();
  const sends = ["one", "two", "thr€e"].map((m) => p.client.send(m));
  const iterator = p.session[Symbol.asyncIterator]();
  for (const [i, expected] of ["one", "two", "thr€e"].entries()) {
    const message = await next(iterator);
    assert.ok(message);
    assert.equal(message.id, i + 1);
    assert.deepEqual(message.data, utf8(expected));
    assert.equal(message.text(), expected);
    message.reply(`#${message.id}`);
  }
  assert.deepEqual((await Promise.all(sends)).map(text), ["#1", "#2", "#3"]);
  assert.equal(p.session.id, 7);
  assert.equal(p.session.user, "alex");
  assert.equal(p.session.remoteAddr.hostname, "127.0.0.1");
});

Deno.test("Session acknowledges a message the handler moves past without replying", async () => {
  await using p = await sessionPair();
  const first = p.client.send("no reply");
  const second = p.client.send("reply");
  const iterator = p.session[Symbol.asyncIterator]();
  await next(iterator);
  (await next(iterator))?.reply("answer");
  assert.equal(await first, null);
  assert.equal(text(await second), "answer");
});

Deno.test("IncomingMessage.reply() throws when called twice or for an earlier message", async () => {
  await using p = await sessionPair();
  const sends = [p.client.send("a"), p.client.send("b")];
  const iterator = p.session[Symbol.asyncIterator]();
  const a = await next(iterator);
  assert.ok(a);
  a.reply("A");
  assert.throws(() => a.reply("again"), /already confirmed/);
  const b = await next(iterator);
  assert.ok(b);
  assert.throws(() => a.reply("late"), /already confirmed/);
  b.reply("B");
  assert.deepEqual((await Promise.all(sends)).map(text), ["A", "B"]);
});

Deno.test("Session.send() pushes messages to the client in order", async () => {
  await using p = await sessionPair();
  for (let i = 0; i < 50; i++) assert.equal(p.session.send(`push ${i}`), true);
  assert.equal(p.session.send(Uint8Array.of(0, 1, 2)), true);
  const received: string[] = [];
  for await (const push of p.client) {
    received.push(text(push)!);
    if (received.length === 51) break;
  }
  assert.deepEqual(
    received.slice(0, 50),
    Array.from({ length: 50 }, (_, i) => `push ${i}`),
  );
  assert.equal(received[50], "\x00\x01\x02");
});

Deno.test("Session.close() between messages closes at once with its code and reason", async () => {
  await using p = await sessionPair();
  await p.session.close("see you", CloseCode.shuttingDown);
  assert.deepEqual(p.session.end, {
    code: CloseCode.shuttingDown,
    reason: "see you",
  });
  assert.deepEqual(await p.client.closed, {
    code: CloseCode.shuttingDown,
    reason: "see you",
  });
  assert.equal(p.session.send("after"), false);
  const iterator = p.session[Symbol.asyncIterator]();
  assert.equal(await next(iterator), null);
});

Deno.test("Session.close() while a message is in hand lets it be answered first", async () => {
  await using p = await sessionPair();
  const reply = p.client.request("question");
  const iterator = p.session[Symbol.asyncIterator]();
  const message = await next(iterator);
  assert.ok(message);
  const closed = p.session.close("bye", CloseCode.normal);
  assert.equal(p.session.end, null, "closed before the answer");
  assert.equal(p.session.send("push after close"), false);
  message.reply("answer");
  assert.equal(await next(iterator), null);
  await closed;
  assert.equal(text(await reply), "answer");
  assert.deepEqual(await p.client.closed, { code: 0, reason: "bye" });
});

Deno.test("Session.close() after the message in hand was answered closes at once", async () => {
  await using p = await sessionPair();
  const reply = p.client.request("question");
  reply.catch(() => {}); // Awaited below; only a failed assertion skips it.
  const iterator = p.session[Symbol.asyncIterator]();
  const message = await next(iterator);
  assert.ok(message);
  message.reply("answer");
  // Nothing is left to wait for: a handler may await this in its loop body.
  const closed = p.session.close("bye", CloseCode.normal);
  assert.deepEqual(p.session.end, { code: CloseCode.normal, reason: "bye" });
  await closed;
  assert.equal(text(await reply), "answer");
  assert.deepEqual(await p.client.closed, { code: 0, reason: "bye" });
  assert.equal(await next(iterator), null);
});

Deno.test("Session.terminate() closes at once without confirming the message in hand", async () => {
  await using p = await sessionPair();
  const pending = p.client.send("never confirmed");
  const iterator = p.session[Symbol.asyncIterator]();
  const message = await next(iterator);
  assert.ok(message);
  p.session.terminate("gone", CloseCode.handlerError);
  await p.session.closed;
  await assert.rejects(pending, ClosedError);
  assert.deepEqual(await p.client.closed, {
    code: CloseCode.handlerError,
    reason: "gone",
  });
  // Too late to answer; the reply is dropped, not sent.
  message.reply("late");
});

Deno.test("Session.settle() acknowledges the message in hand and closes normally", async () => {
  await using p = await sessionPair();
  const pending = p.client.send("last");
  const iterator = p.session[Symbol.asyncIterator]();
  assert.ok(await next(iterator));
  await p.session.settle();
  assert.equal(await pending, null);
  assert.deepEqual(await p.client.closed, {
    code: CloseCode.normal,
    reason: "session ended by server",
  });
});

Deno.test("Session ends with the client's reason when the client closes", async () => {
  await using p = await sessionPair();
  const closing = p.client.close();
  const iterator = p.session[Symbol.asyncIterator]();
  assert.equal(await next(iterator), null);
  assert.deepEqual(p.session.end, {
    code: CloseCode.normal,
    reason: "client closed",
  });
  await closing;
  await p.session.closed;
});

Deno.test("Session ends with the error when the connection is cut", async () => {
  await using p = await sessionPair();
  p.clientChannel.abort();
  const iterator = p.session[Symbol.asyncIterator]();
  assert.equal(await next(iterator), null);
  await p.session.closed;
  assert.equal(p.session.end?.code, CloseCode.normal);
  assert.ok(p.session.end?.error instanceof ClosedError);
});

Deno.test("Session ends with protocolError on a bad message record", async () => {
  const bad: [string, number, Uint8Array][] = [
    ["out-of-order id", RecordKind.message, Uint8Array.of(0, 0, 0, 2, 65)],
    ["id 0", RecordKind.message, Uint8Array.of(0, 0, 0, 0)],
    ["short record", RecordKind.message, Uint8Array.of(0, 0, 1)],
    ["a login record", RecordKind.login, Uint8Array.of(1, 65)],
    ["a reply record", RecordKind.reply, Uint8Array.of(0, 0, 0, 1)],
  ];
  for (const [name, kind, body] of bad) {
    await using p = await sessionPair();
    p.clientChannel.send(kind, body);
    const iterator = p.session[Symbol.asyncIterator]();
    assert.equal(await next(iterator), null, name);
    assert.equal(p.session.end?.code, CloseCode.protocolError, name);
    assert.equal(p.session.end?.reason, "protocol error", name);
    assert.ok(p.session.end?.error instanceof ProtocolError, name);
    assert.equal((await p.client.closed)?.code, CloseCode.protocolError, name);
  }
});

Deno.test("Session ends with messageTooLarge when a record exceeds maxMessageBytes", async () => {
  await using p = await sessionPair({ maxMessageBytes: 100 });
  const fits = p.client.send("x".repeat(100));
  const tooBig = p.client.send("y".repeat(101));
  const iterator = p.session[Symbol.asyncIterator]();
  assert.equal((await next(iterator))?.data.length, 100);
  assert.equal(await next(iterator), null);
  assert.equal(await fits, null);
  await assert.rejects(tooBig, ClosedError);
  assert.equal(p.session.end?.code, CloseCode.messageTooLarge);
  assert.equal(p.session.end?.reason, "message larger than 100 bytes");
  assert.ok(p.session.end?.error instanceof FrameTooLargeError);
});

Deno.test("Session.send() closes the client as too slow past maxQueueBytes", async () => {
  await using p = await sessionPair({ maxQueueBytes: 1000 });
  // Both in one tick: nothing is written between them.
  assert.equal(p.session.send(new Uint8Array(600)), true);
  assert.equal(p.session.send(new Uint8Array(600)), false);
  assert.equal(p.session.end?.code, CloseCode.tooSlow);
  assert.match(p.session.end?.reason ?? "", /more than 1000 bytes queued/);
  assert.equal(p.session.send("after"), false);
  const received: number[] = [];
  await assert.rejects(async () => {
    for await (const push of p.client) received.push(push.length);
  }, ClosedError);
  assert.deepEqual(received, [600]);
  assert.equal((await p.client.closed)?.code, CloseCode.tooSlow);
});

Deno.test("Session.lastActivity advances when a message arrives", async () => {
  await using p = await sessionPair();
  const before = p.session.lastActivity;
  assert.ok(before <= Date.now());
  let later = Date.now();
  // Bounded wait for the clock to move at least 1 ms.
  for (let i = 0; i < 1000 && later === before; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1));
    later = Date.now();
  }
  const sent = p.client.send("tick");
  const iterator = p.session[Symbol.asyncIterator]();
  assert.ok(await next(iterator));
  assert.ok(p.session.lastActivity > before);
  p.session.settle();
  await sent;
});
