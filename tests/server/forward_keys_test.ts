/**
 * Tunnels and the key ring: a `key:ID` rule matches the key id the client
 * proved in the handshake, and revoking a key or removing a user closes
 * that key's or user's open tunnels, which also count toward the session
 * caps.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CloseCode } from "../../lib/wire/protocol.ts";
import { parseForwardTargets } from "../../lib/server/forward_targets.ts";
import { KeyRing } from "../../lib/server/key_ring.ts";
import type { StreamSocket } from "../../lib/wire/stream_pump.ts";
import { dialChannel, dialStream, runStream } from "../../lib/client/stream.ts";
import { startTestServer, waitFor } from "../fixtures/server_fixture.ts";
import { memorySocket, startBackend } from "../fixtures/tunnel_backend.ts";
import { seededBytes } from "../helpers.ts";
import { removeUser } from "../../lib/users/userinfo.ts";
import { updateUserinfo } from "../../lib/users/user_store.ts";

const USERS = { alice: "pw-alice", bob: "pw-bob" };
const LAPTOP = { id: "laptop-alice", psk: seededBytes(11, 32) };
const PHONE = { id: "phone-alice", psk: seededBytes(12, 32) };

function targets(port: number, users: string[] = []) {
  return parseForwardTargets({ forward: [`db=127.0.0.1:${port}`], users });
}

/** A local end that never yields data nor EOF until closed. */
function quietSocket(): StreamSocket {
  const { promise: never, resolve: release } = Promise.withResolvers<null>();
  return {
    read: () => never,
    write: (bytes) => Promise.resolve(bytes.length),
    closeWrite: () => Promise.resolve(),
    close: () => release(null),
  };
}

Deno.test("--forward-users NAME=key:ID: the key the client proved is allowed, another key of the ring refused", async () => {
  await using backend = startBackend("echo");
  await using ts = await startTestServer({
    users: USERS,
    keys: new KeyRing([LAPTOP, PHONE]),
    forwardTargets: targets(backend.port, ["db=key:laptop-alice"]),
  });
  const open = (key: { id: string; psk: Uint8Array }) =>
    dialStream({
      port: ts.port,
      psk: key.psk,
      keyId: key.id,
      user: "alice",
      password: USERS.alice,
      target: "db",
    }).then((channel) =>
      runStream(channel, memorySocket(new Uint8Array(7)), { target: "db" })
    );
  const allowed = await open(LAPTOP);
  assert.equal(allowed.outcome, "ended");
  assert.equal(allowed.received, 7);
  const refused = await open(PHONE);
  assert.equal(refused.outcome, "closed");
  assert.equal(refused.code, CloseCode.targetForbidden);
  assert.equal(refused.reason, 'not allowed to use target "db"');
  const [opened] = ts.events("stream_opened");
  assert.equal(opened.key, "laptop-alice");
  const [logged] = ts.events("stream_refused");
  assert.equal(logged.user, "alice");
  assert.equal(logged.key, "phone-alice");
  assert.equal(logged.target, "db");
  assert.deepEqual(ts.events("login_failed"), []);
  assert.equal(backend.connections.length, 1);
});

Deno.test("revoking a key closes that key's open tunnel with keyRevoked; another key's tunnel stays open", async () => {
  await using backend = startBackend("echo");
  const ring = new KeyRing([LAPTOP, PHONE]);
  await using ts = await startTestServer({
    users: USERS,
    keys: ring,
    forwardTargets: targets(backend.port),
  });
  const dial = (key: { id: string; psk: Uint8Array }) =>
    dialStream({
      port: ts.port,
      psk: key.psk,
      keyId: key.id,
      user: "alice",
      password: USERS.alice,
      target: "db",
    });
  const stop = new AbortController();
  const revoked = runStream(await dial(PHONE), quietSocket(), {
    target: "db",
  });
  const kept = runStream(await dial(LAPTOP), quietSocket(), {
    target: "db",
    signal: stop.signal,
  });
  assert.ok(await waitFor(() => ts.events("stream_opened").length === 2));
  ring.replace([LAPTOP]);
  const result = await revoked;
  assert.equal(result.outcome, "closed");
  assert.equal(result.code, CloseCode.keyRevoked);
  const closed = ts.events("stream_closed");
  assert.equal(closed.length, 1);
  assert.equal(closed[0].key, "phone-alice");
  stop.abort({ code: CloseCode.normal, reason: "test done" });
  assert.equal((await kept).outcome, "aborted");
});

