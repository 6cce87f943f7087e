import assert from "node:assert/strict";
import {
  checkKeyFileMode,
  formatKeyEntry,
  parseClientKey,
  parseKeyEntries,
  resolveClientKey,
  resolveKeys,
} from "../lib/key_file.ts";
import { fromHex, utf8 } from "../lib/wire/bytes.ts";
import { tempDir } from "./helpers.ts";

const HEX_A = "a1".repeat(32);
const HEX_B = "B2".repeat(32);
const noEnv = () => undefined;

Deno.test("parseKeyEntries() reads ID HEX lines with comments, options and blank lines", () => {
  const entries = parseKeyEntries(
    `# ring of example.net\n\nlaptop ${HEX_A} added=2026-11-28T20:00:00Z\n` +
      `  phone.2_x-y\t${HEX_B} users=alice,bob  \n`,
    "test",
  );
  assert.deepEqual(entries, [
    { id: "laptop", psk: fromHex(HEX_A), added: "2026-11-28T20:00:00Z" },
    {
      id: "phone.2_x-y",
      psk: fromHex(HEX_B.toLowerCase()),
      users: ["alice", "bob"],
    },
  ]);
});

Deno.test("parseKeyEntries() keeps a bare key (version 1 file) as id default, bytes as today", () => {
  const bare = `${"0f".repeat(32)}\n`;
  assert.deepEqual(parseKeyEntries(bare, "test"), [
    { id: "default", psk: utf8("0f".repeat(32)) },
  ]);
  // Any text of 16+ bytes stays a bare key, spaces included.
  assert.deepEqual(parseKeyEntries("doorman test vector key 32 bytes", "t"), [
    { id: "default", psk: utf8("doorman test vector key 32 bytes") },
  ]);
});

Deno.test("parseKeyEntries() rejects malformed lines by number, never showing them", () => {
  const bad = [
    `laptop ${HEX_A.slice(2)}\n# c\n`, // 62 hex digits
    `# c\nlap/top ${HEX_A}\n`, // bad id
    `# c\nlaptop ${HEX_A} colour=red\n`, // unknown option
    `# c\nlaptop ${HEX_A} users=\n`, // empty users
    `# c\nlaptop ${HEX_A}\nlaptop ${HEX_B}\n`, // repeated id
  ];
  for (const text of bad) {
    assert.throws(
      () => parseKeyEntries(text, 'key file "k"'),
      (error: unknown) =>
        error instanceof SyntaxError &&
        !error.message.includes(HEX_A.slice(0, 16)),
      text,
    );
  }
});

Deno.test("parseKeyEntries() reads a ring of comments only as no keys; resolveKeys() refuses it", async () => {
  assert.deepEqual(parseKeyEntries("# all revoked\n", "t"), []);
  await assert.rejects(
    resolveKeys({ env: (name) => name === "DOORMAN_KEY" ? "# x" : undefined }),
    /no key in it/,
  );
});

Deno.test("parseClientKey() requires exactly one key", () => {
  assert.equal(parseClientKey(`laptop ${HEX_A}\n`, "t").id, "laptop");
  assert.throws(
    () => parseClientKey(`a ${HEX_A}\nb ${HEX_B}\n`, "t"),
    /holds one key, found 2/,
  );
});

Deno.test("formatKeyEntry() writes a line parseKeyEntries() reads back", () => {
  const entry = {
    id: "laptop",
    psk: fromHex(HEX_A),
    users: ["alice"],
    added: "2026-11-28T20:00:00Z",
  };
  assert.deepEqual(parseKeyEntries(formatKeyEntry(entry), "t"), [entry]);
});

Deno.test("resolveKeys() takes either form from DOORMAN_KEY", async () => {
  const env = (value: string) => (name: string) =>
    name === "DOORMAN_KEY" ? value : undefined;
  const ring = await resolveKeys({ env: env(`ci ${HEX_A}`) });
  assert.deepEqual(ring.entries.map((entry) => entry.id), ["ci"]);
  const bare = await resolveClientKey({ env: env("0123456789abcdef0123") });
  assert.equal(bare.id, "default");
});

Deno.test("resolveKeys() with strictMode refuses a key file group or others can read, in one line naming mode and chmod 600", async () => {
  await using dir = await tempDir();
  const path = dir.join("ring.keys");
  await Deno.writeTextFile(path, `laptop ${HEX_A}\n`, { mode: 0o600 });
  await Deno.chmod(path, 0o640);
  const error = await resolveKeys({
    keyFile: path,
    env: noEnv,
    strictMode: true,
  })
    .catch((error) => error);
  assert.ok(error instanceof Error);
  assert.match(error.message, /mode 0640 .*chmod 600/);
  assert.ok(error.message.includes(path));
  assert.doesNotMatch(error.message, /\n/);
  // Clients and DOORMAN_KEY are not checked; 0600 passes.
  assert.equal(
    (await resolveClientKey({ keyFile: path, env: noEnv })).id,
    "laptop",
  );
  await Deno.chmod(path, 0o600);
  await checkKeyFileMode(path);
  const ok = await resolveKeys({ keyFile: path, env: noEnv, strictMode: true });
  assert.equal(ok.path, path);
});
