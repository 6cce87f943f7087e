import assert from "node:assert/strict";
import { AddressFilter } from "../../lib/server/address_filter.ts";
import { createServerMetrics } from "../../lib/server/metrics.ts";
import { utf8 } from "../../lib/wire/bytes.ts";
import { openChannel } from "../../lib/wire/channel.ts";
import { FrameReader } from "../../lib/wire/framing.ts";
import { handshakeAsClient } from "../../lib/wire/handshake.ts";
import { encodePreamble } from "../../lib/wire/key_schedule.ts";
import { RecordKind } from "../../lib/wire/protocol.ts";
import {
  rawConnect,
  readUntilClosed,
  startTestServer,
  waitFor,
} from "../fixtures/server_fixture.ts";

const encoder = new TextEncoder();

/** Sends `header`, then runs the handshake and one echo round trip. */
async function echoThrough(port: number, psk: Uint8Array, header: string) {
  await using conn = await rawConnect(port);
  await conn.write(encoder.encode(header));
  const framed = { conn, reader: new FrameReader(conn) };
  const keys = await handshakeAsClient(framed, psk);
  const channel = openChannel(framed, keys, { role: "client" });
  await channel.send(
    RecordKind.message,
    new Uint8Array([0, 0, 0, 1, ...utf8("hi")]),
  );
  const record = await channel.receive();
  channel.abort();
  return record;
}

Deno.test("serve() takes the client's address from a PROXY header sent by a listed proxy", async () => {
  await using ts = await startTestServer({
    proxyProtocolFrom: ["127.0.0.0/8"],
  });
  const record = await echoThrough(
    ts.port,
    ts.psk,
    `PROXY TCP4 192.0.2.7 127.0.0.1 5555 ${ts.port}\r\n`,
  );
  assert.notEqual(record, null);
  assert.deepEqual(ts.events("accepted").map((e) => e.peer), [
    "192.0.2.7:5555",
  ]);
  assert.ok(await waitFor(() => ts.events("closed").length === 1));
  assert.equal(ts.events("closed")[0].peer, "192.0.2.7:5555");
});

Deno.test("serve() refuses a listed proxy's connection without a header, before any crypto", async () => {
  await using ts = await startTestServer({ proxyProtocolFrom: ["127.0.0.1"] });
  await using conn = await rawConnect(ts.port);
  await conn.write(
    new Uint8Array([
      ...encodePreamble(),
      0,
      0,
      0,
      65,
      ...new Array(65).fill(1),
    ]),
  );
  const result = await readUntilClosed(conn);
  assert.deepEqual(result, { bytes: 0, ended: true });
  const refused = ts.events("refused");
  assert.equal(refused.length, 1);
  assert.match(refused[0].reason ?? "", /^proxy header: /);
  assert.deepEqual(ts.events("accepted"), []);
});

Deno.test("serve() refuses a denied client address with reason 5 before any crypto", async () => {
  await using ts = await startTestServer({
    proxyProtocolFrom: ["127.0.0.1"],
    addressFilter: new AddressFilter({ deny: ["192.0.2.0/24"] }),
  });
  await using conn = await rawConnect(ts.port);
  await conn.write(encoder.encode(`PROXY TCP4 192.0.2.9 127.0.0.1 1 2\r\n`));
  const reader = new FrameReader(conn);
  assert.deepEqual(await reader.readExact(8), encodePreamble());
  assert.deepEqual(
    await reader.readExact(8),
    new Uint8Array([0, 0, 0, 4, 0x7d, 5, 0, 0]),
  );
  assert.deepEqual(ts.events("refused").map((e) => [e.peer, e.reason]), [
    ["192.0.2.9:1", "address denied"],
  ]);
});

Deno.test("serve() with a PROXY header from an unlisted address fails as not doorman", async () => {
  await using ts = await startTestServer({ proxyProtocolFrom: ["10.0.0.1"] });
  await assert.rejects(() =>
    echoThrough(ts.port, ts.psk, "PROXY TCP4 192.0.2.7 127.0.0.1 1 2\r\n")
  );
  assert.ok(await waitFor(() => ts.events("handshake_failed").length === 1));
  assert.equal(
    ts.events("handshake_failed")[0].peer?.startsWith("127.0.0.1:"),
    true,
  );
});

Deno.test("serve() meters bytes and frames both ways", async () => {
  const metrics = createServerMetrics();
  await using ts = await startTestServer({ metrics });
  const client = await ts.connect();
  assert.equal(
    new TextDecoder().decode((await client.request("hello"))!),
    "hello",
  );
  await client.close();
  assert.ok(await waitFor(() => ts.events("closed").length === 1));
  // ClientHello, ClientFinished, message, close at least; ServerHello, reply.
  assert.ok(metrics.framesIn.value() >= 4, `${metrics.framesIn.value()}`);
  assert.ok(metrics.framesOut.value() >= 2, `${metrics.framesOut.value()}`);
  assert.ok(metrics.bytesIn.value() > 100);
  assert.ok(metrics.bytesOut.value() > 100);
});

Deno.test("serve() counts every refusal by reason in the metrics, past the log's aggregation", async () => {
  const metrics = createServerMetrics();
  await using ts = await startTestServer({
    metrics,
    maxConnections: 1,
    proxyProtocolFrom: ["127.0.0.1"],
    addressFilter: new AddressFilter({ deny: ["192.0.2.0/24"] }),
  });
  const refusals = (reason: string) =>
    metrics.registry.render().match(
      new RegExp(
        `doorman_connections_refused_total\\{reason="${reason}"\\} (\\d+)`,
      ),
    )?.[1];
  // 15 denied: more than the log passes per address in a window (10).
  for (let i = 0; i < 15; i++) {
    await using conn = await rawConnect(ts.port);
    await conn.write(encoder.encode(`PROXY TCP4 192.0.2.9 127.0.0.1 1 2\r\n`));
    const reader = new FrameReader(conn);
    await reader.readExact(16);
  }
  assert.equal(refusals("address_denied"), "15");
  assert.ok(ts.events("refused").length < 15);
  // Another reason, through the same writer.
  await using held = await rawConnect(ts.port);
  await held.write(encoder.encode(`PROXY TCP4 198.51.100.1 127.0.0.1 1 2\r\n`));
  await waitFor(() => ts.server.connections === 1);
  await using conn = await rawConnect(ts.port);
  await conn.write(encoder.encode(`PROXY TCP4 198.51.100.2 127.0.0.1 1 2\r\n`));
  const reader = new FrameReader(conn);
  assert.deepEqual(await reader.readExact(8), encodePreamble());
  assert.deepEqual(
    await reader.readExact(8),
    new Uint8Array([0, 0, 0, 4, 0x7d, 1, 0, 10]),
  );
  assert.equal(refusals("max_connections"), "1");
});
