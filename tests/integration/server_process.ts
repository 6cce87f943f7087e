/**
 * Integration helpers: child processes run with a cleared environment, the
 * real `server.ts` and `client.ts` among them, run by `Deno.execPath()` with
 * exactly the permission flags of their `deno.json` tasks (`serve`,
 * `client`; parsed by `.ci/compile.ts`).
 *
 * - `runProgram()`: any command run to completion; `runServerTs()` and
 *   `runClient()` for the two programs.
 * - `startListening()`: any server command, resolved once it printed
 *   `listening on HOST:PORT`; `startServerProcess()` for `server.ts`.
 * - `startServer()`: a temp dir with a key file and a userinfo file, then
 *   `server.ts serve --port 0`.
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
import { toHex } from "../../lib/wire/bytes.ts";
import { createScramVerifier } from "../../lib/login/scram.ts";
import {
  formatUserinfo,
  setUser,
  type Userinfo,
} from "../../lib/users/userinfo.ts";

const SCRIPTS: Record<Program, string> = {
  server: fileURLToPath(new URL("../../server.ts", import.meta.url)),
  client: fileURLToPath(new URL("../../client.ts", import.meta.url)),
};
/** Safety net only: no assertion depends on it. */
export const SAFETY_TIMEOUT_MS = 60_000;
const LISTENING_REGEXP = /^listening on (\S+):(\d+)$/;
/**
 * What a child keeps of ours (everything else is cleared): where Deno lives and caches, and how it trusts
 * and reaches the npm registry (a child `deno install` may download; this
 * network re-signs TLS, and Deno reads the extra roots from these).
 */
const PASSED_ENV = [
  ...["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"],
  ...["DENO_CERT", "DENO_TLS_CA_STORE", "NODE_EXTRA_CA_CERTS"],
  ...["SSL_CERT_FILE", "SSL_CERT_DIR", "NPM_CONFIG_REGISTRY"],
  ...["HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"],
  ...["https_proxy", "http_proxy", "no_proxy"],
];

/** A finished child process. */
export interface ProcessResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A finished client run. */
export type ClientResult = ProcessResult;

/** How to start a child: the command and its first arguments. */
export type CommandLine = readonly string[];

/** Options of {@link runProgram} and {@link startListening}. */
export interface ChildOptions {
  /** Working directory. @default this process's */
  cwd?: string;
  /** Variables set for the child, on top of the few it keeps. */
  env?: Record<string, string>;
  /** More variables of ours the child keeps. */
  keepEnv?: readonly string[];
}

/**
 * The environment for a child: a few variables of ours (and those named in
 * `keep`) plus `extra`.
 */
