import assert from "node:assert/strict";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { type ProcessResult, runServerTs } from "./server_process.ts";

// Runs `server.ts user ...args` in `cwd`, feeding `stdin` if given.
function runUser(
  cwd: string,
  args: string[],
  options: { password?: string; stdin?: string } = {},
): Promise<ProcessResult> {
  const env: Record<string, string> = {};
  if (options.password !== undefined) env.DOORMAN_PASSWORD = options.password;
  return runServerTs(["user", ...args], { cwd, env, stdin: options.stdin });
}

Deno.test("server.ts user add from 20 processes at once leaves 20 users", async () => {
  await using dir = await tempDir();
  const names = Array.from({ length: 20 }, (_, i) => `user${i}`);
  const results = await Promise.all(
    names.map((name) =>
      runUser(dir.path, ["add", name, "--iterations", "4096"], {
        password: `password of ${name}`,
      })
    ),
  );
  for (const [i, result] of results.entries()) {
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      `added user "${names[i]}" (scram-sha-256, 4096 iterations)\n`,
    );
  }
  const stat = await Deno.stat(join(dir.path, "userinfo"));
  assert.equal((stat.mode ?? 0) & 0o777, 0o600);
  const list = await runUser(dir.path, ["list"]);
  assert.equal(list.code, 0, list.stderr);
  const lines = list.stdout.trimEnd().split("\n");
  assert.deepEqual(
    lines.sort(),
    names.map((name) => `${name} scram-sha-256`).sort(),
  );
});

Deno.test("server.ts user list shows kinds and never verifiers", async () => {
  await using dir = await tempDir();
  const md5Hex = "94e4ccf5e2749b0bfe0428603738c0f9";
  await Deno.writeTextFile(join(dir.path, "userinfo"), `alex|${md5Hex}\n`);
  const add = await runUser(
    dir.path,
    ["add", "bob", "--iterations", "4096", "--password-stdin"],
    { stdin: "pencil\n" },
  );
  assert.equal(add.code, 0, add.stderr);
  const list = await runUser(dir.path, ["list", "--users", "userinfo"]);
  assert.equal(list.code, 0, list.stderr);
  assert.equal(list.stdout, "alex md5 (legacy)\nbob scram-sha-256\n");
  assert.doesNotMatch(list.stdout + list.stderr, /94e4ccf5|SCRAM-SHA-256\$/);
});

Deno.test("server.ts user exits 2 on an unknown flag with one stderr line", async () => {
  await using dir = await tempDir();
  const result = await runUser(dir.path, ["add", "bob", "--bogus"]);
  assert.equal(result.code, 2);
  assert.equal(result.stdout, "");
  assert.equal(
    result.stderr,
    'server: Cannot parse user add arguments: unknown flag "--bogus"; see "server.ts user add --help"\n',
  );
});

Deno.test("server.ts user add exits 1 when the user exists", async () => {
  await using dir = await tempDir();
  const args = ["add", "bob", "--iterations", "4096"];
  const first = await runUser(dir.path, args, { password: "one" });
  assert.equal(first.code, 0, first.stderr);
  const second = await runUser(dir.path, args, { password: "two" });
  assert.equal(second.code, 1);
  assert.equal(
    second.stderr,
    'server: Cannot add user "bob": already exists\n',
  );
  assert.doesNotMatch(second.stderr, /two/);
});

Deno.test("server.ts user --help prints usage and exits 0", async () => {
  await using dir = await tempDir();
  const result = await runUser(dir.path, ["add", "--help"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /--users FILE .*\(default: userinfo\)/);
  assert.match(result.stdout, /--iterations N .*\(default: 600000\)/);
});
