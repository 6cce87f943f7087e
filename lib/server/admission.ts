/**
 * The server's gatekeeping: who may start a connection (connection caps,
 * startup caps with random early drop, per-source caps, penalised
 * addresses, shutdown), who may be evaluated for a login now, and what
 * happens to one whose handshake or login failed (logged, penalised,
 * delayed, closed with one generic answer). Before any crypto it answers a
 * refused connection with a refusal frame (wire/refusal.ts); after, it
 * sends nothing but close records; the layers below do the protocol.
 *
 * @module
 */

import type { Channel } from "../wire/channel.ts";
import {
  describeError,
  KeyRejectedError,
  LoginFailure,
  LoginRequiredError,
  TimeoutError,
} from "../errors.ts";
import type { AddressMatcher } from "./address.ts";
import type { ConnectionGate, PenaltyBox } from "./limits.ts";
import type { Logger } from "./log.ts";
import { sleep } from "../wire/deadline.ts";
import { closeForError } from "../wire/messages.ts";
import {
  encodeRefusal,
  RefusalReason,
  type RefusalReasonValue,
} from "../wire/refusal.ts";
import { writeAll } from "../wire/framing.ts";
import type { ServeSettings } from "./serve_options.ts";
import {
  dropStartup,
  type KeyedCounter,
  type KeyedSlots,
  type MaxStartups,
} from "./startups.ts";

/** The part of the running server's state that admission reads. */
export interface AdmissionContext {
  readonly options: ServeSettings;
  readonly logger: Logger;
  readonly gate: ConnectionGate;
  readonly startupLimits: MaxStartups;
  /** Addresses exempt from penalties and per-source caps. */
  readonly exempt: AddressMatcher;
  readonly startupsBySource: KeyedCounter;
  readonly loginsBySource: KeyedSlots;
  readonly loginsByUser: KeyedSlots;
  readonly addressPenalties: PenaltyBox;
  readonly userPenalties: PenaltyBox;
  /** Refused connections still being answered (closed at shutdown). */
  readonly refusing: Set<Deno.TcpConn>;
  /** A number in [0, 1), for random early drop. */
  readonly random: () => number;
  shuttingDown: boolean;
  /** Aborts when shutdown starts: cuts penalty delays short. */
  readonly shutdownSignal: AbortSignal;
}

/** Who a connection is, for logs and penalties. */
export interface Peer {
  readonly id: number;
  readonly peer: string;
  readonly address: string;
}

/**
 * A connection's hold on the startup counts (global and per source), given
 * back exactly once by {@link endStartup}.
 */
export interface Startup {
  /** Still counted as in startup. */
  active: boolean;
  /** Counted in its source's startups (not exempt). */
  readonly perSource: boolean;
}

/** Seconds a client is asked to wait, per reason, when no penalty says. */
const RETRY_AFTER_SECONDS = {
  tooManyConnections: 10,
  tooManyStartups: 2,
  shuttingDown: 5,
} as const;
/** Refused connections drained at once before closing; more are cut. */
const MAX_REFUSING = 64;
/** How long, and how many bytes, a refused connection is drained for. */
const REFUSAL_DRAIN_MS = 1000;
const REFUSAL_DRAIN_BYTES = 1024;

/** The classes of failure penalised lighter than a wrong key or password. */
export const PenaltyWeight = {
  /** A wrong key, a wrong password: one full failure. */
  failure: 1,
  /** Idle until a deadline (OpenSSH `grace-exceeded`). */
  graceExceeded: 0.5,
  /** A handshake that got a ServerHello and never finished (`noauth`). */
  abandoned: 0.25,
} as const;

/**
 * Admits a new connection or refuses it at once, before any crypto: while
 * shutting down, while its address is penalised, past the connection cap,
 * past its source's startup cap, or dropped as the startup pool fills
 * (`start:rate:full`). A refused peer gets a refusal frame, then the close.
 *
 * @returns The connection's startup hold, or `null` if it was refused.
 */
