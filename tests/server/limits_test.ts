import assert from "node:assert/strict";
import {
  normalizeAddress,
  parseAddressList,
} from "../../lib/server/address.ts";
import {
  ConnectionGate,
  PenaltyBox,
  type PenaltyOptions,
} from "../../lib/server/limits.ts";

/** A clock that moves only when told. */
function manualClock(start = 1_000_000) {
  let time = start;
  return {
    now: () => time,
    advance(ms: number) {
      time += ms;
    },
  };
}

function penaltyBox(options: PenaltyOptions = {}) {
  const clock = manualClock();
  return { clock, box: new PenaltyBox({ now: clock.now, ...options }) };
}

Deno.test("limits.ts re-exports the address functions", () => {
  assert.equal(normalizeAddress("::ffff:10.0.0.1"), "10.0.0.1");
  assert.equal(parseAddressList(["10.0.0.0/8"]).matches("10.1.1.1"), true);
});

Deno.test("PenaltyBox.recordFailure() doubles the penalty from baseMs", () => {
  const { box } = penaltyBox({ refuseAfter: 10 });
  const penalties = [];
  for (let i = 0; i < 5; i++) penalties.push(box.recordFailure("10.0.0.1"));
  assert.deepEqual(penalties, [
    { action: "delay", ms: 1000 },
    { action: "delay", ms: 2000 },
    { action: "delay", ms: 4000 },
    { action: "delay", ms: 8000 },
    { action: "delay", ms: 16000 },
  ]);
});

Deno.test("PenaltyBox.recordFailure() never exceeds capMs", () => {
  const { box } = penaltyBox({ baseMs: 1000, capMs: 5000, refuseAfter: 1000 });
  const penalties = [];
  for (let i = 0; i < 200; i++) {
    penalties.push(box.recordFailure("10.0.0.1").action === "delay");
  }
  const verdict = box.recordFailure("10.0.0.1");
  assert.deepEqual(verdict, { action: "delay", ms: 5000 });
  assert.equal(penalties.every(Boolean), true);
  assert.equal(box.delayFor("10.0.0.1"), 5000);
});

Deno.test("PenaltyBox.recordFailure() refuses from refuseAfter failures on", () => {
  const { box } = penaltyBox({ refuseAfter: 3 });
  assert.equal(box.recordFailure("k").action, "delay");
  assert.equal(box.recordFailure("k").action, "delay");
  assert.deepEqual(box.recordFailure("k"), { action: "refuse", ms: 4000 });
  assert.deepEqual(box.recordFailure("k"), { action: "refuse", ms: 8000 });
});

Deno.test("PenaltyBox.verdict() allows while only delaying penalties are active", () => {
  const { box } = penaltyBox({ refuseAfter: 3 });
  box.recordFailure("10.0.0.1");
  box.recordFailure("10.0.0.1");
  assert.deepEqual(box.verdict("10.0.0.1"), { action: "allow" });
  assert.equal(box.delayFor("10.0.0.1"), 2000);
});

Deno.test("PenaltyBox.verdict() refuses until the penalty expires", () => {
  const { box, clock } = penaltyBox({ refuseAfter: 3 });
  for (let i = 0; i < 3; i++) box.recordFailure("10.0.0.1");
  assert.deepEqual(box.verdict("10.0.0.1"), { action: "refuse", ms: 4000 });
  clock.advance(3999);
  assert.deepEqual(box.verdict("10.0.0.1"), { action: "refuse", ms: 1 });
  clock.advance(1);
  assert.deepEqual(box.verdict("10.0.0.1"), { action: "allow" });
  assert.equal(box.delayFor("10.0.0.1"), 0);
  // The count survives expiry, so the next failure refuses for longer.
  assert.deepEqual(box.recordFailure("10.0.0.1"), {
    action: "refuse",
    ms: 8000,
  });
});

Deno.test("PenaltyBox.delayFor() counts down the remaining penalty", () => {
  const { box, clock } = penaltyBox();
  assert.equal(box.delayFor("user:alice"), 0);
  box.recordFailure("user:alice");
  assert.equal(box.delayFor("user:alice"), 1000);
  clock.advance(400);
  assert.equal(box.delayFor("user:alice"), 600);
  clock.advance(600);
  assert.equal(box.delayFor("user:alice"), 0);
});

