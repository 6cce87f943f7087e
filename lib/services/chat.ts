/**
 * Layer 6, the `chat` service: every message from a user reaches every
 * other connected user as `NAME: text`; joins and leaves are announced.
 * Each message is acknowledged (no reply) once it has been handed to every
 * other member's outgoing queue. A member too slow to drain its queue is
 * closed by its session (bounded queue), so one stuck reader never grows
 * the server's memory nor slows the others. Built on the public Session API.
 *
 * @module
 */

import type { Session } from "../server/session.ts";
import type { SessionHandler } from "../server/serve.ts";
import type { ChatBridge } from "../server/chat_bridge.ts";

/** Options of {@link createChatService}. */
export interface ChatServiceOptions {
  /**
   * Carries the room's lines to and from other servers (NATS); without it
   * the room ends at this process.
   *
   * @default {undefined}
   */
  bridge?: ChatBridge;
}

/**
 * Creates one chat room; every session handed to the returned handler
 * joins it. Each message reaches every other member as `NAME: text`
 * (guests are `guest-ID`); joins and leaves are announced.
 *
 * @param options A bridge to other servers, if any.
 * @returns The handler to give to `serve()`.
 * @example Usage
 * ```ts ignore
 * const server = serve({ port: 9000, psk, users }, createChatService());
 * ```
 */
export function createChatService(
  options: ChatServiceOptions = {},
): SessionHandler {
  const members = new Set<Session>();
  const encoder = new TextEncoder();
  const deliver = (from: Session | null, line: string) => {
    const bytes = encoder.encode(line); // once, not once per member
    for (const member of members) {
      if (member !== from) member.push(bytes);
    }
  };
  const broadcast = (from: Session, line: string) => {
    deliver(from, line);
    options.bridge?.publish(line);
  };
  options.bridge?.onLine((line) => deliver(null, line));
  return async function chatService(session: Session): Promise<void> {
    const name = session.user ?? `guest-${session.id}`;
    broadcast(session, `* ${name} joined`);
    members.add(session);
    try {
      for await (const message of session) {
        broadcast(session, `${name}: ${message.text()}`);
      }
    } finally {
      members.delete(session);
      broadcast(session, `* ${name} left`);
    }
  };
}
