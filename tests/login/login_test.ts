import assert from "node:assert/strict";
import { fromBase64, utf8 } from "../../lib/wire/bytes.ts";
import { type Channel, openChannel } from "../../lib/wire/channel.ts";
import { connect } from "../../lib/client/connect.ts";
import {
  ClosedError,
  ConnectionError,
  LoginFailure,
  LoginRejectedError,
  LoginRequiredError,
  ProtocolError,
  RefusedError,
  TimeoutError,
} from "../../lib/errors.ts";
import type { SessionKeys } from "../../lib/wire/key_schedule.ts";
import {
  loginAsClient,
  loginAsServer,
  type ServerLoginOptions,
  type UserDirectory,
} from "../../lib/login/login.ts";
import { CloseCode, LoginStep, RecordKind } from "../../lib/wire/protocol.ts";
import { createScramVerifier } from "../../lib/login/scram.ts";
import { ScramClient } from "../../lib/login/scram_client.ts";
import { readUserinfoFile } from "../../lib/users/user_store.ts";
import { legacyMd5Hex, type UserVerifier } from "../../lib/users/userinfo.ts";
import {
  rawChannel,
  receiveLoginStep,
  sendLoginStep,
  serverFirstFor,
  startTestServer,
  TEST_ITERATIONS,
  waitFor,
} from "../fixtures/server_fixture.ts";
import { framed, seededBytes, tcpPair } from "../helpers.ts";

const KEYS: SessionKeys = {
  clientToServer: seededBytes(21, 32),
  serverToClient: seededBytes(22, 32),
  transcriptHash: new Uint8Array(32),
  channelBinding: new Uint8Array(32),
};
const FAKE_SALT_KEY = seededBytes(23, 32);
const decoder = new TextDecoder();

/** An in-memory UserDirectory that records md5 upgrades. */
async function directory(
  scram: Record<string, string>,
  md5: Record<string, string> = {},
): Promise<UserDirectory & { upgrades: [string, string, number?][] }> {
  const users = new Map<string, UserVerifier>();
  for (const [name, password] of Object.entries(scram)) {
    users.set(name, {
      kind: "scram-sha-256",
      scram: await createScramVerifier(password, {
        iterations: TEST_ITERATIONS,
      }),
    });
  }
  for (const [name, password] of Object.entries(md5)) {
    users.set(name, { kind: "md5", md5Hex: legacyMd5Hex(name, password) });
  }
  const upgrades: [string, string, number?][] = [];
  return {
    upgrades,
    lookup: (name) => users.get(name) ?? null,
    upgradeLegacy(name, password, options) {
      upgrades.push([name, password, options?.iterations]);
      return Promise.resolve(true);
    },
  };
}

/** Client and server channels over a loopback pair. */
async function channelPair(): Promise<
  { client: Channel; server: Channel } & AsyncDisposable
> {
  const pair = await tcpPair();
  const client = openChannel(framed(pair.client), KEYS, { role: "client" });
  const server = openChannel(framed(pair.server), KEYS, { role: "server" });
  return {
    client,
    server,
    async [Symbol.asyncDispose]() {
      client.abort();
      server.abort();
      await pair[Symbol.asyncDispose]();
    },
  };
}

const SERVER_OPTIONS: ServerLoginOptions = {
  channelBinding: KEYS.channelBinding,
  fakeSaltKey: FAKE_SALT_KEY,
  iterations: TEST_ITERATIONS,
};

/**
 * Runs both sides; on a server failure, closes as serve() does, so the
 * client's error is the one it would see.
 */
async function login(
  users: UserDirectory,
  user: string,
  password: string,
  options: Partial<ServerLoginOptions> = {},
  clientOptions: { allowLegacyLogin?: boolean } = {},
) {
  await using pair = await channelPair();
  const [server, client] = await Promise.allSettled([
    loginAsServer(pair.server, users, { ...SERVER_OPTIONS, ...options })
      .catch(async (error) => {
        await pair.server.close(CloseCode.loginFailed, "login failed");
        throw error;
      }),
    loginAsClient(pair.client, { user, password }, {
      channelBinding: KEYS.channelBinding,
      ...clientOptions,
    }),
  ]);
  return { server, client };
}

