/**
 * Layer 6, the `echo` service: replies to every message with the message
 * itself. Built on the public Session API only.
 *
 * @module
 */

import type { Session } from "../server/session.ts";

/**
 * Replies to each message with its own bytes, until the client closes.
 *
 * @param session One authenticated client.
 * @returns A promise that resolves once the client has closed.
 * @example Usage
 * ```ts ignore
 * const server = serve({ port: 9000, psk }, echoService);
 * ```
 */
export async function echoService(session: Session): Promise<void> {
  for await (const message of session) message.reply(message.data);
}
