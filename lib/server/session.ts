/**
 * Layer 5, messages on the server: one logged-in client as the handler sees
 * it. Incoming `message` records become {@link IncomingMessage}s; each one is
 * confirmed in order, by its `reply` or, once the handler moves on without
 * replying, by an `ack`. `push` sends a `push` record to the client through
 * a bounded queue: a client that falls too far behind is closed with a reason
 * instead of growing the server's memory. It does not log or count: the
 * server core does.
 *
 * @module
 */

import { utf8 } from "../wire/bytes.ts";
import type { Channel, ChannelRecord } from "../wire/channel.ts";
import { FrameTooLargeError, ProtocolError } from "../errors.ts";
import {
  closeForError,
  encodeMessageId,
  FIRST_MESSAGE_ID,
  nextMessageId,
  splitMessageId,
} from "../wire/messages.ts";
import {
  CloseCode,
  type CloseCodeValue,
  RecordKind,
} from "../wire/protocol.ts";
import {
  answerLiveness,
  livenessVerdict,
  sendPing,
  unresponsiveReason,
} from "../wire/liveness.ts";

/**
 * One message from the client, handed to the handler by iterating a
 * {@link Session}.
 *
 * Each message is confirmed to the client exactly once: by `reply`, or by
 * an automatic acknowledgement when the handler asks for the next message
 * (or returns) without replying.
 *
 * @example Usage
 * ```ts ignore
 * for await (const message of session) {
 *   if (message.text() === "ping") message.reply("pong");
 * }
 * ```
 */
export interface IncomingMessage {
  /** The message id, increasing from 1. */
  readonly id: number;
  /** The message bytes. */
  readonly data: Uint8Array;
  /**
   * The message as UTF-8 text (replacement characters for bad bytes).
   *
   * @returns The decoded text.
   */
  text(): string;
  /**
   * Answers this message; the answer also confirms it. At most once, and
   * only while it is the current message.
   *
   * @param answer The reply, as text (sent as UTF-8) or bytes.
   * @throws {Error} If the message was already confirmed: replied to, or
   *   acknowledged because the handler moved on to the next one.
   */
  reply(answer: string | Uint8Array): void;
}

/**
 * How a session ended: the close code and reason sent to (or received from)
 * the client, and the error when the connection failed.
 *
 * @example Usage
 * ```ts ignore
 * await session.closed;
 * if (session.end?.code === CloseCode.tooSlow) console.log(session.end.reason);
 * ```
 */
export interface SessionEnd {
  /** Why the session closed, one of {@link CloseCode}. */
  readonly code: CloseCodeValue;
  /** The close reason, in a few words. */
  readonly reason: string;
  /** Set when the connection failed rather than closed. */
  readonly error?: Error;
}

/** Options of {@link Session.close}. */
export interface SessionCloseOptions {
  /**
   * End now, without waiting for the message in hand to be answered (it is
   * not confirmed); a close record is still sent if the connection works.
   *
   * @default {false}
   */
  immediately?: boolean;
}

/** Options of a {@link Session}. */
export interface SessionOptions {
  /** Connection id, for logs. */
  id: number;
  /** Id of the key the client authenticated with (ring entry). */
  keyId?: string;
  /** The logged-in user, or `null` on a server without users. */
  user: string | null;
  /** The client's address. */
  remoteAddr: Deno.NetAddr;
  /** Queued outgoing bytes past which the client is closed as too slow. */
  maxQueueBytes: number;
  /** Largest message accepted, for the close reason. */
  maxMessageBytes: number;
}

let settle: (session: Session) => Promise<void>;
let nextMessage: (
  session: Session,
) => Promise<IteratorResult<IncomingMessage>>;
let replyTo: (
  session: Session,
  message: Message,
  answer: string | Uint8Array,
) => void;

/**
 * What the server does once a session's handler has returned: confirms the
 * message in hand and closes (normally, or with the close the handler
 * asked for). Not a method, so that a handler sees one way to end a
 * session: {@link Session.close}.
 *
 * @param session The session whose handler returned.
 * @returns A promise that resolves once the connection is closed.
 */
