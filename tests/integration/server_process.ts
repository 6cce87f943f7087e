/**
 * Integration helpers: the real `server.ts` and `client.ts` as child
 * processes, run by `Deno.execPath()` with exactly the permission flags of
 * their `deno.json` tasks (`serve`, `client`; parsed by `.ci/compile.ts`).
 *
 * - `startServer()`: a temp dir with a key file and a userinfo file, then
 *   `server.ts serve --port 0`, resolved once it printed `listening on`.
 * - `runClient()`: one `client.ts` run to completion.
 * - `spawnClient()`: a `client.ts` whose stdin the test holds open, with
 *   line-by-line reads of its stdout.
 *
 * Every wait is bounded by the child's exit and by a generous safety
 * deadline; disposing kills what is still running and removes temp files.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { permissionFlags, type Program } from "../../.ci/compile.ts";
import { toHex } from "../../lib/bytes.ts";
import { createScramVerifier } from "../../lib/scram.ts";
import { formatUserinfo, setUser, type Userinfo } from "../../lib/userinfo.ts";

const SCRIPTS: Record<Program, string> = {
  server: fileURLToPath(new URL("../../server.ts", import.meta.url)),
  client: fileURLToPath(new URL("../../client.ts", import.meta.url)),
};
/** Safety net only: no assertion depends on it. */
export const SAFETY_TIMEOUT_MS = 60_000;
const LISTENING_REGEXP = /^listening on (\S+):(\d+)$/;
/** Variables the child processes keep; everything else is cleared. */
const PASSED_ENV = ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"];

/** A finished client run. */
export interface ClientResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A running `server.ts serve`. */
export interface ServerProcess extends AsyncDisposable {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  /** Its key file (64 hex characters). */
  readonly keyFile: string;
  /** Its userinfo file. */
  readonly usersFile: string;
  /** The temp dir holding both; removed on disposal. */
  readonly dir: string;
  /** Its stderr so far; all of it once it has exited. */
  stderrText(): Promise<string>;
  /** Sends `signal` (default SIGTERM) unless it exited; awaits the exit. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** `--service`. */
  service: "chat" | "echo" | "upper";
  /** More `serve` flags. */
  args?: string[];
  /** Users and passwords for the userinfo file (4096 iterations). */
  users?: Record<string, string>;
  /** Working directory. @default the temp dir */
  cwd?: string;
}

