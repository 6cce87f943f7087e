/**
 * The key ring end to end: `server.ts key add` writes a ring and a client's
 * key file, `server.ts serve` uses the ring, `client.ts` and `connect()`
 * log in with the client's file, and `server.ts key revoke` closes the live
 * session of that key (close code 9) while another key keeps working.
 */

import assert from "node:assert/strict";
import { connect } from "../../lib/client/connect.ts";
import { readKeyEntries, resolveClientKey } from "../../lib/key_file.ts";
import { CloseCode } from "../../lib/wire/protocol.ts";
import { text, waitFor } from "../fixtures/server_fixture.ts";
import { tempDir } from "../helpers.ts";
import {
  runClient,
  runServerTs,
  startServerProcess,
  withDeadline,
} from "./server_process.ts";

Deno.test("server.ts key add/revoke: a running server closes the revoked key's session with keyRevoked and keeps the other", async () => {
  await using dir = await tempDir();
  const ring = dir.join("ring.keys");
  for (const id of ["laptop", "phone"]) {
    const added = await runServerTs(
      ["key", "add", id, "--key-file", ring, "--out", dir.join(`${id}.key`)],
      { cwd: dir.path },
    );
    assert.equal(added.code, 0, added.stderr);
  }
  const listed = await runServerTs(["key", "list", "--key-file", ring]);
  assert.match(listed.stdout, /^laptop {2}\S+Z\nphone {2}\S+Z\n$/);
  await using server = await startServerProcess(
    ["--port", "0", "--key-file", ring, "--anonymous", "--service", "echo"],
    { cwd: dir.path },
  );
  const sent = await runClient([
    "send",
    "hi",
    "--port",
    String(server.port),
    "--key-file",
    dir.join("laptop.key"),
  ]);
  assert.equal(sent.code, 0, sent.stderr);
  const env = { env: (_: string) => undefined };
  const laptopKey = await resolveClientKey({
    ...env,
    keyFile: dir.join("laptop.key"),
  });
  const phoneKey = await resolveClientKey({
    ...env,
    keyFile: dir.join("phone.key"),
  });
  const laptop = await connect({
    port: server.port,
    psk: laptopKey.psk,
    keyId: laptopKey.id,
  });
  const phone = await connect({
    port: server.port,
    psk: phoneKey.psk,
    keyId: phoneKey.id,
  });
  try {
    assert.equal(text(await laptop.request("one")), "one");
    const revoked = await runServerTs([
      "key",
      "revoke",
      "laptop",
      "--key-file",
      ring,
    ]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const closed = await withDeadline(laptop.closed, "revoked session close");
    assert.equal(closed?.code, CloseCode.keyRevoked);
    assert.equal(text(await phone.request("two")), "two");
    assert.deepEqual((await readKeyEntries(ring)).map((e) => e.id), ["phone"]);
    const refused = await runClient([
      "send",
      "hi",
      "--port",
      String(server.port),
      "--key-file",
      dir.join("laptop.key"),
    ]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.ok(
      await waitFor(() => /keys_revoked/.test(server.stderr())),
      server.stderr(),
    );
    // Session lines carry the key id; no key bytes anywhere.
    assert.match(server.stderr(), /authenticated .*key=laptop/);
    for (const entry of await readKeyEntries(ring)) {
      assert.ok(
        !server.stderr().includes(
          Array.from(entry.psk, (b) => b.toString(16).padStart(2, "0")).join(
            "",
          ),
        ),
      );
    }
  } finally {
    await laptop.close().catch(() => {});
    await phone.close();
  }
});

Deno.test("server.ts refuses a key file readable by group or others in one line naming mode and chmod 600", async () => {
  await using dir = await tempDir();
  const ring = dir.join("ring.keys");
  const added = await runServerTs(
    ["key", "add", "laptop", "--key-file", ring, "--out", dir.join("l.key")],
  );
  assert.equal(added.code, 0, added.stderr);
  await Deno.chmod(ring, 0o644);
  const result = await runServerTs(
    ["--port", "0", "--key-file", ring, "--anonymous"],
    { cwd: dir.path },
  );
  assert.equal(result.code, 1);
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0], /^server: .*ring\.keys.*0644.*chmod 600/);
});

Deno.test("server.ts and client.ts still work with a bare version 1 key file as id default", async () => {
  await using dir = await tempDir();
  const keyFile = dir.join("doorman.key");
  const made = await runServerTs(["keygen", "--out", keyFile]);
  assert.equal(made.code, 0, made.stderr);
  await using server = await startServerProcess(
    ["--port", "0", "--key-file", keyFile, "--anonymous", "--service", "upper"],
    { cwd: dir.path },
  );
  const sent = await runClient(
    ["send", "hi", "--port", String(server.port), "--key-file", keyFile],
  );
  assert.equal(sent.code, 0, sent.stderr);
  assert.equal(sent.stdout, "HI\n");
  assert.match(server.stderr(), /authenticated .*key=default/);
});