/** The parts of a SCRAM server-first message. */
function parseServerFirst(text: string) {
  const fields = Object.fromEntries(
    text.split(",").map((part) => [part[0], part.slice(2)]),
  );
  return {
    nonce: fields.r,
    salt: fromBase64(fields.s),
    iterations: Number(fields.i),
    keys: Object.keys(fields).join(","),
  };
}

// --- loginAsServer / loginAsClient ---

Deno.test("loginAsServer() logs in a SCRAM user and loginAsClient() checks the server", async () => {
  const users = await directory({ alex: "correct horse" });
  const { server, client } = await login(users, "alex", "correct horse");
  assert.deepEqual(server, { status: "fulfilled", value: "alex" });
  assert.equal(client.status, "fulfilled");
});

Deno.test("loginAsServer() throws LoginFailure for a wrong password and for an unknown user", async () => {
  const users = await directory({ alex: "correct horse" });
  const cases = [
    ["alex", "wrong horse", "wrong password"],
    ["nobody", "correct horse", "unknown user"],
  ];
  const clientErrors: Error[] = [];
  for (const [user, password, reason] of cases) {
    const { server, client } = await login(users, user, password);
    assert.equal(server.status, "rejected");
    const failure = (server as PromiseRejectedResult).reason;
    assert.ok(failure instanceof LoginFailure);
    assert.equal(failure.user, user);
    assert.equal(failure.message, reason);
    assert.equal(client.status, "rejected");
    clientErrors.push((client as PromiseRejectedResult).reason);
  }
  // The client cannot tell the two apart.
  const [wrong, unknown] = clientErrors;
  assert.ok(wrong instanceof LoginRejectedError);
  assert.equal(wrong.constructor, unknown.constructor);
  assert.equal(wrong.message, unknown.message);
});

Deno.test("loginAsServer() answers an unknown user with a server-first shaped like a real one, stable per name", async () => {
  const users = await directory({ alex: "correct horse" });
  const serverFirst = async (user: string) => {
    await using pair = await channelPair();
    const serving = loginAsServer(pair.server, users, SERVER_OPTIONS);
    serving.catch(() => {});
    const text = await serverFirstFor(pair.client, user);
    pair.client.abort();
    await assert.rejects(serving);
    return parseServerFirst(text);
  };
  const real = await serverFirst("alex");
  const unknown = await serverFirst("nobody");
  const unknownAgain = await serverFirst("nobody");
  const other = await serverFirst("somebody");
  assert.equal(unknown.keys, real.keys);
  assert.equal(unknown.keys, "r,s,i");
  assert.equal(unknown.salt.length, real.salt.length);
  assert.equal(unknown.iterations, real.iterations);
  assert.equal(unknown.nonce.length, real.nonce.length);
  assert.deepEqual(unknownAgain.salt, unknown.salt);
  assert.notDeepEqual(other.salt, unknown.salt);
});

Deno.test("loginAsServer() gives unknown users the iteration count real users have, not its own option", async () => {
  const users = await directory({ alex: "correct horse" });
  const typical = { ...users, typicalIterations: () => TEST_ITERATIONS };
  await using pair = await channelPair();
  const options = { ...SERVER_OPTIONS, iterations: 600_000 };
  const serving = loginAsServer(pair.server, typical, options);
  serving.catch(() => {});
  const unknown = parseServerFirst(await serverFirstFor(pair.client, "nobody"));
  pair.client.abort();
  await assert.rejects(serving);
  assert.equal(unknown.iterations, TEST_ITERATIONS);
});

Deno.test("loginAsServer() runs the legacy md5 exchange and asks for the upgrade", async () => {
  const users = await directory({}, { old: "old password" });
  const { server, client } = await login(users, "old", "old password", {
    iterations: 5000,
  }, { allowLegacyLogin: true });
  assert.deepEqual(server, { status: "fulfilled", value: "old" });
  assert.equal(client.status, "fulfilled");
  assert.deepEqual(users.upgrades, [["old", "old password", 5000]]);
});