export function admit(
  conn: Deno.TcpConn,
  who: Peer,
  ctx: AdmissionContext,
): Startup | null {
  const exempt = ctx.exempt.matches(who.address);
  const verdict = ctx.addressPenalties.verdict(who.address);
  const { gate, options } = ctx;
  let refusal: Refusal;
  if (ctx.shuttingDown) {
    refusal = {
      reason: RefusalReason.shuttingDown,
      seconds: RETRY_AFTER_SECONDS.shuttingDown,
      log: "shutting down",
    };
  } else if (verdict.action === "refuse") {
    const seconds = Math.ceil(verdict.ms / 1000);
    refusal = {
      reason: RefusalReason.penalty,
      seconds,
      log: `penalty: ${seconds} s left`,
    };
  } else if (gate.connections >= options.maxConnections) {
    refusal = {
      reason: RefusalReason.tooManyConnections,
      seconds: RETRY_AFTER_SECONDS.tooManyConnections,
      log: `max connections (${options.maxConnections})`,
    };
  } else if (
    !exempt &&
    ctx.startupsBySource.count(who.address) >= options.maxStartupsPerSource
  ) {
    refusal = {
      reason: RefusalReason.tooManyFromAddress,
      seconds: Math.ceil(options.handshakeTimeoutMs / 1000),
      log: `max startups per source (${options.maxStartupsPerSource})`,
    };
  } else if (
    dropStartup(gate.startups, ctx.startupLimits, ctx.random()) ||
    !gate.tryAdmit()
  ) {
    refusal = {
      reason: RefusalReason.tooManyStartups,
      seconds: RETRY_AFTER_SECONDS.tooManyStartups,
      log: `max startups (${options.maxStartups})`,
    };
  } else {
    if (!exempt) {
      ctx.startupsBySource.tryAcquire(who.address, Infinity);
    }
    return { active: true, perSource: !exempt };
  }
  refuse(conn, who, refusal, ctx);
  return null;
}

/** Why a connection is refused before any crypto, and what it is told. */
export interface Refusal {
  /** The reason byte of the refusal frame. */
  readonly reason: RefusalReasonValue;
  /** The retry-after the frame carries, in seconds. */
  readonly seconds: number;
  /** The reason as logged (the metrics' label is its words before any detail). */
  readonly log: string;
}

/** What {@link refuse} needs of the server's state. */
export type RefusalContext = Pick<
  AdmissionContext,
  "logger" | "refusing" | "shuttingDown"
>;

/**
 * Refuses a connection before any crypto, the one way every refusal goes:
 * logs it (a cap's refusal also as a `limit`; the metrics count each
 * `refused` event by reason), then writes the refusal frame
 * (wire/refusal.ts) and closes, in the background.
 *
 * @param conn The connection to refuse.
 * @param who Who it is, for the log.
 * @param refusal Why, and the retry-after.
 * @param ctx The logger and the set of refusals in flight.
 */
export function refuse(
  conn: Deno.TcpConn,
  who: Peer,
  refusal: Refusal,
  ctx: RefusalContext,
): void {
  if (
    refusal.reason === RefusalReason.tooManyConnections ||
    refusal.reason === RefusalReason.tooManyStartups ||
    refusal.reason === RefusalReason.tooManyFromAddress
  ) {
    ctx.logger.log({
      event: "limit",
      conn: who.id,
      peer: who.peer,
      address: who.address,
      reason: refusal.log,
    });
  }
  ctx.logger.log({
    event: "refused",
    conn: who.id,
    peer: who.peer,
    address: who.address,
    reason: refusal.log,
  });
  sendRefusal(conn, encodeRefusal(refusal.reason, refusal.seconds), ctx)
    .catch(() => {});
}

/**
 * Gives back a connection's startup hold (global and per source): once
 * through login, or as soon as it failed, so that a failed login's penalty
 * delay does not keep a startup slot. It stays counted as a connection.
 */
export function endStartup(
  startup: Startup,
  who: Peer,
  ctx: AdmissionContext,
): void {
  if (!startup.active) return;
  startup.active = false;
  ctx.gate.established();
  if (startup.perSource) ctx.startupsBySource.release(who.address);
}

/**
 * Called once a login's proof has arrived, just before it is checked: takes
 * one of the source's login slots (`maxLoginsPerSource`), waits out the
 * address's penalty delay as it stands now, then takes the user name's slot
 * (one evaluation at a time) and checks the penalty again: a refusing
 * penalty fails the login unevaluated, a new delay is waited out without
 * holding the user's slot. Parallel guesses are thus evaluated one by one
 * against the penalties the earlier ones earned, and the user's slot is held
 * only while the server checks a proof, never while a client or a penalty
 * is waited for, so no one can hold a user name's logins hostage.
 *
 * @returns A function that releases both slots.
 * @throws {LoginFailure} If the address is refused by its penalty.
 */
export async function beginLogin(
  user: string,
  who: Peer,
  ctx: AdmissionContext,
  signal: AbortSignal,
): Promise<() => void> {
  const releaseSource = await ctx.loginsBySource.acquire(
    who.address,
    ctx.options.maxLoginsPerSource,
    signal,
  );
  try {
    while (true) {
      await pauseFor(ctx.addressPenalties.delayFor(who.address), signal);
      const releaseUser = await ctx.loginsByUser.acquire(user, 1, signal);
      if (ctx.addressPenalties.verdict(who.address).action === "refuse") {
        releaseUser();
        throw new LoginFailure(user, "address penalised: login not evaluated");
      }
      if (ctx.addressPenalties.delayFor(who.address) <= 0) {
        return () => {
          releaseUser();
          releaseSource();
        };
      }
      releaseUser();
    }
  } catch (error) {
    releaseSource();
    throw error;
  }
}

