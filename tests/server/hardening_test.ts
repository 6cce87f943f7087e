/**
 * Issue 11 (items 1–5, 7) and issue 12 ("Refusals say why"), each attack
 * played against the real `serve()` on loopback. Attackers use other
 * loopback source addresses (127.0.0.2, …) through `node:net`'s
 * `localAddress`, so that the victim on 127.0.0.1 is a different source.
 */

import assert from "node:assert/strict";
import net from "node:net";
import { concatBytes } from "../../lib/wire/bytes.ts";
import { generateX25519, randomBytes } from "../../lib/wire/crypto.ts";
import {
  ClosedError,
  exitCodeFor,
  LoginRejectedError,
  RefusedError,
} from "../../lib/errors.ts";
import { encodeFrame } from "../../lib/wire/framing.ts";
import { encodePreamble } from "../../lib/wire/key_schedule.ts";
import {
  CloseCode,
  DEFAULT_KEY_ID,
  HandshakeKind,
  NONCE_BYTES,
} from "../../lib/wire/protocol.ts";
import { RefusalReason } from "../../lib/wire/refusal.ts";
import { createChatService } from "../../lib/services/chat.ts";
import { createLogger } from "../../lib/server/log.ts";
import { serve } from "../../lib/server/serve.ts";
import type { Session } from "../../lib/server/session.ts";
import { connect } from "../../lib/client/connect.ts";
import {
  rawChannel,
  startTestServer,
  waitFor,
} from "../fixtures/server_fixture.ts";

/** A raw socket from `source`: what it received, and whether it ended. */
interface RawPeer {
  readonly socket: net.Socket;
  received(): Uint8Array;
  readonly ended: Promise<void>;
  write(bytes: Uint8Array): void;
  destroy(): void;
}

function rawFrom(source: string, port: number): Promise<RawPeer> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    const ended = Promise.withResolvers<void>();
    const socket = net.connect({
      host: "127.0.0.1",
      port,
      localAddress: source,
    });
    socket.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    socket.on("close", () => ended.resolve());
    socket.on("error", () => {});
    socket.once("connect", () =>
      resolve({
        socket,
        received: () => concatBytes(...chunks),
        ended: ended.promise,
        write: (bytes) => socket.write(bytes),
        destroy: () => socket.destroy(),
      }));
    socket.once("error", reject);
  });
}

/** The refusal reason in `bytes` (preamble, then the frame), or null. */
function refusalReason(bytes: Uint8Array): number | null {
  if (bytes.length < 16 || bytes[12] !== HandshakeKind.refusal) return null;
  return bytes[13];
}

/** A well-formed ClientHello (v2: it names the key id, here the default). */
function clientHello(): Uint8Array {
  const keyId = new TextEncoder().encode(DEFAULT_KEY_ID);
  return concatBytes(
    encodePreamble(),
    encodeFrame(concatBytes(
      Uint8Array.of(HandshakeKind.clientHello),
      randomBytes(NONCE_BYTES),
      generateX25519().publicKey,
      Uint8Array.of(keyId.length),
      keyId,
    )),
  );
}

// --- Refusals say why (issue 12) ---

Deno.test("serve() answers a refused connection with a refusal frame; connect() throws RefusedError, exit 6", async () => {
  await using ts = await startTestServer({ maxConnections: 1 });
  const first = await ts.connect();
  await using raw = await rawFrom("127.0.0.1", ts.port).then((peer) => ({
    peer,
    [Symbol.asyncDispose]: () => Promise.resolve(peer.destroy()),
  }));
  await raw.peer.ended;
  assert.deepEqual(
    [...raw.peer.received()],
    [...encodePreamble(), 0, 0, 0, 4, 0x7d, 1, 0, 10],
  );
  const error = await connect({ port: ts.port, psk: ts.psk }).then(
    () => assert.fail("connected"),
    (error) => error,
  );
  assert.ok(error instanceof RefusedError);
  assert.equal(error.reason, RefusalReason.tooManyConnections);
  assert.equal(error.retryAfterSeconds, 10);
  assert.equal(
    error.message,
    "server refused the connection: too many connections; retry in 10 s",
  );
  assert.equal(exitCodeFor(error), 6);
  await first.close();
});

