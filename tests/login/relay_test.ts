/**
 * A man in the middle who holds the pre-shared key (a copied client key)
 * sits between a victim and the real server: one handshake with each, and
 * the victim's SCRAM login relayed between them. With SCRAM bound to the
 * handshake (`p=doorman-handshake`), the login fails on both ends: the
 * server never logs the relay in, and the victim never sees success.
 *
 * @module
 */

import assert from "node:assert/strict";
import { connect } from "../../lib/client/connect.ts";
import { type Channel, openChannel } from "../../lib/wire/channel.ts";
import { concatBytes, toBase64, utf8 } from "../../lib/wire/bytes.ts";
import { FrameReader } from "../../lib/wire/framing.ts";
import {
  handshakeAsClient,
  handshakeAsServer,
} from "../../lib/wire/handshake.ts";
import { LoginRejectedError } from "../../lib/errors.ts";
import {
  CloseCode,
  type CloseCodeValue,
  LoginStep,
  RecordKind,
} from "../../lib/wire/protocol.ts";
import { startTestServer } from "../fixtures/server_fixture.ts";
import { closeQuietly } from "../helpers.ts";

/** What the man in the middle does to the victim's client-final. */
type Tamper = (clientFinal: string, serverSideBinding: Uint8Array) => string;

/**
 * Accepts one victim, handshakes with it and with the server (both with the
 * stolen key), and relays records both ways until either side closes.
 *
 * @returns The listening port and a promise of what the relay saw.
 */
function startRelay(
  serverPort: number,
  psk: Uint8Array,
  tamper: Tamper = (clientFinal) => clientFinal,
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: { serverSteps: number[]; serverClose: number | null } = {
    serverSteps: [],
    serverClose: null,
  };
  const done = (async () => {
    const victimConn = await listener.accept();
    listener.close();
    const serverConn = await Deno.connect({
      hostname: "127.0.0.1",
      port: serverPort,
    });
    try {
      const victimSide = {
        conn: victimConn,
        reader: new FrameReader(victimConn),
      };
      const serverSide = {
        conn: serverConn,
        reader: new FrameReader(serverConn),
      };
      const [victimKeys, serverKeys] = await Promise.all([
        handshakeAsServer(victimSide, psk),
        handshakeAsClient(serverSide, psk),
      ]);
      const toVictim = openChannel(victimSide, victimKeys, { role: "server" });
      const toServer = openChannel(serverSide, serverKeys, { role: "client" });
      await Promise.all([
        pump(toVictim, toServer, (body) => {
          if (body[0] !== LoginStep.clientFinal) return body;
          const text = new TextDecoder().decode(body.subarray(1));
          const changed = tamper(text, serverKeys.channelBinding);
          return concatBytes(Uint8Array.of(body[0]), utf8(changed));
        }),
        pump(toServer, toVictim, (body) => {
          seen.serverSteps.push(body[0]);
          return body;
        }).finally(() => seen.serverClose = toServer.closeInfo?.code ?? null),
      ]);
    } finally {
      closeQuietly(victimConn);
      closeQuietly(serverConn);
    }
  })();
  return { port: listener.addr.port, done: done.then(() => seen) };
}

/** Copies login records from `from` to `to`, passing on a close. */
async function pump(
  from: Channel,
  to: Channel,
  change: (body: Uint8Array) => Uint8Array,
): Promise<void> {
  try {
    while (true) {
      const record = await from.receive();
      if (record === null) {
        const info = from.closeInfo;
        await to.close((info?.code ?? 0) as CloseCodeValue, info?.reason ?? "");
        return;
      }
      if (record.kind !== RecordKind.login) {
        to.send(record.kind, record.body.slice());
        continue;
      }
      to.send(record.kind, change(record.body.slice()));
    }
  } catch {
    to.abort();
  }
}

for (
  const [name, tamper] of [
    ["relayed as is", undefined],
    [
      "with c= rewritten to the server-side binding",
      (clientFinal: string, binding: Uint8Array) => {
        const [, ...rest] = clientFinal.split(",");
        const c = toBase64(
          concatBytes(utf8("p=doorman-handshake,,"), binding),
        );
        return [`c=${c}`, ...rest].join(",");
      },
    ],
  ] as const
) {
  Deno.test(`a key holder relaying a SCRAM login between two handshakes fails on both ends (${name})`, async () => {
    await using ts = await startTestServer({
      users: { alex: "victim password" },
      penaltyBaseMs: 1,
    });
    const relay = startRelay(ts.port, ts.psk, tamper);
    // The victim: the right key, the right password, the wrong path.
    await assert.rejects(
      connect({
        port: relay.port,
        psk: ts.psk,
        user: "alex",
        password: "victim password",
        pingIntervalMs: 0,
      }),
      LoginRejectedError,
    );
    const seen = await relay.done;
    // The server never accepted the relayed login...
    assert.equal(ts.events("login_succeeded").length, 0);
    assert.equal(ts.events("login_failed").length, 1);
    assert.equal(seen.serverClose, CloseCode.loginFailed);
    // ...and never sent a server signature the relay could pass on.
    assert.ok(!seen.serverSteps.includes(LoginStep.serverFinal));
    const reason = String(ts.events("login_failed")[0].reason);
    assert.match(
      reason,
      tamper ? /wrong password/ : /channel binding differs/,
    );
    // The server log names no secret.
    assert.doesNotMatch(JSON.stringify(ts.logger.events), /victim password/);
  });
}

Deno.test("a direct login still works (the binding matches on both ends)", async () => {
  await using ts = await startTestServer({ users: { alex: "pw" } });
  const conn = await ts.connect({ user: "alex", password: "pw" });
  assert.equal(new TextDecoder().decode(await conn.request("hi")), "hi");
  assert.equal(ts.events("login_succeeded").length, 1);
});
