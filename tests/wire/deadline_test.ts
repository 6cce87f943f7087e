import assert from "node:assert/strict";
import { TimeoutError } from "../../lib/errors.ts";
import {
  raceSignal,
  settlesBefore,
  settlesWithin,
  sleep,
  timeoutSignal,
} from "../../lib/wire/deadline.ts";

Deno.test("raceSignal() resolves with the work, or rejects with TimeoutError once the signal aborts", async () => {
  assert.equal(await raceSignal(Promise.resolve(7), undefined, "slow"), 7);
  const controller = new AbortController();
  const never = new Promise<number>(() => {});
  const raced = raceSignal(never, controller.signal, "too slow");
  controller.abort();
  await assert.rejects(
    raced,
    (error: Error) =>
      error instanceof TimeoutError && error.message === "too slow",
  );
  await assert.rejects(
    raceSignal(Promise.resolve(1), AbortSignal.abort(), "late"),
    TimeoutError,
  );
  await assert.rejects(
    raceSignal(Promise.reject(new RangeError("x")), undefined, "slow"),
    RangeError,
  );
});

Deno.test("settlesBefore() says whether the work resolved before the signal, and passes its rejection on", async () => {
  const controller = new AbortController();
  assert.equal(await settlesBefore(Promise.resolve(), controller.signal), true);
  const pending = settlesBefore(new Promise(() => {}), controller.signal);
  controller.abort();
  assert.equal(await pending, false);
  assert.equal(
    await settlesBefore(Promise.resolve(), controller.signal),
    false,
  );
  await assert.rejects(
    settlesBefore(
      Promise.reject(new Error("broken")),
      new AbortController().signal,
    ),
    /broken/,
  );
});

Deno.test("settlesWithin() and sleep() leave no timer behind", async () => {
  // The test sanitizer fails this test if a timer outlives it.
  assert.equal(await settlesWithin(Promise.resolve(), 60_000), true);
  assert.equal(await settlesWithin(new Promise(() => {}), 1), false);
  const controller = new AbortController();
  const sleeping = sleep(60_000, controller.signal);
  controller.abort();
  await sleeping;
  await sleep(0);
  await sleep(1);
  {
    using deadline = timeoutSignal(60_000);
    assert.equal(deadline.signal.aborted, false);
  }
  const short = timeoutSignal(1);
  await new Promise((resolve) =>
    short.signal.addEventListener("abort", resolve, { once: true })
  );
  assert.equal(short.signal.aborted, true);
});
