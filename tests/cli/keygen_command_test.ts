import assert from "node:assert/strict";
import { join } from "node:path";
import {
  KEYGEN_USAGE,
  runKeygenCommand,
} from "../../lib/cli/keygen_command.ts";
import { UsageError } from "../../lib/errors.ts";

const KEY_LINE_REGEXP = /^[0-9a-f]{64}\n$/;

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "doorman-keygen-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function keygen(args: string[]) {
  const lines: string[] = [];
  const code = await runKeygenCommand(args, { stdout: (l) => lines.push(l) });
  return { code, lines };
}

async function modeOf(path: string): Promise<number> {
  return ((await Deno.stat(path)).mode ?? 0) & 0o777;
}

Deno.test("runKeygenCommand() writes a 0600 key file and never prints it", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "server.key");
    const { code, lines } = await keygen(["--out", path]);
    assert.equal(code, 0);
    assert.deepEqual(lines, [`wrote new key to "${path}" (mode 0600)`]);
    const key = await Deno.readTextFile(path);
    assert.match(key, KEY_LINE_REGEXP);
    assert.equal(await modeOf(path), 0o600);
    assert.equal(lines.join("\n").includes(key.trim()), false);
  });
});

Deno.test("runKeygenCommand() refuses to overwrite without --force", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "server.key");
    await keygen(["--out", path]);
    const first = await Deno.readTextFile(path);
    await assert.rejects(keygen([`--out=${path}`]), {
      message:
        `Cannot write key file "${path}": already exists; use --force to replace it`,
    });
    assert.equal(await Deno.readTextFile(path), first);
  });
});

Deno.test("runKeygenCommand() replaces the file with --force", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "server.key");
    await keygen(["--out", path]);
    const first = await Deno.readTextFile(path);
    const { code } = await keygen(["--force", "--out", path]);
    assert.equal(code, 0);
    const second = await Deno.readTextFile(path);
    assert.match(second, KEY_LINE_REGEXP);
    assert.notEqual(second, first);
    assert.equal(await modeOf(path), 0o600);
  });
});

Deno.test("runKeygenCommand() prints usage with every flag and default for --help", async () => {
  for (const flag of ["--help", "-h"]) {
    const { code, lines } = await keygen([flag]);
    assert.equal(code, 0);
    assert.deepEqual(lines, [KEYGEN_USAGE]);
  }
  for (
    const text of ["--out FILE", "--force", "--help", "default: doorman.key"]
  ) {
    assert.ok(KEYGEN_USAGE.includes(text), text);
  }
});

Deno.test("runKeygenCommand() throws UsageError for bad arguments", async () => {
  const cases: [args: string[], reason: string][] = [
    [["--bogus"], 'unknown flag "--bogus"'],
    [["-x"], 'unknown flag "-x"'],
    [["stray"], 'unexpected argument "stray"'],
    [["--out"], 'flag "--out" needs a value'],
    [["--out", "--force"], 'flag "--out" needs a value'],
    [["--force=yes"], 'flag "--force" takes no value'],
  ];
  for (const [args, reason] of cases) {
    await assert.rejects(keygen(args), (error: unknown) => {
      assert.ok(error instanceof UsageError, args.join(" "));
      assert.equal(
        error.message,
        `Cannot parse keygen arguments: ${reason}; see "server.ts keygen --help"`,
      );
      return true;
    });
  }
  await assert.rejects(keygen(["--out", ""]), UsageError);
});
