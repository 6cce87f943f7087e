/**
 * Integration: the real `client.ts` against the real `server.ts`, both as
 * child processes with their tasks' permission flags. Pipe mode, `send`,
 * `--json`, chat pushes, and every exit code with its one-line stderr that
 * never shows the key or the password.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type ClientResult,
  runClient,
  spawnClient,
  startServer,
} from "./server_process.ts";
import { tempDir } from "../helpers.ts";

const PASSWORD = "correct horse battery";
const USERS = { alice: PASSWORD, bob: "bob's password", carol: "carol pw 3" };
/** Keeps one address's failed logins from delaying later tests. */
const EXEMPT = ["--penalty-exempt", "127.0.0.1"];

/** Login flags for `user`, with a password file in `dir`. */
async function loginFlags(
  server: { port: number; keyFile: string; dir: string },
  user: string,
  password: string,
): Promise<string[]> {
  const passwordFile = `${server.dir}/${user}.password`;
  await Deno.writeTextFile(passwordFile, `${password}\n`);
  return [
    ...["--port", String(server.port), "--key-file", server.keyFile],
    ...["--user", user, "--password-file", passwordFile],
  ];
}

/** Asserts the exit code and a single `client: ` line holding no secret. */
async function assertFails(
  result: ClientResult,
  code: number,
  secrets: { keyFile?: string; passwords?: string[] },
): Promise<void> {
  assert.equal(result.code, code, `stderr: ${result.stderr}`);
  const lines = result.stderr.split("\n").filter((line) => line !== "");
  assert.equal(lines.length, 1, `stderr: ${result.stderr}`);
  assert.match(lines[0], /^client: \S/);
  if (secrets.keyFile) {
    const key = (await Deno.readTextFile(secrets.keyFile)).trim();
    assert.ok(!result.stderr.includes(key), "stderr shows the key");
    assert.ok(!result.stdout.includes(key), "stdout shows the key");
  }
  for (const password of secrets.passwords ?? []) {
    assert.ok(!result.stderr.includes(password), "stderr shows a password");
  }
}

for (const service of ["echo", "upper"] as const) {
  Deno.test(`client.ts pipe mode sends 100 lines to ${service} and prints 100 replies in order`, async () => {
    await using server = await startServer({ service, users: USERS });
    const lines = Array.from({ length: 100 }, (_, i) => `line ${i} ümlaut`);
    const result = await runClient(
      await loginFlags(server, "alice", PASSWORD),
      { stdin: lines.map((line) => `${line}\r\n`).join("") },
    );
    assert.equal(result.code, 0, result.stderr);
    const expected = lines.map((line) =>
      service === "upper" ? line.toUpperCase() : line
    );
    assert.deepEqual(result.stdout.split("\n"), [...expected, ""]);
    assert.equal(result.stderr, "");
  });
}

