import assert from "node:assert/strict";
import { createDecipheriv } from "node:crypto";
import { concatBytes, readUint32, utf8 } from "../../lib/wire/bytes.ts";
import { type Channel, openChannel } from "../../lib/wire/channel.ts";
import { sealInto } from "../../lib/wire/crypto.ts";
import {
  ClosedError,
  ConnectionError,
  KeyRejectedError,
  ProtocolError,
} from "../../lib/errors.ts";
import { encodeFrame, FrameReader } from "../../lib/wire/framing.ts";
import type { FramedConn } from "../../lib/wire/framing.ts";
import type { SessionKeys } from "../../lib/wire/key_schedule.ts";
import { CloseCode, RecordKind } from "../../lib/wire/protocol.ts";
import { framed, seededBytes, tcpPair } from "../helpers.ts";

const KEYS: SessionKeys = {
  clientToServer: seededBytes(1, 32),
  serverToClient: seededBytes(2, 32),
  transcriptHash: new Uint8Array(32),
  channelBinding: new Uint8Array(32),
};
const ID_1 = Uint8Array.of(0, 0, 0, 1);
const ID_2 = Uint8Array.of(0, 0, 0, 2);

/** A channel that writes into memory and never reads. */
function sealingChannel(role: "client" | "server"): {
  channel: Channel;
  frames(): Uint8Array[];
} {
  const written: Uint8Array[] = [];
  const conn = {
    write(bytes: Uint8Array): Promise<number> {
      written.push(bytes.slice());
      return Promise.resolve(bytes.length);
    },
    close() {},
  };
  const reader = new FrameReader({ read: () => Promise.resolve(null) });
  return {
    channel: openChannel({ conn, reader }, KEYS, { role }),
    frames: () => splitFrames(concatBytes(...written)),
  };
}

/** Splits a stream of whole frames into frames (headers kept). */
function splitFrames(stream: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let offset = 0; offset < stream.length && frames.length < 10_000;) {
    const end = offset + 4 + readUint32(stream, offset);
    frames.push(stream.slice(offset, end));
    offset = end;
  }
  return frames;
}

/** The frames of records sealed by a `role` channel, one per record. */
async function seal(
  role: "client" | "server",
  ...records: [number, ...Uint8Array[]][]
): Promise<Uint8Array[]> {
  const { channel, frames } = sealingChannel(role);
  for (const [kind, ...parts] of records) channel.send(kind, ...parts);
  await channel.flushed();
  return frames();
}

/** Both ends of a loopback pair, each with its channel. */
async function channelPair(maxRecordBytes?: number) {
  const pair = await tcpPair();
  const clientFramed = framed(pair.client);
  const serverFramed = framed(pair.server);
  return {
    pair,
    serverFramed,
    client: openChannel(clientFramed, KEYS, { role: "client", maxRecordBytes }),
    server: openChannel(serverFramed, KEYS, { role: "server", maxRecordBytes }),
    [Symbol.asyncDispose]: () => pair[Symbol.asyncDispose](),
  };
}

/** A fresh server channel (counter 0) over an existing framed connection. */
function freshServer(serverFramed: FramedConn): Channel {
  return openChannel(serverFramed, KEYS, { role: "server" });
}

Deno.test("Channel round-trips records both ways", async () => {
  await using pairs = await channelPair();
  pairs.client.send(RecordKind.message, ID_1, utf8("hel"), utf8("lo"));
  pairs.client.send(RecordKind.message, ID_2);
  const first = await pairs.server.receive();
  assert.equal(first?.kind, RecordKind.message);
  assert.deepEqual(first?.body, concatBytes(ID_1, utf8("hello")));
  const second = await pairs.server.receive();
  assert.deepEqual(second?.body, ID_2);

  pairs.server.send(RecordKind.reply, ID_1, utf8("HELLO"));
  pairs.server.send(RecordKind.push);
  const reply = await pairs.client.receive();
  assert.equal(reply?.kind, RecordKind.reply);
  assert.deepEqual(reply?.body, concatBytes(ID_1, utf8("HELLO")));
  const push = await pairs.client.receive();
  assert.equal(push?.kind, RecordKind.push);
  assert.equal(push?.body.length, 0);
});

Deno.test("Channel round-trips a 1 MiB record once the limit is raised", async () => {
  await using pairs = await channelPair();
  pairs.server.maxRecordBytes = (1 << 20) + 21;
  const body = seededBytes(3, 1 << 20);
  pairs.client.send(RecordKind.message, ID_1, body);
  const record = await pairs.server.receive();
  assert.deepEqual(record?.body, concatBytes(ID_1, body));
});

