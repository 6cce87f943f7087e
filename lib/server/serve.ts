/**
 * The server core: accepts TCP connections and runs each one through the
 * layers (handshake → channel → login → session → handler), under the
 * limits that keep the server alive: one deadline for handshake plus login,
 * an idle timeout, bounded outgoing queues, and (admission.ts) connection
 * caps and penalties. Every event goes to the logger in the options; a
 * failure in one connection closes that connection only.
 *
 * It does not parse flags or print: server.ts and lib/cli/ do.
 *
 * @module
 */

import {
  type AdmissionContext,
  admit,
  closeQuietly,
  rejectConnection,
} from "./admission.ts";
import { utf8 } from "../wire/bytes.ts";
import { type Channel, openChannel } from "../wire/channel.ts";
import { hmacSha256 } from "../wire/crypto.ts";
import { describeError } from "../errors.ts";
import { FrameReader } from "../wire/framing.ts";
import { handshakeAsServer } from "../wire/handshake.ts";
import {
  ConnectionGate,
  normalizeAddress,
  parseAddressList,
  PenaltyBox,
} from "./limits.ts";
import { loginAsServer, type UserDirectory } from "../login/login.ts";
import { CloseCode, RECORD_OVERHEAD_BYTES } from "../wire/protocol.ts";
import { resolveServeOptions, type ServeOptions } from "./serve_options.ts";
import { Session } from "./session.ts";
import {
  type ClosableSession,
  keyIdOf,
  serveStreamsIfAsked,
} from "./forward.ts";
import type { ForwardTargets } from "./forward_targets.ts";

export type { ServeOptions } from "./serve_options.ts";

/**
 * Handles one authenticated session; the connection closes when it returns.
 *
 * Called once per client, after the handshake and (with `users`) the login.
 * If it throws, the error is logged and the client is closed with the
 * `handlerError` code; other sessions are not affected.
 *
 * @param session The client: its messages, `send` and `close`.
 * @returns Nothing, or a promise that settles when the session is done.
 * @example Usage
 * ```ts
 * const shout: SessionHandler = async (session) => {
 *   for await (const message of session) {
 *     message.reply(message.text().toUpperCase());
 *   }
 * };
 * ```
 */
export type SessionHandler = (session: Session) => void | Promise<void>;

/**
 * A running server, as returned by {@link serve}.
 *
 * @example Usage
 * ```ts ignore
 * const server = serve({ port: 0, psk }, echoService);
 * console.log(`listening on port ${server.addr.port}`);
 * Deno.addSignalListener("SIGINT", () => server.shutdown());
 * await server.finished;
 * ```
 */
export interface Server {
  /** The address actually bound (the real port when 0 was asked). */
  readonly addr: Deno.NetAddr;
  /** Connections open now. */
  readonly connections: number;
  /**
   * Stops accepting, tells connected clients the server is closing, lets
   * messages in flight finish, and resolves once every connection is closed
   * (forcibly after `shutdownTimeoutMs`). Calling it again returns the same
   * shutdown.
   *
   * @returns A promise that resolves once the server has stopped.
   */
  shutdown(): Promise<void>;
  /** Resolves once `shutdown()` has finished; never rejects. */
  readonly finished: Promise<void>;
}

interface Context extends AdmissionContext {
  readonly users: UserDirectory | null;
  readonly handler: SessionHandler;
  readonly fakeSaltKey: Uint8Array;
  readonly sessions: Set<ClosableSession>;
  readonly forwardTargets: ForwardTargets;
  readonly starting: Set<Deno.Conn>;
}

/**
 * Starts a doorman server: listens on `options.host`:`options.port` and runs
 * `handler` for every client that proves the pre-shared key and (when
 * `options.users` is set) logs in.
 *
 * Each connection is independent: a failed handshake, login or handler
 * closes that connection only, and every event goes to `options.logger`.
 *
 * @param options Where to listen, the key, the users and the limits.
 * @param handler What to do with each authenticated client.
 * @returns The running server: its address, and `shutdown()`.
 * @throws {RangeError} If the key is shorter than 16 bytes,
 *   `maxMessageBytes` is not 1 to 16 MiB, or `maxConnections`,
 *   `maxStartups` or `loginTimeoutMs` is below 1.
 * @throws {Deno.errors.AddrInUse} If the port is taken.
 * @example Usage
 * ```ts ignore
 * const psk = await readKeyFile("doorman.key");
 * const users = await UserStore.open("userinfo");
 * const server = serve({ port: 9000, psk, users }, echoService);
 * await server.finished;
 * ```
 */
