/**
 * Server parts: failed-login penalties shared between servers (and
 * workers) through the NATS broker (`--broker-penalties`). Each failure
 * recorded here is published as the address's text on `doorman.penalty`;
 * each one published elsewhere is recorded in this server's address
 * penalty box as if it had happened here, so a guesser spread over N
 * servers meets the same doubling delays and refusals as on one.
 *
 * The broker is trusted: anyone who can publish there can penalise any
 * address (never beyond `--penalty-cap`, and `--penalty-exempt` still
 * holds). Addresses from the broker are parsed and normalised; anything
 * else is ignored. While the broker is away, failures stay local.
 *
 * @module
 */

import { connectBroker } from "./nats.ts";
import { normalizeAddress } from "./address.ts";
import type { Logger } from "./log.ts";

/** Subject of shared penalties. */
export const PENALTY_SUBJECT = "doorman.penalty";

/** What the share needs of a penalty box. */
export interface FailureRecorder {
  /** Counts one failure for `key` (an address). */
  recordFailure(key: string): unknown;
}

/** A server's link to the shared penalties. */
export interface PenaltyShare extends AsyncDisposable {
  /** Called by `serve()` with its address penalty box. */
  attach(box: FailureRecorder): void;
  /** Publishes one local failure of `address`. */
  publish(address: string): void;
  /** Resolves once connected (tests). */
  ready(): Promise<void>;
  /** Closes the broker connection. */
  close(): Promise<void>;
}

/**
 * Connects to the broker in the background and keeps reconnecting.
 *
 * @param options The broker (`HOST:PORT`, as `parseBrokerUrl` returns) and
 *   where connection changes are logged.
 * @returns The share; pass it to `serve()` as `penaltyShare`.
 * @example Usage
 * ```ts ignore
 * const share = connectPenaltyShare({ server: "127.0.0.1:4222", logger });
 * serve({ ...options, penaltyShare: share }, handler);
 * ```
 */
export function connectPenaltyShare(
  options: { server: string; logger: Logger; reconnectWaitMs?: number },
): PenaltyShare {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let box: FailureRecorder | null = null;
  const link = connectBroker({
    server: options.server,
    name: "doorman-penalties",
    subject: PENALTY_SUBJECT,
    reconnectWaitMs: options.reconnectWaitMs,
    onMessage: (data) => {
      if (data.length > 64) return;
      try {
        box?.recordFailure(normalizeAddress(decoder.decode(data)));
      } catch {
        // Not an address: ignored.
      }
    },
    onChange: (change, detail) =>
      options.logger.log({
        event: "broker",
        reason: `penalty sharing ${change}`,
        detail,
      }),
  });
  return {
    attach(recorder) {
      box = recorder;
    },
    publish(address) {
      // Disconnected: the failure stays local.
      link.publish(encoder.encode(address));
    },
    ready: () => link.ready(),
    close: () => link.close(),
    [Symbol.asyncDispose]: () => link.close(),
  };
}
