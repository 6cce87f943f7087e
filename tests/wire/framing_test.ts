import assert from "node:assert/strict";
import { concatBytes } from "../../lib/wire/bytes.ts";
import {
  ClosedError,
  ConnectionError,
  FrameTooLargeError,
  ProtocolError,
} from "../../lib/errors.ts";
import { encodeFrame, FrameReader, writeAll } from "../../lib/wire/framing.ts";
import { seededBytes, seededRandom, tcpPair } from "../helpers.ts";

/** Payload sizes around the reader's 2 KiB start and 64 KiB largest buffer. */
const SIZES = [0, 1, 3, 4, 5, 512, 2047, 2048, 2049, 4000, 70_000, 0, 200_000];
const PAYLOADS = SIZES.map((size, i) => seededBytes(i + 1, size));
const STREAM = concatBytes(...PAYLOADS.map(encodeFrame));
const LIMIT = 1 << 20;

/** Writes `stream` in pieces whose sizes `nextSize` picks. */
async function writeInPieces(
  conn: Deno.Conn,
  stream: Uint8Array,
  nextSize: () => number,
): Promise<void> {
  for (let offset = 0; offset < stream.length;) {
    const end = Math.min(stream.length, offset + nextSize());
    await writeAll(conn, stream.subarray(offset, end));
    offset = end;
  }
}

/** Reads frames until a clean end, copying each (views are short-lived). */
async function readAllFrames(reader: FrameReader): Promise<Uint8Array[]> {
  const frames: Uint8Array[] = [];
  for (let i = 0; i <= SIZES.length; i++) {
    const frame = await reader.readFrame(LIMIT);
    if (frame === null) return frames;
    frames.push(frame.slice());
  }
  throw new Error("Cannot read frames: more frames than were sent");
}

/** Sends `stream` split by `nextSize`, then closes; returns what was read. */
async function roundTrip(
  stream: Uint8Array,
  nextSize: () => number,
): Promise<Uint8Array[]> {
  await using pair = await tcpPair();
  const [frames] = await Promise.all([
    readAllFrames(new FrameReader(pair.server)),
    writeInPieces(pair.client, stream, nextSize).then(() =>
      pair.client.close()
    ),
  ]);
  return frames;
}

/**
 * An in-memory source that returns at most one of `chunks` per read (less if
 * the target is smaller, keeping the rest), then ends; it counts reads.
 */
function chunkSource(chunks: Uint8Array[]) {
  let next = 0;
  let rest: Uint8Array | undefined;
  let reads = 0;
  return {
    get reads() {
      return reads;
    },
    read(target: Uint8Array): Promise<number | null> {
      reads++;
      const chunk = rest ?? chunks[next++];
      if (chunk === undefined) return Promise.resolve(null);
      const n = Math.min(chunk.length, target.length);
      target.set(chunk.subarray(0, n));
      rest = n < chunk.length ? chunk.subarray(n) : undefined;
      return Promise.resolve(n);
    },
  };
}

Deno.test("encodeFrame() prefixes a 4-byte big-endian length", () => {
  assert.deepEqual(
    encodeFrame(Uint8Array.of(0xaa, 0xbb, 0xcc)),
    Uint8Array.of(0, 0, 0, 3, 0xaa, 0xbb, 0xcc),
  );
  assert.deepEqual(encodeFrame(new Uint8Array(0)), Uint8Array.of(0, 0, 0, 0));
  assert.deepEqual(
    encodeFrame(new Uint8Array(0x010203)).subarray(0, 4),
    Uint8Array.of(0, 1, 2, 3),
  );
});

Deno.test("readFrame() decodes frames written in random pieces", async () => {
  for (let seed = 1; seed <= 3; seed++) {
    const random = seededRandom(seed);
    const frames = await roundTrip(STREAM, () => 1 + random(9000));
    assert.deepEqual(frames, PAYLOADS, `seed ${seed}`);
  }
});

Deno.test("readFrame() decodes frames written one byte at a time", async () => {
  const small = PAYLOADS.filter((payload) => payload.length <= 2049);
  const stream = concatBytes(...small.map(encodeFrame));
  assert.deepEqual(await roundTrip(stream, () => 1), small);
});

Deno.test("readFrame() decodes frames whatever sizes its reads return", async () => {
  // In memory, so every split really reaches the reader (TCP may merge).
  for (let seed = 1; seed <= 3; seed++) {
    const random = seededRandom(seed);
    const pieces = [];
    for (let offset = 0; offset < STREAM.length;) {
      const end = offset + (seed === 1 ? 1 : 1 + random(3000));
      pieces.push(STREAM.subarray(offset, end));
      offset = end;
    }
    const frames = await readAllFrames(new FrameReader(chunkSource(pieces)));
    assert.deepEqual(frames, PAYLOADS, `seed ${seed}`);
  }
});

Deno.test("readFrame() decodes ten frames sent in one write", async () => {
  const ten = Array.from({ length: 10 }, (_, i) => seededBytes(100 + i, i * 7));
  const stream = concatBytes(...ten.map(encodeFrame));
  assert.deepEqual(await roundTrip(stream, () => stream.length), ten);
});

Deno.test("readFrame() decodes frames larger than its buffer", async () => {
  const large = [seededBytes(7, 1 << 20), seededBytes(8, 65_537)];
  const stream = concatBytes(...large.map(encodeFrame));
  assert.deepEqual(await roundTrip(stream, () => stream.length), large);
  const random = seededRandom(9);
  assert.deepEqual(await roundTrip(stream, () => 1 + random(70_000)), large);
});

