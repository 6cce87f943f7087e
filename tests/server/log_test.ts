import assert from "node:assert/strict";
import {
  collectingLogger,
  createLogger,
  type LogEvent,
  silentLogger,
} from "../../lib/server/log.ts";

const TIME = new Date("2026-11-23T10:00:00.000Z");

function linesFor(format: "text" | "json", events: LogEvent[]): string[] {
  const lines: string[] = [];
  const logger = createLogger({
    format,
    write: (line) => lines.push(line),
    now: () => TIME,
  });
  for (const event of events) logger.log(event);
  return lines;
}

Deno.test("createLogger() writes a text line with time, event and fields", () => {
  const lines = linesFor("text", [
    { event: "accepted", conn: 3, peer: "127.0.0.1:50000" },
  ]);
  assert.deepEqual(lines, [
    "2026-11-23T10:00:00.000Z accepted conn=3 peer=127.0.0.1:50000",
  ]);
});

Deno.test("createLogger() writes text fields in a fixed order", () => {
  const lines = linesFor("text", [{
    detail: "d",
    address: "10.0.0.1",
    count: 2,
    ms: 4000,
    reason: "bad_password",
    user: "alice",
    peer: "[::1]:5000",
    conn: 7,
    event: "penalty",
  }]);
  assert.deepEqual(lines, [
    "2026-11-23T10:00:00.000Z penalty conn=7 peer=[::1]:5000 user=alice " +
    "reason=bad_password ms=4000 count=2 address=10.0.0.1 detail=d",
  ]);
});

Deno.test("createLogger() writes only the event when no field is set", () => {
  assert.deepEqual(linesFor("text", [{ event: "shutdown" }]), [
    "2026-11-23T10:00:00.000Z shutdown",
  ]);
});

Deno.test("createLogger() quotes text values with spaces, quotes or equals", () => {
  const lines = linesFor("text", [{
    event: "login_failed",
    user: 'bob "the" builder',
    reason: "a=b",
    detail: "",
  }]);
  assert.deepEqual(lines, [
    '2026-11-23T10:00:00.000Z login_failed user="bob \\"the\\" builder" ' +
    'reason="a=b" detail=""',
  ]);
});

Deno.test("createLogger() keeps a user name with a newline on one text line", () => {
  const forged = "x\n2026-11-23T10:00:00.000Z login_succeeded user=root";
  const lines = linesFor("text", [{ event: "login_failed", user: forged }]);
  assert.equal(lines.length, 1);
  assert.deepEqual(lines, [
    '2026-11-23T10:00:00.000Z login_failed user="x\\n2026-11-23T10:00:00.000Z ' +
    'login_succeeded user=root"',
  ]);
});

Deno.test("createLogger() escapes every control and line-breaking character", () => {
  const nasty = "a\rb\tc\0d\x7fe\x85f\u2028g\u2029h\u202ei\u{e0001}j\x1bk";
  for (const format of ["text", "json"] as const) {
    const [line] = linesFor(format, [{ event: "warning", detail: nasty }]);
    assert.doesNotMatch(line, /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u, format);
  }
  const [text] = linesFor("text", [{ event: "warning", detail: nasty }]);
  assert.equal(
    text,
    "2026-11-23T10:00:00.000Z warning detail=" +
      '"a\\rb\\tc\\u0000d\\u007fe\\u0085f\\u2028g\\u2029h\\u202ei' +
      '\\udb40\\udc01j\\u001bk"',
  );
});

Deno.test("createLogger() writes one JSON object per line, time first", () => {
  const lines = linesFor("json", [
    { event: "accepted", conn: 3, peer: "127.0.0.1:50000" },
    { event: "users_loaded", count: 2 },
  ]);
  assert.deepEqual(lines, [
    '{"time":"2026-11-23T10:00:00.000Z","event":"accepted","conn":3,' +
    '"peer":"127.0.0.1:50000"}',
    '{"time":"2026-11-23T10:00:00.000Z","event":"users_loaded","count":2}',
  ]);
});

Deno.test("createLogger() JSON lines round-trip hostile values", () => {
  const user = 'eve"\n\u2028\u202e}{';
  const [line] = linesFor("json", [{ event: "login_failed", user, ms: 1000 }]);
  assert.equal(line.includes("\n"), false);
  assert.deepEqual(JSON.parse(line), {
    time: "2026-11-23T10:00:00.000Z",
    event: "login_failed",
    user,
    ms: 1000,
  });
});

Deno.test("createLogger() drops properties that are not LogEvent fields", () => {
  const event = { event: "error" as const, detail: "boom", password: "x1" };
  for (const format of ["text", "json"] as const) {
    const [line] = linesFor(format, [event]);
    assert.equal(line.includes("x1"), false, format);
    assert.equal(line.includes("password"), false, format);
  }
});

Deno.test("createLogger() uses the current time by default", () => {
  const lines: string[] = [];
  const before = Date.now();
  createLogger({ format: "json", write: (line) => lines.push(line) })
    .log({ event: "listening", address: "127.0.0.1:4000" });
  const time = Date.parse(JSON.parse(lines[0]).time);
  assert.ok(time >= before - 1000, "time is not in the past");
});

Deno.test("silentLogger.log() accepts events and writes nothing", () => {
  silentLogger.log({ event: "closed", conn: 1 });
  assert.equal(Object.isFrozen(silentLogger), true);
});

Deno.test("collectingLogger() keeps copies of events in order", () => {
  const logger = collectingLogger();
  const event = { event: "accepted" as const, conn: 1 };
  logger.log(event);
  logger.log({ event: "closed", conn: 1, reason: "normal" });
  event.conn = 99;
  assert.deepEqual(logger.events, [
    { event: "accepted", conn: 1 },
    { event: "closed", conn: 1, reason: "normal" },
  ]);
});
