/**
 * Top layer (CLI): the client's pipe and `send` modes, for scripts. Each
 * line of stdin (pipe) or each argument (`send`) is one message; messages
 * are pipelined, at most {@link MAX_OUTSTANDING} unconfirmed at a time, and
 * each reply is printed on its own line in the order sent. Pushed messages
 * are printed as they arrive (pipe mode) or dropped (`send`).
 *
 * Nothing is lost silently: the mode returns only once every message was
 * confirmed; otherwise it throws the first failure, or a `ClosedError` if
 * the server ended the connection while stdin was still open.
 *
 * Also `ClientIo`, the console of every client mode, and the end-of-
 * connection helpers the interactive mode shares.
 *
 * @module
 */

import { concatBytes } from "../wire/bytes.ts";
import type { Connection } from "../client/connection.ts";
import { errorForClose } from "../wire/messages.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../wire/protocol.ts";
import { type CommandIo, denoCommandIo } from "./command_io.ts";

/** What the client reads from and writes to: `CommandIo` plus raw output. */
export interface ClientIo extends CommandIo {
  /** Writes `text` to stdout as is, without a newline (the prompt line). */
  write(text: string): void;
}

/**
 * The real `ClientIo`: the console, `Deno.stdin` and `Deno.env`.
 *
 * @returns A `ClientIo` bound to this process.
 */
export function denoClientIo(): ClientIo {
  const encoder = new TextEncoder();
  return Object.assign(denoCommandIo(), {
    write(text: string) {
      const bytes = encoder.encode(text);
      for (let offset = 0; offset < bytes.length;) {
        offset += Deno.stdout.writeSync(bytes.subarray(offset));
      }
    },
  });
}

/** Most messages sent and not yet confirmed in pipe and `send` modes. */
export const MAX_OUTSTANDING = 256;

const decoder = new TextDecoder();

/** Options of {@link runPipe}. */
export interface PipeOptions {
  /** Print JSON objects instead of plain lines. */
  json: boolean;
  /** Longest line accepted, in bytes. @default {1048576} */
  maxLineBytes?: number;
}

/**
 * Sends each line of `io.stdin` and prints replies and pushed messages.
 *
 * @throws {ClosedError} If the server closes before stdin ended and every
 *   message was confirmed.
 * @throws {Error} If a line is longer than `maxLineBytes`.
 */
export async function runPipe(
  connection: Connection,
  io: ClientIo,
  options: PipeOptions,
): Promise<void> {
  const lines = new LineReader(
    io.stdin,
    options.maxLineBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
  );
  const print = (data: Uint8Array) => {
    const push = decoder.decode(data);
    io.stdout(options.json ? JSON.stringify({ push }) : push);
  };
  try {
    await sendAll(connection, io, { source: lines, json: options.json, print });
  } finally {
    lines.release();
  }
}

/**
 * Sends `messages` in order and prints each reply.
 *
 * @throws {ClosedError} If the server closes before confirming them all.
 */
export async function runSend(
  connection: Connection,
  io: ClientIo,
  options: { messages: readonly string[]; json: boolean },
): Promise<void> {
  const encoder = new TextEncoder();
  let index = 0;
  let cancelled = false;
  const source: MessageSource = {
    next: () => {
      if (cancelled) return Promise.resolve(CANCELLED);
      const message = options.messages[index++];
      return Promise.resolve(
        message === undefined ? null : encoder.encode(message),
      );
    },
    cancel: () => cancelled = true,
  };
  await sendAll(connection, io, { source, json: options.json, print: null });
}

/** Returned by `MessageSource.next()` after `cancel()`. */
const CANCELLED = Symbol("cancelled");

/** Messages one at a time; `null` at the end. */
interface MessageSource {
  next(): Promise<Uint8Array | null | typeof CANCELLED>;
  /** Makes a pending and every later `next()` give `CANCELLED`. */
  cancel(): void;
}

