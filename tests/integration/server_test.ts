import assert from "node:assert/strict";
import { toHex, utf8 } from "../../lib/wire/bytes.ts";
import { connect } from "../../lib/client/connect.ts";
import { KeyRejectedError, LoginRejectedError } from "../../lib/errors.ts";
import { CloseCode } from "../../lib/wire/protocol.ts";
import {
  rawConnect,
  readUntilClosed,
  text,
  waitFor,
  writeUsers,
} from "../fixtures/server_fixture.ts";
import { type TempDir, tempDir } from "../helpers.ts";
import { runServerTs, startServerProcess } from "./server_process.ts";

/** Every flag of `server.ts serve`. */
const SERVE_FLAGS = [
  "--host",
  "--port",
  "--key-file",
  "--users",
  "--anonymous",
  "--service",
  "--max-connections",
  "--max-startups",
  "--login-timeout",
  "--idle-timeout",
  "--max-message-bytes",
  "--max-queue-bytes",
  "--penalty-cap",
  "--penalty-exempt",
  "--iterations",
  "--shutdown-timeout",
  "--log-format",
  "--help",
];

/** A temp dir with a key file and a userinfo file, removed on disposal. */
interface Files extends AsyncDisposable {
  readonly dir: TempDir;
  readonly keyFile: string;
  readonly usersFile: string;
  /** The key as a client sends it (the file's text, trimmed). */
  readonly psk: Uint8Array;
  /** `--port 0` and both files, as `serve` flags. */
  readonly serveArgs: readonly string[];
}

async function setup(
  users: Record<string, string> = { alex: "alex password" },
): Promise<Files> {
  const dir = await tempDir();
  const key = toHex(crypto.getRandomValues(new Uint8Array(32)));
  const keyFile = dir.join("doorman.key");
  await Deno.writeTextFile(keyFile, `${key}\n`, { mode: 0o600 });
  const usersFile = dir.join("userinfo");
  await writeUsers(usersFile, users);
  return {
    dir,
    keyFile,
    usersFile,
    psk: utf8(key),
    serveArgs: ["--port", "0", "--key-file", keyFile, "--users", usersFile],
    [Symbol.asyncDispose]: () => dir[Symbol.asyncDispose](),
  };
}

/** Logs in as alex, with the files' key, to the server on `port`. */
function connectAlex(
  { port }: { port: number },
  files: Files,
  password = "alex password",
) {
  return connect({ port, psk: files.psk, user: "alex", password });
}

Deno.test("server.ts serve --help lists every flag and exits 0", async () => {
  const result = await runServerTs(["serve", "--help"]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  for (const flag of SERVE_FLAGS) {
    assert.ok(result.stdout.includes(flag), `--help does not list ${flag}`);
  }
  const top = await runServerTs(["--help"]);
  assert.equal(top.code, 0, top.stderr);
  for (const command of ["serve", "keygen", "user"]) {
    assert.match(top.stdout, new RegExp(`^\\s+${command}\\b`, "m"));
  }
});

Deno.test("server.ts exits 2 with one stderr line on a bad flag", async () => {
  const bad = [
    ["--bogus"],
    ["serve", "--port", "not-a-port"],
    ["serve", "--port", "70000"],
    ["serve", "--service", "ftp"],
    ["serve", "--log-format", "xml"],
    ["serve", "--max-connections", "0"],
    ["serve", "--penalty-exempt", "not-an-address"],
    ["frobnicate"],
  ];
  for (const args of bad) {
    const result = await runServerTs(args);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.equal(result.stdout, "", args.join(" "));
    assert.match(result.stderr, /^server: [^\n]+\n$/, args.join(" "));
  }
});

Deno.test("server.ts exits 0 on SIGTERM with a client connected, and the client sees the close", async () => {
  await using files = await setup();
  await using server = await startServerProcess([
    ...files.serveArgs,
    "--service",
    "echo",
  ]);
  const client = await connectAlex(server, files);
  assert.equal(text(await client.request("hello")), "hello");
  const result = await server.stop("SIGTERM");
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(await client.closed, {
    code: CloseCode.shuttingDown,
    reason: "server shutting down",
  });
  await client.close();
  assert.match(result.stderr, /\bshutdown\b/);
});

Deno.test("server.ts exits 0 on SIGTERM sent as soon as it prints listening", async () => {
  await using files = await setup();
  await using server = await startServerProcess([
    ...files.serveArgs,
  ]);
  const result = await server.stop("SIGTERM");
  assert.equal(
    result.code,
    0,
    `killed before its signal handlers: ${result.stderr}`,
  );
});

Deno.test("server.ts --log-format json writes JSON lines without keys or passwords", async () => {
  await using files = await setup({ alex: "right-secret-password" });
  await using server = await startServerProcess([
    ...files.serveArgs,
    "--service",
    "echo",
    "--log-format",
    "json",
    "--penalty-exempt",
    "127.0.0.1",
  ]);
  const ok = await connectAlex(server, files, "right-secret-password");
  assert.equal(text(await ok.request("fine")), "fine");
  await ok.close();
  await assert.rejects(
    connectAlex(server, files, "wrong-secret-password"),
    LoginRejectedError,
  );
  const wrongKey = utf8(toHex(new Uint8Array(32).fill(0xab)));
  await assert.rejects(
    connect({ port: server.port, psk: wrongKey }),
    KeyRejectedError,
  );
  assert.ok(await waitFor(() => /handshake_failed/.test(server.stderr())));
  const result = await server.stop("SIGTERM");
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stderr.trimEnd().split("\n");
  const events = lines.map((line) => {
    const parsed = JSON.parse(line);
    assert.equal(typeof parsed.time, "string", line);
    assert.equal(typeof parsed.event, "string", line);
    return parsed.event;
  });
  for (
    const event of [
      "users_loaded",
      "listening",
      "login_succeeded",
      "login_failed",
      "handshake_failed",
      "shutdown",
    ]
  ) {
    assert.ok(events.includes(event), `no ${event} event`);
  }
  const key = new TextDecoder().decode(files.psk);
  for (const secret of [key, key.slice(0, 16), "secret-password", "abababab"]) {
    assert.ok(!result.stderr.includes(secret), `stderr holds ${secret}`);
  }
});

Deno.test("server.ts closes a non-doorman client (an HTTP request) and keeps serving", async () => {
  await using files = await setup();
  await using server = await startServerProcess([
    ...files.serveArgs,
    "--service",
    "echo",
  ]);
  {
    await using conn = await rawConnect(server.port);
    await conn.write(utf8("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    const result = await readUntilClosed(conn);
    assert.ok(result.ended);
  }
  const client = await connectAlex(server, files);
  assert.equal(text(await client.request("after http")), "after http");
  await client.close();
  const result = await server.stop("SIGTERM");
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /handshake_failed .*not doorman/);
});
