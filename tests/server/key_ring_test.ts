import assert from "node:assert/strict";
import {
  ClosedError,
  KeyRejectedError,
  LoginRejectedError,
} from "../../lib/errors.ts";
import { formatKeyEntry, type KeyEntry } from "../../lib/key_file.ts";
import { KeyRing, watchKeyRing } from "../../lib/server/key_ring.ts";
import type { ReloadEvent } from "../../lib/file_reloader.ts";
import { deriveEarlySalt } from "../../lib/wire/key_schedule.ts";
import { CloseCode } from "../../lib/wire/protocol.ts";
import { startTestServer } from "../fixtures/server_fixture.ts";
import { seededBytes } from "../helpers.ts";

const ALICE: KeyEntry = { id: "alice-laptop", psk: seededBytes(1, 32) };
const BOB: KeyEntry = { id: "bob", psk: seededBytes(2, 32) };
const BOUND_MS = 10_000;

/** `promise`, or a rejection once `ms` pass: every wait is bounded. */
async function within<T>(promise: Promise<T>, ms = BOUND_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("KeyRing.replace() revokes removed ids and changed bytes, not kept keys", () => {
  const ring = new KeyRing([ALICE, BOB]);
  const heard: string[][] = [];
  ring.onRevoked((ids) => heard.push([...ids]));
  const revoked = ring.replace([{ id: "bob", psk: seededBytes(2, 32) }]);
  assert.deepEqual([...revoked], ["alice-laptop"]);
  assert.equal(ring.holds(BOB), true);
  assert.equal(ring.holds(ALICE), false);
  ring.replace([{ id: "bob", psk: seededBytes(3, 32) }]);
  assert.deepEqual(heard, [["alice-laptop"], ["bob"]]);
  assert.equal(ring.holds(BOB), false);
  assert.throws(() => new KeyRing([ALICE, ALICE]), RangeError);
});

Deno.test("serve() closes a revoked key's sessions with keyRevoked, keeps the others, and refuses the key afterwards", async () => {
  const ring = new KeyRing([ALICE, BOB]);
  await using ts = await startTestServer({ keys: ring });
  const alice = await ts.connect({ psk: ALICE.psk, keyId: ALICE.id });
  const bob = await ts.connect({ psk: BOB.psk, keyId: BOB.id });
  assert.equal(
    new TextDecoder().decode(await alice.send("hi") ?? undefined),
    "hi",
  );
  ring.replace([BOB]);
  const closed = await within(alice.closed);
  assert.equal(closed?.code, CloseCode.keyRevoked);
  assert.equal(
    new TextDecoder().decode(await bob.send("still") ?? undefined),
    "still",
  );
  await assert.rejects(
    ts.connect({ psk: ALICE.psk, keyId: ALICE.id }),
    KeyRejectedError,
  );
  assert.ok(ts.events("keys_revoked").some((event) => event.count === 1));
});

Deno.test("serve() logs the key id on every session line", async () => {
  await using ts = await startTestServer({ keys: new KeyRing([ALICE]) });
  const alice = await ts.connect({ psk: ALICE.psk, keyId: ALICE.id });
  await alice.close();
  await within(
    (async () => {
      for (let i = 0; i < 200 && ts.events("closed").length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })(),
  );
  for (const name of ["authenticated", "closed"] as const) {
    const [event] = ts.events(name);
    assert.equal(event?.key, ALICE.id, name);
  }
});

Deno.test("serve() fails an unknown key id exactly like a wrong key: same error, log and penalty", async () => {
  const outcomes = [];
  for (
    const key of [{ id: "carol", psk: ALICE.psk }, {
      id: ALICE.id,
      psk: BOB.psk,
    }]
  ) {
    await using ts = await startTestServer({ keys: new KeyRing([ALICE]) });
    const error = await ts.connect({ psk: key.psk, keyId: key.id }).catch((
      error,
    ) => error);
    await within(
      (async () => {
        for (let i = 0; i < 200 && ts.events("penalty").length === 0; i++) {
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
      })(),
    );
    outcomes.push({
      error: [error.constructor, error.message],
      failed: ts.events("handshake_failed").map((event) => event.reason),
      penalties: ts.events("penalty").length,
    });
  }
  assert.equal(outcomes[0].error[0], KeyRejectedError);
  assert.deepEqual(outcomes[0], outcomes[1]);
  assert.equal(outcomes[0].penalties, 1);
});

Deno.test("serve() lets only a key's listed users log in; others fail as a wrong password", async () => {
  const restricted = { ...ALICE, users: ["alice"] };
  await using ts = await startTestServer({
    keys: new KeyRing([restricted]),
    users: { alice: "alice-pw", bob: "bob-pw" },
    penaltyBaseMs: 1,
  });
  const key = { psk: ALICE.psk, keyId: ALICE.id };
  const alice = await ts.connect({
    ...key,
    user: "alice",
    password: "alice-pw",
  });
  await alice.close();
  const bob = await ts.connect({ ...key, user: "bob", password: "bob-pw" })
    .catch((error) => error);
  const wrong = await ts.connect({ ...key, user: "alice", password: "nope" })
    .catch((error) => error);
  assert.ok(bob instanceof LoginRejectedError);
  assert.ok(wrong instanceof LoginRejectedError);
  assert.equal(bob.message, wrong.message);
});

Deno.test("watchKeyRing() picks up a revocation from the file and closes that key's session", async () => {
  const ring = new KeyRing([ALICE, BOB]);
  await using ts = await startTestServer({ keys: ring });
  const path = ts.dir.join("ring.keys");
  const lines = (entries: KeyEntry[]) =>
    entries.map((entry) => `${formatKeyEntry(entry)}\n`).join("");
  await Deno.writeTextFile(path, lines([ALICE, BOB]), { mode: 0o600 });
  const events: ReloadEvent[] = [];
  await using _reloader = watchKeyRing(path, ring, {
    onEvent: (event) => events.push(event),
    settleMs: 50,
  });
  const alice = await ts.connect({ psk: ALICE.psk, keyId: ALICE.id });
  await Deno.writeTextFile(`${path}.new`, lines([BOB]), { mode: 0o600 });
  await Deno.rename(`${path}.new`, path);
  const closed = await within(alice.closed);
  assert.equal(closed?.code, CloseCode.keyRevoked);
  assert.deepEqual(events.at(-1), {
    kind: "applied",
    count: 1,
    added: 0,
    removed: 1,
    changed: 0,
  });
  await assert.rejects(alice.send("late"), ClosedError);
});

Deno.test("KeyRing.earlySalt() holds the salt of every key and of the decoy, old and new", () => {
  const ring = new KeyRing([ALICE]);
  assert.deepEqual(ring.earlySalt(ALICE.psk), deriveEarlySalt(ALICE.psk));
  assert.deepEqual(ring.earlySalt(ring.decoy), deriveEarlySalt(ring.decoy));
  ring.replace([ALICE, BOB]);
  assert.deepEqual(ring.earlySalt(BOB.psk), deriveEarlySalt(BOB.psk));
  assert.notDeepEqual(ring.earlySalt(ALICE.psk), ring.earlySalt(BOB.psk));
});
