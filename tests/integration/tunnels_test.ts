/**
 * Tunnels end to end: the real `server.ts serve --forward ...` and
 * `client.ts forward` / `client.ts stdio`, in front of a real redis-server
 * (redis-cli and redis-benchmark through both), socat for redis-cli through
 * stdio, and the test backends of `../fixtures/tunnel_backend.ts`.
 * Skips with a printed reason when redis or socat is missing (CI installs
 * them; a skip there fails).
 *
 * @module
 */

import assert from "node:assert/strict";
import { concatBytes, toHex } from "../../lib/wire/bytes.ts";
import { sha256 } from "../../lib/wire/crypto.ts";
import { PROXY_TLV_USER } from "../../lib/server/proxy_header.ts";
import { seededBytes } from "../helpers.ts";
import { startBackend } from "../fixtures/tunnel_backend.ts";
import { skipWithout } from "../fixtures/external_fixture.ts";
import {
  denoRun,
  runClient,
  runProgram,
  startListening,
  startServer,
} from "./server_process.ts";

const MIB = 1024 * 1024;
const USERS = { alice: "pw-alice", bob: "pw-bob" };
const ALICE = { DOORMAN_PASSWORD: USERS.alice };

const ignore = skipWithout(
  "redis-server",
  "redis-cli",
  "redis-benchmark",
  "socat",
);

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Runs redis-cli until it answers PONG (bounded), so a listener is up. */
async function waitForPong(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const result = await runProgram(["redis-cli"], [
      "-p",
      String(port),
      "ping",
    ]);
    if (result.stdout.trim() === "PONG") return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Nothing answers PONG on port ${port}`);
}

async function startRedis(): Promise<AsyncDisposable & { port: number }> {
  const port = freePort();
  const child = new Deno.Command("redis-server", {
    args: [
      ...["--port", String(port), "--bind", "127.0.0.1"],
      ...["--save", "", "--appendonly", "no"],
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
  };
  try {
    await waitForPong(port);
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, [Symbol.asyncDispose]: stop };
}

function clientArgs(server: { port: number; keyFile: string }, user = "alice") {
  return [
    ...["--port", String(server.port), "--key-file", server.keyFile],
    ...["--user", user],
  ];
}

Deno.test({
  name:
    "redis-cli and redis-benchmark through client.ts forward; one log line per connection",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using server = await startServer({
      service: "echo",
      users: USERS,
      args: ["--forward", `redis=127.0.0.1:${redis.port}`],
    });
    await using forwarder = await startListening(denoRun("client"), [
      ...["forward", "--listen", "0", "--target", "redis"],
      ...clientArgs(server),
    ], { env: ALICE });
    const cli = (...args: string[]) =>
      runProgram(["redis-cli"], ["-p", String(forwarder.port), ...args]);
    assert.equal((await cli("ping")).stdout.trim(), "PONG");
    assert.equal((await cli("set", "tunnel", "works")).stdout.trim(), "OK");
    assert.equal((await cli("get", "tunnel")).stdout.trim(), "works");
    const bench = await runProgram(["redis-benchmark"], [
      ...["-p", String(forwarder.port), "-n", "2000", "-c", "10"],
      ...["-t", "set,get", "-q"],
    ]);
    assert.equal(bench.code, 0, bench.stderr);
    assert.match(bench.stdout, /SET: .*requests per second/);
    assert.match(bench.stdout, /GET: .*requests per second/);
    const result = await forwarder.stop("SIGTERM");
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stderr.trim().split("\n");
    const opens = lines.filter((line) => / open #\d+ /.test(line));
    const closes = lines.filter((line) => / close #\d+ /.test(line));
    assert.ok(opens.length >= 3 + 10, result.stderr);
    assert.equal(closes.length, opens.length);
    assert.match(closes[0], /close #1 up=14 down=7 ended ms=\d+$/);
    assert.ok(!result.stderr.includes(USERS.alice), "no password in logs");
  },
});

Deno.test({
  name:
    "redis-cli through client.ts stdio (under socat), and a RESP request on stdio's stdin",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using server = await startServer({
      service: "echo",
      users: USERS,
      args: ["--forward", `redis=127.0.0.1:${redis.port}`],
    });
    const piped = await runClient(
      ["stdio", "--target", "redis", ...clientArgs(server)],
      { stdin: "PING\r\nSET k v\r\nGET k\r\n", env: ALICE },
    );
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stdout, "+PONG\r\n+OK\r\n$1\r\nv\r\n");
    // A script, not EXEC's own argument list: socat splits that on commas.
    const script = `${server.dir}/stdio.sh`;
    const stdio = [
      ...denoRun("client"),
      ...["stdio", "--target", "redis", ...clientArgs(server)],
    ].map((arg) => `'${arg}'`).join(" ");
    await Deno.writeTextFile(script, `#!/bin/sh\nexec ${stdio}\n`, {
      mode: 0o700,
    });
    const port = freePort();
    const socat = new Deno.Command("socat", {
      args: [
        `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`,
        `EXEC:${script}`,
      ],
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "",
        HOME: Deno.env.get("HOME") ?? "",
        ...ALICE,
      },
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await waitForPong(port);
      const set = await runProgram(["redis-cli"], [
        "-p",
        String(port),
        "set",
        "via",
        "stdio",
      ]);
      assert.equal(set.stdout.trim(), "OK");
      const get = await runProgram(["redis-cli"], [
        "-p",
        String(port),
        "get",
        "via",
      ]);
      assert.equal(get.stdout.trim(), "stdio");
    } finally {
      socat.kill("SIGTERM");
      await socat.status;
    }
  },
});

