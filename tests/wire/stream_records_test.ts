import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/errors.ts";
import {
  checkEmptyStreamRecord,
  checkStreamData,
  decodeStreamOpen,
  encodeStreamOpen,
  MAX_STREAM_DATA_BYTES,
  MAX_STREAM_RECORD_BYTES,
} from "../../lib/wire/stream_records.ts";
import { CloseCode, RecordKind } from "../../lib/wire/protocol.ts";

Deno.test("stream record kinds and close codes are the allocated values", () => {
  assert.deepEqual(
    [
      RecordKind.streamOpen,
      RecordKind.streamOpened,
      RecordKind.streamData,
      RecordKind.streamEnd,
    ],
    [0x30, 0x31, 0x32, 0x33],
  );
  assert.deepEqual(
    [
      CloseCode.targetUnknown,
      CloseCode.targetForbidden,
      CloseCode.targetUnreachable,
      CloseCode.streamAborted,
    ],
    [16, 17, 18, 19],
  );
  assert.equal(MAX_STREAM_DATA_BYTES, 65536);
  assert.equal(MAX_STREAM_RECORD_BYTES, 65553);
});

Deno.test("encodeStreamOpen() is the name's ASCII bytes; decodeStreamOpen() reverses it", () => {
  assert.deepEqual(
    Array.from(encodeStreamOpen("redis")),
    [0x72, 0x65, 0x64, 0x69, 0x73],
  );
  assert.equal(decodeStreamOpen(encodeStreamOpen("a.b_c-9")), "a.b_c-9");
  assert.equal(decodeStreamOpen(encodeStreamOpen("x".repeat(64))).length, 64);
});

Deno.test("target names outside 1 to 64 of [A-Za-z0-9._-] are refused both ways", () => {
  for (const bad of ["", "x".repeat(65), "a b", "é", "a/b", "a=b"]) {
    assert.throws(() => encodeStreamOpen(bad), RangeError, bad);
    assert.throws(
      () => decodeStreamOpen(new TextEncoder().encode(bad)),
      ProtocolError,
    );
  }
  assert.throws(() => decodeStreamOpen(Uint8Array.of(0xff)), ProtocolError);
});

Deno.test("stream data is 1 to 65536 bytes; opened and end are empty", () => {
  checkStreamData(new Uint8Array(1));
  checkStreamData(new Uint8Array(65536));
  assert.throws(() => checkStreamData(new Uint8Array(0)), ProtocolError);
  assert.throws(() => checkStreamData(new Uint8Array(65537)), ProtocolError);
  checkEmptyStreamRecord(new Uint8Array(0), "stream end");
  assert.throws(
    () => checkEmptyStreamRecord(new Uint8Array(1), "stream end"),
    ProtocolError,
  );
});
