/**
 * Integration: `client.ts` interactive mode on a real pseudo-terminal, a
 * detached tmux session on its own tmux server (`-L`), driven with
 * `send-keys` and read with `capture-pane`. Covers the hidden password
 * prompt, the `>>> ` prompt, replies, a chat message arriving while a
 * partial line is typed (the typed text stays intact), and Ctrl-C / Ctrl-D
 * leaving with exit 0; a wrapped line in a narrow terminal redrawn with no
 * stale rows; Ctrl-C at the password prompt (exit 130, nothing printed);
 * a wrong password asked again. Skipped, with the reason printed, without
 * tmux.
 *
 * Waiting polls the pane at short intervals, bounded by a safety deadline;
 * no assertion depends on timing.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { permissionFlags } from "../../.ci/compile.ts";
import { runClient, startServer } from "./server_process.ts";
import { findBinary, skipWithout } from "../fixtures/external_fixture.ts";

const TMUX = findBinary("tmux") ?? "/usr/bin/tmux";
const STTY = findBinary("stty") ?? "/usr/bin/stty";
const CLIENT = fileURLToPath(new URL("../../client.ts", import.meta.url));
const PASSWORD = "tty password 42";
const POLL_MS = 50;
const MAX_POLLS = 1200; // 60 s: a safety net on a slow machine

const ignore = skipWithout("tmux", "stty");

/** A quoted word for `sh -c`. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

async function tmux(args: string[]): Promise<string> {
  const output = await new Deno.Command(TMUX, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    const error = new TextDecoder().decode(output.stderr).trim();
    throw new Error(`tmux ${args[2] ?? args[0]} failed: ${error}`);
  }
  return text;
}

/** A client in a detached tmux session; disposal kills its tmux server. */
async function startTerminal(
  clientArgs: string[],
  dir: string,
  size: { columns: number } = { columns: 120 },
) {
  const socket = `doorman-${crypto.randomUUID()}`;
  const exitFile = `${dir}/exit-code`;
  const command = [
    Deno.execPath(),
    "run",
    "--quiet",
    "--no-prompt",
    ...permissionFlags("client").filter((flag) => flag !== "--no-prompt"),
    CLIENT,
    ...clientArgs,
  ].map(shellQuote).join(" ");
  const script = `${command}; echo $? > ${shellQuote(exitFile)}`;
  const base = ["-L", socket, "-f", "/dev/null"];
  await tmux([
    ...base,
    "new-session",
    "-d",
    "-s",
    "client",
    "-x",
    String(size.columns),
    "-y",
    "30",
    `sh -c ${shellQuote(script)}`,
  ]);
  const screen = () => tmux([...base, "capture-pane", "-p", "-t", "client"]);
  return {
    screen,
    /** Types `text` literally. */
    type: (text: string) =>
      tmux([...base, "send-keys", "-t", "client", "-l", text]),
    /** Presses a named key: Enter, C-c, C-d. */
    press: (key: string) => tmux([...base, "send-keys", "-t", "client", key]),
    /** Polls the pane until `check` holds; returns the pane. */
    async until(check: (pane: string) => boolean, what: string) {
      let pane = "";
      for (let i = 0; i < MAX_POLLS; i++) {
        pane = await screen();
        if (check(pane)) return pane;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
      throw new Error(`Gave up waiting for ${what}; pane:\n${pane}`);
    },
    /** Polls until the terminal is in raw mode (no echo, no line editing). */
    async untilRaw() {
      const tty = (await tmux([
        ...base,
        ...["display-message", "-p", "-t", "client", "#{pane_tty}"],
      ])).trim();
      await poll(async () => {
        const output = await new Deno.Command(STTY, {
          args: ["-a", "-F", tty],
          stdin: "null",
          stdout: "piped",
          stderr: "null",
        }).output();
        const flags = new TextDecoder().decode(output.stdout).split(/\s+/);
        return flags.includes("-echo") && flags.includes("-icanon");
      }, "raw mode");
    },
    /** Polls until the wrapper wrote the client's exit code. */
    async exitCode(): Promise<number> {
      for (let i = 0; i < MAX_POLLS; i++) {
        try {
          const text = (await Deno.readTextFile(exitFile)).trim();
          if (text !== "") return Number(text);
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
      throw new Error(
        `Gave up waiting for the exit code; pane:\n${await screen()}`,
      );
    },
    async [Symbol.asyncDispose]() {
      await tmux([...base, "kill-server"]).catch(() => {});
    },
  };
}

/** Calls `check` every {@link POLL_MS} until it holds (bounded). */
async function poll(
  check: () => boolean | Promise<boolean>,
  what: string,
): Promise<void> {
  for (let i = 0; i < MAX_POLLS; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`Gave up waiting for ${what}`);
}

/** Non-empty lines of a pane, trailing spaces trimmed. */
function lines(pane: string): string[] {
  return pane.split("\n").map((line) => line.trimEnd()).filter((l) => l);
}

Deno.test({
  name:
    "client.ts interactive: hidden password prompt, >>> prompt, replies, Ctrl-C exits 0",
  ignore,
  async fn() {
    await using server = await startServer({
      service: "upper",
      users: { alice: PASSWORD },
    });
    await using terminal = await startTerminal([
      ...["--port", String(server.port), "--key-file", server.keyFile],
      ...["--user", "alice"],
    ], server.dir);
    await terminal.until(
      (pane) => pane.includes('Password for "alice":'),
      "password prompt",
    );
    // The prompt is written just before raw mode is set: wait for it, or
    // the terminal could still echo the first keys.
    await terminal.untilRaw();
    await terminal.type(PASSWORD);
    await terminal.press("Enter");
    await terminal.until((pane) => lines(pane).at(-1) === ">>>", "prompt");
    await terminal.type("hello there");
    await terminal.press("Enter");
    const pane = await terminal.until(
      (pane) =>
        lines(pane).slice(-3).join("|") === ">>> hello there|HELLO THERE|>>>",
      "reply",
    );
    assert.ok(!pane.includes(PASSWORD), "the password was echoed");
    await terminal.type("unsent");
    await terminal.until(
      (pane) => lines(pane).at(-1) === ">>> unsent",
      "typed text",
    );
    await terminal.press("C-c");
    assert.equal(await terminal.exitCode(), 0);
  },
});

Deno.test({
  name:
    "client.ts interactive: a chat message arrives above a half-typed line, which stays intact; Ctrl-D exits 0",
  ignore,
  async fn() {
    const users = { alice: PASSWORD, bob: "bob password" };
    await using server = await startServer({ service: "chat", users });
    const passwordFile = `${server.dir}/alice.password`;
    await Deno.writeTextFile(passwordFile, `${PASSWORD}\n`);
    const bobPasswordFile = `${server.dir}/bob.password`;
    await Deno.writeTextFile(bobPasswordFile, `${users.bob}\n`);
    await using terminal = await startTerminal([
      ...["--port", String(server.port), "--key-file", server.keyFile],
      ...["--user", "alice", "--password-file", passwordFile],
    ], server.dir);
    await terminal.until((pane) => lines(pane).at(-1) === ">>>", "prompt");
    // The server logs the login just before the session joins the room.
    await poll(
      () => /login_succeeded .*user=alice/.test(server.stderr()),
      "alice in the room",
    );
    await terminal.type("half a lin");
    await terminal.until(
      (pane) => lines(pane).at(-1) === ">>> half a lin",
      "typed text",
    );
    const bob = await runClient([
      "send",
      ...["--port", String(server.port), "--key-file", server.keyFile],
      ...["--user", "bob", "--password-file", bobPasswordFile],
      "hi alice",
    ]);
    assert.equal(bob.code, 0, bob.stderr);
    const pane = await terminal.until(
      (pane) =>
        lines(pane).at(-1) === ">>> half a lin" && pane.includes("* bob left"),
      "chat message",
    );
    assert.deepEqual(lines(pane).slice(-4), [
      "* bob joined",
      "bob: hi alice",
      "* bob left",
      ">>> half a lin",
    ]);
    await terminal.type("e");
    await terminal.press("Enter");
    await terminal.until(
      (pane) => lines(pane).slice(-2).join("|") === ">>> half a line|>>>",
      "sent line",
    );
    await terminal.press("C-d");
    assert.equal(await terminal.exitCode(), 0);
  },
});

Deno.test({
  name:
    "client.ts interactive: in a narrow terminal a wrapped line is redrawn whole when a message arrives",
  ignore,
  async fn() {
    const users = { alice: PASSWORD, bob: "bob password" };
    await using server = await startServer({ service: "chat", users });
    const passwordFile = `${server.dir}/alice.password`;
    await Deno.writeTextFile(passwordFile, `${PASSWORD}\n`);
    const bobPasswordFile = `${server.dir}/bob.password`;
    await Deno.writeTextFile(bobPasswordFile, `${users.bob}\n`);
    await using terminal = await startTerminal(
      [
        ...["--port", String(server.port), "--key-file", server.keyFile],
        ...["--user", "alice", "--password-file", passwordFile],
      ],
      server.dir,
      { columns: 40 },
    );
    await terminal.until((pane) => lines(pane).at(-1) === ">>>", "prompt");
    await poll(
      () => /login_succeeded .*user=alice/.test(server.stderr()),
      "alice in the room",
    );
    const typed = "abcdefghij".repeat(6); // 64 columns with the prompt
    await terminal.type(typed);
    const firstRow = `>>> ${typed.slice(0, 36)}`;
    await terminal.until(
      (pane) =>
        lines(pane).slice(-2).join("|") === `${firstRow}|${typed.slice(36)}`,
      "the wrapped line",
    );
    const bob = await runClient([
      "send",
      ...["--port", String(server.port), "--key-file", server.keyFile],
      ...["--user", "bob", "--password-file", bobPasswordFile],
      "hi alice",
    ]);
    assert.equal(bob.code, 0, bob.stderr);
    const pane = await terminal.until(
      (pane) =>
        pane.includes("* bob left") && lines(pane).at(-1) === typed.slice(36),
      "chat message",
    );
    assert.deepEqual(lines(pane).slice(-5), [
      "* bob joined",
      "bob: hi alice",
      "* bob left",
      firstRow,
      typed.slice(36),
    ]);
    assert.equal(pane.split(firstRow).length, 2, `stale rows:\n${pane}`);
    await terminal.press("C-c");
    assert.equal(await terminal.exitCode(), 0);
  },
});

Deno.test({
  name:
    "client.ts: Ctrl-C at the password prompt exits 130 quietly; a wrong password is asked again",
  ignore,
  async fn() {
    await using server = await startServer({
      service: "upper",
      users: { alice: PASSWORD },
      args: ["--penalty-exempt", "127.0.0.1"],
    });
    const args = [
      ...["--port", String(server.port), "--key-file", server.keyFile],
      ...["--user", "alice"],
    ];
    {
      await using terminal = await startTerminal(args, server.dir);
      await terminal.until(
        (pane) => pane.includes('Password for "alice":'),
        "password prompt",
      );
      await terminal.untilRaw();
      await terminal.press("C-c");
      assert.equal(await terminal.exitCode(), 130);
    }
    await Deno.remove(`${server.dir}/exit-code`);
    await using terminal = await startTerminal(args, server.dir);
    await terminal.until(
      (pane) => pane.includes('Password for "alice":'),
      "password prompt",
    );
    await terminal.untilRaw();
    await terminal.type("not the password");
    await terminal.press("Enter");
    await terminal.until(
      (pane) =>
        pane.includes("try again") &&
        lines(pane).at(-1) === 'Password for "alice":',
      "second prompt",
    );
    await terminal.untilRaw();
    await terminal.type(PASSWORD);
    await terminal.press("Enter");
    await terminal.until((pane) => lines(pane).at(-1) === ">>>", "prompt");
    await terminal.press("C-d");
    assert.equal(await terminal.exitCode(), 0);
  },
});
