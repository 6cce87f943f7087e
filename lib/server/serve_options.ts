/**
 * The server core's options: what `serve()` accepts, their defaults, and the
 * checks they must pass. No I/O.
 *
 * @module
 */

import type { ForwardTargets } from "./forward_targets.ts";
import type { Logger } from "./log.ts";
import { silentLogger } from "./log.ts";
import type { UserDirectory } from "../login/login.ts";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  HANDSHAKE_TIMEOUT_MS,
  MAX_MESSAGE_BYTES_LIMIT,
  MIN_PSK_BYTES,
} from "../wire/protocol.ts";
import { DEFAULT_SCRAM_ITERATIONS } from "../login/scram.ts";

/**
 * Options of {@link serve}. Only `psk` is required; the limits default to
 * values fit for a small public server.
 *
 * @example Usage
 * ```ts
 * const options: ServeOptions = {
 *   host: "0.0.0.0",
 *   port: 9000,
 *   psk: new TextEncoder().encode("a shared secret of 16+ bytes"),
 *   idleTimeoutMs: 60_000,
 * };
 * ```
 */
export interface ServeOptions {
  /**
   * Tunnel targets clients may open streams to (`forward_targets.ts`).
   *
   * @default {no targets}
   */
  forwardTargets?: ForwardTargets;
  /**
   * Address to listen on.
   *
   * @default {"127.0.0.1"}
   */
  host?: string;
  /**
   * Port to listen on; 0 picks a free one.
   *
   * @default {9000}
   */
  port?: number;
  /**
   * The pre-shared key, at least 16 bytes; clients must hold the same one.
   * Required: there is no default.
   */
  psk: Uint8Array;
  /**
   * Users who may log in, such as a `UserStore`; `null` accepts
   * clients after the key handshake alone.
   *
   * @default {null}
   */
  users?: UserDirectory | null;
  /**
   * Where events go.
   *
   * @default {silentLogger}
   */
  logger?: Logger;
  /**
   * Most connections at once.
   *
   * @default {10000}
   */
  maxConnections?: number;
  /**
   * Most connections still in handshake or login (like MaxStartups).
   *
   * @default {128}
   */
  maxStartups?: number;
  /**
   * Deadline for handshake plus login, in ms (like LoginGraceTime).
   *
   * @default {10000}
   */
  loginTimeoutMs?: number;
  /**
   * Close sessions silent for this long, in ms; 0 never.
   *
   * @default {600000}
   */
  idleTimeoutMs?: number;
  /**
   * Largest message, in bytes (at most 16 MiB).
   *
   * @default {1048576}
   */
  maxMessageBytes?: number;
  /**
   * Outgoing bytes queued for one client before it is closed as too slow.
   *
   * @default {4194304}
   */
  maxQueueBytes?: number;
  /**
   * First penalty after an authentication failure, in ms.
   *
   * @default {1000}
   */
  penaltyBaseMs?: number;
  /**
   * Longest penalty, in ms.
   *
   * @default {60000}
   */
  penaltyCapMs?: number;
  /**
   * Addresses or CIDR ranges never penalised.
   *
   * @default {[]}
   */
  penaltyExempt?: string[];
  /**
   * PBKDF2 iterations of verifiers written on md5 upgrade.
   *
   * @default {600000}
   */
  iterations?: number;
  /**
   * How long `shutdown()` lets messages in flight finish, in ms.
   *
   * @default {5000}
   */
  shutdownTimeoutMs?: number;
}

/** Every option of {@link ServeOptions} but the listening address and users, resolved to a value. */
export type ServeSettings = Required<
  Omit<ServeOptions, "users" | "host" | "port">
>;

/**
 * Fills in the defaults and checks the ranges.
 *
 * @throws {RangeError} If a value is out of range.
 */
export function resolveServeOptions(options: ServeOptions): ServeSettings {
  const settings = {
    psk: options.psk,
    logger: options.logger ?? silentLogger,
    maxConnections: options.maxConnections ?? 10_000,
    maxStartups: options.maxStartups ?? 128,
    loginTimeoutMs: options.loginTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    idleTimeoutMs: options.idleTimeoutMs ?? 600_000,
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    maxQueueBytes: options.maxQueueBytes ?? 4 * 1024 * 1024,
    forwardTargets: options.forwardTargets ?? new Map(),
    penaltyBaseMs: options.penaltyBaseMs ?? 1000,
    penaltyCapMs: options.penaltyCapMs ?? 60_000,
    penaltyExempt: options.penaltyExempt ?? [],
    iterations: options.iterations ?? DEFAULT_SCRAM_ITERATIONS,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? 5000,
  };
  if (settings.psk.length < MIN_PSK_BYTES) {
    throw new RangeError(
      `Cannot serve: the pre-shared key has ${settings.psk.length} bytes, at least ${MIN_PSK_BYTES} required`,
    );
  }
  if (
    settings.maxMessageBytes < 1 ||
    settings.maxMessageBytes > MAX_MESSAGE_BYTES_LIMIT
  ) {
    throw new RangeError(
      `Cannot serve: maxMessageBytes must be 1 to ${MAX_MESSAGE_BYTES_LIMIT}`,
    );
  }
  for (
    const name of ["maxConnections", "maxStartups", "loginTimeoutMs"] as const
  ) {
    if (!(settings[name] >= 1)) {
      throw new RangeError(`Cannot serve: ${name} must be at least 1`);
    }
  }
  return settings;
}