// --- 2. Startup slots ---

Deno.test("serve() caps startups per source: one address's idle sockets cannot lock others out", async () => {
  await using ts = await startTestServer({
    maxStartups: 8,
    maxStartupsPerSource: 3,
  });
  const idle: RawPeer[] = [];
  try {
    for (let i = 0; i < 8; i++) idle.push(await rawFrom("127.0.0.2", ts.port));
    // Sockets 4 to 8 are refused with reason 6, at once.
    await Promise.all(idle.slice(3).map((peer) => peer.ended));
    for (const peer of idle.slice(3)) {
      assert.equal(
        refusalReason(peer.received()),
        RefusalReason.tooManyFromAddress,
      );
    }
    const client = await ts.connect();
    await client.close();
  } finally {
    for (const peer of idle) peer.destroy();
  }
});

Deno.test("serve() penalises sockets idle until the handshake deadline, then refuses their address", async () => {
  await using ts = await startTestServer({
    handshakeTimeoutMs: 100,
    penaltyBaseMs: 5000,
  });
  let reason: number | null = null;
  for (let i = 0; i < 20 && reason === null; i++) {
    const peer = await rawFrom("127.0.0.3", ts.port);
    await peer.ended;
    reason = refusalReason(peer.received());
    peer.destroy();
  }
  assert.equal(reason, RefusalReason.penalty);
  // Lighter than a wrong key: more than three timeouts before a refusal.
  assert.ok(ts.events("handshake_failed").length > 3);
  const client = await ts.connect();
  await client.close();
});

Deno.test("serve() gives back a failed login's startup slot while its penalty delay runs", async () => {
  await using ts = await startTestServer({
    users: { alice: "right-a", bob: "right-b" },
    maxStartups: 1,
    penaltyExempt: ["127.0.0.1"],
    penaltyBaseMs: 2000,
  });
  const failing = connect({
    port: ts.port,
    psk: ts.psk,
    user: "alice",
    password: "wrong",
  }).catch((error) => error);
  assert.ok(await waitFor(() => ts.events("login_failed").length === 1));
  // alice's reply is delayed; her startup slot is free meanwhile.
  const bob = await ts.connect({ user: "bob", password: "right-b" });
  await bob.close();
  assert.ok((await failing) instanceof LoginRejectedError);
});

// --- 3. Handshake CPU ---

Deno.test("serve() counts handshakes abandoned after its ServerHello and refuses their address", async () => {
  await using ts = await startTestServer({ penaltyBaseMs: 5000 });
  const hello = clientHello();
  let answered = 0;
  let reason: number | null = null;
  for (let i = 0; i < 40 && reason === null; i++) {
    const peer = await rawFrom("127.0.0.4", ts.port);
    peer.write(hello);
    const got = await waitFor(() => peer.received().length >= 13);
    const bytes = peer.received();
    if (got && bytes[12] === HandshakeKind.serverHello) answered++;
    peer.destroy();
    await peer.ended;
    if (!got || bytes[12] !== HandshakeKind.serverHello) {
      await peer.ended;
      reason = refusalReason(bytes);
    }
  }
  assert.equal(reason, RefusalReason.penalty);
  assert.ok(answered <= 13, `answered ${answered}`);
});

// --- 4. Logging never takes the server down ---

