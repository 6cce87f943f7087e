/**
 * pumpStream() and batching: after login the channel holds records sent
 * while a write is pending and seals them at the next flush, so the pump
 * must never read into bytes it already sent. Small reads (batched) and
 * full reads (sealed alone, held as well) both arrive intact and in order.
 *
 * @module
 */

import assert from "node:assert/strict";
import { concatBytes, toHex } from "../../lib/wire/bytes.ts";
import { openChannel } from "../../lib/wire/channel.ts";
import { sha256 } from "../../lib/wire/crypto.ts";
import { FrameReader } from "../../lib/wire/framing.ts";
import type { SessionKeys } from "../../lib/wire/key_schedule.ts";
import { CloseCode, RecordKind } from "../../lib/wire/protocol.ts";
import { pumpStream, type StreamSocket } from "../../lib/wire/stream_pump.ts";
import { seededBytes } from "../helpers.ts";

const KEYS: SessionKeys = {
  clientToServer: seededBytes(1, 32),
  serverToClient: seededBytes(2, 32),
  transcriptHash: new Uint8Array(32),
  channelBinding: new Uint8Array(32),
};
const AFTER_LOGIN_LIMIT = 1024 * 1024 + 21;

/** Reads `input` in the given sizes, one read at a time, then EOF. */
function readingSocket(input: Uint8Array, sizes: number[]): StreamSocket {
  let offset = 0;
  let turn = 0;
  return {
    read(target) {
      if (offset >= input.length) return Promise.resolve(null);
      const size = sizes[turn++ % sizes.length];
      const count = Math.min(target.length, size, input.length - offset);
      target.set(input.subarray(offset, offset + count));
      offset += count;
      return Promise.resolve(count);
    },
    write: (bytes) => Promise.resolve(bytes.length),
    closeWrite: () => Promise.resolve(),
    close() {},
  };
}

/** The stream data a server channel opens from `bytes`, until streamEnd. */
async function streamDataIn(bytes: Uint8Array): Promise<Uint8Array> {
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
  channel.maxRecordBytes = AFTER_LOGIN_LIMIT;
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 100_000; i++) {
    const record = await channel.receive();
    assert.ok(record, "a streamEnd comes before the end of the bytes");
    if (record.kind === RecordKind.streamEnd) break;
    assert.equal(record.kind, RecordKind.streamData);
    parts.push(record.body.slice());
  }
  return concatBytes(...parts);
}

for (
  const [label, sizes] of [
    ["small reads (batched)", [100, 37, 900]],
    ["reads that fill the buffer (held, sealed alone)", [65536]],
    ["mixed", [2048, 10, 8192, 65536, 3000]],
  ] as const
) {
  Deno.test(`pumpStream() sends every byte intact when the channel holds records until its flush: ${label}`, async () => {
    const written: Uint8Array[] = [];
    // The peer sends nothing: the pump's receive waits until it is stopped.
    const { promise: cut, resolve: cutNow } = Promise.withResolvers<null>();
    const conn = {
      write(bytes: Uint8Array): Promise<number> {
        written.push(bytes.slice());
        return Promise.resolve(bytes.length);
      },
      close: () => cutNow(null),
    };
    const reader = new FrameReader({ read: () => cut });
    const channel = openChannel({ conn, reader }, KEYS, { role: "client" });
    channel.maxRecordBytes = AFTER_LOGIN_LIMIT;
    const input = seededBytes(7, 1024 * 1024);
    const stop = new AbortController();
    const pumping = pumpStream(channel, readingSocket(input, [...sizes]), {
      label: "test socket",
      signal: stop.signal,
    });
    // Bounded wait until every byte and the streamEnd were written.
    const complete = () =>
      streamDataIn(concatBytes(...written)).then(
        (data) => data.length === input.length,
        () => false,
      );
    for (let i = 0; i < 1000 && !(await complete()); i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    stop.abort({ code: CloseCode.normal, reason: "test done" });
    await pumping;
    const data = await streamDataIn(concatBytes(...written));
    assert.equal(data.length, input.length);
    assert.equal(toHex(sha256(data)), toHex(sha256(input)));
  });
}
