/**
 * Top layer (CLI): how a client mode learns that the connection ended, and
 * why, shared by the interactive, pipe and `send` modes.
 *
 * @module
 */

import type { Connection } from "../client/connection.ts";
import { errorForClose } from "../wire/messages.ts";

/**
 * Drains pushed messages (printing each with `print`, so a chatty room never
 * stalls the confirmations) until the connection ends.
 *
 * @param connection The open connection.
 * @param print Called with each pushed message.
 * @returns The connection's error, or `null` if it ended cleanly.
 */
export async function watchEnd(
  connection: Connection,
  print: (push: Uint8Array) => void,
): Promise<Error | null> {
  try {
    for await (const push of connection) print(push);
    return null;
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/**
 * Why the connection ended while the user still had more to send.
 *
 * @param connection The ended connection.
 * @param ended What {@link watchEnd} returned.
 * @returns The error to report.
 */
export async function endError(
  connection: Connection,
  ended: Promise<Error | null>,
): Promise<Error> {
  const error = await ended;
  if (error) return error;
  return errorForClose(await connection.closed);
}
