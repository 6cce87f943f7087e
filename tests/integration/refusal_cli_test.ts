/**
 * The refusal end to end: the real `server.ts` refuses, the real
 * `client.ts` says why and exits 6 (issue 12, "Refusals say why"); and a
 * keyless source holding idle sockets cannot lock a real client out
 * (issue 11, item 2).
 */

import assert from "node:assert/strict";
import { runClient, startServer } from "./server_process.ts";

async function loginFlags(
  server: { port: number; keyFile: string; dir: string },
): Promise<string[]> {
  const passwordFile = `${server.dir}/alice.password`;
  await Deno.writeTextFile(passwordFile, "alice password\n");
  return [
    ...["--port", String(server.port), "--key-file", server.keyFile],
    ...["--user", "alice", "--password-file", passwordFile],
  ];
}

Deno.test("client.ts prints the server's refusal and exits 6", async () => {
  await using server = await startServer({
    service: "echo",
    users: { alice: "alice password" },
    args: ["--max-connections", "1"],
  });
  const holder = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.port,
  });
  try {
    const result = await runClient([
      "send",
      ...await loginFlags(server),
      "hello",
    ]);
    assert.equal(result.code, 6, result.stderr);
    assert.equal(
      result.stderr,
      "client: server refused the connection: too many connections; retry in 10 s\n",
    );
  } finally {
    holder.close();
  }
});

Deno.test("server.ts keeps serving a client while one address holds idle sockets up to its per-source cap", async () => {
  await using server = await startServer({
    service: "echo",
    users: { alice: "alice password" },
    args: ["--max-startups", "6", "--max-startups-per-source", "3"],
  });
  // node:net binds another loopback source; Deno.connect cannot.
  const net = await import("node:net");
  const idle = Array.from({ length: 10 }, () =>
    net.connect({
      host: "127.0.0.1",
      port: server.port,
      localAddress: "127.0.0.9",
    }).on("error", () => {}));
  try {
    const result = await runClient([
      "send",
      ...await loginFlags(server),
      "hello",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "hello\n");
  } finally {
    for (const socket of idle) socket.destroy();
  }
});
