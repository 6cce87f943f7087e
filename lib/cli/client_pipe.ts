/**
 * Top layer (CLI): the client's pipe and `send` modes, for scripts. Each
 * line of stdin (pipe) or each argument (`send`) is one message; messages
 * are pipelined, at most {@link MAX_OUTSTANDING} unconfirmed at a time, and
 * each reply is printed on its own line in the order sent. Pushed messages
 * (chat from others) are printed as they arrive, in both modes.
 *
 * Nothing is lost silently: the mode returns only once every message was
 * confirmed; otherwise it throws the first failure, a `TimeoutError` when
 * the server confirms nothing for `replyTimeoutMs` while messages wait, or
 * a `ClosedError` if the server ended the connection while stdin was still
 * open. Output to a terminal is neutralised (`terminal_text.ts`); to a file
 * or pipe, reply bytes pass through unchanged.
 *
 * @module
 */

import { concatBytes } from "../wire/bytes.ts";
import type { Connection } from "../client/connection.ts";
import { TimeoutError } from "../errors.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../wire/protocol.ts";
import type { ClientIo } from "./command_io.ts";
import { endError, watchEnd } from "./client_end.ts";
import { neutralizeControls } from "./terminal_text.ts";

/** Most messages sent and not yet confirmed in pipe and `send` modes. */
export const MAX_OUTSTANDING = 256;

/** The default of `--reply-timeout`, in seconds. */
export const DEFAULT_REPLY_TIMEOUT_SECONDS = 30;

const decoder = new TextDecoder();
const LF = Uint8Array.of(0x0a);

/** Options of {@link runPipe} and {@link runSend}. */
export interface PipeOptions {
  /** Print JSON objects instead of plain lines. */
  json: boolean;
  /** Longest line accepted, in bytes. @default {1048576} */
  maxLineBytes?: number;
  /**
   * Longest wait for the next confirmation while messages are unconfirmed,
   * in ms. @default {30000}
   */
  replyTimeoutMs?: number;
}

/**
 * Sends each line of `io.stdin` and prints replies and pushed messages.
 *
 * @throws {ClosedError} If the server closes before stdin ended and every
 *   message was confirmed.
 * @throws {TimeoutError} If no confirmation comes for `replyTimeoutMs`.
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
  try {
    await sendAll(connection, io, { ...options, source: lines });
  } finally {
    lines.release();
  }
}

/**
 * Sends `messages` in order and prints each reply and pushed message.
 *
 * @throws {ClosedError} If the server closes before confirming them all.
 * @throws {TimeoutError} If no confirmation comes for `replyTimeoutMs`.
 */
export async function runSend(
  connection: Connection,
  io: ClientIo,
  options: PipeOptions & { messages: readonly string[] },
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
  await sendAll(connection, io, { ...options, source });
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
  options: PipeOptions & { source: MessageSource },
): Promise<void> {
  const { source, json } = options;
  let failure: Error | null = null;
  const fail = (error: unknown) => {
    failure ??= error instanceof Error ? error : new Error(String(error));
    source.cancel();
  };
  const output = printer(io, json);
  const watchdog = replyWatchdog(
    options.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_SECONDS * 1000,
    (error) => {
      fail(error);
      connection.abort(error);
    },
  );
  // The connection ending stops the wait for more input.
  const ended = watchEnd(connection, output.push);
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
      watchdog.sent();
      outstanding.push(
        connection.send(next)
          .then((reply) => output.reply(message, reply))
          .catch(fail)
          .finally(watchdog.confirmed),
      );
    }
  } catch (error) {
    fail(error);
  }
  await Promise.all(outstanding);
  watchdog.stop();
  await connection.close();
  await watching;
  if (failure !== null) throw failure;
  if (!complete) throw await endError(connection, ended);
}

/**
 * Fails the wait when `timeoutMs` pass without a confirmation while at
 * least one message is unconfirmed; each confirmation restarts the clock.
 */
function replyWatchdog(timeoutMs: number, onTimeout: (error: Error) => void) {
  let waiting = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = waiting > 0
      ? setTimeout(() => {
        onTimeout(
          new TimeoutError(
            `No confirmation from the server within ${timeoutMs / 1000} s ` +
              "(--reply-timeout)",
          ),
        );
      }, timeoutMs)
      : undefined;
  };
  return {
    sent: () => {
      if (waiting++ === 0) arm();
    },
    confirmed: () => {
      waiting--;
      arm();
    },
    stop: () => clearTimeout(timer),
  };
}

/** How replies and pushes are written: JSON, plain bytes, or neutralised. */
function printer(io: ClientIo, json: boolean) {
  const plain = (data: Uint8Array) => {
    if (io.writeBytes && !io.stdoutIsTerminal) {
      io.writeBytes(concatBytes(data, LF));
    } else {
      const text = decoder.decode(data);
      io.stdout(io.stdoutIsTerminal ? neutralizeControls(text) : text);
    }
  };
  return {
    push: (data: Uint8Array) => {
      if (json) io.stdout(JSON.stringify({ push: decoder.decode(data) }));
      else plain(data);
    },
    reply: (message: string, reply: Uint8Array | null) => {
      if (!json) {
        if (reply !== null) plain(reply);
      } else if (reply === null) {
        io.stdout(JSON.stringify({ message, confirmed: true }));
      } else {
        io.stdout(JSON.stringify({ message, reply: decoder.decode(reply) }));
      }
    },
  };
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
