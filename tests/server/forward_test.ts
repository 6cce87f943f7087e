import assert from "node:assert/strict";
import { concatBytes, toHex } from "../../lib/wire/bytes.ts";
import { sha256 } from "../../lib/wire/crypto.ts";
import { CloseCode } from "../../lib/wire/protocol.ts";
import { parseForwardTargets } from "../../lib/server/forward_targets.ts";
import { PROXY_TLV_USER } from "../../lib/server/proxy_header.ts";
import { dialStream, runStream } from "../../lib/client/stream.ts";
import { startTestServer, waitFor } from "../fixtures/server_fixture.ts";
import { memorySocket, startBackend } from "../fixtures/tunnel_backend.ts";
import { seededBytes } from "../helpers.ts";

const MIB = 1024 * 1024;
const USERS = { alice: "pw-alice", bob: "pw-bob" };

function targets(
  port: number,
  extra: { users?: string[]; proxy?: string[] } = {},
) {
  return parseForwardTargets({
    forward: [`db=127.0.0.1:${port}`, `down=127.0.0.1:1`],
    users: extra.users,
    proxyProtocol: extra.proxy,
  });
}

Deno.test("a stream carries 8 MiB each way intact, with half-close: request, EOF, response", async () => {
  await using backend = startBackend("hash", { responseBytes: 8 * MIB });
  await using ts = await startTestServer({
    users: USERS,
    forwardTargets: targets(backend.port),
  });
  const request = seededBytes(1, 8 * MIB);
  const socket = memorySocket(request, { chunkBytes: 50_000 });
  const channel = await dialStream({
    port: ts.port,
    psk: ts.psk,
    user: "alice",
    password: USERS.alice,
    target: "db",
  });
  const result = await runStream(channel, socket, { target: "db" });
  assert.equal(result.outcome, "ended");
  assert.equal(result.sent, 8 * MIB);
  assert.equal(result.received, 8 * MIB);
  assert.ok(socket.writeClosed, "the backend's EOF reached the socket");
  await backend.ended(1);
  assert.equal(backend.connections[0].hash, toHex(sha256(request)));
  assert.equal(
    toHex(sha256(concatBytes(...socket.output))),
    toHex(sha256(seededBytes(2, 8 * MIB))),
  );
  assert.ok(await waitFor(() => ts.events("stream_closed").length === 1));
  const [closed] = ts.events("stream_closed");
  assert.equal(closed.user, "alice");
  assert.equal(closed.target, "db");
  assert.equal(closed.detail, `up=${8 * MIB} down=${8 * MIB}`);
});

Deno.test("a user not listed for a target is refused with a clear close, logged, not a login failure", async () => {
  await using backend = startBackend("echo");
  await using ts = await startTestServer({
    users: USERS,
    forwardTargets: targets(backend.port, { users: ["db=bob,key:laptop"] }),
  });
  const channel = await dialStream({
    port: ts.port,
    psk: ts.psk,
    user: "alice",
    password: USERS.alice,
    target: "db",
  });
  const result = await runStream(channel, memorySocket(new Uint8Array(5)), {
    target: "db",
  });
  assert.equal(result.outcome, "closed");
  assert.equal(result.code, CloseCode.targetForbidden);
  assert.equal(result.reason, 'not allowed to use target "db"');
  const [refused] = ts.events("stream_refused");
  assert.equal(refused.user, "alice");
  assert.equal(refused.target, "db");
  assert.deepEqual(ts.events("login_failed"), []);
  assert.equal(backend.connections.length, 0);
  // bob may: the rule names him.
  const allowed = await dialStream({
    port: ts.port,
    psk: ts.psk,
    user: "bob",
    password: USERS.bob,
    target: "db",
  });
  const ok = await runStream(allowed, memorySocket(new Uint8Array(5)), {
    target: "db",
  });
  assert.equal(ok.outcome, "ended");
  assert.equal(ok.received, 5);
});

Deno.test("an unknown target and a target that is down close the stream with a reason naming the target", async () => {
  await using backend = startBackend("echo");
  await using ts = await startTestServer({
    users: USERS,
    forwardTargets: targets(backend.port),
  });
  const open = (target: string) =>
    dialStream({
      port: ts.port,
      psk: ts.psk,
      user: "alice",
      password: USERS.alice,
      target,
    }).then((channel) =>
      runStream(channel, memorySocket(new Uint8Array(3)), { target })
    );
  const [unknown, down, fine] = await Promise.all([
    open("nope"),
    open("down"),
    open("db"),
  ]);
  assert.equal(unknown.code, CloseCode.targetUnknown);
  assert.equal(unknown.reason, 'unknown target "nope"');
  assert.equal(down.code, CloseCode.targetUnreachable);
  assert.equal(down.reason, 'cannot reach target "down"');
  assert.equal(fine.outcome, "ended", "the other stream is not affected");
  const [failed] = ts.events("stream_failed");
  assert.equal(failed.target, "down");
  assert.match(failed.detail ?? "", /^127\.0\.0\.1:1: /);
});