export function childEnv(
  extra: Record<string, string> = {},
  keep: readonly string[] = [],
) {
  const env: Record<string, string> = {};
  for (const name of [...PASSED_ENV, ...keep]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

/**
 * `deno run` of `program` with only its task's permission flags: the
 * {@link CommandLine} for a program's script, as `deno compile` would
 * grant it.
 */
export function denoRun(program: Program): string[] {
  return [
    Deno.execPath(),
    "run",
    "--quiet",
    "--no-prompt",
    ...permissionFlags(program).filter((flag) => flag !== "--no-prompt"),
    SCRIPTS[program],
  ];
}

/** Spawns `command ...args` with a cleared environment and piped output. */
function spawnChild(
  [command, ...prefix]: CommandLine,
  args: string[],
  options: ChildOptions & { stdin: "null" | "piped" },
): Deno.ChildProcess {
  return new Deno.Command(command, {
    args: [...prefix, ...args],
    cwd: options.cwd,
    clearEnv: true,
    env: childEnv(options.env, options.keepEnv),
    stdin: options.stdin,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * Runs `command ...args` to completion, feeding `stdin` if given (else
 * stdin is /dev/null).
 */
export async function runProgram(
  command: CommandLine,
  args: string[],
  options: ChildOptions & { stdin?: string } = {},
): Promise<ProcessResult> {
  const child = spawnChild(command, args, {
    ...options,
    stdin: options.stdin === undefined ? "null" : "piped",
  });
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(encode(options.stdin));
      await writer.close();
    } catch {
      // It exited without reading all of stdin: its output tells why.
    }
  }
  const output = await withDeadline(child.output(), `${command[0]} exit`);
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** Runs `server.ts ARGS...` to completion (stdin is /dev/null). */
export function runServerTs(
  args: string[],
  options: ChildOptions & { stdin?: string } = {},
): Promise<ProcessResult> {
  return runProgram(denoRun("server"), args, options);
}

/**
 * Runs `client.ts ARGS...` to completion, feeding `stdin` if given (else
 * stdin is empty, not a terminal).
 */
export function runClient(
  args: string[],
  options: { stdin?: string; env?: Record<string, string>; cwd?: string } = {},
): Promise<ClientResult> {
  return runProgram(denoRun("client"), args, {
    ...options,
    stdin: options.stdin ?? "",
  });
}

/** A running server that printed `listening on HOST:PORT`. */
export interface ListeningProcess extends AsyncDisposable {
  /** Host and port from its `listening on HOST:PORT` line. */
  readonly hostname: string;
  readonly port: number;
  /** Its process id (the bench reads its CPU time from /proc). */
  readonly pid: number;
  /** Its stderr so far; all of it once it has exited. */
  stderr(): string;
  /**
   * Sends `signal` (default SIGTERM) unless it exited; awaits the exit and
   * returns its code and all its output. Disposal sends SIGKILL.
   */
  stop(signal?: Deno.Signal): Promise<ProcessResult>;
}

/**
 * Starts `command ...args` and waits until the first line of its stdout is
 * `listening on HOST:PORT`.
 *
 * @throws {Error} If it exits (or stays silent for a minute) before that
 *   line, or prints another first; the message holds its stderr.
 */
export async function startListening(
  command: CommandLine,
  args: string[],
  options: ChildOptions = {},
): Promise<ListeningProcess> {
  const child = spawnChild(command, args, { ...options, stdin: "null" });
  const stderr = collectText(child.stderr);
  const stdout = new LineStream(child.stdout);
  const first = await withDeadline(stdout.readLine(), `${command[0]} start`)
    .catch((error: Error) => error.message);
  const stdoutRest = stdout.drain();
  let finished: Promise<ProcessResult> | null = null;
  const stop = (signal: Deno.Signal = "SIGTERM") => {
    try {
      child.kill(signal);
    } catch {
      // It has already exited.
    }
    return finished ??= (async () => {
      const status = await withDeadline(child.status, `${command[0]} exit`);
      const [rest, text] = await Promise.all([stdoutRest, stderr.done]);
      return { code: status.code, stdout: `${first}\n${rest}`, stderr: text };
    })();
  };
  const match = first === null ? null : LISTENING_REGEXP.exec(first);
  if (match === null) {
    const result = await stop("SIGKILL");
    throw new Error(
      `Cannot start ${args[0] ?? command.at(-1)} (exit ${result.code}): ${
        JSON.stringify(first)
      }; stderr: ${result.stderr}`,
    );
  }
  return {
    hostname: match[1],
    port: Number(match[2]),
    pid: child.pid,
    stderr: stderr.text,
    stop,
    async [Symbol.asyncDispose]() {
      await stop("SIGKILL");
    },
  };
}

/**
 * Starts `server.ts ...args` (add `--port 0`) with its task's permissions
 * and waits for its `listening on HOST:PORT` line.
 */
export function startServerProcess(
  args: string[],
  options: { cwd?: string } = {},
): Promise<ListeningProcess> {
  return startListening(denoRun("server"), args, options);
}

/** A running `server.ts serve` with its own key and userinfo files. */
export interface ServerProcess extends ListeningProcess {
  /** Its key file (64 hex characters). */
  readonly keyFile: string;
  /** Its userinfo file. */
  readonly usersFile: string;
  /** The temp dir holding both; removed on disposal. */
  readonly dir: string;
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
    const server = await startServerProcess([
      "serve",
      ...["--port", "0", "--key-file", keyFile, "--users", usersFile],
      ...["--service", options.service, ...(options.args ?? [])],
    ], { cwd: options.cwd ?? dir });
    return {
      ...server,
      dir,
      keyFile,
      usersFile,
      async [Symbol.asyncDispose]() {
        try {
          await server[Symbol.asyncDispose]();
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      },
    };
  } catch (error) {
    // startListening has already stopped the child.
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
  const child = spawnChild(denoRun("client"), args, {
    env: options.env,
    stdin: "piped",
  });
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

/** Lines of a child's stdout, read on demand (the bench's servers too). */
export class LineStream {
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  #done = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next line, without its newline; `null` once the stream ended. */
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
