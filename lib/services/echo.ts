/**
 * Layer 6, the `echo` service: replies to every message with the message
 * itself. Built on the public Session API only.
 *
 * @module
 */

import type { IncomingMessage, Session } from "../server/session.ts";

/**
 * Replies to each message with its own bytes, until the client closes.
 *
 * It is `for await (const m of session) m.reply(m.data)` written as a
 * promise chain: an idle connection waits in it, and a suspended async
 * function there (its frame, with the last message and that message's
 * native buffer still held by a register) cost each one ~0.25 KiB more of
 * heap (idle read path, lib/wire/framing.ts).
 *
 * @param session One authenticated client.
 * @returns A promise that resolves once the client has closed.
 * @example Usage
 * ```ts ignore
 * const server = serve({ port: 9000, psk }, echoService);
 * ```
 */
export function echoService(session: Session): Promise<void> {
  const messages = session[Symbol.asyncIterator]();
  return new Promise((resolve, reject) => {
    const echo = (next: IteratorResult<IncomingMessage>): void => {
      if (next.done) return resolve();
      try {
        next.value.reply(next.value.data);
      } catch (error) {
        // As a for-await loop leaves its iterator when its body throws.
        messages.return?.();
        return reject(error);
      }
      messages.next().then(echo, reject);
    };
    messages.next().then(echo, reject);
  });
}