Deno.test("loginAsServer() rejects a wrong legacy password without upgrading", async () => {
  const users = await directory({}, { old: "old password" });
  const { server, client } = await login(users, "old", "not it", {}, {
    allowLegacyLogin: true,
  });
  const failure = (server as PromiseRejectedResult).reason;
  assert.ok(failure instanceof LoginFailure);
  assert.equal(failure.message, "wrong password (legacy md5)");
  assert.ok(
    (client as PromiseRejectedResult).reason instanceof LoginRejectedError,
  );
  assert.deepEqual(users.upgrades, []);
});

Deno.test("loginAsServer() waits delayFor(user) before answering", async () => {
  const users = await directory({ alex: "pw" });
  const asked: string[] = [];
  const { server } = await login(users, "alex", "pw", {
    delayFor: (user) => {
      asked.push(user);
      return 5;
    },
  });
  assert.equal(server.status, "fulfilled");
  assert.deepEqual(asked, ["alex"]);
});

Deno.test("loginAsServer() throws LoginRequiredError when the client sends a message first", async () => {
  const users = await directory({ alex: "pw" });
  await using pair = await channelPair();
  pair.client.send(RecordKind.message, Uint8Array.of(0, 0, 0, 1), utf8("hi"));
  await assert.rejects(
    loginAsServer(pair.server, users, SERVER_OPTIONS),
    LoginRequiredError,
  );
});

Deno.test("loginAsServer() throws ProtocolError on a malformed login", async () => {
  const users = await directory({ alex: "pw" });
  const bad: [string, number, Uint8Array][] = [
    ["empty login record", RecordKind.login, new Uint8Array(0)],
    [
      "client-final first",
      RecordKind.login,
      Uint8Array.of(LoginStep.clientFinal, 65),
    ],
    [
      "bad client-first",
      RecordKind.login,
      Uint8Array.of(LoginStep.clientFirst, 65),
    ],
    ["bad UTF-8", RecordKind.login, Uint8Array.of(LoginStep.clientFirst, 0xff)],
    ["a push record", RecordKind.push, Uint8Array.of(1)],
  ];
  for (const [name, kind, body] of bad) {
    await using pair = await channelPair();
    pair.client.send(kind, body);
    await assert.rejects(
      loginAsServer(pair.server, users, SERVER_OPTIONS),
      ProtocolError,
      name,
    );
  }
});

Deno.test("loginAsServer() fails with TimeoutError when the signal aborts", async () => {
  const users = await directory({ alex: "pw" });
  await using pair = await channelPair();
  const controller = new AbortController();
  const serving = loginAsServer(pair.server, users, {
    ...SERVER_OPTIONS,
    signal: controller.signal,
  });
  controller.abort();
  await assert.rejects(serving, TimeoutError);
});

Deno.test("loginAsClient() rejects a server that does not hold the user's verifier", async () => {
  const real = await createScramVerifier("pw", { iterations: TEST_ITERATIONS });
  const forged: UserDirectory = {
    // Right stored key (so the proof checks), wrong server key.
    lookup: () => ({
      kind: "scram-sha-256",
      scram: { ...real, serverKey: new Uint8Array(32) },
    }),
    upgradeLegacy: () => Promise.resolve(false),
  };
  const { server, client } = await login(forged, "alex", "pw");
  assert.equal(server.status, "fulfilled");
  const error = (client as PromiseRejectedResult).reason;
  assert.ok(error instanceof LoginRejectedError);
  assert.match(error.message, /server signature is wrong/);
});

Deno.test("loginAsClient() refuses a server asking for too few iterations", async () => {
  await using pair = await channelPair();
  const client = loginAsClient(pair.client, { user: "alex", password: "pw" }, {
    channelBinding: KEYS.channelBinding,
  });
  const first = await receiveLoginStep(pair.server);
  assert.equal(first?.step, LoginStep.clientFirst);
  const nonce = first!.text.split("r=")[1];
  sendLoginStep(
    pair.server,
    LoginStep.serverFirst,
    `r=${nonce}server,s=c2FsdA==,i=1000`,
  );
  await assert.rejects(client, LoginRejectedError);
});

