/**
 * The password stays home: a key holder posing as the server answers the
 * client's SCRAM start with a legacy md5 request, hoping for the plaintext
 * password. Without `allowLegacyLogin` (`--allow-legacy-login`) the client
 * refuses, sends nothing, and `client.ts` exits 4 with one line naming the
 * flag.
 *
 * @module
 */

import assert from "node:assert/strict";
import { connect } from "../../lib/client/connect.ts";
import { toHex, utf8 } from "../../lib/wire/bytes.ts";
import { openChannel } from "../../lib/wire/channel.ts";
import { randomBytes } from "../../lib/wire/crypto.ts";
import { FrameReader } from "../../lib/wire/framing.ts";
import { handshakeAsServer } from "../../lib/wire/handshake.ts";
import { LoginRejectedError } from "../../lib/errors.ts";
import { LoginStep, RecordKind } from "../../lib/wire/protocol.ts";
import { receiveLoginStep, sendLoginStep } from "../fixtures/server_fixture.ts";
import { closeQuietly, tempDir } from "../helpers.ts";
import { runClient } from "../integration/server_process.ts";

const PASSWORD = "the victim's password";

/**
 * A fake server holding the key: handshakes, reads client-first, asks for
 * the legacy password, then records every login step it gets afterwards.
 */
function startPhishingServer(psk: Uint8Array) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received = (async () => {
    const conn = await listener.accept();
    listener.close();
    const steps: { step: number; text: string }[] = [];
    try {
      const framed = { conn, reader: new FrameReader(conn) };
      const keys = await handshakeAsServer(framed, psk);
      const channel = openChannel(framed, keys, { role: "server" });
      const first = await receiveLoginStep(channel);
      assert.equal(first?.step, LoginStep.clientFirst);
      sendLoginStep(channel, LoginStep.legacyRequest, "");
      for (let i = 0; i < 4; i++) {
        const record = await channel.receive().catch(() => null);
        if (record === null) break;
        if (record.kind === RecordKind.login) {
          steps.push({
            step: record.body[0],
            text: new TextDecoder().decode(record.body.subarray(1)),
          });
          sendLoginStep(channel, LoginStep.legacyAccepted, "");
        }
      }
    } finally {
      closeQuietly(conn);
    }
    return steps;
  })();
  return { port: listener.addr.port, received };
}

Deno.test("connect() refuses a legacy md5 request and never sends the password", async () => {
  const psk = randomBytes(32);
  const phisher = startPhishingServer(psk);
  const error = await connect({
    port: phisher.port,
    psk,
    user: "alex",
    password: PASSWORD,
  }).then(() => null, (error: unknown) => error);
  assert.ok(error instanceof LoginRejectedError, String(error));
  assert.match(error.message, /legacy plaintext password method/);
  assert.match(error.message, /--allow-legacy-login/);
  assert.doesNotMatch(error.message, /victim/);
  assert.deepEqual(await phisher.received, []);
});

Deno.test("connect() with allowLegacyLogin answers a legacy md5 request (the opt-in)", async () => {
  const psk = randomBytes(32);
  const phisher = startPhishingServer(psk);
  const conn = await connect({
    port: phisher.port,
    psk,
    user: "alex",
    password: PASSWORD,
    allowLegacyLogin: true,
    pingIntervalMs: 0,
  });
  await conn.close();
  assert.deepEqual(await phisher.received, [
    { step: LoginStep.legacyPassword, text: PASSWORD },
  ]);
});

Deno.test("client.ts exits 4 with one line naming --allow-legacy-login when the server asks for legacy md5", async () => {
  await using dir = await tempDir();
  // A key file's bytes are its trimmed text (lib/key_file.ts).
  const hex = toHex(randomBytes(32));
  const psk = utf8(hex);
  const keyFile = dir.join("doorman.key");
  const passwordFile = dir.join("password");
  await Deno.writeTextFile(keyFile, `${hex}\n`, { mode: 0o600 });
  await Deno.writeTextFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  const phisher = startPhishingServer(psk);
  const result = await runClient([
    "send",
    ...["--port", String(phisher.port), "--key-file", keyFile],
    ...["--user", "alex", "--password-file", passwordFile, "hello"],
  ]);
  assert.equal(result.code, 4, result.stderr);
  const lines = result.stderr.split("\n").filter((line) => line !== "");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0], /^client: .*legacy plaintext.*--allow-legacy-login/);
  assert.ok(!result.stderr.includes(PASSWORD));
  assert.deepEqual(await phisher.received, []);
});
