/**
 * Top layer (CLI): console I/O, written once. `CommandIo` is everything a
 * subcommand needs from the outside world (output lines, stdin, the
 * terminal, the environment, how the user ran the program), so tests can
 * pass a fake; `ClientIo` adds the client's raw output. `denoCommandIo` and
 * `denoClientIo` are the real ones. Also the one first-line reader (password
 * files, `--password-stdin`) and `programName`.
 *
 * This file does not parse flags or read passwords (`password_prompt.ts`).
 *
 * @module
 */

/** What a CLI subcommand reads from and writes to. */
export interface CommandIo {
  /** Writes one line of program output. */
  stdout(line: string): void;
  /** Writes one line of diagnostics. */
  stderr(line: string): void;
  /** The standard input bytes. */
  readonly stdin: ReadableStream<Uint8Array>;
  /** Whether stdin is a terminal (a hidden prompt is possible). */
  readonly stdinIsTerminal: boolean;
  /** An environment variable, or `undefined` if unset. */
  env(name: string): string | undefined;
  /** Writes `text` to stderr without a newline (a prompt). @default `stderr` */
  prompt?(text: string): void;
  /** Turns the terminal's raw mode on or off. @default do nothing */
  setRaw?(raw: boolean): void;
  /**
   * How the user ran the program, for help hints: `deno task serve`,
   * `doorman-client`, `server.ts`. @default `server.ts` or `client.ts`
   */
  readonly program?: string;
}

/** What the client reads from and writes to: `CommandIo` plus raw output. */
export interface ClientIo extends CommandIo {
  /** Writes `text` to stdout as is, without a newline (the prompt line). */
  write(text: string): void;
  /** Writes `bytes` to stdout unchanged (pipe and `send` to a file). */
  writeBytes?(bytes: Uint8Array): void;
  /** Whether stdout is a terminal (output is then neutralised). */
  readonly stdoutIsTerminal?: boolean;
  /** The terminal's width in columns. @default unbounded (no wrapping) */
  columns?(): number;
}

/** The two programs. */
export type Program = "server" | "client";

const SCRIPTS: Record<Program, string> = {
  server: "server.ts",
  client: "client.ts",
};
const TASKS: Record<Program, string> = {
  server: "deno task serve",
  client: "deno task client",
};

/**
 * How the user ran `program`, as help hints should name it: a compiled
 * binary by its file name, `deno task serve|client` when run by a task
 * (`INIT_CWD` set), else the script name.
 *
 * @param program Which program is running.
 * @returns The command to show, e.g. `deno task client`.
 */
export function programName(program: Program): string {
  let exec = "";
  try {
    exec = Deno.execPath().split(/[\\/]/).at(-1) ?? "";
  } catch {
    // No read permission: fall back to the script name.
  }
  if (exec !== "" && !/^deno(\.exe)?$/i.test(exec)) {
    return exec.replace(/\.exe$/i, "");
  }
  return readEnv("INIT_CWD") !== undefined ? TASKS[program] : SCRIPTS[program];
}

/**
 * The directory the user ran `deno task` from (`INIT_CWD`), so relative
 * paths can be resolved against it rather than against deno.json's. Only
 * when the working directory is the program's own (where `deno task` runs
 * it), so a process started elsewhere that merely inherited `INIT_CWD`
 * stays where it was started.
 *
 * @param programDirectory The directory of `server.ts` / `client.ts`.
 * @returns The caller's directory, or `undefined`.
 */
export function callerDirectory(programDirectory: URL): string | undefined {
  const caller = readEnv("INIT_CWD");
  if (caller === undefined || programDirectory.protocol !== "file:") {
    return undefined;
  }
  try {
    const here = Deno.realPathSync(Deno.cwd());
    const program = Deno.realPathSync(programDirectory);
    return here === program ? caller : undefined;
  } catch {
    return undefined;
  }
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // Not in --allow-env: treat as unset.
  }
}

