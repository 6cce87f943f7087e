import assert from "node:assert/strict";
import { startForwarder } from "../../lib/client/forward.ts";
import { parseForwardTargets } from "../../lib/server/forward_targets.ts";
import { startTestServer, waitFor } from "../fixtures/server_fixture.ts";
import { startBackend } from "../fixtures/tunnel_backend.ts";

const USERS = { alice: "pw-alice" };

async function echoThrough(port: number, text: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(text));
    await conn.closeWrite();
    const chunks: string[] = [];
    const buffer = new Uint8Array(1024);
    for (let reads = 0; reads < 1000; reads++) {
      const count = await conn.read(buffer);
      if (count === null) break;
      chunks.push(new TextDecoder().decode(buffer.subarray(0, count)));
    }
    return chunks.join("");
  } finally {
    conn.close();
  }
}

for (const pool of [{ warm: 0, maxIdle: 0 }, { warm: 1, maxIdle: 4 }]) {
  Deno.test(`forwarder with warm ${pool.warm} and max-idle ${pool.maxIdle}: every connection gets a stream, one log line pair each`, async () => {
    await using backend = startBackend("echo");
    await using ts = await startTestServer({
      users: USERS,
      forwardTargets: parseForwardTargets({
        forward: [`echo=127.0.0.1:${backend.port}`],
      }),
    });
    const lines: string[] = [];
    const forwarder = startForwarder({
      listen: { hostname: "127.0.0.1", port: 0 },
      stream: {
        port: ts.port,
        psk: ts.psk,
        user: "alice",
        password: USERS.alice,
        target: "echo",
        saltedPasswords: new Map(),
      },
      log: (line) => lines.push(line),
      ...pool,
    });
    try {
      for (let i = 0; i < 3; i++) {
        assert.equal(
          await echoThrough(forwarder.addr.port, `hello ${i}`),
          `hello ${i}`,
        );
      }
    } finally {
      await forwarder.stop();
    }
    assert.equal(lines.filter((line) => / open #/.test(line)).length, 3);
    assert.deepEqual(
      lines.filter((line) => / close #/.test(line)).map((line) =>
        line.replace(/ ms=\d+$/, "")
      ),
      [1, 2, 3].map((id) => `forward: close #${id} up=7 down=7 ended`),
    );
    assert.ok(await waitFor(() => ts.server.connections === 0));
    assert.equal(ts.events("stream_closed").length, 3);
    const logins = ts.events("login_succeeded").length;
    if (pool.maxIdle === 0) assert.equal(logins, 3);
    else assert.ok(logins <= 2, `reused connections: ${logins} logins`);
  });
}