Deno.test("Channel.send() seals record n under nonce 0^4 || u64 n with the header as AAD", async () => {
  const frames = await seal(
    "client",
    [RecordKind.message, ID_1, utf8("a")],
    [RecordKind.message, ID_2, utf8("b")],
  );
  for (const [counter, frame] of frames.entries()) {
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setBigUint64(4, BigInt(counter));
    const decipher = createDecipheriv(
      "chacha20-poly1305",
      KEYS.clientToServer,
      nonce,
      { authTagLength: 16 },
    );
    decipher.setAAD(frame.subarray(0, 4), {
      plaintextLength: frame.length - 20,
    });
    decipher.setAuthTag(frame.subarray(-16));
    const plaintext = concatBytes(
      decipher.update(frame.subarray(4, -16)),
      decipher.final(),
    );
    assert.deepEqual(
      plaintext,
      concatBytes(
        Uint8Array.of(RecordKind.message),
        counter === 0 ? ID_1 : ID_2,
        utf8(counter === 0 ? "a" : "b"),
      ),
    );
  }
});

Deno.test("Channel.receive() rejects any flipped bit in a record's ciphertext or tag", async () => {
  const [frame] = await seal("client", [
    RecordKind.message,
    ID_1,
    utf8("hello"),
  ]);
  await using pair = await tcpPair();
  const serverFramed = framed(pair.server);
  // The untouched frame opens, so only the flip makes the difference.
  await pair.client.write(frame);
  assert.equal(
    (await freshServer(serverFramed).receive())?.kind,
    RecordKind.message,
  );
  for (let position = 4; position < frame.length; position++) {
    for (let bit = 0; bit < 8; bit++) {
      const tampered = frame.slice();
      tampered[position] ^= 1 << bit;
      await pair.client.write(tampered);
      await assert.rejects(
        freshServer(serverFramed).receive(),
        ProtocolError,
        `byte ${position} bit ${bit}`,
      );
    }
  }
});

Deno.test("Channel.receive() rejects a record whose length header was changed", async () => {
  const [frame] = await seal("client", [
    RecordKind.message,
    ID_1,
    utf8("hello"),
  ]);
  const length = frame.length - 4;
  for (const declared of [length - 1, length - 2, length + 1, length + 3]) {
    await using pairs = await channelPair();
    const tampered = concatBytes(frame, new Uint8Array(3));
    new DataView(tampered.buffer).setUint32(0, declared);
    await pairs.pair.client.write(tampered);
    await assert.rejects(pairs.server.receive(), ProtocolError, `${declared}`);
  }
});

Deno.test("Channel.receive() rejects a replayed record", async () => {
  const [frame] = await seal("client", [RecordKind.message, ID_1]);
  await using pairs = await channelPair();
  await pairs.pair.client.write(concatBytes(frame, frame));
  assert.deepEqual((await pairs.server.receive())?.body, ID_1);
  await assert.rejects(pairs.server.receive(), ProtocolError);
});

Deno.test("Channel.receive() rejects reordered records", async () => {
  const [first, second] = await seal(
    "client",
    [RecordKind.message, ID_1],
    [RecordKind.message, ID_2],
  );
  await using pairs = await channelPair();
  await pairs.pair.client.write(concatBytes(second, first));
  await assert.rejects(pairs.server.receive(), ProtocolError);
});

Deno.test("Channel.receive() rejects a record after a dropped one", async () => {
  const [, second] = await seal(
    "client",
    [RecordKind.message, ID_1],
    [RecordKind.message, ID_2],
  );
  await using pairs = await channelPair();
  await pairs.pair.client.write(second);
  await assert.rejects(pairs.server.receive(), ProtocolError);
});

Deno.test("Channel.receive() rejects a record reflected back to its sender", async () => {
  const [frame] = await seal("client", [RecordKind.message, ID_1]);
  await using pairs = await channelPair();
  await pairs.pair.server.write(frame);
  await assert.rejects(pairs.client.receive(), ProtocolError);
});

Deno.test("Channel.receive() rejects injected frames of random bytes", async () => {
  await using pair = await tcpPair();
  const serverFramed = framed(pair.server);
  const injected = [
    new Uint8Array(0),
    Uint8Array.of(0x00),
    seededBytes(4, 15),
    seededBytes(5, 16),
    seededBytes(6, 17),
    seededBytes(7, 40),
  ];
  for (const payload of injected) {
    await pair.client.write(encodeFrame(payload));
    await assert.rejects(
      freshServer(serverFramed).receive(),
      ProtocolError,
      `${payload.length} bytes`,
    );
  }
});

Deno.test("Channel.receive() rejects an authentic record with no kind byte", async () => {
  const header = Uint8Array.of(0, 0, 0, 16);
  const frame = concatBytes(header, new Uint8Array(16));
  sealInto(KEYS.clientToServer, new Uint8Array(12), [], header, frame, 4);
  await using pairs = await channelPair();
  await pairs.pair.client.write(frame);
  await assert.rejects(pairs.server.receive(), ProtocolError);
});

