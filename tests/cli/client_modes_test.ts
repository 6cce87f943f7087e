/**
 * In-process tests of the client's modes against `serve()`: `send` prints
 * pushes, `--reply-timeout` bounds a stalled server, output to a terminal
 * is neutralised while output to a file is the bytes received,
 * `--max-message-bytes`, and interactive `/help`, unknown `/word`s and the
 * redraw of a wrapped input line.
 *
 * @module
 */

import assert from "node:assert/strict";
import { runClientCommand } from "../../lib/cli/client_command.ts";
import {
  clearInput,
  COMMANDS_HELP,
  lineAction,
  PROMPT,
  START_HINT,
} from "../../lib/cli/client_interactive.ts";
import { exitCodeFor, TimeoutError } from "../../lib/errors.ts";
import { serve, type SessionHandler } from "../../lib/server/serve.ts";
import { echoService } from "../../lib/services/echo.ts";
import { utf8 } from "../../lib/wire/bytes.ts";
import { fakeIo, KEY } from "./fake_io.ts";

const encoder = new TextEncoder();

function startServer(handler: SessionHandler = echoService) {
  const server = serve({ port: 0, psk: utf8(KEY) }, handler);
  return {
    port: String(server.addr.port),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("send prints a message pushed by the server, not only its replies", async () => {
  await using server = startServer(async (session) => {
    session.push(utf8("from the room"));
    for await (const message of session) message.reply(message.data);
  });
  const io = fakeIo({});
  assert.equal(
    await runClientCommand(["send", "--port", server.port, "hi"], io),
    0,
  );
  assert.deepEqual(io.out.toSorted(), ["from the room", "hi"]);
});

Deno.test("send fails with TimeoutError when the server confirms nothing within --reply-timeout", async () => {
  const release = Promise.withResolvers<void>();
  await using server = startServer(async () => {
    await release.promise; // never reads: nothing is confirmed
  });
  const io = fakeIo({});
  try {
    const error = await runClientCommand(
      ["send", "--port", server.port, "--reply-timeout", "0.2", "hi"],
      io,
    ).catch((e) => e);
    assert.ok(error instanceof TimeoutError, String(error));
    assert.equal(exitCodeFor(error), 5);
    assert.match(error.message, /No confirmation .* \(--reply-timeout\)/);
  } finally {
    release.resolve();
  }
});

Deno.test("pipe output to a terminal neutralises control characters; to a file it is the bytes received", async () => {
  await using server = startServer();
  const hostile = "a\x1b]0;owned\x07b\rc\u202Ed\xff";
  const terminal = fakeIo({ stdin: `${hostile}\n`, stdoutTerminal: true });
  assert.equal(await runClientCommand(["--port", server.port], terminal), 0);
  assert.deepEqual(terminal.out, [
    "a\uFFFD]0;owned\uFFFDb\uFFFDc\uFFFDd\xff",
  ]);
  const bytes: Uint8Array[] = [];
  const file = Object.assign(
    fakeIo({ stdin: `${hostile}\n` }),
    { writeBytes: (chunk: Uint8Array) => bytes.push(chunk.slice()) },
  );
  assert.equal(await runClientCommand(["--port", server.port], file), 0);
  assert.deepEqual(bytes, [encoder.encode(`${hostile}\n`)]);
});

Deno.test("--max-message-bytes refuses a longer line before sending it", async () => {
  await using server = startServer();
  const io = fakeIo({ stdin: "1234\n12345\n" });
  const error = await runClientCommand(
    ["--port", server.port, "--max-message-bytes", "4"],
    io,
  ).catch((e) => e);
  assert.ok(error instanceof RangeError, String(error));
  assert.match(error.message, /line 2: longer than 4 bytes/);
  assert.deepEqual(io.out, ["1234"]);
});

Deno.test("lineAction() runs /help and /quit locally, refuses other /words, and //text sends /text", () => {
  assert.deepEqual(lineAction("hello"), { kind: "send", message: "hello" });
  assert.deepEqual(lineAction("/quit"), { kind: "quit" });
  assert.deepEqual(lineAction("/help"), { kind: "help" });
  assert.deepEqual(lineAction("/nick bob"), {
    kind: "unknown",
    command: "/nick",
  });
  assert.deepEqual(lineAction("//nick"), { kind: "send", message: "/nick" });
});

Deno.test("clearInput() clears every row of a wrapped input line", () => {
  assert.equal(clearInput(10, 80), "\r\x1b[J");
  assert.equal(clearInput(80, 80), "\r\x1b[J"); // the wrap is deferred
  assert.equal(clearInput(81, 80), "\r\x1b[1A\x1b[J");
  assert.equal(clearInput(250, 80), "\r\x1b[3A\x1b[J");
  assert.equal(clearInput(10, Infinity), "\r\x1b[J");
});

Deno.test("interactive mode shows the quit hint once, lists commands, and never sends an unknown /word", async () => {
  const received: string[] = [];
  await using server = startServer(async (session) => {
    for await (const message of session) {
      received.push(message.text());
      message.reply(message.data);
    }
  });
  const keys = new TransformStream<Uint8Array, Uint8Array>();
  const typing = keys.writable.getWriter();
  const io = fakeIo({ stdin: keys.readable, terminal: true, columns: 20 });
  const running = runClientCommand(["--port", server.port], io);
  await io.until((screen) => screen.endsWith(PROMPT));
  await typing.write(encoder.encode("/help\r/nick bob\r//x\r"));
  await io.until((screen) => screen.includes("/x\r\n"));
  // A 30-character line wraps on a 20-column terminal: both rows cleared.
  await typing.write(encoder.encode("y".repeat(26)));
  await io.until((screen) => screen.endsWith(`${PROMPT}${"y".repeat(26)}`));
  await typing.write(encoder.encode("\r/quit\r"));
  assert.equal(await running, 0);
  const screen = io.screen();
  assert.equal(screen.split(START_HINT).length, 2, "the hint shows once");
  assert.ok(screen.includes(COMMANDS_HELP));
  assert.match(screen, /unknown command \/nick \(not sent\)/);
  assert.ok(screen.includes(`\r\x1b[1A\x1b[J${PROMPT}${"y".repeat(26)}\r\n`));
  assert.deepEqual(received, ["/x", "y".repeat(26)]);
});