export function settleSession(session: Session): Promise<void> {
  return settle(session);
}

/** When this module loaded: sessions keep times relative to it. */
const CLOCK_START = Date.now();
/** Milliseconds since {@link CLOCK_START}. */
function clock(): number {
  return Date.now() - CLOCK_START;
}

/** Outgoing bytes past which reading waits for the client to catch up. */
const READ_PAUSE_BYTES = 256 * 1024;
const decoder = new TextDecoder();

/**
 * One authenticated client, as a {@link SessionHandler} sees it. Its queue
 * and the message being handled span calls, hence a class.
 *
 * Iterate it for the client's messages (each confirmed in order), `push` to
 * send messages the client did not ask for, and `close` to end it. The connection closes
 * once the handler returns. Created by `serve()`; not constructed directly.
 *
 * @example Usage
 * ```ts ignore
 * const server = serve({ psk }, async (session) => {
 *   session.push(`hello ${session.user ?? "guest"}`);
 *   for await (const message of session) message.reply(message.data);
 * });
 * ```
 */
export class Session implements AsyncIterable<IncomingMessage> {
  /** Connection id, unique within the server. */
  readonly id: number;
  /** The logged-in user name, or `null` on a server without users. */
  readonly user: string | null;
  /** The client's address. */
  readonly remoteAddr: Deno.NetAddr;
  /** Id of the key the client authenticated with (`default` for a bare key). */
  readonly keyId?: string;
  #channel: Channel;
  #maxQueueBytes: number;
  #maxMessageBytes: number;
  // The message in hand, and whether it was replied to or acknowledged.
  #current: Message | null = null;
  #currentConfirmed = false;
  #nextId = FIRST_MESSAGE_ID;
  #end: SessionEnd | null = null;
  #closing: { code: CloseCodeValue; reason: string } | null = null;
  #receiving = false;
  // The read in progress, if any: a second next() waits for it.
  #reading: Promise<IteratorResult<IncomingMessage>> | null = null;
  // Milliseconds since CLOCK_START, not since 1970: small integers stay
  // in the object, where Date.now() values are boxed (bench: idle memory).
  #lastActivity = clock();
  #heardAt = this.#lastActivity;
  #pingedAt = 0; // a Date.now() timestamp; 0 until the first ping
  // Made on first use: idle read path (framing.ts).
  #closed: PromiseWithResolvers<void> | null = null;
  #isClosed = false;

  /**
   * Wraps an open, logged-in channel. Created by `serve()` for each client;
   * not constructed directly.
   *
   * @param channel The client's encrypted record channel.
   * @param options The connection id, user, address and queue limits.
   */
  constructor(channel: Channel, options: SessionOptions) {
    this.#channel = channel;
    this.#maxQueueBytes = options.maxQueueBytes;
    this.#maxMessageBytes = options.maxMessageBytes;
    this.id = options.id;
    this.user = options.user;
    this.remoteAddr = options.remoteAddr;
    this.keyId = options.keyId;
  }

  /**
   * Milliseconds since the epoch of the last message, either way (a
   * message, reply, acknowledgement or push; not a ping).
   *
   * @returns A `Date.now()` timestamp.
   */
  get lastActivity(): number {
    return CLOCK_START + this.#lastActivity;
  }