Deno.test("revoking a key closes a logged-in connection of it that has not asked for anything yet", async () => {
  await using backend = startBackend("echo");
  const ring = new KeyRing([LAPTOP, PHONE]);
  await using ts = await startTestServer({
    users: USERS,
    keys: ring,
    forwardTargets: targets(backend.port),
  });
  const channel = await dialChannel({
    port: ts.port,
    psk: PHONE.psk,
    keyId: PHONE.id,
    user: "alice",
    password: USERS.alice,
    target: "db",
  });
  assert.ok(await waitFor(() => ts.events("login_succeeded").length === 1));
  ring.replace([LAPTOP]);
  assert.equal(await channel.receive(), null);
  assert.equal(channel.closeInfo?.code, CloseCode.keyRevoked);
  channel.abort();
  assert.ok(await waitFor(() => ts.events("closed").length === 1));
  const [closed] = ts.events("closed");
  assert.equal(closed.key, "phone-alice");
  assert.equal(closed.reason, "key revoked");
});

Deno.test("a key revoked while its client logged in gets no tunnel", async () => {
  await using backend = startBackend("echo");
  // The handshake found the key; by the end of login it is gone.
  class RevokedAfterHandshake extends KeyRing {
    override holds(): boolean {
      return false;
    }
  }
  await using ts = await startTestServer({
    users: USERS,
    keys: new RevokedAfterHandshake([PHONE]),
    forwardTargets: targets(backend.port),
  });
  const channel = await dialStream({
    port: ts.port,
    psk: PHONE.psk,
    keyId: PHONE.id,
    user: "alice",
    password: USERS.alice,
    target: "db",
  });
  const result = await runStream(channel, memorySocket(new Uint8Array(3)), {
    target: "db",
  });
  assert.equal(result.outcome, "closed");
  assert.equal(result.code, CloseCode.keyRevoked);
  assert.deepEqual(ts.events("stream_opened"), []);
  assert.equal(backend.connections.length, 0);
});

Deno.test("removing a user closes that user's open tunnel with userRemoved", async () => {
  await using backend = startBackend("echo");
  await using ts = await startTestServer({
    users: USERS,
    forwardTargets: targets(backend.port),
  });
  const channel = await dialStream({
    port: ts.port,
    psk: ts.psk,
    user: "bob",
    password: USERS.bob,
    target: "db",
  });
  const stream = runStream(channel, quietSocket(), { target: "db" });
  assert.ok(await waitFor(() => ts.events("stream_opened").length === 1));
  await updateUserinfo(
    ts.userinfoPath,
    (current) => removeUser(current, "bob"),
  );
  await ts.users?.reload();
  const result = await stream;
  assert.equal(result.outcome, "closed");
  assert.equal(result.code, CloseCode.userRemoved);
});

Deno.test("an open tunnel counts toward --max-sessions-per-user", async () => {
  await using backend = startBackend("echo");
  await using ts = await startTestServer({
    users: USERS,
    forwardTargets: targets(backend.port),
    maxSessionsPerUser: 1,
  });
  const dial = () =>
    dialStream({
      port: ts.port,
      psk: ts.psk,
      user: "alice",
      password: USERS.alice,
      target: "db",
    });
  const stop = new AbortController();
  const first = runStream(await dial(), quietSocket(), {
    target: "db",
    signal: stop.signal,
  });
  assert.ok(await waitFor(() => ts.events("stream_opened").length === 1));
  const second = await runStream(await dial(), quietSocket(), {
    target: "db",
  });
  assert.equal(second.outcome, "closed");
  assert.equal(second.code, CloseCode.tooManySessions);
  stop.abort({ code: CloseCode.normal, reason: "test done" });
  assert.equal((await first).outcome, "aborted");
});
