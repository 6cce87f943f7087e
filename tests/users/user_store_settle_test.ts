import assert from "node:assert/strict";
import { legacyMd5Hex } from "../../lib/users/userinfo.ts";
import {
  checkUserinfoMode,
  UserStore,
  type UserStoreEvent,
} from "../../lib/users/user_store.ts";
import { makeUsersFile } from "../helpers.ts";

const line = (name: string) => `${name}|${legacyMd5Hex(name, "pw")}\n`;

async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !done(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.ok(done(), "condition not met within 10 s");
}

Deno.test("UserStore.watch() never loads a userinfo file cut short by an in-place writer that pauses", async () => {
  await using files = await makeUsersFile(
    line("ann") + line("bo") + line("cy"),
  );
  const events: UserStoreEvent[] = [];
  await using store = await UserStore.open(files.path, {
    onEvent: (event) => events.push(event),
  });
  store.watch();
  {
    // Like shell `>`: truncate, write one line, pause, write the rest.
    using file = await Deno.open(files.path, { write: true, truncate: true });
    await file.write(new TextEncoder().encode(line("ann")));
    await new Promise((resolve) => setTimeout(resolve, 150));
    await file.write(
      new TextEncoder().encode(line("bo") + line("cy") + line("di")),
    );
  }
  await until(() => store.userCount === 4);
  const loaded = events.filter((event) => event.event === "users_loaded");
  assert.deepEqual(loaded.map((event) => event.count), [3, 4]);
  assert.deepEqual(loaded.at(-1), {
    event: "users_loaded",
    count: 4,
    detail: "added 1, removed 0, changed 0",
  });
});

Deno.test("UserStore.watch() keeps the users when the file is emptied; SIGHUP's reload() applies it", async () => {
  await using files = await makeUsersFile(line("ann"));
  const events: UserStoreEvent[] = [];
  await using store = await UserStore.open(files.path, {
    onEvent: (event) => events.push(event),
    settleMs: 50,
  });
  store.watch();
  await Deno.writeTextFile(files.path, "");
  await until(() => events.length > 1);
  assert.equal(events.at(-1)?.event, "users_reload_failed");
  assert.equal(store.userCount, 1);
  await store.reload();
  assert.equal(store.userCount, 0);
});

Deno.test("UserStore.open() with strictMode refuses a userinfo writable by group or others", async () => {
  await using files = await makeUsersFile(line("ann"));
  await Deno.chmod(files.path, 0o664);
  const error = await UserStore.open(files.path, { strictMode: true }).catch((
    error,
  ) => error);
  assert.ok(error instanceof Error);
  assert.match(error.message, /mode 0664 .*chmod go-w/);
  assert.doesNotMatch(error.message, /\n/);
  await Deno.chmod(files.path, 0o644);
  await checkUserinfoMode(files.path);
  (await UserStore.open(files.path, { strictMode: true })).close();
});
