/**
 * Layer 6, the `upper` service: replies with the message in upper case, as
 * the classic socketserver example did. Built on the public Session API only.
 *
 * @module
 */

import type { Session } from "../server/session.ts";

/**
 * Replies to each message with its text in upper case, until the client
 * closes.
 *
 * @param session One authenticated client.
 * @returns A promise that resolves once the client has closed.
 * @example Usage
 * ```ts ignore
 * const server = serve({ port: 9000, psk }, upperService);
 * ```
 */
export async function upperService(session: Session): Promise<void> {
  for await (const message of session) {
    message.reply(message.text().toUpperCase());
  }
}
