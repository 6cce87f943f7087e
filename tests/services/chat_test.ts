import assert from "node:assert/strict";
import type { Connection } from "../../lib/client/connection.ts";
import { CloseCode, RecordKind } from "../../lib/wire/protocol.ts";
import { createChatService } from "../../lib/services/chat.ts";
import type { Session } from "../../lib/server/session.ts";
import {
  rawChannel,
  startTestServer,
  waitFor,
} from "../fixtures/server_fixture.ts";

const decoder = new TextDecoder();

/** Collects a connection's pushes as text until it ends. */
function listen(connection: Connection): {
  lines: string[];
  done: Promise<unknown>;
} {
  const lines: string[] = [];
  const done = (async () => {
    for await (const push of connection) lines.push(decoder.decode(push));
  })().catch((error) => error);
  return { lines, done };
}

Deno.test("chat relays NAME: text to every other user, acknowledges it, and announces joins and leaves", async () => {
  await using ts = await startTestServer({
    handler: createChatService(),
    users: { alex: "alex pw", bob: "bob pw", carol: "carol pw" },
  });
  const alex = await ts.connect({ user: "alex", password: "alex pw" });
  const alexHears = listen(alex);
  assert.equal(await alex.send("anyone?"), null); // joined, alone
  const bob = await ts.connect({ user: "bob", password: "bob pw" });
  const bobHears = listen(bob);
  assert.equal(await bob.send("ready"), null);
  assert.equal(await alex.send("hi bob"), null);
  const carol = await ts.connect({ user: "carol", password: "carol pw" });
  assert.equal(await carol.send("hello all"), null);
  await carol.close();
  assert.ok(await waitFor(() => bobHears.lines.includes("* carol left")));
  assert.ok(await waitFor(() => alexHears.lines.includes("* carol left")));
  assert.deepEqual(alexHears.lines, [
    "* bob joined",
    "bob: ready",
    "* carol joined",
    "carol: hello all",
    "* carol left",
  ]);
  assert.deepEqual(bobHears.lines, [
    "alex: hi bob",
    "* carol joined",
    "carol: hello all",
    "* carol left",
  ]);
  await alex.close();
  await bob.close();
  await Promise.all([alexHears.done, bobHears.done]);
});

Deno.test("chat names anonymous members guest-ID", async () => {
  await using ts = await startTestServer({ handler: createChatService() });
  const first = await ts.connect();
  const hears = listen(first);
  assert.equal(await first.send("ready"), null);
  const second = await ts.connect();
  assert.equal(await second.send("hey"), null);
  assert.ok(await waitFor(() => hears.lines.length === 2));
  assert.match(hears.lines[0], /^\* guest-\d+ joined$/);
  const name = hears.lines[0].slice(2, -" joined".length);
  assert.equal(hears.lines[1], `${name}: hey`);
  await second.close();
  await first.close();
  await hears.done;
});

Deno.test("chat fans out to 30 members, keeping each sender's order", async () => {
  await using ts = await startTestServer({
    handler: createChatService(),
    maxStartupsPerSource: 30,
  });
  const members = 30;
  const perSender = 5;
  const clients = await Promise.all(
    Array.from({ length: members }, () => ts.connect({ timeoutMs: 60_000 })),
  );
  const hears = clients.map(listen);
  // Once its "ready" is acknowledged, a member is in the room.
  await Promise.all(clients.map((client) => client.send("ready")));
  await Promise.all(
    clients.map((client, i) =>
      Promise.all(
        Array.from({ length: perSender }, (_, j) => client.send(`c${i} m${j}`)),
      )
    ),
  );
  const expected = (members - 1) * perSender;
  const relayed = (lines: string[]) =>
    lines.filter((line) => /: c\d+ m\d+$/.test(line));
  assert.ok(
    await waitFor(() =>
      hears.every((h) => relayed(h.lines).length >= expected)
    ),
    "some member missed messages",
  );
  for (const [i, h] of hears.entries()) {
    const bySender = new Map<number, number[]>();
    for (const line of relayed(h.lines)) {
      const [, sender, index] = line.match(/: c(\d+) m(\d+)$/)!.map(Number);
      bySender.set(sender, [...(bySender.get(sender) ?? []), index]);
    }
    assert.equal(bySender.has(i), false, "a member hears its own messages");
    assert.equal(bySender.size, members - 1);
    for (const indexes of bySender.values()) {
      assert.deepEqual(indexes, [0, 1, 2, 3, 4]);
    }
  }
  await Promise.all(clients.map((client) => client.close()));
  await Promise.all(hears.map((h) => h.done));
  assert.deepEqual(ts.events("error"), []);
});

Deno.test("chat disconnects a member that stops reading as too slow while the others get everything", async () => {
  const messageBytes = 32 * 1024;
  const chat = createChatService();
  const sessions: Session[] = [];
  await using ts = await startTestServer({
    handler: (session) => {
      sessions.push(session);
      return chat(session);
    },
    maxQueueBytes: 64 * 1024,
  });
  const sender = await ts.connect();
  const senderHears = listen(sender);
  const readers = await Promise.all([1, 2, 3].map(() => ts.connect()));
  const readerHears = readers.map(listen);
  await Promise.all([sender, ...readers].map((c) => c.send("ready")));
  // The stuck member: through the handshake, then never reads a byte.
  await using stuck = await rawChannel(ts.port, ts.psk);
  stuck.channel.maxRecordBytes = 1 << 20;
  assert.ok(await waitFor(() => sessions.length === 5));
  const stuckSession = sessions[4];
  const stuckName = `guest-${stuckSession.id}`;
  assert.ok(
    await waitFor(() => senderHears.lines.includes(`* ${stuckName} joined`)),
  );
  // Send until the server gives up on the stuck member.
  const padding = "x".repeat(messageBytes);
  let sent = 0;
  while (sent < 4000 && stuckSession.end === null) {
    assert.equal(await sender.send(`${sent} ${padding}`), null);
    sent++;
  }
  assert.equal(stuckSession.end?.code, CloseCode.tooSlow, `after ${sent}`);
  // The stuck member reads at last: what was queued, then the close.
  let pushes = 0;
  for (let i = 0; i <= sent; i++) {
    const record = await stuck.channel.receive();
    if (record === null) break;
    assert.equal(record.kind, RecordKind.push);
    pushes++;
  }
  assert.ok(pushes < sent);
  assert.equal(stuck.channel.closeInfo?.code, CloseCode.tooSlow);
  assert.match(stuck.channel.closeInfo?.reason ?? "", /too slow/);
  assert.ok(
    await waitFor(() => senderHears.lines.includes(`* ${stuckName} left`)),
  );
  assert.equal(await sender.send("end"), null);
  // Every other member received every message, in order and intact.
  assert.ok(
    await waitFor(() =>
      readerHears.every((h) => h.lines.at(-1)?.endsWith(": end"))
    ),
  );
  for (const h of readerHears) {
    const relayed = h.lines.filter((l) => l.includes(padding));
    assert.equal(relayed.length, sent);
    for (const [i, line] of relayed.entries()) {
      assert.ok(line.endsWith(`: ${i} ${padding}`), `message ${i} garbled`);
    }
    assert.ok(h.lines.includes(`* ${stuckName} left`));
  }
  // The server closed only the stuck member.
  assert.ok(await waitFor(() => ts.events("closed").length === 1));
  assert.match(ts.events("closed")[0].reason ?? "", /too slow/);
  await sender.close();
  await Promise.all(readers.map((r) => r.close()));
  await Promise.all([senderHears.done, ...readerHears.map((h) => h.done)]);
});