  /**
   * Called by the server's sweeper with the time and the ping interval:
   * pings a client silent for an interval, and closes one silent for 3
   * with code 11 (`peerUnresponsive`). While the session is not reading
   * (the handler holds a message or does not iterate) it does neither.
   *
   * @param now `Date.now()`.
   * @param intervalMs The ping interval; 0 does nothing.
   */
  checkLiveness(now: number, intervalMs: number): void {
    if (this.#end) return;
    // Not reading (the handler holds a message, or never iterates): the
    // client cannot be heard, so it is not judged.
    if (!this.#receiving) this.#heardAt = now - CLOCK_START;
    const heardAt = CLOCK_START + this.#heardAt;
    if (now - heardAt < intervalMs) return; // the common case, no garbage
    const times = { heardAt, pingedAt: this.#pingedAt };
    const verdict = livenessVerdict(times, { now, intervalMs });
    if (verdict === "unresponsive") {
      this.#finish(CloseCode.peerUnresponsive, unresponsiveReason(intervalMs));
    } else if (verdict === "ping" && !this.#closing) {
      this.#pingedAt = now;
      try {
        sendPing(this.#channel, now);
      } catch (error) {
        this.#fail(error);
      }
    }
  }

  /**
   * Outgoing bytes queued and not yet written (the server's global queue
   * budget and the metrics read it).
   *
   * @returns A byte count.
   */
  get queuedBytes(): number {
    return this.#channel.queuedBytes;
  }

  /**
   * How the session ended, once it has.
   *
   * @returns The close code, reason and error, or `null` while it is open.
   */
  get end(): SessionEnd | null {
    return this.#end;
  }

  /**
   * Resolves once the connection is closed; never rejects (see
   * {@link Session.end} for why it closed).
   *
   * @returns A promise of the close.
   */
  get closed(): Promise<void> {
    return this.#closedPromise();
  }

  /**
   * Pushes a message to the client (a chat line, a notice). It is queued,
   * not awaited; a client whose queue exceeds `maxQueueBytes` is closed as
   * too slow.
   *
   * @param message The message, as text (sent as UTF-8) or bytes.
   * @returns `false` if the session is closed, or was just closed because the
   *   client fell too far behind.
   * @example Usage
   * ```ts ignore
   * if (!session.push("server restarting in 5 minutes")) return;
   * ```
   */
  push(message: string | Uint8Array): boolean {
    if (this.#end || this.#closing) return false;
    const data = typeof message === "string" ? utf8(message) : message;
    return this.#enqueue(RecordKind.push, data);
  }

  /**
   * Ends the session, the one way to: the message being handled may still
   * be answered (unless `options.immediately`), then a close record with
   * `code` and `reason` is sent and the connection closed. The arguments
   * come in the order of `Channel.close`. Calling it again does nothing.
   *
   * @param code The close code, one of {@link CloseCode}.
   * @param reason The reason the client is told.
   * @param options `immediately` to end without waiting for the message in
   *   hand (it is then not confirmed).
   * @returns A promise that resolves once the connection is closed.
   * @example Usage
   * ```ts ignore
   * message.reply("bye");
   * await session.close(CloseCode.normal, "logged out");
   * ```
   */
  close(
    code: CloseCodeValue = CloseCode.normal,
    reason = "closed by server",
    options: SessionCloseOptions = {},
  ): Promise<void> {
    if (options.immediately) {
      this.#finish(code, reason);
    } else if (!this.#end && !this.#closing) {
      this.#closing = { code, reason };
      // Not inside a message: nothing to wait for.
      if (this.#receiving || !this.#current || this.#currentConfirmed) {
        this.#finish(code, reason);
      }
    }
    return this.#closedPromise();
  }

  static {
    settle = (session) => session.#settle();
  }

  #settle(): Promise<void> {
    this.#confirmCurrent();
    const closing = this.#closing ?? {
      code: CloseCode.normal,
      reason: "session ended by server",
    };
    this.#finish(closing.code, closing.reason);
    return this.#closedPromise();
  }

  /**
   * The client's messages, in order, until it closes or the session ends.
   * Asking for the next message confirms the previous one if it was not
   * replied to. A connection failure ends the iteration (see
   * {@link Session.end}); it does not throw.
   *
   * @returns An iterator of the client's messages.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<IncomingMessage> {
    return new MessageIterator(this);
  }

  static {
    nextMessage = (session) => session.#next();
  }

  /**
   * The next message, as an iterator result. A promise chain, not an async
   * generator: idle read path (framing.ts). Called again before it settled,
   * it waits for the read in progress, as a generator would.
   */
  #next(): Promise<IteratorResult<IncomingMessage>> {
    if (this.#reading) {
      const next = () => this.#next();
      return this.#reading.then(next, next);
    }
    const ready = this.#beforeReceive();
    if (ready !== true) return ready;
    return this.#reading = this.#receive();
  }

  /**
   * Confirms the message in hand and checks that the session may read on.
   *
   * @returns `true` to read now, or what {@link #next} resolves with.
   */
  #beforeReceive(): true | Promise<IteratorResult<IncomingMessage>> {
    this.#confirmCurrent();
    if (this.#closing) this.#finish(this.#closing.code, this.#closing.reason);
    if (this.#end) return Promise.resolve(this.#result(null));
    if (this.#channel.queuedBytes > READ_PAUSE_BYTES) {
      // A client not reading: wait for it before reading more.
      return this.#reading = this.#channel.flushed().catch(() => {}).then(
        () => this.#end ? this.#result(null) : this.#receive(),
      );
    }
    return true;
  }

  #receive(): Promise<IteratorResult<IncomingMessage>> {
    this.#receiving = true;
    return this.#channel.receive().then(
      (record) => this.#afterReceive(record) ?? this.#readPastLiveness(),
      (error) => this.#receiveFailed(error),
    );
  }