// --- Through serve() ---

Deno.test("serve() logs in a legacy md5 user, upgrades the line to SCRAM, then SCRAM login works", async () => {
  await using ts = await startTestServer({
    legacyUsers: { alex: "123456" },
    users: { bob: "bob password" },
    penaltyBaseMs: 1,
  });
  assert.equal(ts.users?.lookup("alex")?.kind, "md5");
  const first = await ts.connect({
    user: "alex",
    password: "123456",
    allowLegacyLogin: true,
  });
  assert.equal(decoder.decode(await first.request("hi")), "hi");
  await first.close();
  const upgraded = (await readUserinfoFile(ts.userinfoPath)).lines.find(
    (line) => line.kind === "user" && line.name === "alex",
  );
  assert.ok(upgraded?.kind === "user");
  assert.equal(upgraded.verifier.kind, "scram-sha-256");
  assert.equal(
    upgraded.verifier.kind === "scram-sha-256" &&
      upgraded.verifier.scram.iterations,
    TEST_ITERATIONS,
  );
  assert.equal(ts.users?.lookup("alex")?.kind, "scram-sha-256");
  assert.deepEqual(ts.events("user_upgraded").map((e) => e.user), ["alex"]);
  // Only alex's line changed.
  assert.equal(ts.users?.lookup("bob")?.kind, "scram-sha-256");
  const second = await ts.connect({ user: "alex", password: "123456" });
  assert.equal(decoder.decode(await second.request("again")), "again");
  await second.close();
  await assert.rejects(
    ts.connect({ user: "alex", password: "1234567" }),
    LoginRejectedError,
  );
  assert.deepEqual(ts.events("login_succeeded").map((e) => e.user), [
    "alex",
    "alex",
  ]);
});

Deno.test("serve() leaves the userinfo file byte-identical after a wrong password against a legacy line", async () => {
  await using ts = await startTestServer({
    userinfoText: "# comment kept\n",
    legacyUsers: { alex: "123456" },
    penaltyBaseMs: 1,
  });
  const before = await Deno.readFile(ts.userinfoPath);
  await assert.rejects(
    ts.connect({ user: "alex", password: "654321", allowLegacyLogin: true }),
    LoginRejectedError,
  );
  assert.deepEqual(await Deno.readFile(ts.userinfoPath), before);
  assert.equal(ts.users?.lookup("alex")?.kind, "md5");
  assert.deepEqual(ts.events("user_upgraded"), []);
  assert.equal(
    ts.events("login_failed")[0].reason,
    "wrong password (legacy md5)",
  );
});

Deno.test("serve() makes an unknown user and a wrong password indistinguishable on the wire", async () => {
  await using ts = await startTestServer({
    users: { alex: "alex password" },
    penaltyExempt: ["127.0.0.1"],
    penaltyBaseMs: 1,
  });
  // What the client library reports.
  const errors: Error[] = [];
  for (const [user, password] of [["alex", "wrong"], ["mallory", "wrong"]]) {
    const error = await ts.connect({ user, password }).then(
      () => assert.fail("logged in"),
      (error) => error,
    );
    errors.push(error);
  }
  assert.ok(errors[0] instanceof LoginRejectedError);
  assert.equal(errors[0].constructor, errors[1].constructor);
  assert.equal(errors[0].message, errors[1].message);
  // What the server closes with.
  const closes = [];
  for (const user of ["alex", "mallory"]) {
    await using raw = await rawChannel(ts.port, ts.psk);
    await assert.rejects(
      loginAsClient(raw.channel, { user, password: "wrong" }, {
        channelBinding: raw.keys.channelBinding,
      }),
      LoginRejectedError,
    );
    closes.push(raw.channel.closeInfo);
  }
  assert.deepEqual(closes[0], {
    code: CloseCode.loginFailed,
    reason: "login failed",
  });
  assert.deepEqual(closes[1], closes[0]);
  // The server-first message: same fields, salt length and iterations.
  const shapes = [];
  for (const user of ["alex", "mallory", "mallory"]) {
    await using raw = await rawChannel(ts.port, ts.psk);
    shapes.push(parseServerFirst(await serverFirstFor(raw.channel, user)));
  }
  const [real, unknown, unknownAgain] = shapes;
  assert.equal(unknown.keys, real.keys);
  assert.equal(unknown.salt.length, real.salt.length);
  assert.equal(unknown.iterations, real.iterations);
  assert.equal(unknown.nonce.length, real.nonce.length);
  assert.deepEqual(unknownAgain.salt, unknown.salt);
  // Only the server's log tells them apart.
  assert.deepEqual(
    ts.events("login_failed").slice(0, 2).map((e) => [e.user, e.reason]),
    [["alex", "wrong password"], ["mallory", "unknown user"]],
  );
});

