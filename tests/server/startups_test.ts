import assert from "node:assert/strict";
import {
  dropStartup,
  KeyedCounter,
  KeyedSlots,
  parseMaxStartups,
} from "../../lib/server/startups.ts";
import { guardLogger } from "../../lib/server/log.ts";
import { PenaltyBox } from "../../lib/server/limits.ts";
import { encodeRefusal, parseRefusal } from "../../lib/wire/refusal.ts";
import { RefusedError } from "../../lib/errors.ts";

Deno.test("parseMaxStartups() reads N and START:RATE:FULL, and rejects bad forms", () => {
  assert.deepEqual(parseMaxStartups(128), { start: 128, rate: 100, full: 128 });
  assert.deepEqual(parseMaxStartups("10:30:100"), {
    start: 10,
    rate: 30,
    full: 100,
  });
  for (
    const bad of ["", "0", "10:30", "10:101:100", "50:30:10", "a:b:c", "-1"]
  ) {
    assert.throws(() => parseMaxStartups(bad), RangeError, bad);
  }
});

Deno.test("dropStartup() never drops below start, always at full, linearly between", () => {
  const limits = parseMaxStartups("10:30:110");
  assert.equal(dropStartup(9, limits, 0), false);
  assert.equal(dropStartup(10, limits, 0.29), true);
  assert.equal(dropStartup(10, limits, 0.31), false);
  assert.equal(dropStartup(60, limits, 0.64), true);
  assert.equal(dropStartup(60, limits, 0.66), false);
  assert.equal(dropStartup(110, limits, 0.999), true);
  assert.equal(dropStartup(127, parseMaxStartups(128), 0.999), false);
  assert.equal(dropStartup(128, parseMaxStartups(128), 0), true);
});

Deno.test("KeyedCounter counts per key under a cap and forgets keys at zero", () => {
  const counter = new KeyedCounter();
  assert.ok(counter.tryAcquire("a", 2));
  assert.ok(counter.tryAcquire("a", 2));
  assert.equal(counter.tryAcquire("a", 2), false);
  assert.ok(counter.tryAcquire("b", 2));
  counter.release("a");
  counter.release("a");
  counter.release("b");
  assert.equal(counter.size, 0);
  assert.throws(() => counter.release("a"), RangeError);
});

Deno.test("KeyedSlots lets one holder per key at a time, in order, and drops aborted waiters", async () => {
  const slots = new KeyedSlots();
  const order: string[] = [];
  const first = await slots.acquire("alice", 1);
  const aborted = new AbortController();
  const second = slots.acquire("alice", 1).then((release) => {
    order.push("second");
    return release;
  });
  const gone = slots.acquire("alice", 1, aborted.signal);
  aborted.abort(new Error("deadline"));
  await assert.rejects(gone, /deadline/);
  order.push("first done");
  first();
  (await second)();
  assert.deepEqual(order, ["first done", "second"]);
  assert.equal(slots.size, 0);
});

Deno.test("PenaltyBox counts lighter failures as fractions", () => {
  const box = new PenaltyBox({ baseMs: 1000 });
  for (let i = 0; i < 11; i++) {
    assert.notEqual(
      box.recordFailure("10.0.0.7", { weight: 0.25 }).action,
      "refuse",
    );
  }
  assert.equal(
    box.recordFailure("10.0.0.7", { weight: 0.25 }).action,
    "refuse",
  );
});

Deno.test("guardLogger() never throws, counts drops, and aggregates one address's flood", () => {
  let time = 0;
  const lines: string[] = [];
  const logger = guardLogger({
    log(event) {
      if (event.event === "error") throw new Error("EFBIG");
      lines.push(event.detail ?? event.event);
    },
  }, { now: () => time });
  logger.log({ event: "error", detail: "x" });
  assert.equal(logger.dropped, 1);
  for (let i = 0; i < 100; i++) {
    logger.log({ event: "refused", peer: `10.0.0.7:${i}`, reason: "penalty" });
  }
  logger.log({ event: "refused", peer: "10.0.0.8:1", reason: "penalty" });
  assert.equal(lines.length, 11);
  time = 10_000;
  logger.flush();
  assert.ok(lines.includes("… 90 more from 10.0.0.7 in the last 10 s"));
});

Deno.test("encodeRefusal() and parseRefusal() agree byte for byte", () => {
  const bytes = encodeRefusal(3, 4.2);
  assert.deepEqual([...bytes.subarray(8)], [0, 0, 0, 4, 0x7d, 3, 0, 5]);
  const error = parseRefusal(bytes.subarray(12));
  assert.ok(error instanceof RefusedError);
  assert.equal(error.retryAfterSeconds, 5);
  assert.equal(
    error.message,
    "server refused the connection: too many failed attempts from your address; retry in 5 s",
  );
  assert.equal(parseRefusal(Uint8Array.of(0x7d, 1, 0)), null);
  assert.equal(parseRefusal(Uint8Array.of(0x02, 1, 0, 0)), null);
  assert.deepEqual([...encodeRefusal(1, 1e9).subarray(14)], [0xff, 0xff]);
});
