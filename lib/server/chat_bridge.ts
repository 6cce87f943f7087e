/**
 * Server parts: bridges the chat room across servers through a NATS
 * broker (`--broker nats://HOST:PORT`), with the official client
 * `@nats-io/transport-node` (measured under Deno: it runs with
 * `--allow-net` alone). A room is a subject (`doorman.chat.ROOM`); each chat
 * line (`NAME: text`, `* NAME joined`, `* NAME left`) is published as its
 * UTF-8 bytes, and lines from other servers are handed to `onLine`.
 *
 * Ordering per sender is kept: one server publishes over one connection in
 * order, and NATS delivers one publisher's messages in order. The broker is
 * optional at run time: until it answers, and while it is away, lines are
 * dropped (not buffered, so no stale burst arrives on reconnect), local chat
 * goes on, the client reconnects for ever, and each change is logged.
 *
 * It does not authenticate to NATS (use a broker on a private network or
 * loopback) and does not carry anything but chat lines.
 *
 * It lives in server/, beside the NATS client (nats.ts) and the other
 * broker user (penalty_share.ts), not in services/: services import only
 * types from server/, and the chat service sees only {@link ChatBridge}.
 *
 * @module
 */

import { connectBroker } from "./nats.ts";
import { parseHostPort } from "./address.ts";
import type { Logger } from "./log.ts";

/** Subject prefix of chat rooms. */
export const CHAT_SUBJECT_PREFIX = "doorman.chat.";
const ROOM_REGEXP = /^[A-Za-z0-9_-]{1,64}$/;
const BROKER_URL_PREFIX = "nats://";

/** Options of {@link connectChatBridge}. */
export interface ChatBridgeOptions {
  /** The broker, `nats://HOST:PORT`. */
  url: string;
  /** The room (subject suffix). @default {"lobby"} */
  room?: string;
  /** Where connection changes are logged. */
  logger: Logger;
  /** Time between reconnect attempts, in ms. @default {500} */
  reconnectWaitMs?: number;
}

/** A chat room's link to the broker. */
export interface ChatBridge extends AsyncDisposable {
  /** Publishes a line typed here; dropped while the broker is away. */
  publish(line: string): void;
  /** Sets where lines typed on other servers go. */
  onLine(deliver: (line: string) => void): void;
  /** Whether the broker is connected now. */
  readonly connected: boolean;
  /** Resolves once connected (tests, bench). */
  ready(): Promise<void>;
  /** Stops the bridge and closes the broker connection. */
  close(): Promise<void>;
}

/**
 * Checks a broker URL and returns `HOST:PORT` for the NATS client.
 *
 * @throws {RangeError} If `url` is not `nats://HOST:PORT`.
 */
export function parseBrokerUrl(url: string): string {
  const server = url.slice(BROKER_URL_PREFIX.length);
  if (!url.startsWith(BROKER_URL_PREFIX) || parseHostPort(server) === null) {
    throw new RangeError(
      `Cannot use broker ${JSON.stringify(url)}: expected nats://HOST:PORT`,
    );
  }
  return server;
}

/**
 * Starts a bridge; it connects in the background and keeps reconnecting.
 *
 * @param options The broker, room and logger.
 * @returns The bridge; `close()` it on shutdown.
 * @throws {RangeError} If the URL or room is malformed.
 * @example Usage
 * ```ts ignore
 * const bridge = connectChatBridge({ url: "nats://127.0.0.1:4222", logger });
 * const server = serve(options, createChatService({ bridge }));
 * ```
 */
export function connectChatBridge(options: ChatBridgeOptions): ChatBridge {
  const server = parseBrokerUrl(options.url);
  const room = options.room ?? "lobby";
  if (!ROOM_REGEXP.test(room)) {
    throw new RangeError(
      `Cannot use room ${JSON.stringify(room)}: 1 to 64 of A-Z a-z 0-9 _ -`,
    );
  }
  const subject = CHAT_SUBJECT_PREFIX + room;
  const log = (reason: string, detail?: string) =>
    options.logger.log({
      event: "broker",
      address: options.url,
      reason,
      detail,
    });
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let deliver: (line: string) => void = () => {};
  let dropped = 0;
  const link = connectBroker({
    server,
    name: "doorman",
    subject,
    dropWhileAway: true,
    reconnectWaitMs: options.reconnectWaitMs,
    onMessage: (data) => deliver(decoder.decode(data)),
    onChange: (change, detail) => {
      if (change === "disconnected") {
        log("disconnected; local chat goes on, reconnecting");
      } else if (change === "reconnected") {
        log(
          "reconnected",
          dropped ? `${dropped} lines not bridged while away` : undefined,
        );
        dropped = 0;
      } else log(change, detail);
    },
  });
  return {
    publish(line: string): void {
      if (!link.publish(encoder.encode(line))) dropped++;
    },
    onLine(callback: (line: string) => void): void {
      deliver = callback;
    },
    get connected() {
      return link.connected;
    },
    ready: () => link.ready(),
    close: () => link.close(),
    [Symbol.asyncDispose]: () => link.close(),
  };
}
