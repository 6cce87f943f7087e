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
import type { KeyRing } from "./key_ring.ts";
import type { AddressFilter } from "./address_filter.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { PenaltyShare } from "./penalty_share.ts";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  HANDSHAKE_TIMEOUT_MS,
  MAX_MESSAGE_BYTES_LIMIT,
  MIN_PSK_BYTES,
} from "../wire/protocol.ts";
import {
  DEFAULT_SCRAM_ITERATIONS,
  MAX_SCRAM_ITERATIONS,
  MIN_SCRAM_ITERATIONS,
} from "../login/scram.ts";
import { randomBytes } from "../wire/crypto.ts";
import { DEFAULT_PING_INTERVAL_MS } from "../wire/liveness.ts";
import { parseAddressList } from "./address.ts";

import { parseMaxStartups } from "./startups.ts";

/** The longest delay a timer holds, in ms (2^31 − 1). */
const MAX_TIMER_MS = 2_147_483_647;

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
 *   pingIntervalMs: 30_000,
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
   * The pre-shared key, at least 16 bytes, as key id `default`; clients
   * must hold the same one. Required unless `keys` is given.
   */
  psk?: Uint8Array;
  /**
   * The key ring (keys by id, live: revoking a key closes its sessions);
   * wins over `psk`.
   *
   * @default {a ring of `psk` alone, id "default"}
   */
  keys?: KeyRing;
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
   * Connections still in handshake or login (like OpenSSH's MaxStartups):
   * a number is a hard cap; `"START:RATE:FULL"` refuses RATE % of new
   * connections once START are in startup, rising to all of them at FULL.
   *
   * @default {"64:30:128"}
   */
  maxStartups?: number | string;
  /**
   * Most connections in handshake or login from one address (like
   * PerSourceMaxStartups); `penaltyExempt` addresses have no cap.
   *
   * @default {10}
   */
  maxStartupsPerSource?: number;
  /**
   * Most logins from one address evaluated at once; more wait their turn.
   * Logins of one user name are always evaluated one at a time.
   *
   * @default {4}
   */
  maxLoginsPerSource?: number;
  /**
   * Most open sessions of one user; more are closed with `tooManySessions`.
   *
   * @default {64}
   */
  maxSessionsPerUser?: number;
  /**
   * Most open sessions from one address; `penaltyExempt` addresses have no
   * cap.
   *
   * @default {256}
   */
  maxSessionsPerSource?: number;
  /**
   * Outgoing bytes queued across all sessions; past it the fullest queues
   * are closed as too slow (checked every 50 ms).
   *
   * @default {268435456}
   */
  maxTotalQueueBytes?: number;
  /**
   * Deadline for the key handshake, in ms, from accept.
   *
   * @default {5000}
   */
  handshakeTimeoutMs?: number;
  /**
   * Deadline for handshake plus login, in ms (like LoginGraceTime).
   *
   * @default {10000}
   */
  loginTimeoutMs?: number;
  /**
   * Close sessions that exchanged no message (either way) for this long,
   * in ms; 0 never. Pings do not count: a quiet client that answers pings
   * stays connected unless this is set.
   *
   * @default {0}
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
   * The server secret (at least 16 bytes, server-only, never the pre-shared
   * key) from which the stable fake salts of unknown user names derive.
   * Give a persisted one (`loadServerSecret`, as `server.ts` does): the
   * default changes on every start, so a name's fake salt would change
   * across restarts while a real user's does not.
   *
   * @default 32 random bytes per `serve()` call
   */
  serverSecret?: Uint8Array;
  /**
   * After this many ms without hearing from a client, send it a ping; a
   * client silent for 3 intervals is closed with code 11
   * (`peerUnresponsive`). 0 turns pings off.
   *
   * @default {30000}
   */
  pingIntervalMs?: number;
  /**
   * How long `shutdown()` lets messages in flight finish, in ms.
   *
   * @default {5000}
   */
  shutdownTimeoutMs?: number;
  /**
   * Load balancers (addresses or CIDR ranges) that must send a PROXY
   * protocol header (v1 or v2) before the preamble; its source address is
   * then the client's address everywhere. Others may not send one.
   *
   * @default {[]}
   */
  proxyProtocolFrom?: string[];
  /**
   * Allow and deny lists applied to the client's real address before any
   * crypto; `update()` them to reload.
   *
   * @default {null}
   */
  addressFilter?: AddressFilter | null;
  /**
   * Counters for bytes and frames in and out (`createServerMetrics()`).
   *
   * @default {null}
   */
  metrics?: ServerMetrics | null;
  /**
   * Listen with `SO_REUSEPORT` so several processes share the port
   * (Linux; needs `--unstable-net`).
   *
   * @default {false}
   */
  reusePort?: boolean;
  /**
   * Failed-login penalties shared with other servers through the broker
   * (`connectPenaltyShare()`); feed it the `penalty` events' addresses.
   *
   * @default {null}
   */
  penaltyShare?: PenaltyShare | null;
}

/** Every option of {@link ServeOptions} but the listening address and users, resolved to a value. */
export type ServeSettings =
  & Required<Omit<ServeOptions, "users" | "host" | "port" | "psk" | "keys">>
  & Pick<ServeOptions, "psk" | "keys">;

/**
 * Fills in the defaults and checks every option, so that `serve()` fails
 * before it binds the port. Errors name `serve`'s options.
 *
 * @param options What `serve()` was given.
 * @returns Every setting, resolved to a value.
 * @throws {RangeError} If a value is out of range or malformed.
 * @throws {TypeError} If a value has the wrong type.
 */
