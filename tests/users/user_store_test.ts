import assert from "node:assert/strict";
import { join } from "node:path";
import { UserinfoSyntaxError } from "../../lib/errors.ts";
import { makeUsersFile } from "../helpers.ts";
import { createScramVerifier } from "../../lib/login/scram.ts";
import {
  readUserinfoFile,
  updateUserinfo,
  UserStore,
  type UserStoreEvent,
} from "../../lib/users/user_store.ts";
import {
  formatScramVerifier,
  formatUserinfo,
  legacyMd5Hex,
  setUser,
  type Userinfo,
} from "../../lib/users/userinfo.ts";

const ALEX_MD5_LINE = "alex|94e4ccf5e2749b0bfe0428603738c0f9\n";
const EMPTY: Userinfo = { lines: [] };
function withMd5User(userinfo: Userinfo, name: string): Userinfo {
  const md5Hex = legacyMd5Hex(name, "password");
  return setUser(userinfo, name, { kind: "md5", md5Hex });
}

async function modeOf(path: string): Promise<number> {
  return ((await Deno.stat(path)).mode ?? 0) & 0o777;
}

// Polls `done` every 50 ms for at most 10 s.
async function waitFor(done: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200 && !done(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return done();
}

Deno.test("UserStore.open() loads the users and reports the count", async () => {
  await using files = await makeUsersFile(ALEX_MD5_LINE);
  const events: UserStoreEvent[] = [];
  await using store = await UserStore.open(files.path, {
    onEvent: (event) => events.push(event),
  });
  assert.equal(store.path, files.path);
  assert.equal(store.userCount, 1);
  assert.deepEqual(store.userNames(), ["alex"]);
  assert.equal(store.lookup("alex")?.kind, "md5");
  assert.equal(store.lookup("nobody"), null);
  assert.deepEqual(events, [{ event: "users_loaded", count: 1 }]);
});

Deno.test("UserStore.open() rejects a missing file with a clear message", async () => {
  await using files = await makeUsersFile("");
  await assert.rejects(UserStore.open(files.path), (error: Error) => {
    assert.match(error.message, /^Cannot load users: file ".*" not found/);
    return true;
  });
});

Deno.test("UserStore.open() rejects a malformed file with its line", async () => {
  await using files = await makeUsersFile(`${ALEX_MD5_LINE}oops\n`);
  await assert.rejects(
    UserStore.open(files.path),
    (error) => error instanceof UserinfoSyntaxError && error.line === 2,
  );
});

Deno.test("UserStore.reload() keeps the last good copy on a malformed file", async () => {
  await using files = await makeUsersFile(ALEX_MD5_LINE);
  const events: UserStoreEvent[] = [];
  await using store = await UserStore.open(files.path, {
    onEvent: (event) => events.push(event),
  });
  const broken = "bob|0123456789abcdef0123456789abcdefXYZ\nnot a user line\n";
  await Deno.writeTextFile(files.path, broken);
  await store.reload();
  assert.equal(store.lookup("alex")?.kind, "md5");
  assert.equal(store.userCount, 1);
  const last = events.at(-1);
  assert.equal(last?.event, "users_reload_failed");
  assert.ok(last?.event === "users_reload_failed");
  assert.match(last.reason, /userinfo/);
  assert.doesNotMatch(last.reason, /0123456789abcdef/);
});

Deno.test("UserStore.reload() takes a changed file and reports the count", async () => {
  await using files = await makeUsersFile(ALEX_MD5_LINE);
  const events: UserStoreEvent[] = [];
  await using store = await UserStore.open(files.path, {
    onEvent: (event) => events.push(event),
  });
  await updateUserinfo(files.path, (userinfo) => withMd5User(userinfo, "bob"));
  await store.reload();
  assert.deepEqual(store.userNames(), ["alex", "bob"]);
  assert.deepEqual(events.at(-1), {
    event: "users_loaded",
    count: 2,
    detail: "added 1, removed 0, changed 0",
  });
});

Deno.test("UserStore.watch() picks up an external atomic rewrite", async () => {
  await using files = await makeUsersFile(ALEX_MD5_LINE);
  await using store = await UserStore.open(files.path);
  store.watch();
  store.watch(); // idempotent
  const staged = join(files.dir, "userinfo.new");
  await Deno.writeTextFile(staged, `${ALEX_MD5_LINE}bob|${"0".repeat(32)}\n`);
  await Deno.rename(staged, files.path);
  assert.ok(await waitFor(() => store.lookup("bob") !== null));
  assert.equal(store.userCount, 2);
});

Deno.test("UserStore.close() stops watching and can be called twice", async () => {
  await using files = await makeUsersFile(ALEX_MD5_LINE);
  const store = await UserStore.open(files.path);
  store.watch();
  await Deno.writeTextFile(
    files.path,
    `${ALEX_MD5_LINE}bob|${"0".repeat(32)}\n`,
  );
  store.close();
  store.close();
  store.watch(); // no effect once closed
  await store[Symbol.asyncDispose]();
});

Deno.test("UserStore.upgradeLegacy() replaces the md5 line with SCRAM", async () => {
  await using files = await makeUsersFile(ALEX_MD5_LINE);
  await Deno.chmod(files.path, 0o640);
  const events: UserStoreEvent[] = [];
  await using store = await UserStore.open(files.path, {
    onEvent: (event) => events.push(event),
  });
  assert.equal(
    await store.upgradeLegacy("alex", "123456", { iterations: 4096 }),
    true,
  );
  const verifier = store.lookup("alex");
  assert.equal(verifier?.kind, "scram-sha-256");
  assert.ok(verifier?.kind === "scram-sha-256");
  assert.equal(verifier.scram.iterations, 4096);
  const text = await Deno.readTextFile(files.path);
  assert.doesNotMatch(text, /94e4ccf5e2749b0bfe0428603738c0f9/);
  const onDisk = (await readUserinfoFile(files.path)).lines[0];
  assert.ok(onDisk.kind === "user" && onDisk.verifier.kind === "scram-sha-256");
  assert.equal(await modeOf(files.path), 0o640);
  assert.deepEqual(events.at(-1), { event: "user_upgraded", user: "alex" });
});

Deno.test("UserStore.upgradeLegacy() leaves the file byte-identical on a wrong password", async () => {
  await using files = await makeUsersFile(ALEX_MD5_LINE);
  const events: UserStoreEvent[] = [];
  await using store = await UserStore.open(files.path, {
    onEvent: (event) => events.push(event),
  });
  assert.equal(
    await store.upgradeLegacy("alex", "1234567", { iterations: 4096 }),
    false,
  );
  assert.equal(await Deno.readTextFile(files.path), ALEX_MD5_LINE);
  assert.equal(store.lookup("alex")?.kind, "md5");
  assert.deepEqual(events, [{ event: "users_loaded", count: 1 }]);
});

Deno.test("UserStore.upgradeLegacy() changes nothing if the line changed on disk", async () => {
  await using files = await makeUsersFile(ALEX_MD5_LINE);
  await using store = await UserStore.open(files.path);
  const scram = await createScramVerifier("other", { iterations: 4096 });
  const replaced = formatUserinfo(
    setUser(EMPTY, "alex", { kind: "scram-sha-256", scram }),
  );
  await Deno.writeTextFile(files.path, replaced);
  assert.equal(
    await store.upgradeLegacy("alex", "123456", { iterations: 4096 }),
    false,
  );
  assert.equal(await Deno.readTextFile(files.path), replaced);
});

Deno.test("UserStore.typicalIterations() is the most common SCRAM count, null without SCRAM users", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/userinfo`;
    const line = async (name: string, iterations: number) =>
      `${name}|${
        formatScramVerifier(await createScramVerifier("pw", { iterations }))
      }`;
    await Deno.writeTextFile(
      path,
      [
        await line("a", 4096),
        await line("b", 5000),
        await line("c", 5000),
        "d|94e4ccf5e2749b0bfe0428603738c0f9",
      ].join("\n") + "\n",
    );
    const store = await UserStore.open(path);
    assert.equal(store.typicalIterations(), 5000);
    store.close();
    await Deno.writeTextFile(path, "d|94e4ccf5e2749b0bfe0428603738c0f9\n");
    const legacyOnly = await UserStore.open(path);
    assert.equal(legacyOnly.typicalIterations(), null);
    legacyOnly.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
