/**
 * In-process tests of `client.ts`'s command layer: flag parsing, usage
 * errors, `--help`, the password file, the interactive line editor, and the
 * pipe, `send` and interactive modes against an in-process `serve()`
 * through a fake console.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  CLIENT_USAGE,
  parseClientArgs,
  runClientCommand,
  SEND_USAGE,
} from "../../lib/cli/client_command.ts";
import { LineEditor, PROMPT } from "../../lib/cli/client_interactive.ts";
import { MAX_OUTSTANDING } from "../../lib/cli/client_pipe.ts";
import { readPasswordFile } from "../../lib/cli/client_login.ts";
import { fakeIo, KEY } from "./fake_io.ts";
import { sanitizeForTerminal } from "../../lib/cli/terminal_text.ts";
import { VERSION } from "../../lib/cli/version.ts";
import { utf8 } from "../../lib/wire/bytes.ts";
import { ClosedError, exitCodeFor, UsageError } from "../../lib/errors.ts";
import { serve, type SessionHandler } from "../../lib/server/serve.ts";
import { createChatService } from "../../lib/services/chat.ts";
import { echoService } from "../../lib/services/echo.ts";
import { tempDir } from "../helpers.ts";

const encoder = new TextEncoder();

/** An in-process anonymous server with the key {@link KEY}. */
function startServer(handler: SessionHandler = echoService) {
  const server = serve({ port: 0, psk: utf8(KEY) }, handler);
  return {
    port: String(server.addr.port),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("parseClientArgs() picks interactive, pipe or send and applies defaults", () => {
  const terminal = parseClientArgs([], { stdinIsTerminal: true });
  assert.equal(terminal.mode, "interactive");
  assert.equal(terminal.host, "127.0.0.1");
  assert.equal(terminal.port, 9000);
  assert.equal(terminal.timeoutMs, 10_000);
  assert.equal(terminal.json, false);
  assert.equal(terminal.user, undefined);
  assert.equal(parseClientArgs([], { stdinIsTerminal: false }).mode, "pipe");
  const send = parseClientArgs(
    ["send", "--port", "1234", "--timeout", "0.5", "--json", "a", "--", "-b"],
    { stdinIsTerminal: true },
  );
  assert.equal(send.mode, "send");
  assert.deepEqual(send.messages, ["a", "-b"]);
  assert.equal(send.port, 1234);
  assert.equal(send.timeoutMs, 500);
  assert.equal(send.json, true);
});

Deno.test("parseClientArgs() throws UsageError on bad command lines", () => {
  const bad = [
    ["--nope"],
    ["--port"],
    ["--port", "0"],
    ["--port", "65536"],
    ["--port", "80a"],
    ["--timeout", "0"],
    ["--timeout", "-1"],
    ["--timeout", "1e3"],
    ["frobnicate"],
    ["send"],
    ["send", "-x"],
    ["--password-file", "pw"],
    ["--user", ""],
  ];
  for (const args of bad) {
    assert.throws(
      () => parseClientArgs(args, { stdinIsTerminal: false }),
      UsageError,
      JSON.stringify(args),
    );
  }
});

Deno.test("runClientCommand() --help lists every flag with its default and the exit codes", async () => {
  for (
    const [args, usage] of [[["--help"], CLIENT_USAGE], [
      ["send", "-h"],
      SEND_USAGE,
    ]] as const
  ) {
    const io = fakeIo({});
    assert.equal(await runClientCommand([...args], io), 0);
    assert.deepEqual(io.out, [usage]);
  }
  for (const usage of [CLIENT_USAGE, SEND_USAGE]) {
    for (
      const flag of [
        "--host HOST",
        "--port PORT",
        "--key-file FILE",
        "--user NAME",
        "--password-file FILE",
        "--timeout SECONDS",
        "--json",
        "--help",
        "--version",
      ]
    ) {
      assert.ok(usage.includes(flag), `usage lacks ${flag}`);
    }
    for (
      const text of [
        "default 127.0.0.1",
        "default 9000",
        "default 10",
        "DOORMAN_KEY",
        "DOORMAN_PASSWORD",
      ]
    ) {
      assert.ok(usage.includes(text), `usage lacks ${text}`);
    }
    for (const code of [0, 1, 2, 3, 4, 5]) {
      assert.match(usage, new RegExp(`^  ${code}  \\S`, "m"));
    }
  }
});

Deno.test("runClientCommand() --version prints the deno.json version", async () => {
  const io = fakeIo({});
  assert.equal(await runClientCommand(["--version"], io), 0);
  assert.deepEqual(io.out, [`doorman-client ${VERSION}`]);
});

Deno.test("runClientCommand() with --user in pipe mode and no password source is a usage error", async () => {
  const io = fakeIo({ stdin: "hi\n" });
  const error = await runClientCommand(["--user", "alice"], io).catch((e) => e);
  assert.ok(error instanceof UsageError);
  assert.equal(exitCodeFor(error), 2);
  assert.match(error.message, /--password-file or DOORMAN_PASSWORD/);
});

Deno.test("readPasswordFile() reads the first line only, without CR", async () => {
  await using dir = await tempDir();
  const path = dir.join("pw");
  await Deno.writeTextFile(path, "pencil\r\nsecond\n");
  assert.equal(await readPasswordFile(path), "pencil");
  await Deno.writeTextFile(path, "no newline");
  assert.equal(await readPasswordFile(path), "no newline");
  await Deno.writeTextFile(path, "\nsecond\n");
  await assert.rejects(readPasswordFile(path), UsageError);
  await assert.rejects(
    readPasswordFile(dir.join("missing")),
    (error: Error) => {
      assert.equal(exitCodeFor(error), 1);
      assert.match(
        error.message,
        /^Cannot read password file ".*missing": not found$/,
      );
      return true;
    },
  );
});

Deno.test("LineEditor handles UTF-8 split across chunks, Backspace, Ctrl-U, Enter and escapes", () => {
  const editor = new LineEditor();
  const bytes = encoder.encode("héllo");
  assert.deepEqual(editor.feed(bytes.subarray(0, 2)), []); // "h" and half of "é"
  assert.equal(editor.text, "h");
  assert.deepEqual(editor.feed(bytes.subarray(2)), []);
  assert.equal(editor.text, "héllo");
  editor.feed(encoder.encode("\x7f\x7f\x7f\x7f")); // four Backspaces
  assert.equal(editor.text, "h");
  editor.feed(encoder.encode("i \u{1F600}\x1b[D\x1bOA")); // arrows ignored
  assert.equal(editor.text, "hi \u{1F600}");
  editor.feed(encoder.encode("\x08")); // Backspace removes the whole emoji
  assert.equal(editor.text, "hi ");
  assert.deepEqual(editor.feed(encoder.encode("\x15one\r\ntwo\r")), [
    { kind: "submit", line: "one" },
    { kind: "submit", line: "two" },
  ]);
  assert.equal(editor.text, "");
  assert.deepEqual(editor.feed(encoder.encode("\r")), [{
    kind: "submit",
    line: "",
  }]);
});

Deno.test("LineEditor quits on Ctrl-C, and on Ctrl-D only when the line is empty", () => {
  const editor = new LineEditor();
  assert.deepEqual(editor.feed(encoder.encode("ab\x04")), []);
  assert.equal(editor.text, "ab");
  assert.deepEqual(editor.feed(encoder.encode("\x03ignored")), [{
    kind: "quit",
  }]);
  assert.deepEqual(new LineEditor().feed(encoder.encode("\x04")), [{
    kind: "quit",
  }]);
});

Deno.test("sanitizeForTerminal() replaces control characters and keeps lines", () => {
  assert.equal(
    sanitizeForTerminal("a\x1b[2Jb\nc\td"),
    "a\uFFFD[2Jb\r\n  | c\td",
  );
});

Deno.test("runClientCommand() pipe mode pipelines past the outstanding bound and keeps order", async () => {
  await using server = startServer();
  const count = MAX_OUTSTANDING * 3 + 7;
  const lines = Array.from({ length: count }, (_, i) => `message ${i}`);
  const io = fakeIo({ stdin: lines.join("\n") + "\n" });
  assert.equal(await runClientCommand(["--port", server.port], io), 0);
  assert.deepEqual(io.out, lines);
  assert.deepEqual(io.err, []);
});

Deno.test("runClientCommand() send --json prints one object per message", async () => {
  await using server = startServer();
  const io = fakeIo({});
  const code = await runClientCommand([
    "send",
    "--json",
    "--port",
    server.port,
    "a",
    "ü",
  ], io);
  assert.equal(code, 0);
  assert.deepEqual(io.out.map((line) => JSON.parse(line)), [
    { message: "a", reply: "a" },
    { message: "ü", reply: "ü" },
  ]);
});

Deno.test("runClientCommand() pipe mode throws ClosedError when the server ends first", async () => {
  const server = serve({ port: 0, psk: utf8(KEY) }, echoService);
  const input = new TransformStream<Uint8Array, Uint8Array>();
  const writer = input.writable.getWriter();
  const io = fakeIo({ stdin: input.readable });
  const running = runClientCommand(["--port", String(server.addr.port)], io);
  await writer.write(encoder.encode("one\n"));
  await io.until((screen) => screen === "one\n");
  await server.shutdown();
  const error = await running.catch((e) => e);
  assert.ok(error instanceof ClosedError, String(error));
  assert.equal(exitCodeFor(error), 5);
  await writer.close().catch(() => {});
});

Deno.test("runClientCommand() interactive mode prints replies and pushes around the typed line", async () => {
  const chat = createChatService();
  const joined = Promise.withResolvers<void>();
  // The chat service adds a member before its first await.
  await using server = startServer((session) => {
    const running = chat(session);
    joined.resolve();
    return running;
  });
  const echo = serve({ port: 0, psk: utf8(KEY) }, echoService);
  const keys = new TransformStream<Uint8Array, Uint8Array>();
  const typing = keys.writable.getWriter();
  const io = fakeIo({ stdin: keys.readable, terminal: true });
  const type = (text: string) => typing.write(encoder.encode(text));
  try {
    const running = runClientCommand(["--port", String(echo.addr.port)], io);
    await io.until((screen) => screen.endsWith(PROMPT));
    await type("hel");
    await type("lo\r");
    await io.until((screen) => screen.includes("\x1b[Jhello\r\n"));
    await type("/quit\r");
    assert.equal(await running, 0);
    assert.deepEqual(io.rawModes, [true, false]);
  } finally {
    await echo.shutdown();
  }
  // Chat: a push arrives while "par" is typed; the prompt and "par" are
  // redrawn after it.
  const chatKeys = new TransformStream<Uint8Array, Uint8Array>();
  const chatTyping = chatKeys.writable.getWriter();
  const chatIo = fakeIo({ stdin: chatKeys.readable, terminal: true });
  const running = runClientCommand(["--port", server.port], chatIo);
  await chatIo.until((screen) => screen.endsWith(PROMPT));
  await chatTyping.write(encoder.encode("par"));
  await chatIo.until((screen) => screen.endsWith(`${PROMPT}par`));
  await joined.promise;
  const other = fakeIo({});
  assert.equal(
    await runClientCommand(["send", "--port", server.port, "hi"], other),
    0,
  );
  await chatIo.until((screen) => /guest-\d+: hi\r\n>>> par$/.test(screen));
  const pushed = /guest-\d+: hi\r\n>>> par$/.exec(chatIo.screen());
  assert.ok(pushed, "the push and the redrawn line");
  const before = chatIo.screen().slice(0, pushed.index);
  assert.ok(before.endsWith("\r\x1b[J"), "the typed line was cleared first");
  await chatTyping.write(encoder.encode("\x03"));
  assert.equal(await running, 0);
  assert.deepEqual(chatIo.rawModes, [true, false]);
});

Deno.test("runClientCommand() interactive mode throws ClosedError and restores the terminal when the server ends", async () => {
  const server = serve({ port: 0, psk: utf8(KEY) }, echoService);
  const keys = new TransformStream<Uint8Array, Uint8Array>();
  const typing = keys.writable.getWriter();
  const io = fakeIo({ stdin: keys.readable, terminal: true });
  const running = runClientCommand(["--port", String(server.addr.port)], io);
  await io.until((screen) => screen.endsWith(PROMPT));
  // A reply proves the server has the session (not still in handshake).
  await typing.write(encoder.encode("first\r"));
  await io.until((screen) => screen.includes("\x1b[Jfirst\r\n"));
  await typing.write(encoder.encode("typed"));
  await io.until((screen) => screen.endsWith(`${PROMPT}typed`));
  await server.shutdown();
  const error = await running.catch((e) => e);
  assert.ok(error instanceof ClosedError, String(error));
  assert.match(error.message, /shutting down/);
  assert.deepEqual(io.rawModes, [true, false]);
  assert.ok(io.screen().endsWith("\r\n"), "the cursor left the prompt line");
});