Deno.test("readFrame() accepts a frame exactly at the limit", async () => {
  const payload = seededBytes(10, 512);
  const reader = new FrameReader(chunkSource([encodeFrame(payload)]));
  assert.deepEqual(await reader.readFrame(512), payload);
});

Deno.test("readFrame() rejects a 513-byte frame before login without reading it", async () => {
  // Header only, then end: a reader that waited for the payload would throw
  // ClosedError instead.
  for (const header of [[0, 0, 2, 1], [0xff, 0xff, 0xff, 0xff]]) {
    await using pair = await tcpPair();
    await pair.client.write(Uint8Array.from(header));
    pair.client.closeWrite();
    const reader = new FrameReader(pair.server);
    await assert.rejects(reader.readFrame(512), FrameTooLargeError);
  }
});

Deno.test("readFrame() rejects a length above the limit as a ProtocolError", async () => {
  const source = chunkSource([Uint8Array.of(0, 0x10, 0, 1)]);
  const reader = new FrameReader(source);
  await assert.rejects(reader.readFrame(1 << 20), ProtocolError);
  assert.equal(source.reads, 1);
});

Deno.test("readFrame() returns null on a clean end between frames", async () => {
  await using pair = await tcpPair();
  const reader = new FrameReader(pair.server);
  await pair.client.write(encodeFrame(Uint8Array.of(1, 2)));
  pair.client.closeWrite();
  assert.deepEqual(await reader.readFrame(512), Uint8Array.of(1, 2));
  assert.equal(await reader.readFrame(512), null);
});

Deno.test("readFrame() throws ClosedError on an end inside the header", async () => {
  for (const cut of [1, 2, 3]) {
    await using pair = await tcpPair();
    const reader = new FrameReader(pair.server);
    await pair.client.write(Uint8Array.of(0, 0, 0, 9).subarray(0, cut));
    pair.client.closeWrite();
    await assert.rejects(reader.readFrame(512), ClosedError, `cut ${cut}`);
  }
});

Deno.test("readFrame() throws ClosedError on an end inside the payload", async () => {
  for (const size of [9, 5000]) {
    await using pair = await tcpPair();
    const reader = new FrameReader(pair.server);
    const frame = encodeFrame(seededBytes(size, size));
    await writeAll(pair.client, frame.subarray(0, frame.length - 1));
    pair.client.closeWrite();
    await assert.rejects(reader.readFrame(LIMIT), ClosedError, `${size}`);
  }
  // A header with no payload at all.
  const reader = new FrameReader(chunkSource([Uint8Array.of(0, 0, 0, 1)]));
  await assert.rejects(reader.readFrame(512), ClosedError);
});

Deno.test("readFrame() wraps a failing read in ConnectionError", async () => {
  const reader = new FrameReader({
    read: () => Promise.reject(new Deno.errors.ConnectionReset("reset")),
  });
  await assert.rejects(reader.readFrame(512), ConnectionError);
});

Deno.test("readExact() reads raw bytes then frames from one buffer", async () => {
  await using pair = await tcpPair();
  const reader = new FrameReader(pair.server);
  const preamble = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  const payload = seededBytes(11, 40);
  await pair.client.write(concatBytes(preamble, encodeFrame(payload)));
  assert.deepEqual(await reader.readExact(8), preamble);
  assert.deepEqual(await reader.readFrame(512), payload);
  assert.equal(reader.buffered, 0);
});

Deno.test("readExact() reads bytes split over many reads", async () => {
  const bytes = seededBytes(12, 5000);
  const pieces = [];
  for (let offset = 0; offset < bytes.length; offset += 999) {
    pieces.push(bytes.subarray(offset, offset + 999));
  }
  const reader = new FrameReader(chunkSource(pieces));
  assert.deepEqual(await reader.readExact(3000), bytes.subarray(0, 3000));
  assert.deepEqual(await reader.readExact(2000), bytes.subarray(3000));
  assert.equal(await reader.readExact(1), null);
});

Deno.test("readExact() returns a copy that later reads do not change", async () => {
  const reader = new FrameReader(
    chunkSource([Uint8Array.of(1, 2), Uint8Array.of(3, 4)]),
  );
  const first = await reader.readExact(2);
  await reader.readExact(2);
  assert.deepEqual(first, Uint8Array.of(1, 2));
});

Deno.test("readExact() returns null on an end before the first byte and throws ClosedError after some", async () => {
  assert.equal(await new FrameReader(chunkSource([])).readExact(8), null);
  const reader = new FrameReader(chunkSource([Uint8Array.of(1, 2, 3)]));
  await assert.rejects(reader.readExact(8), ClosedError);
});

Deno.test("writeAll() writes everything through a sink that takes 3 bytes per call", async () => {
  const written: number[] = [];
  const bytes = seededBytes(13, 100);
  await writeAll({
    write(chunk: Uint8Array) {
      const taken = chunk.subarray(0, 3);
      written.push(...taken);
      return Promise.resolve(taken.length);
    },
  }, bytes);
  assert.deepEqual(Uint8Array.from(written), bytes);
});

Deno.test("writeAll() wraps a failing write in ConnectionError", async () => {
  await assert.rejects(
    writeAll({
      write: () => Promise.reject(new Deno.errors.BrokenPipe("gone")),
    }, Uint8Array.of(1)),
    ConnectionError,
  );
});