  /**
   * What a record read means: a message, the end (`done`), or `null` after
   * a ping or pong (answered): read again.
   */
  #afterReceive(
    record: ChannelRecord | null,
  ): IteratorResult<IncomingMessage> | null {
    this.#receiving = false;
    try {
      this.#heardAt = clock();
      if (record !== null && answerLiveness(this.#channel, record)) {
        return null;
      }
      if (record === null) {
        const info = this.#channel.closeInfo;
        this.#finish(CloseCode.normal, info?.reason || "client closed");
        return this.#result(null);
      }
      if (record.kind !== RecordKind.message) {
        throw new ProtocolError(`Unexpected record kind ${record.kind}`);
      }
      this.#lastActivity = this.#heardAt;
      return this.#result(this.#accept(record.body));
    } catch (error) {
      return this.#receiveFailed(error);
    }
  }

  #receiveFailed(error: unknown): IteratorResult<IncomingMessage> {
    this.#receiving = false;
    if (!this.#end) this.#fail(error);
    return this.#result(null);
  }

  /** A read's outcome: the message, or done once `null`. */
  #result(message: IncomingMessage | null): IteratorResult<IncomingMessage> {
    this.#reading = null;
    return message ? { value: message, done: false } : doneResult();
  }

  /**
   * Reads on after a ping or pong until a message or the end, in a loop of
   * its own: returning `#next()` from the read's callback instead would
   * link one more promise per ping to an idle connection's chain.
   */
  #readPastLiveness(): Promise<IteratorResult<IncomingMessage>> {
    return new Promise((resolve) => {
      const loop = (): void => {
        const ready = this.#beforeReceive();
        if (ready !== true) {
          ready.then(resolve);
          return;
        }
        this.#receiving = true;
        this.#channel.receive().then((record) => {
          const result = this.#afterReceive(record);
          if (result === null) loop();
          else resolve(result);
        }, (error) => resolve(this.#receiveFailed(error)));
      };
      loop();
    });
  }

  #accept(body: Uint8Array): IncomingMessage {
    const { id, data } = splitMessageId(body, "Message");
    if (id !== this.#nextId) {
      throw new ProtocolError(`Message id ${id} out of order`);
    }
    this.#nextId = nextMessageId(id);
    const message = new Message(this, id, data);
    this.#current = message;
    this.#currentConfirmed = false;
    // The record limit never goes below a batch record's size, so a small
    // maxMessageBytes is held here (docs/PROTOCOL.md).
    if (data.length > this.#maxMessageBytes) {
      throw new FrameTooLargeError(
        `Message of ${data.length} bytes exceeds ${this.#maxMessageBytes}`,
      );
    }
    return message;
  }

  static {
    replyTo = (session, message, answer) => {
      if (session.#current !== message || session.#currentConfirmed) {
        throw new Error("Cannot reply: message already confirmed");
      }
      session.#currentConfirmed = true;
      const bytes = typeof answer === "string" ? utf8(answer) : answer;
      session.#enqueue(RecordKind.reply, encodeMessageId(message.id), bytes);
    };
  }

  #confirmCurrent(): void {
    const current = this.#current;
    if (!current) return;
    this.#current = null;
    if (!this.#currentConfirmed && !this.#end) {
      this.#currentConfirmed = true;
      this.#enqueue(RecordKind.ack, encodeMessageId(current.id));
    }
  }

  #enqueue(kind: number, ...parts: Uint8Array[]): boolean {
    if (this.#end) return false;
    let size = 0;
    for (const part of parts) size += part.length;
    if (this.#channel.queuedBytes + size > this.#maxQueueBytes) {
      this.#finish(
        CloseCode.tooSlow,
        `client too slow: more than ${this.#maxQueueBytes} bytes queued`,
      );
      return false;
    }
    try {
      this.#channel.send(kind, ...parts);
      this.#lastActivity = clock();
      return true;
    } catch (error) {
      this.#fail(error);
      return false;
    }
  }

  #fail(error: unknown): void {
    const failure = error instanceof Error ? error : new Error(String(error));
    const close = closeForError(failure, {
      maxMessageBytes: this.#maxMessageBytes,
    });
    if (close) {
      this.#finish(close.code, close.reason, failure);
    } else {
      this.#end = {
        code: CloseCode.normal,
        reason: failure.message,
        error: failure,
      };
      this.#channel.abort();
      this.#markClosed();
    }
  }

  /** Sends the close record (if the connection still works) and closes. */
  #finish(code: CloseCodeValue, reason: string, error?: Error): void {
    if (this.#end) return;
    this.#end = error ? { code, reason, error } : { code, reason };
    this.#channel.close(code, reason).finally(() => this.#markClosed());
  }

  #closedPromise(): Promise<void> {
    if (this.#isClosed) return Promise.resolve();
    this.#closed ??= Promise.withResolvers<void>();
    return this.#closed.promise;
  }

  #markClosed(): void {
    this.#isClosed = true;
    this.#closed?.resolve();
  }
}

