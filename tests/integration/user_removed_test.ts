/**
 * Integration: `server.ts user del` on a running server's user file closes
 * that user's open sessions within seconds (close code 10, `userRemoved`),
 * through the real reload path (file watch, settle, reload); `user passwd`
 * does not close anyone. Real `server.ts` and `client.ts` processes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CloseCode } from "../../lib/wire/protocol.ts";
import { runServerTs, spawnClient, startServer } from "./server_process.ts";
import { startTestServer, text, waitFor } from "../fixtures/server_fixture.ts";
import { updateUserinfo } from "../../lib/users/user_store.ts";
import { removeUser } from "../../lib/users/userinfo.ts";

/** Pipe-mode client flags for `user` against `server`. */
async function clientArgs(
  server: { port: number; keyFile: string; dir: string },
  user: string,
  password: string,
): Promise<string[]> {
  const passwordFile = `${server.dir}/${user}.password`;
  await Deno.writeTextFile(passwordFile, `${password}\n`, { mode: 0o600 });
  return [
    ...["--port", String(server.port), "--key-file", server.keyFile],
    ...["--user", user, "--password-file", passwordFile],
  ];
}

Deno.test("server.ts user del closes the removed user's open session (code 10); user passwd closes no one", async () => {
  await using server = await startServer({
    service: "echo",
    users: { alice: "alice pw", bob: "bob pw" },
  });
  await using alice = spawnClient(
    await clientArgs(server, "alice", "alice pw"),
  );
  await using bob = spawnClient(await clientArgs(server, "bob", "bob pw"));
  await alice.writeLine("alice here");
  assert.equal(await alice.readLine(), "alice here");
  await bob.writeLine("bob here");
  assert.equal(await bob.readLine(), "bob here");

  // A password change first: it must not close bob.
  const passwd = await runServerTs(
    [
      "user",
      "passwd",
      "bob",
      "--users",
      server.usersFile,
      "--password-stdin",
      "--iterations",
      "4096",
    ],
    { stdin: "bob's new pw\n", cwd: server.dir },
  );
  assert.equal(passwd.code, 0, passwd.stderr);
  const del = await runServerTs(
    ["user", "del", "alice", "--users", server.usersFile],
    { cwd: server.dir },
  );
  assert.equal(del.code, 0, del.stderr);

  // Alice's session is closed by the server, without her doing anything.
  const ended = await alice.finish();
  assert.equal(ended.code, 5, ended.stderr);
  assert.match(ended.stderr, /^client: .*user removed\n$/);
  // Bob (password changed, both changes loaded by now) still works.
  await bob.writeLine("bob still here");
  assert.equal(await bob.readLine(), "bob still here");
  await bob.endInput();
  assert.equal((await bob.finish()).code, 0);
});

Deno.test("serve() closes the sessions of a user removed by a reload with code 10, and only theirs", async () => {
  await using ts = await startTestServer({
    users: { alex: "alex pw", bob: "bob pw" },
    watch: true,
    penaltyExempt: ["127.0.0.1"],
  });
  const alex = [
    await ts.connect({ user: "alex", password: "alex pw" }),
    await ts.connect({ user: "alex", password: "alex pw" }),
  ];
  const bob = await ts.connect({ user: "bob", password: "bob pw" });
  await updateUserinfo(
    ts.userinfoPath,
    (current) => removeUser(current, "alex"),
  );
  for (const conn of alex) {
    assert.deepEqual(await conn.closed, {
      code: CloseCode.userRemoved,
      reason: "user removed",
    });
  }
  assert.ok(await waitFor(() => ts.users?.lookup("alex") === null));
  assert.equal(text(await bob.request("bob")), "bob");
});