export function serve(options: ServeOptions, handler: SessionHandler): Server {
  const settings = resolveServeOptions(options);
  const listener = Deno.listen({
    hostname: options.host ?? "127.0.0.1",
    port: options.port ?? 9000,
  });
  const exempt = parseAddressList(settings.penaltyExempt);
  const penalty = {
    baseMs: settings.penaltyBaseMs,
    capMs: settings.penaltyCapMs,
    exempt,
  };
  const ctx: Context = {
    options: settings,
    users: options.users ?? null,
    handler,
    logger: settings.logger,
    gate: new ConnectionGate(settings),
    addressPenalties: new PenaltyBox(penalty),
    // Per-user delays stay well inside the login deadline: they slow
    // guessing but can never lock the real user out.
    userPenalties: new PenaltyBox({
      ...penalty,
      exempt: undefined,
      capMs: Math.min(settings.penaltyCapMs, settings.loginTimeoutMs / 4),
      refuseAfter: Number.MAX_SAFE_INTEGER,
    }),
    fakeSaltKey: hmacSha256(options.psk, utf8("doorman fake salt key")),
    sessions: new Set(),
    forwardTargets: options.forwardTargets ?? new Map(),
    starting: new Set(),
    shuttingDown: false,
  };
  const addr = listener.addr;
  ctx.logger.log({
    event: "listening",
    address: `${addr.hostname}:${addr.port}`,
  });
  const tasks = new Set<Promise<void>>();
  const sweeper = startIdleSweeper(ctx);
  const accepting = acceptLoop(listener, ctx, tasks);
  const finished = Promise.withResolvers<void>();
  let stopping: Promise<void> | null = null;
  return {
    addr,
    get connections() {
      return ctx.gate.connections;
    },
    shutdown: () =>
      stopping ??= shutdownServer(listener, ctx, { tasks, accepting, sweeper })
        .then(finished.resolve),
    finished: finished.promise,
  };
}

async function acceptLoop(
  listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>,
  ctx: Context,
  tasks: Set<Promise<void>>,
): Promise<void> {
  let nextId = 0;
  while (!ctx.shuttingDown) {
    let conn: Deno.TcpConn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (ctx.shuttingDown || error instanceof Deno.errors.BadResource) return;
      ctx.logger.log({ event: "error", detail: describeError(error) });
      await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    const task = handleConnection(conn, ++nextId, ctx).catch((error) => {
      ctx.logger.log({
        event: "error",
        conn: nextId,
        detail: describeError(error),
      });
    });
    tasks.add(task);
    task.finally(() => tasks.delete(task));
  }
}

/** One connection's life, top to bottom, as the protocol reads. */
async function handleConnection(
  conn: Deno.TcpConn,
  id: number,
  ctx: Context,
): Promise<void> {
  const peer = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
  const address = normalizeAddress(conn.remoteAddr.hostname);
  if (!admit(conn, { id, peer, address }, ctx)) return;
  ctx.logger.log({ event: "accepted", conn: id, peer });
  conn.setNoDelay(true);
  ctx.starting.add(conn);
  let start: Awaited<ReturnType<typeof authenticate>> = null;
  try {
    start = await authenticate(conn, { id, peer, address }, ctx);
  } finally {
    ctx.starting.delete(conn);
    if (!start) ctx.gate.release({ established: false });
  }
  if (!start) return;
  ctx.gate.established();
  // Returned, not awaited: this frame ends here instead of staying suspended
  // for the whole session of every idle connection (bench: idle memory).
  return runSession(start.channel, { id, peer, user: start.user, conn }, ctx)
    .finally(() => ctx.gate.release({ established: true }));
}

/**
 * Handshake then login, under one deadline. Its own function so that the
 * deadline, timer and handshake state are released once the session runs.
 *
 * @returns The channel and user, or `null` once the connection was refused
 *   (logged, penalised and closed).
 */
