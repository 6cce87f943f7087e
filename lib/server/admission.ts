/**
 * The server's gatekeeping: who may start a connection (connection caps,
 * penalised addresses, shutdown), and what happens to one whose handshake
 * or login failed (logged, penalised, delayed, closed with one generic
 * answer). It sends nothing but close records; the layers below do the
 * protocol.
 *
 * @module
 */

import type { Channel } from "../wire/channel.ts";
import {
  describeError,
  KeyRejectedError,
  LoginFailure,
  LoginRequiredError,
} from "../errors.ts";
import type { ConnectionGate, PenaltyBox } from "./limits.ts";
import type { Logger } from "./log.ts";
import { sleep } from "../wire/deadline.ts";
import { closeForError } from "../wire/messages.ts";
import type { ServeSettings } from "./serve_options.ts";

/** The part of the running server's state that admission reads. */
export interface AdmissionContext {
  readonly options: ServeSettings;
  readonly logger: Logger;
  readonly gate: ConnectionGate;
  readonly addressPenalties: PenaltyBox;
  readonly userPenalties: PenaltyBox;
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
 * Admits a new connection or refuses it at once, before any crypto: while
 * shutting down, while its address is penalised, or past the caps.
 *
 * @returns Whether the connection may start its handshake.
 */
export function admit(
  conn: Deno.TcpConn,
  who: Peer,
  ctx: AdmissionContext,
): boolean {
  const verdict = ctx.addressPenalties.verdict(who.address);
  let reason = "";
  if (ctx.shuttingDown) reason = "shutting down";
  else if (verdict.action === "refuse") {
    reason = `penalty: ${Math.ceil(verdict.ms / 1000)} s left`;
  } else if (!ctx.gate.tryAdmit()) {
    reason = ctx.gate.connections >= ctx.options.maxConnections
      ? `max connections (${ctx.options.maxConnections})`
      : `max startups (${ctx.options.maxStartups})`;
    ctx.logger.log({ event: "limit", conn: who.id, peer: who.peer, reason });
  }
  if (!reason) return true;
  ctx.logger.log({ event: "refused", conn: who.id, peer: who.peer, reason });
  closeQuietly(conn);
  return false;
}

/**
 * Logs why a connection failed before its session, penalises its address
 * (and user), delays the answer to a failed login, closes the connection.
 */
export async function rejectConnection(
  error: unknown,
  who: Peer & { channel: Channel | null; conn: Deno.TcpConn },
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
    const byAddress = penalise(who, ctx);
    const byUser = ctx.userPenalties.recordFailure(`user:${error.user}`);
    const delayMs = Math.max(byAddress, "ms" in byUser ? byUser.ms : 0);
    await sleep(
      Math.min(delayMs, ctx.options.penaltyCapMs),
      ctx.shutdownSignal,
    );
  } else if (error instanceof LoginRequiredError) {
    ctx.logger.log({ event: "login_failed", conn: id, peer, reason });
  } else {
    ctx.logger.log({ event: "handshake_failed", conn: id, peer, reason });
    if (error instanceof KeyRejectedError) penalise(who, ctx);
  }
  if (channel && close) await channel.close(close.code, close.reason);
  channel?.abort();
  closeQuietly(who.conn);
}

function penalise(
  who: Peer,
  ctx: AdmissionContext,
): number {
  const verdict = ctx.addressPenalties.recordFailure(who.address);
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

/** Closes a connection or listener that may already be closed. */
export function closeQuietly(closable: { close(): void }): void {
  try {
    closable.close();
  } catch {
    // Already closed.
  }
}