Deno.test("PenaltyBox keeps keys independent", () => {
  const { box } = penaltyBox({ refuseAfter: 2 });
  for (let i = 0; i < 5; i++) box.recordFailure("10.0.0.1");
  assert.equal(box.verdict("10.0.0.1").action, "refuse");
  assert.deepEqual(box.verdict("10.0.0.2"), { action: "allow" });
  assert.equal(box.delayFor("user:10.0.0.1"), 0);
  assert.deepEqual(box.recordFailure("10.0.0.2"), {
    action: "delay",
    ms: 1000,
  });
});

Deno.test("PenaltyBox.recordFailure() allows exempt addresses", () => {
  const exempt = parseAddressList(["127.0.0.1", "10.0.0.0/8"]);
  const { box } = penaltyBox({ exempt, refuseAfter: 1 });
  for (let i = 0; i < 5; i++) {
    assert.deepEqual(box.recordFailure("127.0.0.1"), { action: "allow" });
    assert.deepEqual(box.recordFailure("10.9.9.9"), { action: "allow" });
  }
  assert.deepEqual(box.verdict("127.0.0.1"), { action: "allow" });
  assert.equal(box.delayFor("10.9.9.9"), 0);
  assert.equal(box.size, 0);
});

Deno.test("PenaltyBox.recordFailure() exempts the mapped IPv6 form of an exempt IPv4", () => {
  const exempt = parseAddressList(["127.0.0.1"]);
  const { box } = penaltyBox({ exempt, refuseAfter: 1 });
  assert.deepEqual(box.recordFailure("::ffff:127.0.0.1"), { action: "allow" });
  assert.deepEqual(box.recordFailure("::FFFF:7f00:1"), { action: "allow" });
  assert.equal(box.recordFailure("127.0.0.2").action, "refuse");
});

Deno.test("PenaltyBox.recordFailure() penalises user keys despite exemptions", () => {
  const exempt = parseAddressList(["0.0.0.0/0", "::/0"]);
  const { box } = penaltyBox({ exempt });
  assert.deepEqual(box.recordFailure("user:127.0.0.1"), {
    action: "delay",
    ms: 1000,
  });
});

Deno.test("PenaltyBox forgets failures forgetAfterMs after the last one", () => {
  const { box, clock } = penaltyBox({ forgetAfterMs: 10_000, refuseAfter: 9 });
  box.recordFailure("k");
  clock.advance(9_999);
  assert.deepEqual(box.recordFailure("k"), { action: "delay", ms: 2000 });
  clock.advance(9_999);
  assert.deepEqual(box.recordFailure("k"), { action: "delay", ms: 4000 });
  clock.advance(10_000);
  assert.deepEqual(box.recordFailure("k"), { action: "delay", ms: 1000 });
});

Deno.test("PenaltyBox keeps a penalty that outlasts forgetAfterMs", () => {
  const { box, clock } = penaltyBox({
    baseMs: 50_000,
    capMs: 50_000,
    forgetAfterMs: 1000,
    refuseAfter: 1,
  });
  box.recordFailure("k");
  clock.advance(49_999);
  assert.deepEqual(box.verdict("k"), { action: "refuse", ms: 1 });
  clock.advance(1);
  assert.deepEqual(box.verdict("k"), { action: "allow" });
  assert.equal(box.size, 0);
});

Deno.test("PenaltyBox.size drops entries once they expire", () => {
  const { box, clock } = penaltyBox({ forgetAfterMs: 5000 });
  box.recordFailure("a");
  box.recordFailure("b");
  assert.equal(box.size, 2);
  clock.advance(5000);
  assert.equal(box.delayFor("a"), 0);
  assert.equal(box.size, 1);
});

Deno.test("PenaltyBox never holds more than maxEntries keys", () => {
  const { box, clock } = penaltyBox({ maxEntries: 16 });
  for (let i = 0; i < 100; i++) {
    box.recordFailure(`10.0.0.${i}`);
    clock.advance(1);
    assert.ok(box.size <= 16, `size ${box.size} after ${i + 1}`);
  }
  // The newest key is always kept.
  assert.equal(box.delayFor("10.0.0.99"), 999);
});

