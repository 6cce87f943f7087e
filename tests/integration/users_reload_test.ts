import assert from "node:assert/strict";
import { toHex, utf8 } from "../../lib/wire/bytes.ts";
import { connect } from "../../lib/client/connect.ts";
import { LoginRejectedError } from "../../lib/errors.ts";
import { CloseCode } from "../../lib/wire/protocol.ts";
import { createScramVerifier } from "../../lib/login/scram.ts";
import { updateUserinfo } from "../../lib/users/user_store.ts";
import { removeUser, setUser } from "../../lib/users/userinfo.ts";
import {
  startTestServer,
  TEST_ITERATIONS,
  text,
  waitFor,
  writeUsers,
} from "../fixtures/server_fixture.ts";
import { tempDir } from "../helpers.ts";
import { runServerTs, startServerProcess } from "./server_process.ts";

Deno.test("UserStore.watch() lets a user added while clients are connected log in; sessions keep working", async () => {
  await using ts = await startTestServer({
    users: { alex: "alex pw" },
    watch: true,
    penaltyExempt: ["127.0.0.1"],
  });
  const alex = await ts.connect({ user: "alex", password: "alex pw" });
  assert.equal(text(await alex.request("before")), "before");
  const scram = await createScramVerifier("bob pw", {
    iterations: TEST_ITERATIONS,
  });
  await updateUserinfo(
    ts.userinfoPath,
    (current) => setUser(current, "bob", { kind: "scram-sha-256", scram }),
  );
  assert.ok(
    await waitFor(() => ts.users?.lookup("bob") != null),
    "the store never reloaded",
  );
  assert.ok(ts.events("users_loaded").some((e) => e.count === 2));
  assert.equal(text(await alex.request("during")), "during");
  const bob = await ts.connect({ user: "bob", password: "bob pw" });
  assert.equal(text(await bob.request("new")), "new");
  assert.equal(text(await alex.request("after")), "after");
  assert.deepEqual(ts.events("login_succeeded").map((e) => e.user), [
    "alex",
    "bob",
  ]);
});

Deno.test("UserStore.reload() (SIGHUP) removes a user for new logins and closes their open sessions (code 10)", async () => {
  await using ts = await startTestServer({
    users: { alex: "alex pw", bob: "bob pw" },
    penaltyExempt: ["127.0.0.1"],
    penaltyBaseMs: 1,
  });
  const alex = await ts.connect({ user: "alex", password: "alex pw" });
  await updateUserinfo(
    ts.userinfoPath,
    (current) => removeUser(current, "alex"),
  );
  await ts.users?.reload();
  assert.equal(ts.users?.lookup("alex"), null);
  assert.equal((await alex.closed)?.code, CloseCode.userRemoved);
  await assert.rejects(
    ts.connect({ user: "alex", password: "alex pw" }),
    LoginRejectedError,
  );
  const bob = await ts.connect({ user: "bob", password: "bob pw" });
  assert.equal(text(await bob.request("bob")), "bob");
});

Deno.test("UserStore keeps the last good users when the file turns malformed, and logs users_reload_failed", async () => {
  await using ts = await startTestServer({
    users: { alex: "alex pw" },
    watch: true,
  });
  const before = await ts.connect({ user: "alex", password: "alex pw" });
  await Deno.writeTextFile(
    ts.userinfoPath,
    "# fine\nthis line has no separator\n",
  );
  assert.ok(
    await waitFor(() => ts.events("users_reload_failed").length > 0),
    "no users_reload_failed event",
  );
  assert.match(ts.events("users_reload_failed")[0].reason ?? "", /line 2/);
  assert.equal(text(await before.request("open")), "open");
  const after = await ts.connect({ user: "alex", password: "alex pw" });
  assert.equal(text(await after.request("new")), "new");
  // An explicit reload fails the same way and still keeps the users.
  await ts.users?.reload();
  assert.ok(ts.events("users_reload_failed").length >= 2);
  assert.notEqual(ts.users?.lookup("alex"), null);
});

Deno.test("server.ts exits 1 with the line number in one stderr line when userinfo is malformed", async () => {
  await using dir = await tempDir();
  const keyFile = dir.join("doorman.key");
  const usersFile = dir.join("userinfo");
  await Deno.writeTextFile(keyFile, `${toHex(new Uint8Array(32).fill(1))}\n`, {
    mode: 0o600,
  });
  await writeUsers(usersFile, { alex: "alex pw" });
  const good = await Deno.readTextFile(usersFile);
  await Deno.writeTextFile(usersFile, `${good}bob|not-a-verifier\n`);
  const result = await runServerTs(
    ["--port", "0", "--key-file", keyFile, "--users", usersFile],
    { cwd: dir.path },
  );
  assert.equal(result.code, 1);
  assert.equal(result.stdout, "");
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0], /^server: .*line 2/);
  assert.doesNotMatch(lines[0], /at .*\.ts:\d+/, "no stack trace");
});

Deno.test("server.ts warns about the demo user when listening on 0.0.0.0", async () => {
  await using dir = await tempDir();
  const keyFile = dir.join("doorman.key");
  await Deno.writeTextFile(keyFile, `${toHex(new Uint8Array(32).fill(2))}\n`, {
    mode: 0o600,
  });
  const added = await runServerTs(
    ["user", "add", "alex", "--iterations", "4096"],
    { cwd: dir.path, env: { DOORMAN_PASSWORD: "123456" } },
  );
  assert.equal(added.code, 0, added.stderr);
  await writeUsers(dir.join("userinfo"), { bob: "a better password" });
  await using server = await startServerProcess(
    ["--host", "0.0.0.0", "--port", "0", "--key-file", keyFile],
    { cwd: dir.path },
  );
  assert.equal(server.hostname, "0.0.0.0");
  assert.ok(
    await waitFor(() => /\bwarning\b/.test(server.stderr())),
    `no warning in: ${server.stderr()}`,
  );
  const client = await connect({
    port: server.port,
    psk: utf8(toHex(new Uint8Array(32).fill(2))),
    user: "bob",
    password: "a better password",
  });
  await client.close();
  const result = await server.stop("SIGTERM");
  assert.equal(result.code, 0, result.stderr);
  const warnings = result.stderr.split("\n").filter((line) =>
    /\bwarning\b/.test(line)
  );
  assert.equal(warnings.length, 1, result.stderr);
  assert.match(warnings[0], /demo/);
  assert.match(warnings[0], /user=alex\b/);
  assert.doesNotMatch(result.stderr, /123456/);
});

Deno.test("server.ts does not warn about the demo user on loopback", async () => {
  await using dir = await tempDir();
  const keyFile = dir.join("doorman.key");
  await Deno.writeTextFile(keyFile, `${toHex(new Uint8Array(32).fill(3))}\n`, {
    mode: 0o600,
  });
  const added = await runServerTs(
    ["user", "add", "alex", "--iterations", "4096"],
    { cwd: dir.path, env: { DOORMAN_PASSWORD: "123456" } },
  );
  assert.equal(added.code, 0, added.stderr);
  await using server = await startServerProcess(
    ["--port", "0", "--key-file", keyFile, "--service", "echo"],
    { cwd: dir.path },
  );
  // A full login first: the demo check, if any, runs before serving.
  const client = await connect({
    port: server.port,
    psk: utf8(toHex(new Uint8Array(32).fill(3))),
    user: "alex",
    password: "123456",
  });
  assert.equal(text(await client.request("hi")), "hi");
  await client.close();
  const result = await server.stop("SIGTERM");
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stderr, /\bwarning\b/);
});
