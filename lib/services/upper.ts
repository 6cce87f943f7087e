/**
 * Layer 6, the `upper` service: replies with the message in upper case, as
 * the classic socketserver example did. Built on the public Session API only.
 *
 * @module
 */

import type { Session } from "../session.ts";

/**
 * Replies to each message with its text in upper case.
 *
 * @param session One authenticated client.
 */
export async function upperService(session: Session): Promise<void> {
  for await (const message of session) {
    message.reply(message.text().toUpperCase());
  }
}