Deno.test("a target with --forward-proxy-protocol gets a PROXY v2 header naming the client and user", async () => {
  await using backend = startBackend("echo", { proxyHeader: true });
  await using ts = await startTestServer({
    users: USERS,
    forwardTargets: targets(backend.port, { proxy: ["db"] }),
  });
  const channel = await dialStream({
    port: ts.port,
    psk: ts.psk,
    user: "alice",
    password: USERS.alice,
    target: "db",
  });
  const result = await runStream(
    channel,
    memorySocket(new TextEncoder().encode("hello")),
    { target: "db" },
  );
  assert.equal(result.outcome, "ended");
  assert.equal(result.received, 5, "the header is not echoed back");
  await backend.ended(1);
  const proxy = backend.connections[0].proxy;
  assert.ok(proxy);
  assert.equal(proxy.command, 0x21);
  assert.equal(proxy.family, 0x11);
  assert.equal(proxy.sourceAddress, "127.0.0.1");
  assert.ok(proxy.sourcePort > 0);
  assert.equal(proxy.destinationPort > 0, true);
  assert.equal(proxy.tlvs.get(PROXY_TLV_USER), "alice");
  assert.equal(backend.connections[0].received, 5);
});

Deno.test("a reset on the client's end reaches the server as an abort, and the target is closed", async () => {
  await using backend = startBackend("hash");
  await using ts = await startTestServer({
    users: USERS,
    forwardTargets: targets(backend.port),
  });
  const channel = await dialStream({
    port: ts.port,
    psk: ts.psk,
    user: "alice",
    password: USERS.alice,
    target: "db",
  });
  const socket = memorySocket(seededBytes(3, 100_000), {
    chunkBytes: 10_000,
    resetAfter: 50_000,
  });
  const result = await runStream(channel, socket, { target: "db" });
  assert.equal(result.outcome, "aborted");
  assert.equal(result.code, CloseCode.streamAborted);
  assert.equal(result.reason, "local connection reset");
  await backend.ended(1);
  assert.ok(await waitFor(() => ts.events("stream_closed").length === 1));
  assert.match(
    ts.events("stream_closed")[0].reason ?? "",
    /^closed: local connection reset$/,
  );
});

Deno.test("a server with targets still serves message sessions", async () => {
  await using backend = startBackend("echo");
  await using ts = await startTestServer({
    users: USERS,
    forwardTargets: targets(backend.port),
  });
  const conn = await ts.connect({ user: "alice", password: USERS.alice });
  assert.equal(new TextDecoder().decode(await conn.request("hi")), "hi");
  await conn.close();
});

Deno.test("an idle stream is closed by the idle timeout", async () => {
  await using backend = startBackend("echo");
  await using ts = await startTestServer({
    users: USERS,
    forwardTargets: targets(backend.port),
    idleTimeoutMs: 200,
  });
  const channel = await dialStream({
    port: ts.port,
    psk: ts.psk,
    user: "alice",
    password: USERS.alice,
    target: "db",
  });
  // A socket that never yields data nor EOF until closed.
  const { promise: never, resolve: release } = Promise.withResolvers<null>();
  const result = await runStream(channel, {
    read: () => never,
    write: (bytes) => Promise.resolve(bytes.length),
    closeWrite: () => Promise.resolve(),
    close: () => release(null),
  }, { target: "db" });
  assert.equal(result.outcome, "closed");
  assert.equal(result.code, CloseCode.idleTimeout);
});

Deno.test("the forwarder's salted-password cache lets a second login skip PBKDF2 and still succeed", async () => {
  await using backend = startBackend("echo");
  await using ts = await startTestServer({
    users: USERS,
    forwardTargets: targets(backend.port),
  });
  const saltedPasswords = new Map<string, Uint8Array>();
  for (let i = 0; i < 2; i++) {
    const channel = await dialStream({
      port: ts.port,
      psk: ts.psk,
      user: "alice",
      password: USERS.alice,
      target: "db",
      saltedPasswords,
    });
    const result = await runStream(channel, memorySocket(new Uint8Array(1)), {
      target: "db",
    });
    assert.equal(result.outcome, "ended");
    assert.equal(saltedPasswords.size, 1);
  }
  assert.equal(ts.events("login_succeeded").length, 2);
});

Deno.test("backpressure: a target that stops reading stops the client's socket reads (memory stays bounded)", async () => {
  // A target that accepts and never reads.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  await using ts = await startTestServer({
    users: USERS,
    forwardTargets: parseForwardTargets({
      forward: [`sink=127.0.0.1:${listener.addr.port}`],
    }),
  });
  const channel = await dialStream({
    port: ts.port,
    psk: ts.psk,
    user: "alice",
    password: USERS.alice,
    target: "sink",
  });
  // An endless source: counts what the pump read from it.
  let offered = 0;
  const stop = new AbortController();
  const running = runStream(channel, {
    read: (target) => {
      offered += target.length;
      return Promise.resolve(target.length);
    },
    write: (bytes) => Promise.resolve(bytes.length),
    closeWrite: () => Promise.resolve(),
    close: () => {},
  }, { target: "sink", signal: stop.signal });
  // Wait until reading stops: the same count over 10 polls in a row.
  let last = -1;
  let steady = 0;
  for (let polls = 0; polls < 400 && steady < 10; polls++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    steady = offered === last ? steady + 1 : 0;
    last = offered;
  }
  assert.equal(steady, 10, `reads never stopped: ${offered} bytes`);
  // Kernel buffers on three loopback sockets plus the bounded queues: far
  // below what an unbounded pump would have read by now.
  assert.ok(offered < 64 * MIB, `${offered} bytes read before stopping`);
  stop.abort({ code: CloseCode.normal, reason: "test done" });
  const result = await running;
  assert.equal(result.outcome, "aborted");
  listener.close();
  await accepting;
  for (const conn of held) conn.close();
});