/**
 * Logs why a connection failed before its session, penalises its address
 * (and user), gives back its startup hold, delays the answer to a failed
 * login, closes the connection.
 */
export async function rejectConnection(
  error: unknown,
  who: Peer & {
    channel: Channel | null;
    conn: Deno.TcpConn;
    startup: Startup;
    helloSent: boolean;
    /** Releases the login's slots, once its failure is recorded. */
    releaseLogin: () => void;
  },
  ctx: AdmissionContext,
): Promise<void> {
  const { id, peer, channel } = who;
  const reason = describeError(error);
  const close = closeForError(error);
  if (error instanceof LoginFailure) {
    ctx.logger.log({
      event: "login_failed",
      conn: id,
      peer,
      user: error.user,
      reason,
    });
    const byAddress = penalise(who, PenaltyWeight.failure, ctx);
    const byUser = ctx.userPenalties.recordFailure(`user:${error.user}`);
    const delayMs = Math.max(byAddress, "ms" in byUser ? byUser.ms : 0);
    who.releaseLogin();
    endStartup(who.startup, who, ctx);
    await sleep(
      Math.min(delayMs, ctx.options.penaltyCapMs),
      ctx.shutdownSignal,
    );
  } else if (error instanceof LoginRequiredError) {
    ctx.logger.log({ event: "login_failed", conn: id, peer, reason });
  } else {
    ctx.logger.log({
      event: "handshake_failed",
      conn: id,
      peer,
      address: who.address,
      reason,
    });
    if (error instanceof KeyRejectedError) {
      penalise(who, PenaltyWeight.failure, ctx);
    } else if (error instanceof TimeoutError) {
      penalise(who, PenaltyWeight.graceExceeded, ctx);
    } else if (who.helloSent && !channel) {
      // The server paid for a key pair, a DH and HKDF; the peer did not.
      penalise(who, PenaltyWeight.abandoned, ctx);
    }
  }
  if (channel && close) await channel.close(close.code, close.reason);
  channel?.abort();
  closeQuietly(who.conn);
}

function penalise(
  who: Peer,
  weight: number,
  ctx: AdmissionContext,
): number {
  const verdict = ctx.addressPenalties.recordFailure(who.address, { weight });
  if (verdict.action === "allow") return 0;
  ctx.logger.log({
    event: "penalty",
    conn: who.id,
    peer: who.peer,
    address: who.address,
    ms: verdict.ms,
    reason: verdict.action === "refuse" ? "refusing address" : "delaying",
  });
  return verdict.action === "delay" ? verdict.ms : 0;
}

/**
 * Writes the refusal, then drains what the client already sent before
 * closing, so that the close is a FIN the client can read the refusal
 * before, rather than a reset that may discard it. Bounded: at most
 * {@link MAX_REFUSING} at once, each for 1 s and 1 KiB.
 */
async function sendRefusal(
  conn: Deno.TcpConn,
  bytes: Uint8Array,
  ctx: RefusalContext,
): Promise<void> {
  const drain = ctx.refusing.size < MAX_REFUSING && !ctx.shuttingDown;
  if (drain) ctx.refusing.add(conn);
  const timer = drain
    ? setTimeout(() => closeQuietly(conn), REFUSAL_DRAIN_MS)
    : undefined;
  try {
    await writeAll(conn, bytes);
    if (!drain) return;
    await conn.closeWrite();
    const buffer = new Uint8Array(REFUSAL_DRAIN_BYTES);
    let total = 0;
    while (total < REFUSAL_DRAIN_BYTES) {
      const read = await conn.read(buffer);
      if (read === null) break;
      total += read;
    }
  } catch {
    // The peer reset, or the drain timed out: closing either way.
  } finally {
    clearTimeout(timer);
    ctx.refusing.delete(conn);
    closeQuietly(conn);
  }
}

/** Waits `ms`, ending early if `signal` aborts (then the caller fails). */
async function pauseFor(ms: number, signal: AbortSignal): Promise<void> {
  await sleep(ms, signal);
  if (signal.aborted) throw signal.reason;
}

/** Closes a connection or listener that may already be closed. */
export function closeQuietly(closable: { close(): void }): void {
  try {
    closable.close();
  } catch {
    // Already closed.
  }
}
