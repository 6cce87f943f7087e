/**
 * The client core, after login: `Connection` carries messages over an open
 * Channel. It puts `message` records on the wire and reads `reply`, `ack` and
 * `push` records back. `send` resolves once the server confirmed the
 * message, `request` once it replied; messages the server pushes (chat from
 * others) arrive by async iteration. A connection that ends early rejects
 * every unconfirmed message, so nothing is lost silently.
 *
 * It does not dial, run the handshake or log in (`connect.ts` does), and it
 * does not parse flags or print: client.ts and lib/cli/ do.
 *
 * @module
 */

import { utf8 } from "../wire/bytes.ts";
import type { Channel, CloseInfo } from "../wire/channel.ts";
import { ClosedError, FrameTooLargeError, ProtocolError } from "../errors.ts";
import {
  encodeMessageId,
  errorForClose,
  FIRST_MESSAGE_ID,
  isCleanClose,
  nextMessageId,
  splitMessageId,
} from "../wire/messages.ts";
import { CloseCode, MESSAGE_ID_BYTES, RecordKind } from "../wire/protocol.ts";
import {
  answerLiveness,
  livenessVerdict,
  sendPing,
  unresponsiveReason,
} from "../wire/liveness.ts";

/** Pushed messages buffered before reading pauses for the consumer. */
const MAX_BUFFERED_PUSHES = 1024;

interface Pending {
  readonly id: number;
  readonly resolve: (reply: Uint8Array | null) => void;
  readonly reject: (error: Error) => void;
  /** The promise `send()` returned, for `close()` to wait on. */
  readonly confirmed: Promise<Uint8Array | null>;
}

/**
 * A client connection. The queue of unconfirmed messages and the buffer of
 * pushed ones span calls, hence a class. Create one with {@link connect};
 * not constructed directly.
 *
 * `send` and `request` resolve in order as the server confirms each
 * message; messages the server pushes arrive by async iteration. If the
 * connection ends early, every unconfirmed message is rejected.
 *
 * @example Usage
 * ```ts ignore
 * const conn = await connect({ port: 9000, psk, user: "bob", password });
 * const reply = await conn.request("hello");
 * console.log(new TextDecoder().decode(reply));
 * await conn.close();
 * ```
 */
export class Connection implements AsyncIterable<Uint8Array> {
  /** The logged-in user, or `null` without login. */
  readonly user: string | null;
  #channel: Channel;
  #maxMessageBytes: number;
  #nextId = FIRST_MESSAGE_ID;
  #pending: Pending[] = [];
  #pushes: Uint8Array[] = [];
  #wakeConsumer: (() => void) | null = null;
  #wakeReader: (() => void) | null = null;
  #end: { error: Error | null; info: CloseInfo | null } | null = null;
  #closing = false;
  #reading: Promise<void>;
  #pingIntervalMs: number;
  #heardAt = Date.now();
  #pingedAt = 0;
  #livenessTimer: ReturnType<typeof setInterval> | undefined;
  #closeSent = false;

