/**
 * Server parts: the accept loop. A connection its client reset before
 * `accept()` returned (ECONNABORTED, ENOTCONN, ECONNRESET) costs nothing:
 * the loop retries at once, so keyless peers cannot slow it down. Only
 * resource exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM) and errors it does
 * not know make it back off, from 10 ms doubling to 1 s, with at most one
 * log line per 10 s saying how many errors it saw.
 *
 * It does not handle connections: `onConnection` does, and must not throw.
 *
 * @module
 */

import { describeError } from "../errors.ts";
import type { Logger } from "./log.ts";

/** Options of {@link acceptLoop}. */
export interface AcceptLoopOptions {
  /** Where the rate-limited error lines go. */
  logger: Logger;
  /** Whether the server is stopping (then errors end the loop). */
  stopping: () => boolean;
  /**
   * Waits `ms` before retrying after resource exhaustion.
   * @default {setTimeout}
   */
  sleep?: (ms: number) => Promise<void>;
  /**
   * The clock, in ms, for the log rate limit.
   * @default {Date.now}
   */
  now?: () => number;
}

/** Error codes of a connection gone before `accept()` returned: retry now. */
const GONE_CODES = new Set(["ECONNABORTED", "ENOTCONN", "ECONNRESET"]);
const GONE_CLASSES = [
  Deno.errors.ConnectionAborted,
  Deno.errors.ConnectionReset,
  Deno.errors.NotConnected,
];
const FIRST_BACKOFF_MS = 10;
const MAX_BACKOFF_MS = 1000;
const LOG_EVERY_MS = 10_000;

/**
 * Whether an `accept()` error means only that one connection is gone.
 *
 * @param error What `accept()` threw.
 * @returns `true` for ECONNABORTED, ENOTCONN and ECONNRESET.
 */
export function isGoneBeforeAccept(error: unknown): boolean {
  if (GONE_CLASSES.some((kind) => error instanceof kind)) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && GONE_CODES.has(code);
}

/**
 * Accepts connections until the listener closes or `stopping()` is true,
 * handing each to `onConnection`.
 *
 * @param listener The listener (anything with `accept`).
 * @param onConnection Starts handling one connection; must not throw.
 * @param options Logger, stop test, and (tests) sleep and clock.
 * @returns A promise that resolves when the loop ends; never rejects.
 */
export async function acceptLoop<T>(
  listener: { accept(): Promise<T> },
  onConnection: (conn: T) => void,
  options: AcceptLoopOptions,
): Promise<void> {
  const sleep = options.sleep ??
    ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const now = options.now ?? Date.now;
  let backoffMs = FIRST_BACKOFF_MS;
  let unlogged = 0;
  let loggedAt = -Infinity;
  while (!options.stopping()) {
    let conn: T;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (options.stopping() || error instanceof Deno.errors.BadResource) {
        return;
      }
      if (isGoneBeforeAccept(error)) continue;
      unlogged++;
      if (now() - loggedAt >= LOG_EVERY_MS) {
        loggedAt = now();
        try {
          options.logger.log({
            event: "error",
            count: unlogged,
            detail: `accept failed, backing off ${backoffMs} ms: ${
              describeError(error)
            }`,
          });
        } catch {
          // The logger is guarded; nothing may stop the loop anyway.
        }
        unlogged = 0;
      }
      await sleep(backoffMs);
      backoffMs = Math.min(MAX_BACKOFF_MS, backoffMs * 2);
      continue;
    }
    backoffMs = FIRST_BACKOFF_MS;
    try {
      onConnection(conn);
    } catch {
      // onConnection observes its own work; this only guards the loop.
    }
  }
}
