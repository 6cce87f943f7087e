/**
 * The outbox builds held records in place as one batch plaintext, inside
 * the buffer that becomes the frame: a lone record as itself, several as a
 * batch (docs/PROTOCOL.md, "Batch records"), each within 16 KiB.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  BATCH_ENTRY_HEADER,
  MAX_BATCH_PLAINTEXT,
  MAX_BATCHED_RECORD,
  Outbox,
} from "../../lib/wire/outbox.ts";
import {
  FRAME_HEADER_BYTES,
  RecordKind,
  TAG_BYTES,
} from "../../lib/wire/protocol.ts";

function plaintext(held: { buffer: Uint8Array; start: number; end: number }) {
  return held.buffer.slice(held.start + FRAME_HEADER_BYTES, held.end);
}

Deno.test("Outbox.take() gives a lone record as itself: kind then body", () => {
  const outbox = new Outbox();
  assert.equal(outbox.take(), null);
  assert.ok(
    outbox.add(RecordKind.message, [Uint8Array.of(1, 2), Uint8Array.of(3)], 3),
  );
  // The batch's kind byte, then one entry: its length, kind and body.
  assert.equal(outbox.bytes, 1 + BATCH_ENTRY_HEADER + 4);
  const held = outbox.take();
  assert.ok(held);
  assert.deepEqual(plaintext(held), Uint8Array.of(RecordKind.message, 1, 2, 3));
  assert.ok(held.buffer.length >= held.end + TAG_BYTES, "room for the tag");
  assert.ok(outbox.empty);
  assert.equal(outbox.bytes, 0);
  assert.equal(outbox.take(), null);
});

Deno.test("Outbox.take() gives several records as one batch plaintext, in order", () => {
  const outbox = new Outbox();
  outbox.add(RecordKind.reply, [Uint8Array.of(7)], 1);
  outbox.add(RecordKind.ack, [], 0);
  const held = outbox.take();
  assert.ok(held);
  assert.equal(held.start, 0);
  assert.deepEqual(
    plaintext(held),
    Uint8Array.of(
      RecordKind.batch,
      0,
      2,
      RecordKind.reply,
      7,
      0,
      1,
      RecordKind.ack,
    ),
  );
});

Deno.test("Outbox.add() copies the parts: the caller may reuse them at once", () => {
  const outbox = new Outbox();
  const part = new Uint8Array(3000).fill(1);
  for (let i = 0; i < 4; i++) outbox.add(RecordKind.push, [part], part.length);
  part.fill(9);
  const held = outbox.take();
  assert.ok(held);
  const body = plaintext(held);
  assert.equal(body.length, 1 + 4 * (BATCH_ENTRY_HEADER + 1 + 3000));
  assert.equal(body.filter((byte) => byte === 9).length, 0);
});

Deno.test("Outbox.add() refuses a record that would take the batch past 16 KiB", () => {
  const outbox = new Outbox();
  const big = new Uint8Array(MAX_BATCHED_RECORD - 1);
  assert.ok(outbox.add(RecordKind.push, [big], big.length));
  assert.equal(outbox.bytes, MAX_BATCH_PLAINTEXT);
  assert.equal(outbox.add(RecordKind.push, [], 0), false);
  assert.equal(outbox.bytes, MAX_BATCH_PLAINTEXT, "nothing appended");
  const held = outbox.take();
  assert.ok(held);
  assert.ok(held.buffer.length >= held.end + TAG_BYTES);
  const fresh = new Outbox();
  assert.equal(
    fresh.add(
      RecordKind.push,
      [new Uint8Array(MAX_BATCHED_RECORD)],
      MAX_BATCHED_RECORD,
    ),
    false,
  );
  assert.ok(fresh.empty);
});

Deno.test("Outbox.clear() drops what is held", () => {
  const outbox = new Outbox();
  outbox.add(RecordKind.message, [Uint8Array.of(1)], 1);
  outbox.clear();
  assert.ok(outbox.empty);
  assert.equal(outbox.take(), null);
});