async function authenticate(
  conn: Deno.TcpConn,
  who: { id: number; peer: string; address: string },
  ctx: Context,
): Promise<{ channel: Channel; user: string | null } | null> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), ctx.options.loginTimeoutMs);
  const framed = { conn, reader: new FrameReader(conn) };
  let channel: Channel | null = null;
  try {
    const keys = await handshakeAsServer(framed, ctx.options.psk, {
      signal: deadline.signal,
    });
    ctx.logger.log({ event: "authenticated", conn: who.id, peer: who.peer });
    channel = openChannel(framed, keys, { role: "server" });
    const user = ctx.users
      ? await loginAsServer(channel, ctx.users, {
        signal: deadline.signal,
        fakeSaltKey: ctx.fakeSaltKey,
        iterations: ctx.options.iterations,
        delayFor: (name) => ctx.userPenalties.delayFor(`user:${name}`),
      })
      : null;
    if (user !== null) {
      ctx.logger.log({
        event: "login_succeeded",
        conn: who.id,
        peer: who.peer,
        user,
      });
    }
    channel.maxRecordBytes = ctx.options.maxMessageBytes +
      RECORD_OVERHEAD_BYTES;
    return { channel, user };
  } catch (error) {
    await rejectConnection(error, { ...who, channel, conn }, ctx);
    return null;
  } finally {
    clearTimeout(timer);
  }
}

async function runSession(
  channel: Channel,
  who: { id: number; peer: string; user: string | null; conn: Deno.TcpConn },
  ctx: Context,
): Promise<void> {
  if (ctx.forwardTargets.size > 0) {
    const caller = {
      ...who,
      keyId: keyIdOf(who),
      remoteAddr: who.conn.remoteAddr,
    };
    const forward = {
      ...ctx,
      connectTimeoutMs: ctx.options.loginTimeoutMs,
      maxRecordBytes: ctx.options.maxMessageBytes + RECORD_OVERHEAD_BYTES,
    };
    if (await serveStreamsIfAsked(channel, caller, forward)) return;
  }
  const session = new Session(channel, {
    id: who.id,
    user: who.user,
    remoteAddr: who.conn.remoteAddr,
    maxQueueBytes: ctx.options.maxQueueBytes,
    maxMessageBytes: ctx.options.maxMessageBytes,
  });
  ctx.sessions.add(session);
  if (ctx.shuttingDown) {
    session.close("server shutting down", CloseCode.shuttingDown);
  }
  try {
    await ctx.handler(session);
  } catch (error) {
    ctx.logger.log({
      event: "error",
      conn: who.id,
      peer: who.peer,
      detail: `handler failed: ${describeError(error)}`,
    });
    // The message in hand was not handled: close without confirming it.
    session.terminate("handler error", CloseCode.handlerError);
  }
  await session.settle();
  ctx.sessions.delete(session);
  const end = session.end;
  ctx.logger.log({
    event: "closed",
    conn: who.id,
    peer: who.peer,
    user: who.user ?? undefined,
    reason: end?.error
      ? `${end.reason}: ${describeError(end.error)}`
      : end?.reason,
  });
}

function startIdleSweeper(
  ctx: Context,
): ReturnType<typeof setInterval> | null {
  const idle = ctx.options.idleTimeoutMs;
  if (idle <= 0) return null;
  const every = Math.max(10, Math.min(5000, Math.floor(idle / 4)));
  return setInterval(() => {
    const cutoff = Date.now() - idle;
    for (const session of ctx.sessions) {
      if (session.lastActivity < cutoff) {
        session.close("idle timeout", CloseCode.idleTimeout);
      }
    }
  }, every);
}

async function shutdownServer(
  listener: Deno.Listener,
  ctx: Context,
  running: {
    tasks: Set<Promise<void>>;
    accepting: Promise<void>;
    sweeper: ReturnType<typeof setInterval> | null;
  },
): Promise<void> {
  ctx.shuttingDown = true;
  ctx.logger.log({ event: "shutdown", count: ctx.gate.connections });
  closeQuietly(listener);
  await running.accepting;
  for (const conn of ctx.starting) closeQuietly(conn);
  for (const session of ctx.sessions) {
    session.close("server shutting down", CloseCode.shuttingDown);
  }
  const allClosed = Promise.all(running.tasks);
  if (!(await settlesWithin(allClosed, ctx.options.shutdownTimeoutMs))) {
    for (const session of ctx.sessions) {
      session.terminate("server shutting down", CloseCode.shuttingDown);
    }
    for (const conn of ctx.starting) closeQuietly(conn);
    await settlesWithin(allClosed, 1000);
  }
  if (running.sweeper !== null) clearInterval(running.sweeper);
}

/**
 * Whether `work` settles within `ms`; the timer never outlives the race.
 */
async function settlesWithin(
  work: Promise<unknown>,
  ms: number,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([work.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
