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
 * promise chain: the idle connections of a server run this service
 * wait in it, and a suspended async function (its frame, with the last
 * message still in a register) cost each ~0.5 KiB more (idle read path,
 * lib/wire/framing.ts).
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
    const fail = (error: unknown) => {
      // As a for-await loop leaves its iterator when its body throws.
      messages.return?.();
      reject(error);
    };
    const echo = (next: IteratorResult<IncomingMessage>): void => {
      if (next.done) return resolve();
      try {
        next.value.reply(next.value.data);
      } catch (error) {
        return fail(error);
      }
      messages.next().then(echo, reject);
    };
    messages.next().then(echo, reject);
  });
}
