/**
 * Batch records (kind 0x14, docs/PROTOCOL.md, "Batch records"): after login,
 * records queued while a write is pending leave sealed as one record and
 * come out of `receive()` one by one, in order; before login nothing is
 * batched and a batch is refused; malformed batches fail to open.
 *
 * @module
 */

import assert from "node:assert/strict";
import { concatBytes, readUint32, writeUint32 } from "../../lib/wire/bytes.ts";
import {
  type Channel,
  MAX_BATCH_RECORD_BYTES,
  openChannel,
} from "../../lib/wire/channel.ts";
import { FrameReader } from "../../lib/wire/framing.ts";
import type { SessionKeys } from "../../lib/wire/key_schedule.ts";
import { RecordKind } from "../../lib/wire/protocol.ts";
import { ProtocolError } from "../../lib/errors.ts";
import { seededBytes } from "../helpers.ts";

const KEYS: SessionKeys = {
  clientToServer: seededBytes(1, 32),
  serverToClient: seededBytes(2, 32),
  transcriptHash: new Uint8Array(32),
  channelBinding: new Uint8Array(32),
};
const AFTER_LOGIN_LIMIT = 1024 * 1024 + 21;

/** A client channel writing into memory; `loggedIn` raises its limit. */
function sender(options: { loggedIn: boolean }) {
  const written: Uint8Array[] = [];
  const conn = {
    write(bytes: Uint8Array): Promise<number> {
      written.push(bytes.slice());
      return Promise.resolve(bytes.length);
    },
    close() {},
  };
  const reader = new FrameReader({ read: () => Promise.resolve(null) });
  const channel = openChannel({ conn, reader }, KEYS, { role: "client" });
  if (options.loggedIn) channel.maxRecordBytes = AFTER_LOGIN_LIMIT;
  return { channel, bytes: () => concatBytes(...written) };
}

