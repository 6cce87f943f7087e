import assert from "node:assert/strict";
import { KEY_USAGE, runKeyCommand } from "../../lib/cli/key_command.ts";
import { UsageError } from "../../lib/errors.ts";
import { parseKeyEntries, readKeyEntries } from "../../lib/key_file.ts";
import { toHex } from "../../lib/wire/bytes.ts";
import { tempDir } from "../helpers.ts";

async function key(args: string[]) {
  const out: string[] = [];
  const code = await runKeyCommand(args, { stdout: (line) => out.push(line) });
  return { code, out };
}

async function modeOf(path: string): Promise<number> {
  return ((await Deno.stat(path)).mode ?? 0) & 0o777;
}

Deno.test("key add creates the ring 0600, appends the key and writes the client's one-line file 0600", async () => {
  await using dir = await tempDir();
  const ring = dir.join("ring.keys");
  const out = dir.join("laptop.key");
  const added = await key(["add", "laptop", "--key-file", ring, "--out", out]);
  assert.equal(added.code, 0);
  await key([
    "add",
    "phone",
    "--key-file",
    ring,
    "--out",
    dir.join("p.key"),
    "--users",
    "alice,bob",
  ]);
  assert.equal(await modeOf(ring), 0o600);
  assert.equal(await modeOf(out), 0o600);
  const entries = await readKeyEntries(ring);
  assert.deepEqual(entries.map((entry) => entry.id), ["laptop", "phone"]);
  assert.deepEqual(entries[1].users, ["alice", "bob"]);
  assert.match(entries[0].added ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const client = parseKeyEntries(await Deno.readTextFile(out), "out");
  assert.deepEqual(client, [{ id: "laptop", psk: entries[0].psk }]);
  // The key bytes never reach the output.
  assert.ok(!added.out.join("\n").includes(toHex(entries[0].psk)));
});

Deno.test("key list prints ids and when each was added, never key bytes", async () => {
  await using dir = await tempDir();
  const ring = dir.join("ring.keys");
  await key(["add", "laptop", "--key-file", ring, "--out", dir.join("a")]);
  await key([
    "add",
    "phone",
    "--key-file",
    ring,
    "--out",
    dir.join("b"),
    "--users",
    "alice",
  ]);
  const { out } = await key(["list", "--key-file", ring]);
  assert.equal(out.length, 2);
  assert.match(out[0], /^laptop {2}\d{4}-\d\d-\d\dT[\d:]+Z$/);
  assert.match(out[1], /^phone {2}\S+ {2}users=alice$/);
  for (const entry of await readKeyEntries(ring)) {
    assert.ok(!out.join("\n").includes(toHex(entry.psk)));
  }
});

Deno.test("key revoke removes the line and keeps comments and the other keys", async () => {
  await using dir = await tempDir();
  const ring = dir.join("ring.keys");
  await Deno.writeTextFile(ring, "# our clients\n", { mode: 0o600 });
  await key(["add", "laptop", "--key-file", ring, "--out", dir.join("a")]);
  await key(["add", "phone", "--key-file", ring, "--out", dir.join("b")]);
  const { out } = await key(["revoke", "laptop", "--key-file", ring]);
  assert.match(out[0], /revoked key "laptop".*1 left/);
  const text = await Deno.readTextFile(ring);
  assert.ok(text.startsWith("# our clients\n"));
  assert.deepEqual((await readKeyEntries(ring)).map((e) => e.id), ["phone"]);
  assert.equal(await modeOf(ring), 0o600);
  await assert.rejects(
    key(["revoke", "laptop", "--key-file", ring]),
    /no such id/,
  );
});

Deno.test("key add refuses a repeated id, an existing client file and a bare-key ring", async () => {
  await using dir = await tempDir();
  const ring = dir.join("ring.keys");
  await key(["add", "laptop", "--key-file", ring, "--out", dir.join("a")]);
  await assert.rejects(
    key(["add", "laptop", "--key-file", ring, "--out", dir.join("b")]),
    /already in/,
  );
  await assert.rejects(
    key(["add", "phone", "--key-file", ring, "--out", dir.join("a")]),
    /exists/,
  );
  const bare = dir.join("doorman.key");
  await Deno.writeTextFile(bare, `${"ab".repeat(32)}\n`, { mode: 0o600 });
  await assert.rejects(
    key(["add", "phone", "--key-file", bare, "--out", dir.join("c")]),
    /bare key/,
  );
  // Nothing half done: the refused adds left no client file behind.
  await assert.rejects(Deno.stat(dir.join("b")), Deno.errors.NotFound);
  await assert.rejects(Deno.stat(dir.join("c")), Deno.errors.NotFound);
});

Deno.test("key throws UsageError for a bad action, id or flag; --help prints usage", async () => {
  for (
    const args of [
      [],
      ["rotate"],
      ["add"],
      ["add", "bad/id"],
      ["add", "x".repeat(65)],
      ["add", "ok", "extra"],
      ["list", "extra"],
      ["add", "ok", "--nope"],
      ["add", "ok", "--users", "a b"],
    ]
  ) {
    await assert.rejects(key(args), UsageError, args.join(" "));
  }
  const { out } = await key(["--help"]);
  assert.equal(out[0], KEY_USAGE);
  for (const flag of ["--key-file", "--out", "--users"]) {
    assert.ok(KEY_USAGE.includes(flag));
  }
});