async function sendAll(
  connection: Connection,
  io: ClientIo,
  options: {
    source: MessageSource;
    json: boolean;
    print: ((push: Uint8Array) => void) | null;
  },
): Promise<void> {
  const { source, json } = options;
  let failure: Error | null = null;
  const fail = (error: unknown) => {
    failure ??= error instanceof Error ? error : new Error(String(error));
    source.cancel();
  };
  // The connection ending stops the wait for more input.
  const ended = watchEnd(connection, options.print);
  const watching = ended.then(() => source.cancel());
  const outstanding: Promise<void>[] = [];
  let complete = false;
  try {
    while (failure === null) {
      const next = await source.next();
      if (next === CANCELLED) break;
      if (next === null) {
        complete = true;
        break;
      }
      while (outstanding.length >= MAX_OUTSTANDING) await outstanding.shift();
      const message = json ? decoder.decode(next) : "";
      outstanding.push(
        connection.send(next)
          .then((reply) => printReply(io, { message, reply, json }))
          .catch(fail),
      );
    }
  } catch (error) {
    fail(error);
  }
  await Promise.all(outstanding);
  await connection.close();
  await watching;
  if (failure !== null) throw failure;
  if (!complete) throw await endError(connection, ended);
}

function printReply(
  io: ClientIo,
  result: { message: string; reply: Uint8Array | null; json: boolean },
): void {
  const { message, reply, json } = result;
  if (!json) {
    if (reply !== null) io.stdout(decoder.decode(reply));
  } else if (reply === null) {
    io.stdout(JSON.stringify({ message, confirmed: true }));
  } else {
    io.stdout(JSON.stringify({ message, reply: decoder.decode(reply) }));
  }
}

/**
 * Drains pushed messages (printing them, or dropping them when `print` is
 * `null`, so a chatty room never stalls the confirmations) until the
 * connection ends.
 *
 * @returns The connection's error, or `null` if it ended cleanly.
 */
export async function watchEnd(
  connection: Connection,
  print: ((push: Uint8Array) => void) | null,
): Promise<Error | null> {
  try {
    for await (const push of connection) print?.(push);
    return null;
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** Why the connection ended while the user still had more to send. */
export async function endError(
  connection: Connection,
  ended: Promise<Error | null>,
): Promise<Error> {
  const error = await ended;
  if (error) return error;
  return errorForClose(await connection.closed);
}

/** Lines of a byte stream, split on LF with a final CR stripped. */
class LineReader implements MessageSource {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #maxBytes: number;
  #buffer: Uint8Array = new Uint8Array(0);
  #searched = 0;
  #done = false;
  #cancelled = false;
  #lineNumber = 0;

  constructor(stream: ReadableStream<Uint8Array>, maxBytes: number) {
    this.#reader = stream.getReader();
    this.#maxBytes = maxBytes;
  }

  async next(): Promise<Uint8Array | null | typeof CANCELLED> {
    while (true) {
      if (this.#cancelled) return CANCELLED;
      const newline = this.#buffer.indexOf(0x0a, this.#searched);
      if (newline !== -1) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.subarray(newline + 1);
        this.#searched = 0;
        return this.#finish(line);
      }
      this.#searched = this.#buffer.length;
      if (this.#buffer.length > this.#maxBytes + 1) {
        throw new RangeError(
          `Cannot send line ${this.#lineNumber + 1}: longer than ` +
            `${this.#maxBytes} bytes`,
        );
      }
      if (this.#done) {
        if (this.#buffer.length === 0) return null;
        const line = this.#buffer.slice();
        this.#buffer = new Uint8Array(0);
        return this.#finish(line);
      }
      const { done, value } = await this.#reader.read();
      if (done) this.#done = true;
      else this.#buffer = concatBytes(this.#buffer, value);
    }
  }

  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    // A pending read then resolves as done.
    this.#reader.cancel().catch(() => {});
  }

  /** Cancels, and lets go of the stream. */
  release(): void {
    this.cancel();
    this.#reader.releaseLock();
  }

  #finish(line: Uint8Array): Uint8Array {
    this.#lineNumber++;
    const end = line.at(-1) === 0x0d ? line.length - 1 : line.length;
    if (end > this.#maxBytes) {
      throw new RangeError(
        `Cannot send line ${this.#lineNumber}: longer than ` +
          `${this.#maxBytes} bytes`,
      );
    }
    return line.subarray(0, end);
  }
}
