import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DEFAULT_KEY_FILE,
  parsePsk,
  readKeyFile,
  resolvePsk,
  writeNewKeyFile,
} from "../lib/key_file.ts";

const KEY_TEXT = "0123456789abcdef0123456789abcdef";
const KEY_LINE_REGEXP = /^[0-9a-f]{64}\n$/;

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "doorman-key-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function modeOf(path: string): Promise<number> {
  return ((await Deno.stat(path)).mode ?? 0) & 0o777;
}

function noEnv(_name: string): string | undefined {
  return undefined;
}

function envWith(value: string) {
  return (name: string) => name === "DOORMAN_KEY" ? value : undefined;
}

/**
 * Runs `resolvePsk` in a child process whose working directory is `dir`, so
 * the default key file is looked up there without changing this process's
 * directory. Prints the source, the created path and the key as text.
 */
async function resolveInDir(
  dir: string,
  options: { createIfMissing: boolean },
) {
  const moduleUrl = new URL("../lib/key_file.ts", import.meta.url).href;
  const script = `
    import { resolvePsk } from ${JSON.stringify(moduleUrl)};
    try {
      const found = await resolvePsk({
        env: () => undefined,
        createIfMissing: ${options.createIfMissing},
      });
      console.log(JSON.stringify({
        source: found.source,
        created: found.created ?? null,
        key: new TextDecoder().decode(found.psk),
      }));
    } catch (error) {
      console.log(JSON.stringify({ error: error.message }));
    }
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", "--ext=ts", script],
    cwd: dir,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

Deno.test("parsePsk() trims surrounding ASCII whitespace", () => {
  const psk = parsePsk(` \t\r\n${KEY_TEXT}\r\n \t`, "DOORMAN_KEY");
  assert.deepEqual(psk, new TextEncoder().encode(KEY_TEXT));
});

Deno.test("parsePsk() keeps inner whitespace and non-ASCII space", () => {
  const text = "\u00a0sixteen bytes ok\u00a0";
  const psk = parsePsk(`${text}\n`, "DOORMAN_KEY");
  assert.deepEqual(psk, new TextEncoder().encode(text));
});

Deno.test("parsePsk() accepts bytes and returns a copy", () => {
  const content = new TextEncoder().encode(`${KEY_TEXT}\n`);
  const psk = parsePsk(content, 'key file "k"');
  content.fill(0);
  assert.deepEqual(psk, new TextEncoder().encode(KEY_TEXT));
});

Deno.test("parsePsk() accepts exactly 16 bytes", () => {
  assert.equal(parsePsk("0123456789abcdef", "DOORMAN_KEY").length, 16);
});

Deno.test("parsePsk() rejects a key under 16 bytes without showing it", () => {
  const cases: [content: string, length: number][] = [
    ["", 0],
    [" \n\t\r ", 0],
    ["s3cr3", 5],
    ["  0123456789abcde\n", 15],
  ];
  for (const [content, length] of cases) {
    assert.throws(
      () => parsePsk(content, 'key file "x.key"'),
      (error: unknown) =>
        error instanceof RangeError &&
        error.message ===
          `Cannot use key from key file "x.key": ${length} bytes, at least 16 required`,
    );
  }
});

Deno.test("readKeyFile() reads and trims a key file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "k.key");
    await Deno.writeTextFile(path, `${KEY_TEXT}\n`);
    assert.deepEqual(
      await readKeyFile(path),
      new TextEncoder().encode(KEY_TEXT),
    );
  });
});

Deno.test("readKeyFile() says how to create a missing file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "missing.key");
    await assert.rejects(readKeyFile(path), {
      message:
        `Cannot read key file "${path}": not found; create one with "server.ts keygen"`,
    });
  });
});

Deno.test("readKeyFile() wraps other errors with their cause", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(readKeyFile(dir), (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.equal(error.message, `Cannot read key file "${dir}"`);
      assert.ok(error.cause instanceof Error);
      return true;
    });
  });
});

Deno.test("readKeyFile() rejects a file over 4096 bytes", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "big.key");
    await Deno.writeTextFile(path, "k".repeat(4097));
    await assert.rejects(readKeyFile(path), {
      message: `Cannot read key file "${path}": longer than 4096 bytes`,
    });
  });
});

Deno.test("readKeyFile() rejects a short key naming the file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "short.key");
    await Deno.writeTextFile(path, "tooshort\n");
    await assert.rejects(readKeyFile(path), (error: unknown) => {
      assert.ok(error instanceof RangeError);
      assert.equal(
        error.message,
        `Cannot use key from key file "${path}": 8 bytes, at least 16 required`,
      );
      return true;
    });
  });
});

Deno.test("writeNewKeyFile() writes 64 hex characters with mode 0600", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "new.key");
    await writeNewKeyFile(path);
    assert.match(await Deno.readTextFile(path), KEY_LINE_REGEXP);
    assert.equal(await modeOf(path), 0o600);
    assert.equal((await readKeyFile(path)).length, 64);
  });
});

Deno.test("writeNewKeyFile() writes a different key each time", async () => {
  await withTempDir(async (dir) => {
    await writeNewKeyFile(join(dir, "one.key"));
    await writeNewKeyFile(join(dir, "two.key"));
    assert.notEqual(
      await Deno.readTextFile(join(dir, "one.key")),
      await Deno.readTextFile(join(dir, "two.key")),
    );
  });
});

Deno.test("writeNewKeyFile() refuses to overwrite an existing file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "k.key");
    await Deno.writeTextFile(path, `${KEY_TEXT}\n`);
    await assert.rejects(writeNewKeyFile(path), {
      message:
        `Cannot write key file "${path}": already exists; use --force to replace it`,
    });
    assert.equal(await Deno.readTextFile(path), `${KEY_TEXT}\n`);
  });
});

Deno.test("writeNewKeyFile() with force replaces a file and makes it 0600", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "k.key");
    await Deno.writeTextFile(path, `${KEY_TEXT}\n`, { mode: 0o644 });
    await Deno.chmod(path, 0o644);
    await writeNewKeyFile(path, { force: true });
    const text = await Deno.readTextFile(path);
    assert.match(text, KEY_LINE_REGEXP);
    assert.notEqual(text, `${KEY_TEXT}\n`);
    assert.equal(await modeOf(path), 0o600);
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["k.key"]);
  });
});

Deno.test("writeNewKeyFile() with force creates a missing file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "k.key");
    await writeNewKeyFile(path, { force: true });
    assert.match(await Deno.readTextFile(path), KEY_LINE_REGEXP);
  });
});

Deno.test("writeNewKeyFile() wraps a missing directory error", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "no", "k.key");
    for (const force of [false, true]) {
      await assert.rejects(writeNewKeyFile(path, { force }), {
        message: `Cannot write key file "${path}"`,
      });
    }
  });
});

Deno.test("resolvePsk() prefers an explicit key file over DOORMAN_KEY", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "k.key");
    await Deno.writeTextFile(path, `${KEY_TEXT}\n`);
    const found = await resolvePsk({
      keyFile: path,
      env: envWith("from-the-environment-0123"),
    });
    assert.deepEqual(found, {
      psk: new TextEncoder().encode(KEY_TEXT),
      source: `key file "${path}"`,
    });
  });
});

Deno.test("resolvePsk() takes the key itself from DOORMAN_KEY", async () => {
  const found = await resolvePsk({
    env: envWith(` ${KEY_TEXT}\n`),
    createIfMissing: true,
  });
  assert.deepEqual(found, {
    psk: new TextEncoder().encode(KEY_TEXT),
    source: "DOORMAN_KEY",
  });
});

Deno.test("resolvePsk() rejects a short DOORMAN_KEY", async () => {
  await assert.rejects(resolvePsk({ env: envWith("short") }), {
    name: "RangeError",
    message: "Cannot use key from DOORMAN_KEY: 5 bytes, at least 16 required",
  });
});

Deno.test("resolvePsk() reports a missing explicit key file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "missing.key");
    await assert.rejects(
      resolvePsk({ keyFile: path, env: noEnv, createIfMissing: true }),
      { message: /^Cannot read key file ".*missing\.key": not found;/ },
    );
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  });
});

Deno.test("resolvePsk() reads the default key file when nothing is given", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, DEFAULT_KEY_FILE), `${KEY_TEXT}\n`);
    assert.deepEqual(await resolveInDir(dir, { createIfMissing: true }), {
      source: 'key file "doorman.key"',
      created: null,
      key: KEY_TEXT,
    });
  });
});

Deno.test("resolvePsk() without createIfMissing reports a missing default file", async () => {
  await withTempDir(async (dir) => {
    const result = await resolveInDir(dir, { createIfMissing: false });
    assert.match(
      result.error,
      /^Cannot read key file "doorman\.key": not found/,
    );
    await assert.rejects(
      Deno.stat(join(dir, DEFAULT_KEY_FILE)),
      Deno.errors.NotFound,
    );
  });
});

Deno.test("resolvePsk() with createIfMissing creates the default file", async () => {
  await withTempDir(async (dir) => {
    const result = await resolveInDir(dir, { createIfMissing: true });
    const path = join(dir, DEFAULT_KEY_FILE);
    assert.equal(result.source, 'key file "doorman.key"');
    assert.equal(result.created, "doorman.key");
    assert.equal(`${result.key}\n`, await Deno.readTextFile(path));
    assert.equal(await modeOf(path), 0o600);
  });
});