Deno.test("client.ts pipe mode sends empty lines and a last line without newline", async () => {
  await using server = await startServer({ service: "echo", users: USERS });
  const result = await runClient(
    [...await loginFlags(server, "alice", PASSWORD), "--json"],
    { stdin: "a\n\nb" },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(
    result.stdout.trimEnd().split("\n").map((line) => JSON.parse(line)),
    [
      { message: "a", reply: "a" },
      { message: "", reply: "" },
      { message: "b", reply: "b" },
    ],
  );
});

Deno.test("client.ts send prints each reply in order and exits 0", async () => {
  await using server = await startServer({ service: "upper", users: USERS });
  const flags = await loginFlags(server, "alice", PASSWORD);
  const result = await runClient(["send", ...flags, "one", "two", "three"]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "ONE\nTWO\nTHREE\n");
  const json = await runClient(["send", "--json", ...flags, "--", "-x", "y"]);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(
    json.stdout.trimEnd().split("\n").map((line) => JSON.parse(line)),
    [
      { message: "-x", reply: "-X" },
      { message: "y", reply: "Y" },
    ],
  );
});

Deno.test("client.ts takes the key and password from DOORMAN_KEY and DOORMAN_PASSWORD", async () => {
  await using server = await startServer({ service: "echo", users: USERS });
  const key = await Deno.readTextFile(server.keyFile);
  const result = await runClient(
    ["send", "--port", String(server.port), "--user", "alice", "hi"],
    { env: { DOORMAN_KEY: key, DOORMAN_PASSWORD: PASSWORD } },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "hi\n");
});

Deno.test("client.ts relays chat: a pipe-mode client prints what another user says", async () => {
  await using server = await startServer({ service: "chat", users: USERS });
  const json = (line: string | null) => JSON.parse(line ?? "null");
  // Alice's confirmed message proves she is in the room; then she hears
  // bob join, which proves he is in it too.
  await using alice = spawnClient([
    ...await loginFlags(server, "alice", PASSWORD),
    "--json",
  ]);
  await alice.writeLine("ready");
  assert.deepEqual(json(await alice.readLine()), {
    message: "ready",
    confirmed: true,
  });
  await using bob = spawnClient(await loginFlags(server, "bob", USERS.bob));
  assert.deepEqual(json(await alice.readLine()), { push: "* bob joined" });
  await alice.writeLine("hi");
  assert.equal(await bob.readLine(), "alice: hi");
  const carol = await runClient([
    "send",
    ...await loginFlags(server, "carol", USERS.carol),
    "hello",
    "there",
  ]);
  assert.equal(carol.code, 0, carol.stderr);
  assert.equal(carol.stdout, "", "acknowledged messages print nothing");
  for (const line of ["* carol joined", "carol: hello", "carol: there"]) {
    assert.equal(await bob.readLine(), line);
  }
  assert.equal(await bob.readLine(), "* carol left");
  await alice.endInput();
  const aliceResult = await alice.finish();
  assert.equal(aliceResult.code, 0, aliceResult.stderr);
  assert.deepEqual(aliceResult.stdout.trimEnd().split("\n").map(json), [
    { message: "hi", confirmed: true },
    { push: "* carol joined" },
    { push: "carol: hello" },
    { push: "carol: there" },
    { push: "* carol left" },
  ]);
  assert.equal(await bob.readLine(), "* alice left");
  await bob.endInput();
  const bobResult = await bob.finish();
  assert.equal(bobResult.code, 0, bobResult.stderr);
  assert.equal(bobResult.stdout, "");
});

Deno.test("client.ts exits 1 when nothing listens on the port", async () => {
  await using server = await startServer({ service: "echo", users: USERS });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const flags = await loginFlags(server, "alice", PASSWORD);
  flags[1] = String(port);
  const result = await runClient(["send", ...flags, "hi"]);
  await assertFails(result, 1, { passwords: [PASSWORD] });
  assert.match(result.stderr, /Cannot connect to 127\.0\.0\.1:\d+/);
});

Deno.test("client.ts exits 2 on usage errors", async (t) => {
  const cases: [string, string[], RegExp][] = [
    ["an unknown flag", ["--frobnicate"], /unknown flag "--frobnicate"/],
    ["an unknown command", ["sned", "hi"], /unknown command/],
    ["send without a message", ["send"], /missing MESSAGE/],
    ["a bad port", ["--port", "99999", "send", "x"], /--port/],
    ["a bad timeout", ["--timeout", "soon", "send", "x"], /--timeout/],
    ["--user without a password source", ["--user", "alice"], /password/],
  ];
  await using server = await startServer({ service: "echo", users: USERS });
  for (const [name, args, pattern] of cases) {
    await t.step(name, async () => {
      const result = await runClient(
        ["--port", String(server.port), "--key-file", server.keyFile, ...args],
        { stdin: "line\n" },
      );
      await assertFails(result, 2, { keyFile: server.keyFile });
      assert.match(result.stderr, pattern);
    });
  }
});

Deno.test("client.ts exits 3 when the key differs", async () => {
  await using server = await startServer({
    service: "echo",
    users: USERS,
    args: EXEMPT,
  });
  const wrongKey = `${server.dir}/wrong.key`;
  await Deno.writeTextFile(wrongKey, `${"ab".repeat(32)}\n`);
  const flags = await loginFlags(server, "alice", PASSWORD);
  flags[3] = wrongKey;
  const result = await runClient(["send", ...flags, "hi"]);
  await assertFails(result, 3, {
    keyFile: server.keyFile,
    passwords: [PASSWORD],
  });
  assert.ok(!result.stderr.includes("ab".repeat(16)), "stderr shows the key");
});

Deno.test("client.ts exits 4 on a wrong password, an unknown user, or no login", async () => {
  await using server = await startServer({
    service: "echo",
    users: USERS,
    args: EXEMPT,
  });
  const wrong = await runClient([
    "send",
    ...await loginFlags(server, "alice", "not the password"),
    "hi",
  ]);
  await assertFails(wrong, 4, {
    keyFile: server.keyFile,
    passwords: ["not the password", PASSWORD],
  });
  const unknown = await runClient([
    "send",
    ...await loginFlags(server, "mallory", "guess"),
    "hi",
  ]);
  await assertFails(unknown, 4, {
    keyFile: server.keyFile,
    passwords: ["guess"],
  });
  assert.equal(wrong.stderr, unknown.stderr.replace("mallory", "alice"));
  const anonymous = await runClient([
    "send",
    ...["--port", String(server.port), "--key-file", server.keyFile, "hi"],
  ]);
  await assertFails(anonymous, 4, { keyFile: server.keyFile });
  assert.match(anonymous.stderr, /login/i);
});

Deno.test("client.ts exits 5 when the server shuts down while stdin is open", async () => {
  await using server = await startServer({ service: "echo", users: USERS });
  await using client = spawnClient(await loginFlags(server, "alice", PASSWORD));
  await client.writeLine("first");
  assert.equal(await client.readLine(), "first");
  const status = await server.stop("SIGTERM");
  assert.equal(status.code, 0);
  const result = await client.finish();
  await assertFails(result, 5, {
    keyFile: server.keyFile,
    passwords: [PASSWORD],
  });
  assert.match(result.stderr, /closed/);
});

Deno.test("client.ts exits 1 (no doorman reply) when the server stays silent past --timeout", async () => {
  await using dir = await tempDir();
  const keyFile = dir.join("doorman.key");
  await Deno.writeTextFile(keyFile, `${"cd".repeat(32)}\n`);
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const result = await runClient([
    "send",
    ...["--port", String(listener.addr.port), "--key-file", keyFile],
    ...["--timeout", "0.2", "hi"],
  ]);
  (await accepted).close();
  await assertFails(result, 1, { keyFile });
  assert.match(result.stderr, /No doorman reply from 127\.0\.0\.1:\d+/);
});

Deno.test("client.ts --help lists every flag and the exit codes; --version prints it", async () => {
  const help = await runClient(["--help"]);
  assert.equal(help.code, 0);
  for (
    const flag of [
      "--host",
      "--port",
      "--key-file",
      "--user",
      "--password-file",
      "--timeout",
      "--json",
      "--help",
      "--version",
    ]
  ) {
    assert.ok(help.stdout.includes(flag), `--help lacks ${flag}`);
  }
  assert.match(help.stdout, /Exit codes:/);
  const version = await runClient(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^doorman-client \d+\.\d+\.\d+\n$/);
});
