/**
 * Integration: what a new user runs into in the first hour, against the
 * real `server.ts` and `client.ts`. A port that is not doorman's (an
 * HTTP-ish server, a silent one, one that answers a few bytes) always
 * gives the same one line and exit 1; `--user` against a server without
 * logins; `DOORMAN_KEY` holding a path; a client without the key file;
 * `--help` of the default command; a port in use; flags out of range;
 * nearest-match suggestions, with the help hint naming `deno task client`
 * when run by the task; `deno task` from elsewhere and `deno task install`;
 * a hostile close reason shown safely.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  runClient,
  runProgram,
  runServerTs,
  startServer,
} from "./server_process.ts";
import { serve } from "../../lib/server/serve.ts";
import { CloseCode } from "../../lib/wire/protocol.ts";
import { tempDir } from "../helpers.ts";

const KEY = "0123456789abcdef".repeat(4);
const REPO = fileURLToPath(new URL("../../", import.meta.url));

/** A TCP server on 127.0.0.1 that answers each connection with `reply`. */
function fakePeer(reply: (conn: Deno.TcpConn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.TcpConn>();
  const serving = (async () => {
    for await (const conn of listener) {
      open.add(conn);
      reply(conn).catch(() => {}).finally(() => {
        open.delete(conn);
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      });
    }
  })();
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await serving.catch(() => {});
    },
  };
}

/** Reads what the client sent first, so the reply follows its hello. */
async function readSome(conn: Deno.TcpConn): Promise<void> {
  await conn.read(new Uint8Array(1024));
}

const NOT_DOORMAN: [string, (conn: Deno.TcpConn) => Promise<void>][] = [
  ["an HTTP server", async (conn) => {
    await readSome(conn);
    await conn.write(
      new TextEncoder().encode("HTTP/1.0 400 Bad Request\r\n\r\n"),
    );
  }],
  ["a server answering 3 bytes", async (conn) => {
    await readSome(conn);
    await conn.write(new TextEncoder().encode("NO\n"));
  }],
  ["a server answering a frame-like length", async (conn) => {
    await readSome(conn);
    await conn.write(Uint8Array.of(0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 9));
  }],
  ["a silent server", async (conn) => {
    await readSome(conn);
    await conn.read(new Uint8Array(1024)); // until the client gives up
  }],
];

for (const [what, reply] of NOT_DOORMAN) {
  Deno.test(`client.ts against ${what}: "no doorman reply", exit 1`, async () => {
    await using peer = fakePeer(reply);
    const result = await runClient(
      ["send", "--port", String(peer.port), "--timeout", "1", "hi"],
      { env: { DOORMAN_KEY: KEY } },
    );
    assert.equal(result.code, 1, result.stderr);
    assert.equal(
      result.stderr,
      `client: No doorman reply from 127.0.0.1:${peer.port}; ` +
        "is this a doorman port?\n",
    );
  });
}

Deno.test("client.ts --user against a server without logins says to drop --user", async () => {
  await using server = await startServer({
    service: "echo",
    args: ["--anonymous"],
  });
  const result = await runClient([
    "send",
    ...["--port", String(server.port), "--key-file", server.keyFile],
    ...["--user", "alice", "hi"],
  ], { env: { DOORMAN_PASSWORD: "pw" } });
  assert.equal(result.code, 2, result.stderr);
  assert.equal(
    result.stderr,
    "client: Cannot log in: this server takes no login; drop --user\n",
  );
});

Deno.test("DOORMAN_KEY naming a file is a usage error that names --key-file", async () => {
  await using dir = await tempDir();
  const keyFile = dir.join("doorman.key");
  await Deno.writeTextFile(keyFile, `${KEY}\n`);
  const options = { env: { DOORMAN_KEY: keyFile }, cwd: dir.path };
  const runs = [
    () => runClient(["send", "hi"], options),
    () => runServerTs(["--port", "0"], options),
  ];
  for (const run of runs) {
    const result = await run();
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /: DOORMAN_KEY holds the key itself; use --key-file for a path\n$/,
    );
    assert.ok(!result.stderr.includes(KEY));
  }
});

Deno.test("client.ts without a key file says to copy the server's", async () => {
  await using dir = await tempDir();
  const result = await runClient(["send", "hi"], { cwd: dir.path });
  assert.equal(result.code, 1, result.stderr);
  assert.equal(
    result.stderr,
    'client: Cannot read key file "doorman.key": not found; ' +
      "copy the server's key file here or give --key-file\n",
  );
});

Deno.test("server.ts --help lists serve's flags and the exit codes", async () => {
  for (const args of [["--help"], ["serve", "--help"]]) {
    const result = await runServerTs(args);
    assert.equal(result.code, 0, result.stderr);
    for (
      const text of [
        "--max-connections N",
        "--iterations N",
        "--idle-timeout SECONDS",
        "Exit codes:",
      ]
    ) {
      assert.ok(result.stdout.includes(text), `${args}: lacks ${text}`);
    }
  }
});