/**
 * The real `CommandIo`: the console, `Deno.stdin` and `Deno.env`.
 *
 * @param program Which program is running, for {@link programName}.
 * @returns A `CommandIo` bound to this process.
 * @example Usage
 * ```ts ignore
 * const code = await runUserCommand(["list"], denoCommandIo("server"));
 * ```
 */
export function denoCommandIo(program: Program = "server"): CommandIo {
  return {
    stdout: (line) => console.log(line),
    stderr: (line) => console.error(line),
    get stdin() {
      return Deno.stdin.readable;
    },
    get stdinIsTerminal() {
      return Deno.stdin.isTerminal();
    },
    env: (name) => Deno.env.get(name),
    prompt: (text) => writeAllSync(Deno.stderr, encoder.encode(text)),
    setRaw: (raw) => Deno.stdin.setRaw(raw),
    program: programName(program),
  };
}

/**
 * The real `ClientIo`: the console, `Deno.stdin` and `Deno.env`.
 *
 * @returns A `ClientIo` bound to this process.
 */
export function denoClientIo(): ClientIo {
  return Object.assign(denoCommandIo("client"), {
    write: (text: string) => writeAllSync(Deno.stdout, encoder.encode(text)),
    writeBytes: (bytes: Uint8Array) => writeAllSync(Deno.stdout, bytes),
    stdoutIsTerminal: Deno.stdout.isTerminal(),
    columns: () => {
      try {
        return Deno.consoleSize().columns || Infinity;
      } catch {
        return Infinity; // Not a terminal.
      }
    },
  });
}

const encoder = new TextEncoder();

function writeAllSync(
  target: { writeSync(bytes: Uint8Array): number },
  bytes: Uint8Array,
): void {
  for (let offset = 0; offset < bytes.length;) {
    offset += target.writeSync(bytes.subarray(offset));
  }
}

/** Something bytes can be read from: a `Deno.FsFile` or a stream reader. */
export type ByteInput =
  | { read(buffer: Uint8Array): Promise<number | null> }
  | ReadableStreamDefaultReader<Uint8Array>;

/**
 * Reads up to the first LF, at most `maxBytes` bytes (then stops), and
 * strips the LF and a CR before it. The one first-line reader of the CLI.
 *
 * @param input A file, or a stream reader (left locked; release it after).
 * @param maxBytes The most bytes kept; a longer line is cut one byte past
 *   it, so the caller can tell it was too long.
 * @returns The line's bytes.
 */
export async function readFirstLine(
  input: ByteInput,
  maxBytes: number,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const keep = (chunk: Uint8Array) => {
    const newline = chunk.indexOf(0x0a);
    const part = newline === -1 ? chunk : chunk.subarray(0, newline);
    chunks.push(part.slice(0, maxBytes + 1 - length));
    length += chunks.at(-1)?.length ?? 0;
    return newline !== -1 || length > maxBytes;
  };
  if ("releaseLock" in input) {
    while (true) {
      const { done, value } = await input.read();
      if (done || keep(value)) break;
    }
  } else {
    const buffer = new Uint8Array(Math.min(maxBytes + 1, 64 * 1024));
    while (true) {
      const count = await input.read(buffer);
      if (count === null || keep(buffer.subarray(0, count))) break;
    }
  }
  const line = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    line.set(chunk, offset);
    offset += chunk.length;
  }
  return line.at(-1) === 0x0d && length <= maxBytes
    ? line.subarray(0, -1)
    : line;
}

/**
 * Installs signal listeners, skipping any signal this platform lacks
 * (Windows has no SIGHUP): the one way the commands listen to signals.
 *
 * @param listeners Each signal and what it does.
 * @returns A function that removes the listeners installed.
 */
export function listenToSignals(
  listeners: readonly (readonly [Deno.Signal, () => void])[],
): () => void {
  const added = listeners.filter(([signal, listener]) => {
    try {
      Deno.addSignalListener(signal, listener);
      return true;
    } catch {
      return false; // Not every signal exists on every platform.
    }
  });
  return () => {
    for (const [signal, listener] of added) {
      Deno.removeSignalListener(signal, listener);
    }
  };
}
