import assert from "node:assert/strict";
import { join } from "node:path";
import { UserinfoSyntaxError } from "../../lib/errors.ts";
import { makeUsersFile } from "../helpers.ts";
import {
  formatUserinfo,
  legacyMd5Hex,
  parseUserinfo,
  setUser,
  type Userinfo,
} from "../../lib/users/userinfo.ts";
import {
  readUserinfoFile,
  updateUserinfo,
} from "../../lib/users/userinfo_file.ts";

const DRIVER = new URL("../fixtures/add_user_driver.ts", import.meta.url)
  .pathname;
const ALEX_MD5_LINE = "alex|94e4ccf5e2749b0bfe0428603738c0f9\n";
const EMPTY: Userinfo = { lines: [] };
function withMd5User(userinfo: Userinfo, name: string): Userinfo {
  const md5Hex = legacyMd5Hex(name, "password");
  return setUser(userinfo, name, { kind: "md5", md5Hex });
}

function userNamesOf(userinfo: Userinfo): string[] {
  return userinfo.lines.flatMap((line) =>
    line.kind === "user" ? [line.name] : []
  );
}

function runDriver(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-read", "--allow-write", DRIVER, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function modeOf(path: string): Promise<number> {
  return ((await Deno.stat(path)).mode ?? 0) & 0o777;
}

Deno.test("updateUserinfo() creates a missing file with mode 0600", async () => {
  await using files = await makeUsersFile("");
  const result = await updateUserinfo(
    files.path,
    (userinfo) => withMd5User(userinfo, "bob"),
  );
  assert.deepEqual(userNamesOf(result), ["bob"]);
  assert.equal(await modeOf(files.path), 0o600);
  assert.deepEqual(userNamesOf(await readUserinfoFile(files.path)), ["bob"]);
});

Deno.test("updateUserinfo() keeps an existing file's mode", async () => {
  await using files = await makeUsersFile(ALEX_MD5_LINE);
  await Deno.chmod(files.path, 0o640);
  await updateUserinfo(files.path, (userinfo) => withMd5User(userinfo, "bob"));
  assert.equal(await modeOf(files.path), 0o640);
  const names = userNamesOf(await readUserinfoFile(files.path));
  assert.deepEqual(names, ["alex", "bob"]);
});

Deno.test("updateUserinfo() leaves the file as it was when change throws", async () => {
  await using files = await makeUsersFile(ALEX_MD5_LINE);
  await assert.rejects(
    updateUserinfo(files.path, () => {
      throw new Error("Cannot add user: already exists");
    }),
    { message: "Cannot add user: already exists" },
  );
  assert.equal(await Deno.readTextFile(files.path), ALEX_MD5_LINE);
  const entries = await Array.fromAsync(Deno.readDir(files.dir));
  assert.deepEqual(entries.map((entry) => entry.name).sort(), [
    "userinfo",
    "userinfo.lock",
  ]);
});

Deno.test("updateUserinfo() writes nothing when change returns its argument", async () => {
  await using files = await makeUsersFile(ALEX_MD5_LINE);
  const before = await Deno.stat(files.path);
  await updateUserinfo(files.path, (userinfo) => userinfo);
  const after = await Deno.stat(files.path);
  assert.equal(after.ino, before.ino);
  assert.equal(await Deno.readTextFile(files.path), ALEX_MD5_LINE);
});

Deno.test("updateUserinfo() refuses a malformed file", async () => {
  const text = `${ALEX_MD5_LINE}this line is not a user\n`;
  await using files = await makeUsersFile(text);
  await assert.rejects(
    updateUserinfo(files.path, (userinfo) => withMd5User(userinfo, "bob")),
    (error) => error instanceof UserinfoSyntaxError && error.line === 2,
  );
  assert.equal(await Deno.readTextFile(files.path), text);
});

Deno.test("readUserinfoFile() keeps the line number and names the file", async () => {
  await using files = await makeUsersFile(`# users\n${ALEX_MD5_LINE}oops\n`);
  const error = await readUserinfoFile(files.path).catch((error) => error);
  assert.ok(error instanceof UserinfoSyntaxError);
  assert.equal(error.line, 3);
  assert.match(error.message, /userinfo/);
  assert.match(error.message, /line 3/);
});

Deno.test("readUserinfoFile() names a missing file", async () => {
  await using files = await makeUsersFile("");
  await assert.rejects(readUserinfoFile(files.path), (error: Error) => {
    assert.ok(error instanceof Deno.errors.NotFound);
    assert.match(error.message, /^Cannot read users file ".*userinfo": /);
    return true;
  });
});

Deno.test("updateUserinfo() serialises 20 writer processes", async () => {
  await using files = await makeUsersFile("");
  const names = Array.from({ length: 20 }, (_, i) => `writer${i}`);
  const outputs = await Promise.all(
    names.map((name) => runDriver(["add", files.path, name]).output()),
  );
  for (const output of outputs) {
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  }
  const written = userNamesOf(await readUserinfoFile(files.path));
  assert.deepEqual(written.sort(), names.sort());
});

Deno.test("updateUserinfo() leaves a parseable file when its writer is killed", async () => {
  await using files = await makeUsersFile("");
  const prefill = Array.from({ length: 300 }, (_, i) => `prefill${i}`);
  await Deno.writeTextFile(
    files.path,
    formatUserinfo(prefill.reduce(withMd5User, EMPTY)),
  );
  for (let round = 0; round < 8; round++) {
    const writes = 1 + Math.floor(Math.random() * 20);
    const child = runDriver(["loop", files.path, "10000"]).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let seen = 0;
    let text = "";
    while (seen < writes) {
      const { done, value } = await lines.read();
      if (done) break;
      text += value;
      seen = text.split("\n").filter((line) => line.startsWith("wrote")).length;
    }
    child.kill("SIGKILL");
    await lines.cancel();
    await child.stderr.cancel();
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL", `round ${round} ended early`);
    const userinfo = parseUserinfo(await Deno.readTextFile(files.path));
    const names = new Set(userNamesOf(userinfo));
    for (const name of prefill) assert.ok(names.has(name));
    for (let i = 0; i < seen; i++) assert.ok(names.has(`user${i}`));
  }
});

Deno.test("updateUserinfo() replaces a symbolic link's target and keeps the link", async () => {
  await using files = await makeUsersFile(ALEX_MD5_LINE);
  const link = join(files.dir, "link");
  await Deno.symlink(files.path, link);
  await updateUserinfo(link, (userinfo) => withMd5User(userinfo, "bob"));
  assert.ok((await Deno.lstat(link)).isSymlink);
  const names = userNamesOf(await readUserinfoFile(files.path));
  assert.deepEqual(names, ["alex", "bob"]);
});