export function resolveServeOptions(options: ServeOptions): ServeSettings {
  const settings = {
    psk: options.psk,
    keys: options.keys,
    logger: options.logger ?? silentLogger,
    maxConnections: options.maxConnections ?? 10_000,
    maxStartups: options.maxStartups ?? "64:30:128",
    maxStartupsPerSource: options.maxStartupsPerSource ?? 10,
    maxLoginsPerSource: options.maxLoginsPerSource ?? 4,
    maxSessionsPerUser: options.maxSessionsPerUser ?? 64,
    maxSessionsPerSource: options.maxSessionsPerSource ?? 256,
    maxTotalQueueBytes: options.maxTotalQueueBytes ?? 256 * 1024 * 1024,
    handshakeTimeoutMs: options.handshakeTimeoutMs ??
      Math.min(5000, options.loginTimeoutMs ?? HANDSHAKE_TIMEOUT_MS),
    loginTimeoutMs: options.loginTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    idleTimeoutMs: options.idleTimeoutMs ?? 0,
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    maxQueueBytes: options.maxQueueBytes ?? 4 * 1024 * 1024,
    forwardTargets: options.forwardTargets ?? new Map(),
    penaltyBaseMs: options.penaltyBaseMs ?? 1000,
    penaltyCapMs: options.penaltyCapMs ?? 60_000,
    penaltyExempt: options.penaltyExempt ?? [],
    iterations: options.iterations ?? DEFAULT_SCRAM_ITERATIONS,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? 5000,
    serverSecret: options.serverSecret ?? randomBytes(32),
    pingIntervalMs: options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
    proxyProtocolFrom: options.proxyProtocolFrom ?? [],
    addressFilter: options.addressFilter ?? null,
    metrics: options.metrics ?? null,
    reusePort: options.reusePort ?? false,
    penaltyShare: options.penaltyShare ?? null,
  };
  if (!(settings.serverSecret instanceof Uint8Array)) {
    throw new TypeError("Cannot serve: serverSecret must be a Uint8Array");
  }
  if (settings.serverSecret.length < 16) {
    throw new RangeError(
      "Cannot serve: serverSecret must be at least 16 bytes",
    );
  }
  checkMs("pingIntervalMs", settings.pingIntervalMs, 0);
  if (settings.psk !== undefined && !(settings.psk instanceof Uint8Array)) {
    throw new TypeError("Cannot serve: psk must be a Uint8Array");
  }
  const pskLength = settings.keys ? MIN_PSK_BYTES : settings.psk?.length;
  if (pskLength === undefined) {
    throw new TypeError("Cannot serve: give psk or keys");
  }
  if (pskLength < MIN_PSK_BYTES) {
    throw new RangeError(
      `Cannot serve: the pre-shared key has ${pskLength} bytes, at least ${MIN_PSK_BYTES} required`,
    );
  }
  if (typeof settings.logger?.log !== "function") {
    throw new TypeError("Cannot serve: logger must have a log() method");
  }
  if (options.host !== undefined && typeof options.host !== "string") {
    throw new TypeError("Cannot serve: host must be a string");
  }
  checkInteger("port", options.port ?? 0, 0, 65_535);
  checkInteger(
    "maxMessageBytes",
    settings.maxMessageBytes,
    1,
    MAX_MESSAGE_BYTES_LIMIT,
  );
  checkInteger("maxConnections", settings.maxConnections, 1);
  checkInteger("maxQueueBytes", settings.maxQueueBytes, 1);
  checkInteger(
    "iterations",
    settings.iterations,
    MIN_SCRAM_ITERATIONS,
    MAX_SCRAM_ITERATIONS,
  );
  checkMs("loginTimeoutMs", settings.loginTimeoutMs, 1);
  checkMs("idleTimeoutMs", settings.idleTimeoutMs, 0);
  checkMs("penaltyBaseMs", settings.penaltyBaseMs, 0);
  checkMs("penaltyCapMs", settings.penaltyCapMs, 0);
  checkMs("shutdownTimeoutMs", settings.shutdownTimeoutMs, 0);
  checkAddressList("penaltyExempt", settings.penaltyExempt);
  checkAddressList("proxyProtocolFrom", settings.proxyProtocolFrom);
  try {
    parseMaxStartups(settings.maxStartups);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new RangeError(`Cannot serve: maxStartups: ${detail}`, {
      cause: error,
    });
  }
  checkInteger("maxStartupsPerSource", settings.maxStartupsPerSource, 1);
  checkInteger("maxLoginsPerSource", settings.maxLoginsPerSource, 1);
  checkInteger("maxSessionsPerUser", settings.maxSessionsPerUser, 1);
  checkInteger("maxSessionsPerSource", settings.maxSessionsPerSource, 1);
  checkInteger("maxTotalQueueBytes", settings.maxTotalQueueBytes, 1);
  checkMs("handshakeTimeoutMs", settings.handshakeTimeoutMs, 1);
  return settings;
}

function checkAddressList(name: string, value: unknown): void {
  if (!Array.isArray(value)) {
    throw new TypeError(`Cannot serve: ${name} must be an array`);
  }
  try {
    parseAddressList(value);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new RangeError(`Cannot serve: ${name}: ${detail}`, { cause: error });
  }
}

function checkInteger(
  name: string,
  value: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER
      ? `at least ${min}`
      : `${min} to ${max}`;
    throw new RangeError(
      `Cannot serve: ${name} must be an integer ${range}, not ${value}`,
    );
  }
}

function checkMs(name: string, value: number, min: number): void {
  if (typeof value !== "number" || !(value >= min && value <= MAX_TIMER_MS)) {
    throw new RangeError(
      `Cannot serve: ${name} must be ${min} to ${MAX_TIMER_MS} ms, not ${value}`,
    );
  }
}
