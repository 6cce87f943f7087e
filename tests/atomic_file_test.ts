/**
 * Atomic replacement against a hostile writer in the same directory: the
 * lock file swapped for a symbolic link, the temp file swapped for one
 * between its creation and its use. Also the owner and group of a replaced
 * file, when run as root.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createFileExclusively,
  updateFileAtomically,
} from "../lib/atomic_file.ts";
import { writeNewKeyFile } from "../lib/key_file.ts";
import { utf8 } from "../lib/wire/bytes.ts";
import { updateUserinfo } from "../lib/users/userinfo_file.ts";
import { setUser } from "../lib/users/userinfo.ts";
import { legacyMd5Hex } from "../lib/login/verifier.ts";

async function withTempDir(run: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "doorman-atomic-test-" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function addBob(userinfo: Parameters<typeof setUser>[0]) {
  return setUser(userinfo, "bob", {
    kind: "md5",
    md5Hex: legacyMd5Hex("bob", "password"),
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Runs `work` while every path-based use of a file whose name starts with
 * `prefix` (chmod, open without createNew, writeFile, truncate) first finds
 * it swapped for a symbolic link to `victim`: what a writer in the same
 * directory can do between the temp file's creation and its use.
 */
async function withTempSwap(
  prefix: string,
  victim: string,
  work: () => Promise<unknown>,
): Promise<void> {
  const original = {
    chmod: Deno.chmod,
    open: Deno.open,
    writeFile: Deno.writeFile,
    writeTextFile: Deno.writeTextFile,
    truncate: Deno.truncate,
  };
  let swaps = 0;
  const swap = (path: string | URL) => {
    const name = String(path).split("/").pop() ?? "";
    if (!name.startsWith(prefix)) return;
    try {
      if (!Deno.lstatSync(path).isFile) return;
    } catch {
      return;
    }
    Deno.removeSync(path);
    Deno.symlinkSync(victim, path);
    swaps++;
  };
  const patched = Deno as unknown as Record<string, unknown>;
  patched.chmod = (path: string, mode: number) => {
    swap(path);
    return original.chmod(path, mode);
  };
  patched.open = (path: string, options?: Deno.OpenOptions) => {
    if (!options?.createNew) swap(path);
    return original.open(path, options);
  };
  patched.writeFile = (path: string, ...rest: [Uint8Array]) => {
    swap(path);
    return original.writeFile(path, ...rest);
  };
  patched.writeTextFile = (path: string, ...rest: [string]) => {
    swap(path);
    return original.writeTextFile(path, ...rest);
  };
  patched.truncate = (path: string, length?: number) => {
    swap(path);
    return original.truncate(path, length);
  };
  try {
    await work().catch(() => {});
  } finally {
    Object.assign(patched, original);
  }
  assert.equal(swaps, 0, "a temp file was used by path after its creation");
}

Deno.test("updateUserinfo() refuses a lock file that is a symbolic link, and creates nothing through it", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "userinfo");
    await Deno.writeTextFile(path, "");
    const victim = join(dir, "created-through-the-link");
    await Deno.symlink(victim, `${path}.lock`);
    await assert.rejects(
      updateUserinfo(path, addBob),
      /Cannot lock users file .*not a regular file/,
    );
    assert.equal(await exists(victim), false);
    assert.equal(await Deno.readTextFile(path), "");
  });
});

Deno.test("updateUserinfo() and writeNewKeyFile() never use a temp file by path, so a swapped temp file cannot redirect the write", async () => {
  await withTempDir(async (dir) => {
    const victim = join(dir, "victim");
    await Deno.writeTextFile(victim, "precious\n");
    await Deno.chmod(victim, 0o644);
    const users = join(dir, "userinfo");
    await Deno.writeTextFile(users, "# users\n");
    await withTempSwap(
      ".userinfo-",
      victim,
      () => updateUserinfo(users, addBob),
    );
    const key = join(dir, "k.key");
    await Deno.writeTextFile(key, "0123456789abcdef0123456789abcdef\n");
    await withTempSwap(
      ".doorman-key-",
      victim,
      () => writeNewKeyFile(key, { force: true }),
    );
    assert.equal(await Deno.readTextFile(victim), "precious\n");
    assert.equal((await Deno.stat(victim)).mode! & 0o777, 0o644);
    assert.match(await Deno.readTextFile(users), /^bob\|/m);
    assert.match(await Deno.readTextFile(key), /^[0-9a-f]{64}\n$/);
  });
});

Deno.test("createFileExclusively() does not write through a symbolic link at the path", async () => {
  await withTempDir(async (dir) => {
    const victim = join(dir, "victim");
    await Deno.writeTextFile(victim, "precious\n");
    const path = join(dir, "new.key");
    await Deno.symlink(victim, path);
    assert.equal(
      await createFileExclusively(path, utf8("key\n"), {
        what: "key file",
        mode: 0o600,
      }),
      false,
    );
    assert.equal(await Deno.readTextFile(victim), "precious\n");
  });
});

Deno.test("updateFileAtomically() keeps a replaced file's mode", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "notes");
    await Deno.writeTextFile(path, "old\n");
    await Deno.chmod(path, 0o640);
    const written = await updateFileAtomically(path, () => utf8("new\n"), {
      what: "notes file",
      newFileMode: 0o600,
      tempPrefix: ".notes-",
    });
    assert.equal(written, true);
    assert.equal(await Deno.readTextFile(path), "new\n");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o640);
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names.sort(), ["notes", "notes.lock"]);
  });
});

const isRoot = Deno.build.os !== "windows" && Deno.uid() === 0;

Deno.test({
  name: "updateUserinfo() run as root keeps the file's owner and group",
  ignore: !isRoot,
  fn: async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "userinfo");
      await Deno.writeTextFile(path, "# users\n");
      await Deno.chown(path, 1, 1);
      await updateUserinfo(path, addBob);
      const stat = await Deno.stat(path);
      assert.equal(stat.uid, 1);
      assert.equal(stat.gid, 1);
      assert.match(await Deno.readTextFile(path), /^bob\|/m);
    });
  },
});
if (!isRoot) {
  console.log("atomic_file_test: owner test skipped: not running as root");
}
