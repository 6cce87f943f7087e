/**
 * Spec: which close code an oversized record before login gets
 * (docs/PROTOCOL.md, "Steps").
 *
 * @module
 */

import assert from "node:assert/strict";
import { CloseCode, RecordKind } from "../../lib/wire/protocol.ts";
import { rawChannel, startTestServer } from "../fixtures/server_fixture.ts";

Deno.test("serve() answers a record over 512 bytes before login with close code 7", async () => {
  await using ts = await startTestServer({ users: { alex: "pw" } });
  await using raw = await rawChannel(ts.port, ts.psk);
  raw.channel.send(RecordKind.login, new Uint8Array(600));
  assert.equal(await raw.channel.receive(), null);
  assert.deepEqual(raw.channel.closeInfo, {
    code: CloseCode.protocolError,
    reason: "protocol error",
  });
});
