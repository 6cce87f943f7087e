/**
 * Top layer (CLI): reads a password for `server.ts user add|passwd`, from
 * the first line of stdin (`--password-stdin`), `DOORMAN_PASSWORD`, or a
 * hidden prompt on the terminal, in that order.
 *
 * This file does not prepare (SASLprep) or hash the password, and never
 * echoes or logs it.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { type CommandIo, readFirstLine } from "./command_io.ts";

/** The longest password accepted, in UTF-8 bytes. */
export const MAX_PASSWORD_BYTES = 1024;

/** The environment variable holding a password for non-interactive use. */
export const PASSWORD_ENV = "DOORMAN_PASSWORD";

/** Options of `readPassword`. */
export interface ReadPasswordOptions {
  /** Read the first line of stdin (`--password-stdin`). */
  fromStdin: boolean;
  /** Ask twice at a terminal prompt; both entries must match. */
  confirm: boolean;
  /** The prompt text. @default "Password: " */
  prompt?: string;
}

/** Times the two entries of a new password may differ before giving up. */
export const MAX_CONFIRM_ATTEMPTS = 3;

/** The exit code after Ctrl-C at a prompt (128 + SIGINT), as shells use. */
export const INTERRUPTED_EXIT_CODE = 130;

/**
 * Ctrl-C at a password prompt: the program exits with
 * {@link INTERRUPTED_EXIT_CODE} and prints nothing more.
 */
export class PromptInterruptedError extends Error {
  /** Creates the error. */
  constructor() {
    super("Cannot read password: interrupted");
    this.name = "PromptInterruptedError";
  }
}

const ENTER = new Set([0x0a, 0x0d]);
const CTRL_C = 0x03;
const CTRL_D = 0x04;
const CTRL_U = 0x15;
const BACKSPACE = new Set([0x08, 0x7f]);

/**
 * Reads a password: `--password-stdin` → `DOORMAN_PASSWORD` → hidden prompt.
 *
 * @param io Where to read from and prompt.
 * @param options Where to read and whether to confirm.
 * @returns The password, never empty.
 * @throws {UsageError} If it is empty, too long, not UTF-8, the two prompt
 *   entries differ three times, or there is no source (stdin not a
 *   terminal).
 * @throws {PromptInterruptedError} On Ctrl-C at the prompt.
 * @throws {Error} On Ctrl-D at the start of an entry (cancelled).
 * @example Usage
 * ```ts ignore
 * const password = await readPassword(denoCommandIo(), {
 *   fromStdin: false,
 *   confirm: true,
 * });
 * ```
 */
export async function readPassword(
  io: CommandIo,
  options: ReadPasswordOptions,
): Promise<string> {
  let password: string;
  if (options.fromStdin) {
    password = await readStdinLine(io.stdin);
  } else if (io.env(PASSWORD_ENV) !== undefined) {
    password = io.env(PASSWORD_ENV) ?? "";
  } else if (io.stdinIsTerminal) {
    password = await promptTwice(io, options);
  } else {
    throw new UsageError(
      "Cannot read password: stdin is not a terminal; " +
        `use --password-stdin or ${PASSWORD_ENV}`,
    );
  }
  if (password === "") throw new UsageError("Cannot read password: empty");
  if (new TextEncoder().encode(password).length > MAX_PASSWORD_BYTES) {
    throw tooLong();
  }
  return password;
}

function tooLong(): UsageError {
  return new UsageError(
    `Cannot read password: longer than ${MAX_PASSWORD_BYTES} bytes`,
  );
}

async function readStdinLine(
  stdin: ReadableStream<Uint8Array>,
): Promise<string> {
  const reader = stdin.getReader();
  try {
    return decodePassword(
      Array.from(await readFirstLine(reader, MAX_PASSWORD_BYTES)),
    );
  } finally {
    reader.releaseLock();
  }
}

async function promptTwice(
  io: CommandIo,
  options: ReadPasswordOptions,
): Promise<string> {
  const source = new ByteSource(io.stdin);
  try {
    const text = options.prompt ?? "Password: ";
    for (let attempt = 1;; attempt++) {
      const password = await promptHidden(io, source, text);
      if (!options.confirm) return password;
      const again = await promptHidden(io, source, "Repeat password: ");
      if (again === password) return password;
      if (attempt >= MAX_CONFIRM_ATTEMPTS) {
        throw new UsageError("Cannot read password: the two entries differ");
      }
      io.stderr("The two entries differ; try again");
    }
  } finally {
    source.release();
  }
}

async function promptHidden(
  io: CommandIo,
  source: ByteSource,
  text: string,
): Promise<string> {
  io.setRaw?.(true); // before the prompt, so early keys are never echoed
  (io.prompt ?? io.stderr)(text);
  try {
    const bytes: number[] = [];
    for (;;) {
      const byte = await source.next();
      if (byte === CTRL_C) throw new PromptInterruptedError();
      if (byte === null || (byte === CTRL_D && bytes.length === 0)) {
        throw new Error("Cannot read password: cancelled");
      }
      if (ENTER.has(byte)) break;
      if (BACKSPACE.has(byte)) removeLastCharacter(bytes);
      else if (byte === CTRL_U) bytes.length = 0;
      else if (byte >= 0x20 && bytes.length <= MAX_PASSWORD_BYTES) {
        bytes.push(byte);
      }
    }
    return decodePassword(bytes);
  } finally {
    io.setRaw?.(false);
    io.stderr("");
  }
}

// Drops the last UTF-8 character: its continuation bytes, then its lead.
function removeLastCharacter(bytes: number[]): void {
  while (bytes.length > 0 && ((bytes.at(-1) ?? 0) & 0xc0) === 0x80) {
    bytes.pop();
  }
  bytes.pop();
}

function decodePassword(bytes: number[]): string {
  if (bytes.length > MAX_PASSWORD_BYTES) throw tooLong();
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(bytes),
    );
  } catch (error) {
    throw new UsageError("Cannot read password: not UTF-8", { cause: error });
  }
}

// One byte at a time from a stream, keeping the rest of each chunk, so the
// second prompt sees what was typed (or pasted) after the first Enter.
class ByteSource {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #offset = 0;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  async next(): Promise<number | null> {
    while (this.#offset >= this.#chunk.length) {
      const { done, value } = await this.#reader.read();
      if (done) return null;
      this.#chunk = value;
      this.#offset = 0;
    }
    return this.#chunk[this.#offset++];
  }

  release(): void {
    this.#reader.releaseLock();
  }
}