Deno.test("serve() keeps serving when every log write throws (EPIPE)", async () => {
  let attempts = 0;
  const logger = createLogger({
    format: "text",
    write: () => {
      attempts++;
      throw new Deno.errors.BrokenPipe("Broken pipe (os error 32)");
    },
  });
  const psk = randomBytes(32);
  const server = serve({
    port: 0,
    psk,
    logger,
    penaltyExempt: ["127.0.0.1"],
  }, () => {});
  try {
    for (let i = 0; i < 5; i++) {
      await connect({ port: server.addr.port, psk: randomBytes(32) }).catch(
        () => {},
      );
    }
    const client = await connect({ port: server.addr.port, psk });
    await client.close();
    assert.ok(attempts > 5);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve() survives a logger that throws, and aggregates a flood of refusals", async () => {
  const lines: string[] = [];
  let calls = 0;
  const logger = {
    log(event: { event: string; detail?: string }) {
      if (event.event === "limit") {
        calls++;
        throw new Error("disk full");
      }
      lines.push(`${event.event} ${event.detail ?? ""}`);
    },
  };
  const psk = randomBytes(32);
  const server = serve(
    { port: 0, psk, logger, maxConnections: 1 },
    async (session) => {
      for await (const _message of session);
    },
  );
  const holder = await connect({ port: server.addr.port, psk });
  try {
    for (let i = 0; i < 40; i++) {
      const peer = await rawFrom("127.0.0.5", server.addr.port);
      await peer.ended;
      peer.destroy();
    }
  } finally {
    await holder.close();
    await server.shutdown();
  }
  assert.ok(calls > 0);
  const refused = lines.filter((line) => line.startsWith("refused"));
  assert.ok(refused.length <= 12, `${refused.length} refused lines`);
  assert.ok(
    refused.some((line) =>
      /more from 127\.0\.0\.5 in the last 10 s/.test(line)
    ),
  );
});

// --- 5. Penalties checked when each login starts ---

Deno.test("serve() evaluates parallel guesses one at a time, against the penalties earlier ones earned", async () => {
  await using ts = await startTestServer({
    users: { alice: "right" },
    maxStartups: 100,
    maxStartupsPerSource: 100,
    penaltyBaseMs: 20,
  });
  const guesses = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      connect({
        port: ts.port,
        psk: ts.psk,
        user: "alice",
        password: `guess-${i}`,
        timeoutMs: 30_000,
      }).then(() => "in", (error) => error)),
  );
  assert.ok(guesses.every((result) => result instanceof Error));
  const evaluated = ts.events("login_failed").filter((event) =>
    /wrong password/.test(event.reason ?? "")
  );
  assert.ok(evaluated.length <= 4, `${evaluated.length} evaluated`);
});

// --- 7. Memory per user ---

Deno.test("serve() closes a user's session past maxSessionsPerUser with tooManySessions", async () => {
  await using ts = await startTestServer({
    users: { alice: "right" },
    maxSessionsPerUser: 2,
  });
  const a = await ts.connect({ user: "alice", password: "right" });
  const b = await ts.connect({ user: "alice", password: "right" });
  const c = await ts.connect({ user: "alice", password: "right" });
  await assert.rejects(c.request("hi"), ClosedError);
  assert.deepEqual(ts.events("limit").map((event) => event.reason), [
    "max sessions per user (2)",
  ]);
  await a.close();
  await b.close();
  assert.equal(CloseCode.tooManySessions, 12);
});

Deno.test("serve() keeps 50 non-reading chat sessions under the global queue cap", async () => {
  const sessions = new Set<Session>();
  const chat = createChatService();
  const cap = 8 * 1024 * 1024;
  await using ts = await startTestServer({
    maxTotalQueueBytes: cap,
    // An operator's generous per-session queue: the global cap must hold.
    maxQueueBytes: 64 * 1024 * 1024,
    maxStartupsPerSource: 100,
    handler: (session) => {
      sessions.add(session);
      return chat(session);
    },
  });
  const readers = [];
  for (let i = 0; i < 50; i++) readers.push(await rawChannel(ts.port, ts.psk));
  try {
    const openQueued = () => {
      let total = 0;
      for (const session of sessions) {
        if (session.end === null) total += session.queuedBytes;
      }
      return total;
    };
    const sender = await ts.connect();
    const chunk = "x".repeat(60 * 1024);
    let sent = 0;
    for (let i = 0; i < 200; i++) {
      await sender.send(chunk);
      sent += chunk.length;
    }
    await sender.close();
    assert.ok(sent > 10 * 1024 * 1024);
    assert.ok(await waitFor(() => openQueued() <= cap));
    assert.ok(
      [...sessions].some((session) => session.end?.code === CloseCode.tooSlow),
    );
  } finally {
    for (const reader of readers) await reader[Symbol.asyncDispose]();
  }
});