Deno.test("serve() penalises repeated wrong passwords, refuses the address meanwhile, and lets the right one in after the cap", async () => {
  const capMs = 1000;
  await using ts = await startTestServer({
    users: { alex: "alex password" },
    penaltyBaseMs: 250,
    penaltyCapMs: capMs,
  });
  const right = {
    port: ts.port,
    psk: ts.psk,
    user: "alex",
    password: "alex password",
  };
  const outcome = (attempt: Promise<unknown>) =>
    attempt.then(
      () => "connected",
      (error) =>
        error instanceof LoginRejectedError
          ? "rejected"
          : error instanceof RefusedError || error instanceof ClosedError ||
              error instanceof ConnectionError
          ? "refused"
          : String(error),
    );
  for (const guess of ["guess 1", "guess 2"]) {
    assert.equal(
      await outcome(ts.connect({ user: "alex", password: guess })),
      "rejected",
    );
  }
  assert.deepEqual(
    ts.events("penalty").map((e) => [e.reason, e.ms]),
    [["delaying", 250], ["delaying", 500]],
  );
  // The third failure refuses the address for the cap; the server holds
  // that failure's answer back meanwhile, so try again during the hold.
  const third = outcome(ts.connect({ user: "alex", password: "guess 3" }));
  assert.ok(
    await waitFor(() => ts.events("penalty").length === 3, { everyMs: 5 }),
  );
  assert.deepEqual(ts.events("penalty")[2].reason, "refusing address");
  assert.equal(ts.events("penalty")[2].ms, capMs);
  assert.equal(await outcome(connect(right)), "refused");
  assert.equal(await third, "rejected");
  assert.match(ts.events("refused")[0].reason ?? "", /^penalty: 1 s left$/);
  assert.ok(
    await waitFor(async () => {
      try {
        await (await connect(right)).close();
        return true;
      } catch {
        return false;
      }
    }, { tries: 100, everyMs: 100 }),
    "the right password was still refused long after the cap",
  );
  assert.ok(ts.events("penalty").every((e) => (e.ms ?? 0) <= capMs));
});

Deno.test("serve() closes a client that skips the login with loginRequired", async () => {
  await using ts = await startTestServer({ users: { alex: "pw" } });
  const client = await ts.connect();
  await assert.rejects(client.send("no login"), LoginRejectedError);
  assert.equal((await client.closed)?.code, CloseCode.loginRequired);
  assert.equal(ts.events("login_failed").length, 1);
  assert.deepEqual(ts.events("penalty"), []);
});

Deno.test("serve() never logs a password", async () => {
  await using ts = await startTestServer({
    users: { alex: "secret-right" },
    penaltyBaseMs: 1,
  });
  const ok = await ts.connect({ user: "alex", password: "secret-right" });
  await ok.close();
  await assert.rejects(
    ts.connect({ user: "alex", password: "secret-wrong" }),
    LoginRejectedError,
  );
  const scram = new ScramClient("alex", "secret-wrong");
  assert.ok(scram.clientFirst().startsWith("n,,n=alex,r="));
  const logged = JSON.stringify(ts.logger.events);
  assert.doesNotMatch(logged, /secret-/);
});