/** A server channel reading `bytes`, then the end of the stream. */
function receiver(bytes: Uint8Array, options: { loggedIn: boolean }): Channel {
  let offset = 0;
  const source = {
    read(target: Uint8Array): Promise<number | null> {
      if (offset >= bytes.length) return Promise.resolve(null);
      const n = Math.min(target.length, bytes.length - offset);
      target.set(bytes.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
  };
  const conn = { write: () => Promise.resolve(0), close() {} };
  const channel = openChannel(
    { conn, reader: new FrameReader(source) },
    KEYS,
    { role: "server" },
  );
  if (options.loggedIn) channel.maxRecordBytes = AFTER_LOGIN_LIMIT;
  return channel;
}

function frameLengths(stream: Uint8Array): number[] {
  const lengths: number[] = [];
  for (let offset = 0; offset < stream.length && lengths.length < 10_000;) {
    const length = readUint32(stream, offset);
    lengths.push(length);
    offset += 4 + length;
  }
  return lengths;
}

function idBytes(id: number): Uint8Array {
  const bytes = new Uint8Array(4);
  writeUint32(bytes, 0, id);
  return bytes;
}

/** Sends `count` messages of `size` bytes in one burst; returns the wire. */
async function burst(
  count: number,
  size: number,
  options: { loggedIn: boolean },
): Promise<Uint8Array> {
  const { channel, bytes } = sender(options);
  for (let id = 1; id <= count; id++) {
    channel.send(RecordKind.message, idBytes(id), seededBytes(id, size));
  }
  await channel.flushed();
  return bytes();
}

Deno.test("Channel.send() after login seals a burst as one batch record, received in order", async () => {
  const wire = await burst(50, 64, { loggedIn: true });
  const lengths = frameLengths(wire);
  assert.deepEqual(lengths, [1 + 50 * (2 + 1 + 4 + 64) + 16]);
  const channel = receiver(wire, { loggedIn: true });
  for (let id = 1; id <= 50; id++) {
    const record = await channel.receive();
    assert.equal(record?.kind, RecordKind.message);
    assert.deepEqual(
      record?.body,
      concatBytes(idBytes(id), seededBytes(id, 64)),
    );
  }
  await assert.rejects(channel.receive()); // the stream ends, no close
});

Deno.test("Channel.send() after login sends a lone record of a burst as an ordinary record", async () => {
  const wire = await burst(1, 64, { loggedIn: true });
  assert.deepEqual(frameLengths(wire), [1 + 4 + 64 + 16]);
  const channel = receiver(wire, { loggedIn: false });
  const record = await channel.receive();
  assert.equal(record?.kind, RecordKind.message);
  assert.deepEqual(record?.body, concatBytes(idBytes(1), seededBytes(1, 64)));
});

Deno.test("Channel.send() before login never batches", async () => {
  const wire = await burst(20, 64, { loggedIn: false });
  assert.equal(frameLengths(wire).length, 20);
});

Deno.test("Channel.send() keeps each batch within 16 KiB and large records alone", async () => {
  const { channel, bytes } = sender({ loggedIn: true });
  for (let id = 1; id <= 400; id++) {
    const size = id % 100 === 0 ? 20_000 : 100;
    channel.send(RecordKind.message, idBytes(id), seededBytes(id, size));
  }
  await channel.flushed();
  const wire = bytes();
  for (const length of frameLengths(wire)) {
    assert.ok(
      length <= MAX_BATCH_RECORD_BYTES || length === 1 + 4 + 20_000 + 16,
      `frame of ${length} bytes`,
    );
  }
  const receiving = receiver(wire, { loggedIn: true });
  for (let id = 1; id <= 400; id++) {
    const record = await receiving.receive();
    assert.equal(record && readUint32(record.body, 0), id);
    assert.equal(record?.body.length, 4 + (id % 100 === 0 ? 20_000 : 100));
  }
});

Deno.test("Channel.receive() refuses a batch record before login", async () => {
  const wire = await burst(3, 8, { loggedIn: true });
  const channel = receiver(wire, { loggedIn: false });
  await assert.rejects(channel.receive(), ProtocolError);
});

Deno.test("Channel.receive() rejects malformed batch records", async () => {
  const entry = (length: number, ...bytes: number[]) =>
    Uint8Array.of(length >> 8, length & 0xff, ...bytes);
  const cases: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["zero-length entry", entry(0)],
    ["entry longer than the batch", entry(9, RecordKind.message, 0, 0, 0, 1)],
    ["truncated entry header", Uint8Array.of(0)],
    ["entry header without a kind", Uint8Array.of(0, 1)],
    ["nested batch", entry(2, RecordKind.batch, 0)],
    ["close inside", entry(2, RecordKind.close, 0)],
    [
      "good entry then garbage",
      concatBytes(entry(5, RecordKind.message, 0, 0, 0, 1), Uint8Array.of(7)),
    ],
  ];
  for (const [name, body] of cases) {
    // A channel before login seals a record of kind `batch` as given.
    const { channel, bytes } = sender({ loggedIn: false });
    channel.send(RecordKind.batch, body);
    await channel.flushed();
    const receiving = receiver(bytes(), { loggedIn: true });
    await assert.rejects(receiving.receive(), ProtocolError, name);
  }
});

Deno.test("Channel.receive() rejects a batch record with a flipped bit", async () => {
  const wire = await burst(5, 16, { loggedIn: true });
  assert.equal(frameLengths(wire).length, 1);
  const flipped = wire.slice();
  flipped[4 + 10] ^= 1; // inside the batch's ciphertext
  const channel = receiver(flipped, { loggedIn: true });
  await assert.rejects(channel.receive(), ProtocolError);
});

Deno.test("Channel.send() matches the batch test vector of docs/PROTOCOL.md", async () => {
  const doc = await Deno.readTextFile(
    new URL("../../docs/PROTOCOL.md", import.meta.url),
  );
  const keys = { ...KEYS, clientToServer: new Uint8Array(32).fill(1) };
  const written: Uint8Array[] = [];
  const conn = {
    write(bytes: Uint8Array): Promise<number> {
      written.push(bytes.slice());
      return Promise.resolve(bytes.length);
    },
    close() {},
  };
  const reader = new FrameReader({ read: () => Promise.resolve(null) });
  const channel = openChannel({ conn, reader }, keys, { role: "client" });
  channel.maxRecordBytes = AFTER_LOGIN_LIMIT;
  const text = new TextEncoder();
  // Record 0 leaves alone; records 1 and 2, sent in one burst, as batch 1.
  channel.send(RecordKind.message, idBytes(9), text.encode("z"));
  await channel.flushed();
  channel.send(RecordKind.message, idBytes(1), text.encode("a"));
  channel.send(RecordKind.message, idBytes(2), text.encode("bc"));
  await channel.flushed();
  const wire = concatBytes(...written);
  const first = 4 + readUint32(wire, 0);
  const hex = Array.from(
    wire.subarray(first),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  assert.equal(hex.length, 2 * (4 + 34));
  assert.ok(doc.includes(`${hex.slice(0, 8)} ${hex.slice(8)}`), hex);
});

Deno.test("Channel.send() after login owns what it was given: a caller reusing its buffer at once changes nothing sent", async () => {
  const { channel, bytes } = sender({ loggedIn: true });
  const small = new Uint8Array(64);
  const large = new Uint8Array(MAX_BATCH_RECORD_BYTES * 2);
  // Small records are held until the write, large ones sealed at once.
  for (let round = 1; round <= 3; round++) {
    small.fill(round);
    channel.send(RecordKind.message, idBytes(round), small);
    large.fill(round);
    channel.send(RecordKind.message, idBytes(100 + round), large);
  }
  small.fill(0xee);
  large.fill(0xee);
  await channel.flushed();
  const received = receiver(bytes(), { loggedIn: true });
  for (let round = 1; round <= 3; round++) {
    for (const [id, size] of [[round, 64], [100 + round, large.length]]) {
      const record = await received.receive();
      const expected = concatBytes(
        idBytes(id),
        new Uint8Array(size).fill(round),
      );
      // A summary, not the arrays: a diff of 32 KiB would take minutes.
      const body = record?.body ?? new Uint8Array();
      const firstDifference = expected.findIndex((byte, i) => body[i] !== byte);
      assert.deepEqual(
        { id, length: body.length, firstDifference },
        { id, length: expected.length, firstDifference: -1 },
      );
    }
  }
});