Deno.test({
  name:
    "8 MiB each way through client.ts forward, checked by hash, with half-close (request, EOF, response)",
  ignore,
  async fn() {
    await using backend = startBackend("hash", { responseBytes: 8 * MIB });
    await using server = await startServer({
      service: "echo",
      users: USERS,
      args: ["--forward", `bulk=127.0.0.1:${backend.port}`],
    });
    await using forwarder = await startListening(denoRun("client"), [
      ...["forward", "--listen", "127.0.0.1:0", "--target", "bulk"],
      ...clientArgs(server),
    ], { env: ALICE });
    const request = seededBytes(5, 8 * MIB);
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: forwarder.port,
    });
    const writing = (async () => {
      for (let offset = 0; offset < request.length;) {
        offset += await conn.write(request.subarray(offset, offset + 65536));
      }
      await conn.closeWrite();
    })();
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(65536);
    for (let reads = 0; reads < 1_000_000; reads++) {
      const count = await conn.read(buffer);
      if (count === null) break;
      chunks.push(buffer.slice(0, count));
    }
    await writing;
    conn.close();
    await backend.ended(1);
    assert.equal(backend.connections[0].hash, toHex(sha256(request)));
    const response = concatBytes(...chunks);
    assert.equal(response.length, 8 * MIB);
    assert.equal(
      toHex(sha256(response)),
      toHex(sha256(seededBytes(2, 8 * MIB))),
    );
    const result = await forwarder.stop("SIGTERM");
    assert.match(
      result.stderr,
      new RegExp(`close #1 up=${8 * MIB} down=${8 * MIB} ended`),
    );
  },
});

Deno.test({
  name:
    "a target that is down, a user who may not use a target: clear reasons, logged, the server serves on",
  ignore,
  async fn() {
    await using backend = startBackend("echo");
    await using server = await startServer({
      service: "echo",
      users: USERS,
      args: [
        ...["--forward", "down=127.0.0.1:1"],
        ...["--forward", `echo=127.0.0.1:${backend.port}`],
        ...["--forward-users", "echo=bob"],
      ],
    });
    const down = await runClient(
      ["stdio", "--target", "down", ...clientArgs(server)],
      { stdin: "x", env: ALICE },
    );
    assert.equal(down.code, 5);
    assert.equal(
      down.stderr.trim(),
      'client: Server closed the stream to "down": cannot reach target "down"',
    );
    const forbidden = await runClient(
      ["stdio", "--target", "echo", ...clientArgs(server)],
      { stdin: "x", env: ALICE },
    );
    assert.equal(forbidden.code, 5);
    assert.match(forbidden.stderr, /not allowed to use target "echo"/);
    const bob = await runClient(
      ["stdio", "--target", "echo", ...clientArgs(server, "bob")],
      { stdin: "hello bob", env: { DOORMAN_PASSWORD: USERS.bob } },
    );
    assert.equal(bob.code, 0, bob.stderr);
    assert.equal(bob.stdout, "hello bob");
    const log = (await server.stop()).stderr;
    assert.match(
      log,
      /stream_failed .*user=alice key=default target=down reason="cannot reach target \\"down\\""/,
    );
    assert.match(log, /stream_refused .*user=alice key=default target=echo /);
    assert.doesNotMatch(log, /login_failed/);
  },
});

Deno.test({
  name:
    "--forward-proxy-protocol: the backend parses a PROXY v2 header with the client's address and user",
  ignore,
  async fn() {
    await using backend = startBackend("echo", { proxyHeader: true });
    await using server = await startServer({
      service: "echo",
      users: USERS,
      args: [
        ...["--forward", `app=127.0.0.1:${backend.port}`],
        ...["--forward-proxy-protocol", "app"],
      ],
    });
    const result = await runClient(
      ["stdio", "--target", "app", ...clientArgs(server)],
      { stdin: "GET / HTTP/1.0\r\n\r\n", env: ALICE },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "GET / HTTP/1.0\r\n\r\n");
    await backend.ended(1);
    const proxy = backend.connections[0].proxy;
    assert.ok(proxy);
    assert.equal(proxy.sourceAddress, "127.0.0.1");
    assert.equal(proxy.destinationAddress, "127.0.0.1");
    assert.equal(proxy.destinationPort > 0, true);
    assert.equal(proxy.tlvs.get(PROXY_TLV_USER), "alice");
  },
});

Deno.test({
  name:
    "client.ts forward keeps running while the server is down, logging each failed connection",
  ignore,
  async fn() {
    await using server = await startServer({
      service: "echo",
      users: USERS,
      args: ["--forward", "x=127.0.0.1:1"],
    });
    const args = clientArgs(server);
    await server.stop("SIGKILL");
    await using forwarder = await startListening(denoRun("client"), [
      ...["forward", "--listen", "0", "--target", "x", ...args],
    ], { env: ALICE });
    for (let i = 0; i < 2; i++) {
      const conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: forwarder.port,
      });
      const read = await conn.read(new Uint8Array(16)).catch(() => null);
      assert.equal(read, null);
      conn.close();
    }
    const result = await forwarder.stop("SIGTERM");
    assert.equal(result.code, 0);
    assert.equal(
      result.stderr.match(/close #\d+ up=0 down=0 failed: Cannot connect/g)
        ?.length,
      2,
      result.stderr,
    );
  },
});
