import assert from "node:assert/strict";
import { acceptLoop } from "../../lib/server/accept_loop.ts";
import { collectingLogger } from "../../lib/server/log.ts";

/** A listener that throws `errors` in order, then yields `conns`, then ends. */
function fakeListener(errors: Error[], conns: number) {
  let given = 0;
  return {
    accept(): Promise<number> {
      const error = errors.shift();
      if (error) return Promise.reject(error);
      if (given < conns) return Promise.resolve(++given);
      return Promise.reject(new Deno.errors.BadResource("closed"));
    },
  };
}

function osError(code: string): Error {
  return Object.assign(new Error(`accept failed (${code})`), { code });
}

Deno.test("acceptLoop() retries at once, without sleeping or logging, on connections reset before accept", async () => {
  const errors = Array.from({ length: 300 }, (_, i) =>
    [
      new Deno.errors.ConnectionAborted("aborted"),
      new Deno.errors.ConnectionReset("reset"),
      osError("ENOTCONN"),
    ][i % 3]);
  const handled: number[] = [];
  const sleeps: number[] = [];
  const logger = collectingLogger();
  await acceptLoop(fakeListener(errors, 2), (conn) => handled.push(conn), {
    logger,
    stopping: () => false,
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
  });
  assert.deepEqual(handled, [1, 2]);
  assert.deepEqual(sleeps, []);
  assert.deepEqual(logger.events, []);
});

Deno.test("acceptLoop() backs off on EMFILE, doubling to 1 s, with one log line per 10 s", async () => {
  const errors = Array.from({ length: 12 }, () => osError("EMFILE"));
  const sleeps: number[] = [];
  const logger = collectingLogger();
  await acceptLoop(fakeListener(errors, 1), () => {}, {
    logger,
    stopping: () => false,
    now: () => 1000,
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
  });
  assert.deepEqual(sleeps, [
    10,
    20,
    40,
    80,
    160,
    320,
    640,
    1000,
    1000,
    1000,
    1000,
    1000,
  ]);
  assert.equal(logger.events.length, 1);
  assert.match(logger.events[0].detail ?? "", /EMFILE/);
});

Deno.test("acceptLoop() keeps accepting when onConnection throws", async () => {
  const handled: number[] = [];
  await acceptLoop(fakeListener([], 3), (conn) => {
    handled.push(conn);
    throw new Error("boom");
  }, { logger: collectingLogger(), stopping: () => false });
  assert.deepEqual(handled, [1, 2, 3]);
});
