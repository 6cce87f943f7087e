import assert from "node:assert/strict";
import { utf8 } from "../../lib/wire/bytes.ts";
import { echoService } from "../../lib/services/echo.ts";
import { startTestServer, waitFor } from "../fixtures/server_fixture.ts";
import { seededBytes } from "../helpers.ts";

Deno.test("echoService replies to each message with its own bytes", async () => {
  await using ts = await startTestServer({ handler: echoService });
  const client = await ts.connect();
  const messages = [
    utf8("hello"),
    new Uint8Array(0),
    utf8("grüße, 世界 🙂"),
    Uint8Array.of(0, 0xff, 0xfe, 0x80, 0x0a, 0x0d),
    seededBytes(7, 64 * 1024),
  ];
  for (const message of messages) {
    assert.deepEqual(await client.request(message), message);
  }
});

Deno.test("echoService echoes a message of exactly maxMessageBytes", async () => {
  await using ts = await startTestServer({
    handler: echoService,
    maxMessageBytes: 256 * 1024,
  });
  const client = await ts.connect({ maxMessageBytes: 256 * 1024 });
  const largest = seededBytes(8, 256 * 1024);
  assert.deepEqual(await client.request(largest), largest);
});

Deno.test("echoService answers 1000 pipelined messages in order", async () => {
  await using ts = await startTestServer({ handler: echoService });
  const client = await ts.connect();
  const messages = Array.from({ length: 1000 }, (_, i) => `message ${i}`);
  const replies = await Promise.all(messages.map((m) => client.request(m)));
  assert.deepEqual(replies.map((r) => new TextDecoder().decode(r)), messages);
});

Deno.test("echoService pushes nothing and ends when the client closes", async () => {
  await using ts = await startTestServer({ handler: echoService });
  const client = await ts.connect();
  assert.deepEqual(await client.request("x"), utf8("x"));
  const closing = client.close();
  const pushes: Uint8Array[] = [];
  for await (const push of client) pushes.push(push);
  await closing;
  assert.deepEqual(pushes, []);
  assert.ok(await waitFor(() => ts.events("closed").length === 1));
  assert.equal(ts.events("closed")[0].reason, "client closed");
});