Deno.test("server.ts names the address when the port is in use", async () => {
  await using server = await startServer({ service: "echo" });
  const result = await runServerTs(
    ["--port", String(server.port), "--key-file", server.keyFile],
    { cwd: server.dir },
  );
  assert.equal(result.code, 1, result.stderr);
  assert.equal(
    result.stderr.split("\n").at(-2),
    `server: Cannot listen on 127.0.0.1:${server.port}: address already ` +
      "in use (another server running? try --port)",
  );
});

Deno.test("server.ts refuses --iterations and durations out of range before starting", async () => {
  await using dir = await tempDir();
  const cases: [string[], RegExp][] = [
    [["--iterations", "20000000"], /from 4096 to 10000000/],
    [["--idle-timeout", "2147484"], /expected seconds from 0 to 2147483/],
    [["--login-timeout", "99999999999"], /from 1 to 2147483/],
  ];
  for (const [args, pattern] of cases) {
    const result = await runServerTs(args, { cwd: dir.path });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, pattern);
    assert.equal(result.stdout, "");
  }
  const client = await runClient(["send", "--reply-timeout", "2147484", "x"]);
  assert.equal(client.code, 2, client.stderr);
});

Deno.test("a mistyped flag or command gets a suggestion and the help command as run", async () => {
  const direct = await runClient(["--usr", "alice"]);
  assert.equal(direct.code, 2);
  assert.equal(
    direct.stderr,
    'client: Cannot parse client arguments: unknown flag "--usr" (did you ' +
      'mean "--user"?); see "client.ts --help"\n',
  );
  const server = await runServerTs(["kegen"]);
  assert.match(
    server.stderr,
    /\(did you mean "keygen"\?\); see "server.ts --help"/,
  );
  const task = await runProgram(
    [Deno.execPath(), "task", "-q", "client"],
    ["sned", "hi"],
    { cwd: REPO, stdin: "" },
  );
  assert.equal(task.code, 2, task.stderr);
  assert.equal(
    task.stderr,
    'client: Cannot run "sned": unknown command (did you mean "send"?); ' +
      'see "deno task client --help"\n',
  );
});

Deno.test("deno task from another directory and deno task install resolve paths against the caller's directory", async () => {
  await using elsewhere = await tempDir();
  await using peer = fakePeer(async (conn) => {
    await readSome(conn);
    await conn.write(
      new TextEncoder().encode("HTTP/1.0 400 Bad Request\r\n\r\n"),
    );
  });
  await Deno.writeTextFile(elsewhere.join("my.key"), `${KEY}\n`);
  const args = [
    "send",
    "--key-file",
    "./my.key",
    "--port",
    String(peer.port),
    "x",
  ];
  // The key is found in the caller's directory: the handshake is reached.
  const expected = `client: No doorman reply from 127.0.0.1:${peer.port}; ` +
    "is this a doorman port?\n";
  const task = await runProgram(
    [Deno.execPath(), "task", "-q", "--config", `${REPO}deno.json`, "client"],
    args,
    { cwd: elsewhere.path, stdin: "" },
  );
  assert.equal(task.stderr, expected);
  const root = elsewhere.join("root");
  const install = await runProgram(
    [Deno.execPath(), "task", "-q", "install"],
    ["--root", root],
    { cwd: REPO },
  );
  assert.equal(install.code, 0, install.stderr);
  const installed = await runProgram([`${root}/bin/doorman-client`], args, {
    cwd: elsewhere.path,
    stdin: "",
  });
  assert.equal(installed.stderr, expected);
  assert.equal(installed.code, 1);
});

Deno.test("client.ts prints a hostile close reason with its control characters replaced", async () => {
  await using dir = await tempDir();
  const keyFile = dir.join("doorman.key");
  await Deno.writeTextFile(keyFile, `${KEY}\n`);
  const server = serve(
    { port: 0, psk: new TextEncoder().encode(KEY) },
    async (session) => {
      await session.close(
        CloseCode.normal,
        "bye\x1b]0;owned\x07\x1b[2J\u202Egnp.exe",
      );
    },
  );
  try {
    const result = await runClient([
      "send",
      ...["--port", String(server.addr.port), "--key-file", keyFile],
      "hi",
    ]);
    assert.equal(result.code, 5, result.stderr);
    assert.equal(
      result.stderr,
      "client: Server closed the connection: " +
        "bye\uFFFD]0;owned\uFFFD\uFFFD[2J\uFFFDgnp.exe\n",
    );
  } finally {
    await server.shutdown();
  }
});
