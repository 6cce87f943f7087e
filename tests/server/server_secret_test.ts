import assert from "node:assert/strict";
import { fromBase64 } from "../../lib/wire/bytes.ts";
import { randomBytes } from "../../lib/wire/crypto.ts";
import {
  defaultServerSecretPath,
  loadServerSecret,
  SERVER_SECRET_BYTES,
} from "../../lib/server/server_secret.ts";
import {
  rawChannel,
  serverFirstFor,
  startTestServer,
} from "../fixtures/server_fixture.ts";
import { resolveServeOptions } from "../../lib/server/serve_options.ts";
import { tempDir } from "../helpers.ts";

Deno.test("loadServerSecret() creates a 0600 file of 64 hex digits, then reads the same bytes back", async () => {
  await using dir = await tempDir();
  const path = dir.join("doorman-server-secret");
  const first = await loadServerSecret(path);
  assert.equal(first.created, true);
  assert.equal(first.secret.length, SERVER_SECRET_BYTES);
  const info = await Deno.stat(path);
  assert.equal((info.mode ?? 0) & 0o777, 0o600);
  assert.match(await Deno.readTextFile(path), /^[0-9a-f]{64}\n$/);
  const again = await loadServerSecret(path);
  assert.equal(again.created, false);
  assert.deepEqual(again.secret, first.secret);
});

Deno.test("loadServerSecret() refuses a file others may read, and one that is not 64 hex digits, without showing it", async () => {
  await using dir = await tempDir();
  const open = dir.join("open");
  await Deno.writeTextFile(open, `${"ab".repeat(32)}\n`, { mode: 0o644 });
  await Deno.chmod(open, 0o644);
  await assert.rejects(loadServerSecret(open), /mode 644.*chmod 600/);
  const bad = dir.join("bad");
  await Deno.writeTextFile(bad, "not a secret 0123\n", { mode: 0o600 });
  const error = await loadServerSecret(bad).catch((error) => error);
  assert.match(error.message, /expected 64 hex digits/);
  assert.doesNotMatch(error.message, /not a secret/);
});

Deno.test("defaultServerSecretPath() puts the secret beside the user file", () => {
  assert.equal(
    defaultServerSecretPath("/etc/doorman/userinfo"),
    "/etc/doorman/doorman-server-secret",
  );
  assert.equal(defaultServerSecretPath("userinfo"), "doorman-server-secret");
});

/** The salt a server hands an unknown name. */
async function fakeSalt(
  options: { serverSecret?: Uint8Array; psk?: Uint8Array },
): Promise<Uint8Array> {
  await using ts = await startTestServer({
    users: { alex: "pw" },
    ...(options.serverSecret ? { serverSecret: options.serverSecret } : {}),
  });
  // startTestServer picks a fresh random PSK for every server.
  await using raw = await rawChannel(ts.port, ts.psk);
  const serverFirst = await serverFirstFor(raw.channel, "mallory");
  const salt = serverFirst.split(",").find((part) => part.startsWith("s="));
  return fromBase64(salt?.slice(2) ?? "");
}

Deno.test("serve() derives the fake salt of an unknown name from the server secret, not from the pre-shared key", async () => {
  const secret = randomBytes(32);
  // Two servers with different PSKs and the same secret: the same salt.
  const first = await fakeSalt({ serverSecret: secret });
  const second = await fakeSalt({ serverSecret: secret });
  assert.equal(first.length, 16);
  assert.deepEqual(first, second);
  // Another secret: another salt.
  assert.notDeepEqual(await fakeSalt({ serverSecret: randomBytes(32) }), first);
});

Deno.test("resolveServeOptions() refuses a server secret shorter than 16 bytes", () => {
  assert.throws(
    () =>
      resolveServeOptions({
        psk: randomBytes(32),
        serverSecret: randomBytes(8),
      }),
    RangeError,
  );
});