Deno.test("PenaltyBox evicts the entries that expire soonest when full", () => {
  const { box, clock } = penaltyBox({
    maxEntries: 3,
    refuseAfter: 99,
    forgetAfterMs: 100,
  });
  for (let i = 0; i < 4; i++) box.recordFailure("long"); // expires last
  box.recordFailure("soon");
  clock.advance(1);
  box.recordFailure("later");
  box.recordFailure("new");
  assert.equal(box.size, 3);
  assert.equal(box.delayFor("soon"), 0);
  assert.equal(box.delayFor("long"), 7999);
  assert.equal(box.delayFor("later"), 1000);
  assert.equal(box.delayFor("new"), 1000);
});

Deno.test("PenaltyBox drops expired entries before evicting live ones", () => {
  const { box, clock } = penaltyBox({ maxEntries: 2, forgetAfterMs: 100 });
  box.recordFailure("old");
  clock.advance(1000);
  box.recordFailure("live");
  box.recordFailure("new");
  assert.equal(box.size, 2);
  assert.equal(box.delayFor("live"), 1000);
  assert.equal(box.delayFor("new"), 1000);
});

Deno.test("PenaltyBox() rejects nonsensical options", () => {
  const bad: PenaltyOptions[] = [
    { baseMs: -1 },
    { capMs: Number.NaN },
    { forgetAfterMs: Infinity },
    { refuseAfter: 0 },
    { refuseAfter: 1.5 },
    { maxEntries: 0 },
  ];
  for (const options of bad) {
    assert.throws(() => new PenaltyBox(options), RangeError);
  }
});

Deno.test("ConnectionGate.tryAdmit() refuses at maxStartups", () => {
  const gate = new ConnectionGate({ maxConnections: 10, maxStartups: 2 });
  assert.equal(gate.tryAdmit(), true);
  assert.equal(gate.tryAdmit(), true);
  assert.equal(gate.tryAdmit(), false);
  assert.equal(gate.startups, 2);
  gate.established();
  assert.equal(gate.tryAdmit(), true);
  assert.equal(gate.connections, 3);
  assert.equal(gate.startups, 2);
});

Deno.test("ConnectionGate.tryAdmit() refuses at maxConnections", () => {
  const gate = new ConnectionGate({ maxConnections: 2, maxStartups: 2 });
  assert.equal(gate.tryAdmit(), true);
  gate.established();
  assert.equal(gate.tryAdmit(), true);
  gate.established();
  assert.equal(gate.startups, 0);
  assert.equal(gate.tryAdmit(), false);
  assert.equal(gate.connections, 2);
});

Deno.test("ConnectionGate.release() frees a startup slot", () => {
  const gate = new ConnectionGate({ maxConnections: 5, maxStartups: 1 });
  assert.equal(gate.tryAdmit(), true);
  assert.equal(gate.tryAdmit(), false);
  gate.release({ established: false });
  assert.equal(gate.connections, 0);
  assert.equal(gate.startups, 0);
  assert.equal(gate.tryAdmit(), true);
});

Deno.test("ConnectionGate.release() frees an established connection", () => {
  const gate = new ConnectionGate({ maxConnections: 1, maxStartups: 1 });
  assert.equal(gate.tryAdmit(), true);
  gate.established();
  assert.equal(gate.tryAdmit(), false);
  gate.release({ established: true });
  assert.equal(gate.connections, 0);
  assert.equal(gate.tryAdmit(), true);
});

Deno.test("ConnectionGate rejects releases it never admitted", () => {
  const gate = new ConnectionGate({ maxConnections: 2, maxStartups: 2 });
  assert.throws(() => gate.release({ established: false }), RangeError);
  assert.throws(() => gate.established(), RangeError);
  gate.tryAdmit();
  assert.throws(() => gate.release({ established: true }), RangeError);
  gate.established();
  assert.throws(() => gate.release({ established: false }), RangeError);
  assert.equal(gate.connections, 1);
  assert.equal(gate.startups, 0);
});

Deno.test("ConnectionGate() rejects bounds below 1", () => {
  assert.throws(
    () => new ConnectionGate({ maxConnections: 0, maxStartups: 1 }),
    RangeError,
  );
  assert.throws(
    () => new ConnectionGate({ maxConnections: 1, maxStartups: 0.5 }),
    RangeError,
  );
});