  /**
   * Wraps an open, logged-in channel. Created by `connect()`; not
   * constructed directly.
   *
   * @param channel The encrypted record channel to the server.
   * @param options The logged-in user, the message size limit and the
   *   ping interval (0 or absent: no pings).
   */
  constructor(
    channel: Channel,
    options: {
      user: string | null;
      maxMessageBytes: number;
      pingIntervalMs?: number;
    },
  ) {
    this.#channel = channel;
    this.user = options.user;
    this.#maxMessageBytes = options.maxMessageBytes;
    this.#pingIntervalMs = options.pingIntervalMs ?? 0;
    if (this.#pingIntervalMs > 0) {
      const every = Math.max(10, Math.min(5000, this.#pingIntervalMs / 4));
      this.#livenessTimer = setInterval(() => this.#checkLiveness(), every);
    }
    this.#reading = this.#readLoop();
  }

  /**
   * Resolves when the connection has ended, with the server's close.
   *
   * @returns A promise of the server's close code and reason, or `null` if
   *   the connection ended without one (cut, or failed); never rejects.
   */
  get closed(): Promise<CloseInfo | null> {
    return this.#reading.then(() => this.#end?.info ?? null);
  }

  /**
   * Sends one message. Messages are confirmed in the order sent; several
   * may be in flight at once.
   *
   * @param message The message, as text (sent as UTF-8) or bytes.
   * @returns Once the server confirmed it: its reply, or `null` when the
   *   service only acknowledges.
   * @throws {ClosedError} If the connection ends before the confirmation.
   * @throws {LoginRejectedError} If the server closed it for a failed or
   *   missing login.
   * @throws {RangeError} If the message exceeds `maxMessageBytes`.
   * @example Usage
   * ```ts ignore
   * await Promise.all(["one", "two", "three"].map((m) => conn.send(m)));
   * ```
   */
  send(message: string | Uint8Array): Promise<Uint8Array | null> {
    const data = typeof message === "string" ? utf8(message) : message;
    if (data.length > this.#maxMessageBytes) {
      return Promise.reject(
        new RangeError(
          `Cannot send message: ${data.length} bytes exceeds ${this.#maxMessageBytes}`,
        ),
      );
    }
    if (this.#end || this.#closing) {
      return Promise.reject(
        this.#end?.error ?? new ClosedError("Cannot send: connection closed"),
      );
    }
    const id = this.#nextId;
    this.#nextId = nextMessageId(id);
    const { promise, resolve, reject } = Promise.withResolvers<
      Uint8Array | null
    >();
    this.#pending.push({ id, resolve, reject, confirmed: promise });
    try {
      this.#channel.send(RecordKind.message, encodeMessageId(id), data);
    } catch (error) {
      this.#stop(asError(error), null);
    }
    return promise;
  }

  /**
   * Sends one message and returns the server's reply.
   *
   * @param message The message, as text (sent as UTF-8) or bytes.
   * @returns The reply bytes.
   * @throws {ProtocolError} If the server only acknowledged it.
   * @throws {ClosedError} If the connection ends first.
   * @throws {RangeError} If the message exceeds `maxMessageBytes`.
   * @example Usage
   * ```ts ignore
   * const reply = await conn.request("hello");
   * console.log(new TextDecoder().decode(reply));
   * ```
   */
  async request(message: string | Uint8Array): Promise<Uint8Array> {
    const reply = await this.send(message);
    if (reply === null) {
      throw new ProtocolError(
        "Server acknowledged the request without a reply",
      );
    }
    return reply;
  }

  /**
   * Messages pushed by the server (chat from others, notices), until the
   * connection ends.
   *
   * @returns An iterator of the pushed messages' bytes.
   * @throws {ClosedError} If the connection ends other than by a normal or
   *   shutdown close, and `close()` was not called.
   * @throws {ProtocolError} If the server breaks the protocol.
   * @example Usage
   * ```ts ignore
   * for await (const push of conn) console.log(new TextDecoder().decode(push));
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    while (true) {
      const next = this.#pushes.shift();
      if (next) {
        this.#wakeReader?.();
        yield next;
        continue;
      }
      if (this.#end) {
        if (this.#end.error && !this.#closing) throw this.#end.error;
        return;
      }
      await new Promise<void>((resolve) => this.#wakeConsumer = resolve);
    }
  }

  /**
   * Waits for every sent message to be confirmed (or to fail), then closes
   * with an authenticated close.
   *
   * @returns A promise that resolves once the connection is closed.
   * @example Usage
   * ```ts ignore
   * conn.send("last words");
   * await conn.close(); // after "last words" is confirmed
   * ```
   */
  async close(): Promise<void> {
    if (this.#closing) return await this.#reading;
    await Promise.allSettled(this.#pending.map((pending) => pending.confirmed));
    this.#closing = true;
    if (!this.#end) {
      await this.#channel.close(CloseCode.normal, "client closed");
    }
    await this.#reading;
  }

  /**
   * Ends the connection at once, without waiting and without a close
   * record (the server sees the connection cut): every message not yet
   * confirmed fails with `error`.
   *
   * @param error Why, e.g. a `TimeoutError` when the server went silent.
   * @example Usage
   * ```ts ignore
   * conn.abort(new TimeoutError("No confirmation within 30 s"));
   * ```
   */
  abort(error: Error): void {
    this.#stop(error, null);
  }

  async #readLoop(): Promise<void> {
    try {
      while (true) {
        while (this.#pushes.length >= MAX_BUFFERED_PUSHES) {
          await new Promise<void>((resolve) => this.#wakeReader = resolve);
        }
        const record = await this.#channel.receive();
        this.#heardAt = Date.now();
        if (record === null) {
          this.#stop(null, this.#channel.closeInfo);
          return;
        }
        if (answerLiveness(this.#channel, record)) continue;
        this.#dispatch(record.kind, record.body);
      }
    } catch (error) {
      this.#stop(this.#closing ? null : asError(error), null);
    }
  }

  #dispatch(kind: number, body: Uint8Array): void {
    // A batch record may hold a message the record limit alone would not
    // stop (docs/PROTOCOL.md), so the size is checked here.
    const dataBytes = kind === RecordKind.push
      ? body.length
      : body.length - MESSAGE_ID_BYTES;
    if (dataBytes > this.#maxMessageBytes) {
      throw new FrameTooLargeError(
        `Cannot read message: ${dataBytes} bytes exceeds ${this.#maxMessageBytes}`,
      );
    }
    if (kind === RecordKind.push) {
      this.#pushes.push(body);
      this.#wakeConsumer?.();
      return;
    }
    if (kind !== RecordKind.reply && kind !== RecordKind.ack) {
      throw new ProtocolError(`Unexpected record kind ${kind}`);
    }
    const { id, data } = splitMessageId(body, "Confirmation");
    const head = this.#pending[0];
    if (!head || head.id !== id) {
      throw new ProtocolError(`Confirmation for unexpected message id ${id}`);
    }
    this.#pending.shift();
    head.resolve(kind === RecordKind.reply ? data : null);
  }

  /** Pings a quiet server; closes with code 11 one silent for 3 intervals. */
  #checkLiveness(): void {
    if (this.#end) return;
    const now = Date.now();
    // Reading waits for our own consumer: the server is not to blame.
    if (this.#pushes.length >= MAX_BUFFERED_PUSHES) this.#heardAt = now;
    const clock = { heardAt: this.#heardAt, pingedAt: this.#pingedAt };
    const verdict = livenessVerdict(clock, {
      now,
      intervalMs: this.#pingIntervalMs,
    });
    if (verdict === "unresponsive") {
      const reason = unresponsiveReason(this.#pingIntervalMs);
      this.#closeSent = true;
      void this.#channel.close(CloseCode.peerUnresponsive, reason, {
        signal: AbortSignal.timeout(1000),
      });
      this.#stop(new ClosedError(`Server unresponsive: ${reason}`), null);
    } else if (verdict === "ping") {
      this.#pingedAt = now;
      try {
        sendPing(this.#channel, now);
      } catch (error) {
        this.#stop(asError(error), null);
      }
    }
  }

  /** Ends the connection: fails what is unconfirmed, wakes the consumer. */
  #stop(error: Error | null, info: CloseInfo | null): void {
    if (this.#end) return;
    clearInterval(this.#livenessTimer);
    const failure = error ?? errorForClose(info);
    this.#end = { error: isCleanClose(info) ? null : failure, info };
    for (const pending of this.#pending.splice(0)) pending.reject(failure);
    if (!this.#closeSent) this.#channel.abort();
    this.#wakeConsumer?.();
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
