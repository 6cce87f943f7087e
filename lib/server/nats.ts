/**
 * Server parts: the NATS client (`@nats-io/transport-node`, pinned), loaded
 * on first use so that a server without `--broker` never pays for loading
 * it (about 1.5 s of start-up on the busy 2-core test machine).
 *
 * @module
 */

// Pinned inline and locked in deno.lock, like lib/login/saslprep.ts.
// deno-lint-ignore no-import-prefix
import type * as Nats from "npm:@nats-io/transport-node@3.4.0";

/** An open connection to the broker. */
export type NatsConnection = Nats.NatsConnection;

/**
 * Loads the NATS client module.
 *
 * @returns The module, with `connect`.
 */
export async function loadNats(): Promise<typeof Nats> {
  // deno-lint-ignore no-import-prefix
  return await import("npm:@nats-io/transport-node@3.4.0");
}
