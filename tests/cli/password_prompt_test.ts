import assert from "node:assert/strict";
import type { CommandIo } from "../../lib/cli/command_io.ts";
import {
  MAX_PASSWORD_BYTES,
  PromptInterruptedError,
  readPassword,
} from "../../lib/cli/password_prompt.ts";
import { UsageError } from "../../lib/errors.ts";

interface TerminalIo extends CommandIo {
  readonly err: string[];
  readonly rawModes: boolean[];
}

// A fake terminal: each string is one chunk of keystrokes.
function terminalIo(chunks: string[]): TerminalIo {
  const err: string[] = [];
  const rawModes: boolean[] = [];
  const encoder = new TextEncoder();
  return {
    err,
    rawModes,
    stdout: () => assert.fail("a prompt never writes to stdout"),
    stderr: (line) => err.push(`${line}\n`),
    prompt: (text) => err.push(text),
    stdin: ReadableStream.from(chunks.map((chunk) => encoder.encode(chunk))),
    stdinIsTerminal: true,
    env: () => undefined,
    setRaw: (raw) => rawModes.push(raw),
  };
}

function pipeIo(stdin: string, env: Record<string, string> = {}): CommandIo {
  return {
    stdout: () => {},
    stderr: () => {},
    stdin: ReadableStream.from([new TextEncoder().encode(stdin)]),
    stdinIsTerminal: false,
    env: (name) => env[name],
  };
}

const ASK = { fromStdin: false, confirm: false } as const;
const CONFIRM = { fromStdin: false, confirm: true } as const;

Deno.test("readPassword() reads the first line of stdin", async () => {
  const io = pipeIo("pencil\r\nsecond line\n");
  assert.equal(await readPassword(io, { ...ASK, fromStdin: true }), "pencil");
});

Deno.test("readPassword() prefers --password-stdin to DOORMAN_PASSWORD", async () => {
  const io = pipeIo("from stdin", { DOORMAN_PASSWORD: "from env" });
  const password = await readPassword(io, { ...ASK, fromStdin: true });
  assert.equal(password, "from stdin");
  assert.equal(await readPassword(io, ASK), "from env");
});

Deno.test("readPassword() rejects an empty or too long password", async () => {
  const inputs = ["", "\n", "\r\n", `${"x".repeat(MAX_PASSWORD_BYTES + 1)}\n`];
  for (const stdin of inputs) {
    await assert.rejects(
      readPassword(pipeIo(stdin), { ...ASK, fromStdin: true }),
      UsageError,
    );
  }
  await assert.rejects(
    readPassword(pipeIo("", { DOORMAN_PASSWORD: "" }), ASK),
    UsageError,
    "Cannot read password: empty",
  );
});

Deno.test("readPassword() hides the prompt, confirms, and restores the terminal", async () => {
  const io = terminalIo(["pen", "cil\r", "pencil\rignored"]);
  const password = await readPassword(io, { ...CONFIRM, prompt: "Password: " });
  assert.equal(password, "pencil");
  assert.deepEqual(io.rawModes, [true, false, true, false]);
  assert.deepEqual(io.err, [
    "Password: ",
    "\n",
    "Repeat password: ",
    "\n",
  ]);
});

Deno.test("readPassword() handles backspace over multi-byte characters", async () => {
  const io = terminalIo(["pé\x7fencix\x08l\r"]);
  assert.equal(await readPassword(io, ASK), "pencil");
});

Deno.test("readPassword() asks again when the two entries differ, three times at most", async () => {
  const retried = terminalIo(["pencil\rpencli\rpencil\rpencil\r"]);
  assert.equal(await readPassword(retried, CONFIRM), "pencil");
  assert.ok(retried.err.includes("The two entries differ; try again\n"));
  const io = terminalIo(["pencil\rpencli\r".repeat(3)]);
  await assert.rejects(
    readPassword(io, CONFIRM),
    UsageError,
    "Cannot read password: the two entries differ",
  );
  assert.equal(io.rawModes.length, 12);
});

Deno.test("readPassword() stops quietly on Ctrl-C, and cancels on Ctrl-D or end of input", async () => {
  const interrupted = terminalIo(["pen\x03"]);
  await assert.rejects(readPassword(interrupted, ASK), PromptInterruptedError);
  assert.deepEqual(interrupted.rawModes, [true, false]);
  for (const keys of ["\x04", "pen"]) {
    const io = terminalIo([keys]);
    await assert.rejects(
      readPassword(io, ASK),
      (error: Error) =>
        !(error instanceof UsageError) &&
        !(error instanceof PromptInterruptedError) &&
        error.message === "Cannot read password: cancelled",
    );
    assert.deepEqual(io.rawModes, [true, false]);
  }
});

Deno.test("readPassword() without a terminal or source is a UsageError", async () => {
  await assert.rejects(
    readPassword(pipeIo("unused\n"), CONFIRM),
    UsageError,
    "Cannot read password: stdin is not a terminal; " +
      "use --password-stdin or DOORMAN_PASSWORD",
  );
});
