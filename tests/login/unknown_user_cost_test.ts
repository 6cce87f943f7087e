/**
 * Known and unknown names cost the server the same (issue 11 item 6): with
 * 20,000 users, the usual iteration count given to fake verifiers is a
 * value stored on load, not a count over every user per unknown name, and
 * both paths build the same verifiers. These are ratio checks between two
 * paths measured side by side, with a wide tolerance, not speed assertions.
 *
 * @module
 */

import assert from "node:assert/strict";
import { verifierFor } from "../../lib/login/login.ts";
import { createScramVerifier } from "../../lib/login/scram.ts";
import { randomBytes } from "../../lib/wire/crypto.ts";
import { UserStore } from "../../lib/users/user_store.ts";
import { formatScramVerifier } from "../../lib/users/userinfo.ts";
import { tempDir } from "../helpers.ts";

const USERS = 20_000;
const ROUNDS = 21;
const CALLS = 200;

/** A userinfo file of 20,000 users sharing one verifier (fast to build). */
async function bigStore(path: string): Promise<UserStore> {
  const verifier = formatScramVerifier(
    await createScramVerifier("pw", { iterations: 4096 }),
  );
  const lines = Array.from(
    { length: USERS },
    (_, i) => `user${i}|${verifier}`,
  );
  await Deno.writeTextFile(path, `${lines.join("\n")}\n`, { mode: 0o600 });
  return await UserStore.open(path);
}

/** Median time of `CALLS` calls of each path, rounds interleaved. */
function medians(paths: Record<string, (i: number) => unknown>) {
  const times: Record<string, number[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, path] of Object.entries(paths)) {
      const start = performance.now();
      for (let i = 0; i < CALLS; i++) path(round * CALLS + i);
      (times[name] ??= []).push(performance.now() - start);
    }
  }
  return Object.fromEntries(
    Object.entries(times).map(([name, list]) => {
      const sorted = list.toSorted((a, b) => a - b);
      return [name, Math.max(sorted[Math.floor(sorted.length / 2)], 1e-3)];
    }),
  );
}

Deno.test("verifierFor() costs the same for a known and an unknown name among 20,000 users", async () => {
  await using dir = await tempDir();
  using store = await bigStore(dir.join("userinfo"));
  const options = { fakeSaltKey: randomBytes(32), iterations: 600_000 };
  // Warm both paths up first.
  verifierFor(store, "user1", options);
  verifierFor(store, "nobody", options);
  const time = medians({
    known: (i) => verifierFor(store, `user${i % USERS}`, options),
    unknown: (i) => verifierFor(store, `nobody${i}`, options),
  });
  const ratio = time.unknown / time.known;
  assert.ok(
    ratio < 3 && ratio > 1 / 3,
    `unknown/known median ratio ${ratio.toFixed(2)} (${JSON.stringify(time)})`,
  );
  assert.equal(
    verifierFor(store, "nobody", options).verifier?.iterations,
    4096,
  );
});

Deno.test("UserStore.typicalIterations() is a stored value: no dearer than lookup() with 20,000 users", async () => {
  await using dir = await tempDir();
  using store = await bigStore(dir.join("userinfo"));
  const time = medians({
    lookup: (i) => store.lookup(`user${i % USERS}`),
    typical: () => store.typicalIterations(),
  });
  // Counting 20,000 verifiers per call was about 10,000 times a lookup.
  const ratio = time.typical / time.lookup;
  assert.ok(ratio < 20, `typical/lookup median ratio ${ratio.toFixed(2)}`);
  assert.equal(store.typicalIterations(), 4096);
});