/**
 * One message handed to the handler. A class, not an object of closures:
 * the handler may hold its last message while its connection is idle
 * (bench: idle memory).
 */
class Message implements IncomingMessage {
  readonly id: number;
  readonly data: Uint8Array;
  #session: Session;

  constructor(session: Session, id: number, data: Uint8Array) {
    this.#session = session;
    this.id = id;
    this.data = data;
  }

  text(): string {
    return decoder.decode(this.data);
  }

  reply(answer: string | Uint8Array): void {
    replyTo(this.#session, this, answer);
  }
}

/**
 * What `for await` iterates over a session: each `next()` is the session's
 * promise chain, so no async generator frame waits on an idle connection
 * (idle read path, framing.ts). Like a generator it stays done once
 * returned.
 */
class MessageIterator implements AsyncIterableIterator<IncomingMessage> {
  #session: Session | null;

  constructor(session: Session) {
    this.#session = session;
  }

  next(): Promise<IteratorResult<IncomingMessage>> {
    const session = this.#session;
    if (!session) return Promise.resolve(doneResult());
    try {
      return nextMessage(session);
    } catch (error) {
      this.#session = null;
      return Promise.reject(error);
    }
  }

  return(): Promise<IteratorResult<IncomingMessage>> {
    this.#session = null;
    return Promise.resolve(doneResult());
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** A fresh end-of-iteration result, as a generator gives. */
function doneResult(): IteratorResult<IncomingMessage> {
  return { value: undefined, done: true };
}