Deno.test("Channel.receive() rejects a record one byte above the limit", async () => {
  await using pairs = await channelPair();
  // Default limit: 512 bytes, so 1 + 495 + 16 fits and 1 + 496 + 16 does not.
  pairs.client.send(RecordKind.message, new Uint8Array(495));
  assert.equal((await pairs.server.receive())?.body.length, 495);
  pairs.client.send(RecordKind.message, new Uint8Array(496));
  await assert.rejects(pairs.server.receive(), ProtocolError);
});

Deno.test("Channel.receive() throws ClosedError when the connection ends without a close record", async () => {
  await using pairs = await channelPair();
  pairs.client.send(RecordKind.message, ID_1);
  await pairs.client.flushed();
  pairs.client.abort();
  assert.deepEqual((await pairs.server.receive())?.body, ID_1);
  await assert.rejects(pairs.server.receive(), ClosedError);
});

Deno.test("Channel.receive() throws ClosedError when the connection ends inside a record", async () => {
  const [frame] = await seal("client", [RecordKind.message, ID_1]);
  await using pairs = await channelPair();
  await pairs.pair.client.write(frame.subarray(0, frame.length - 1));
  pairs.pair.client.closeWrite();
  await assert.rejects(pairs.server.receive(), ClosedError);
});

Deno.test("Channel.receive() returns null after a close record and keeps its code and reason", async () => {
  await using pairs = await channelPair();
  pairs.client.send(RecordKind.message, ID_1);
  await pairs.client.close(CloseCode.loginFailed, "login failed");
  assert.deepEqual((await pairs.server.receive())?.body, ID_1);
  assert.equal(pairs.server.closeInfo, null);
  assert.equal(await pairs.server.receive(), null);
  assert.deepEqual(pairs.server.closeInfo, {
    code: CloseCode.loginFailed,
    reason: "login failed",
  });
  assert.equal(await pairs.server.receive(), null);
});

Deno.test("Channel.receive() rejects a close record that is empty or not UTF-8", async () => {
  for (const parts of [[], [Uint8Array.of(0), Uint8Array.of(0xff)]]) {
    const [frame] = await seal("client", [RecordKind.close, ...parts]);
    await using pairs = await channelPair();
    await pairs.pair.client.write(frame);
    await assert.rejects(pairs.server.receive(), ProtocolError);
  }
});

Deno.test("Channel.send() throws ClosedError after close() or abort()", async () => {
  await using pairs = await channelPair();
  await pairs.client.close(CloseCode.normal, "");
  assert.throws(() => pairs.client.send(RecordKind.message, ID_1), ClosedError);
  pairs.server.abort();
  assert.throws(() => pairs.server.send(RecordKind.push), ClosedError);
});

Deno.test("Channel.send() reports a failed write as ConnectionError", async () => {
  await using pairs = await channelPair();
  pairs.pair.client.close();
  pairs.client.send(RecordKind.message, ID_1);
  await assert.rejects(pairs.client.flushed(), ConnectionError);
  assert.throws(
    () => pairs.client.send(RecordKind.message, ID_2),
    ConnectionError,
  );
});

Deno.test("Channel.send() coalesces records sent in one tick into one write, in order", async () => {
  await using pair = await tcpPair();
  const writes: number[] = [];
  const clientFramed: FramedConn = {
    conn: {
      write(bytes: Uint8Array) {
        writes.push(bytes.length);
        return pair.client.write(bytes);
      },
      close: () => pair.client.close(),
    },
    reader: new FrameReader(pair.client),
  };
  const client = openChannel(clientFramed, KEYS, { role: "client" });
  const server = openChannel(framed(pair.server), KEYS, { role: "server" });
  const count = 100;
  for (let id = 1; id <= count; id++) {
    const idBytes = new Uint8Array(4);
    new DataView(idBytes.buffer).setUint32(0, id);
    client.send(RecordKind.message, idBytes, utf8(`message ${id}`));
  }
  const queued = client.queuedBytes;
  await client.flushed();
  // One batch: the first write was handed every queued byte.
  assert.equal(writes[0], queued);
  for (let id = 1; id <= count; id++) {
    const record = await server.receive();
    assert.equal(record && readUint32(record.body, 0), id);
  }
});

Deno.test("Channel.receive() rejects a failure frame as the first frame with KeyRejectedError", async () => {
  await using pairs = await channelPair();
  await pairs.pair.server.write(encodeFrame(Uint8Array.of(0x7f)));
  await assert.rejects(pairs.client.receive(), KeyRejectedError);
});

Deno.test("Channel.receive() rejects a failure frame after the first record with ProtocolError", async () => {
  await using pairs = await channelPair();
  pairs.server.send(RecordKind.push);
  await pairs.server.flushed();
  await pairs.pair.server.write(encodeFrame(Uint8Array.of(0x7f)));
  assert.equal((await pairs.client.receive())?.kind, RecordKind.push);
  const error = await pairs.client.receive().catch((error) => error);
  assert.ok(error instanceof ProtocolError, `${error}`);
});