/** The environment for a child: a few variables of ours plus `extra`. */
export function childEnv(extra: Record<string, string> = {}) {
  const env: Record<string, string> = {};
  for (const name of PASSED_ENV) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

/** `deno run` arguments for `program` with its task's permission flags. */
function runArgs(program: Program, args: string[]): string[] {
  return [
    "run",
    "--quiet",
    "--no-prompt",
    ...permissionFlags(program).filter((flag) => flag !== "--no-prompt"),
    SCRIPTS[program],
    ...args,
  ];
}

/**
 * Starts `server.ts serve --port 0` with a new key and the given users.
 *
 * @throws {Error} If the server exits (or stays silent for a minute)
 *   before printing `listening on HOST:PORT`; the message holds its stderr.
 */
export async function startServer(
  options: StartServerOptions,
): Promise<ServerProcess> {
  const dir = await Deno.makeTempDir({ prefix: "doorman_client_test_" });
  const keyFile = `${dir}/doorman.key`;
  const usersFile = `${dir}/userinfo`;
  try {
    const key = toHex(crypto.getRandomValues(new Uint8Array(32)));
    await Deno.writeTextFile(keyFile, `${key}\n`, { mode: 0o600 });
    await Deno.writeTextFile(usersFile, await userinfoText(options.users));
    const child = new Deno.Command(Deno.execPath(), {
      args: runArgs("server", [
        "serve",
        ...["--port", "0", "--key-file", keyFile, "--users", usersFile],
        ...["--service", options.service, ...(options.args ?? [])],
      ]),
      cwd: options.cwd ?? dir,
      clearEnv: true,
      env: childEnv(),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return await waitListening(child, { dir, keyFile, usersFile });
  } catch (error) {
    // waitListening has already stopped the child.
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
}

async function userinfoText(users: Record<string, string> = {}) {
  let userinfo: Userinfo = { lines: [] };
  for (const [name, password] of Object.entries(users)) {
    const scram = await createScramVerifier(password, { iterations: 4096 });
    userinfo = setUser(userinfo, name, { kind: "scram-sha-256", scram });
  }
  return formatUserinfo(userinfo);
}

async function waitListening(
  child: Deno.ChildProcess,
  files: { dir: string; keyFile: string; usersFile: string },
): Promise<ServerProcess> {
  const stderr = collectText(child.stderr);
  const stdout = new LineStream(child.stdout);
  const first = await withDeadline(stdout.readLine(), "server start")
    .catch((error: Error) => error.message);
  const match = first === null ? null : LISTENING_REGEXP.exec(first);
  if (match === null) {
    try {
      child.kill("SIGKILL");
    } catch {
      // It has already exited.
    }
    await child.status;
    const [, text] = await Promise.all([stdout.drain(), stderr.done]);
    throw new Error(
      `Cannot start server.ts: ${JSON.stringify(first)}; stderr: ${text}`,
    );
  }
  const stdoutRest = stdout.drain();
  let status: Promise<Deno.CommandStatus> | null = null;
  const stop = (signal: Deno.Signal = "SIGTERM") => {
    status ??= (async () => {
      try {
        child.kill(signal);
      } catch {
        // It has already exited.
      }
      const result = await withDeadline(child.status, "server exit");
      await Promise.all([stderr.done, stdoutRest]);
      return result;
    })();
    return status;
  };
  return {
    port: Number(match[2]),
    ...files,
    stderrText: () => Promise.resolve(stderr.text()),
    stop,
    async [Symbol.asyncDispose]() {
      try {
        await stop("SIGKILL");
      } finally {
        await Deno.remove(files.dir, { recursive: true });
      }
    },
  };
}

/**
 * Runs `client.ts ARGS...` to completion, feeding `stdin` if given (else
 * stdin is empty, not a terminal).
 */
export async function runClient(
  args: string[],
  options: { stdin?: string; env?: Record<string, string>; cwd?: string } = {},
): Promise<ClientResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: runArgs("client", args),
    cwd: options.cwd,
    clearEnv: true,
    env: childEnv(options.env),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  try {
    if (options.stdin) await writer.write(encode(options.stdin));
    await writer.close();
  } catch {
    // The client exited without reading all of stdin: its output tells why.
  }
  const output = await withDeadline(child.output(), "client exit");
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** A running `client.ts` whose stdin stays open until `endInput()`. */
export interface ClientProcess extends AsyncDisposable {
  /** Writes `line` and a newline to its stdin. */
  writeLine(line: string): Promise<void>;
  /** The next line of its stdout, or `null` once stdout ended. */
  readLine(): Promise<string | null>;
  /** Closes its stdin. */
  endInput(): Promise<void>;
  /** Waits for the exit: the code, the stdout not yet read, all stderr. */
  finish(): Promise<ClientResult>;
}

/** Starts `client.ts ARGS...` with stdin held open (pipe mode). */
export function spawnClient(
  args: string[],
  options: { env?: Record<string, string> } = {},
): ClientProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: runArgs("client", args),
    clearEnv: true,
    env: childEnv(options.env),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const stdout = new LineStream(child.stdout);
  const stderr = collectText(child.stderr);
  let inputOpen = true;
  const endInput = async () => {
    if (!inputOpen) return;
    inputOpen = false;
    await writer.close().catch(() => {});
  };
  let finished: Promise<ClientResult> | null = null;
  const finish = () =>
    finished ??= (async () => {
      const rest = stdout.drain();
      const status = await withDeadline(child.status, "client exit");
      await endInput();
      return {
        code: status.code,
        stdout: await rest,
        stderr: await stderr.done,
      };
    })();
  return {
    writeLine: (line) => writer.write(encode(`${line}\n`)),
    readLine: () => withDeadline(stdout.readLine(), "client output"),
    endInput,
    finish,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch {
        // It has already exited.
      }
      await finish();
    },
  };
}

/** Lines of a child's stdout, read on demand. */
class LineStream {
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  #done = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  async readLine(): Promise<string | null> {
    while (true) {
      const newline = this.#buffer.indexOf("\n");
      if (newline !== -1) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        return line;
      }
      if (this.#done) return null;
      const { done, value } = await this.#reader.read();
      if (done) this.#done = true;
      else this.#buffer += value;
    }
  }

  /** Everything not yet read, once the stream ended. */
  async drain(): Promise<string> {
    while (!this.#done) {
      const { done, value } = await this.#reader.read();
      if (done) this.#done = true;
      else this.#buffer += value;
    }
    const rest = this.#buffer;
    this.#buffer = "";
    return rest;
  }
}

function collectText(stream: ReadableStream<Uint8Array>) {
  let text = "";
  const done = (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
    }
    return text;
  })();
  return { text: () => text, done };
}

/** `promise`, or an error after {@link SAFETY_TIMEOUT_MS}. */
export async function withDeadline<T>(
  promise: Promise<T>,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Gave up waiting for ${what}`)),
      SAFETY_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function encode(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
