/**
 * The server core: accepts TCP connections and runs each one through the
 * layers (handshake → channel → login → session → handler), under the
 * limits that keep the server alive: deadlines for handshake and login,
 * pings to quiet clients and an optional idle timeout (one timer for all
 * sessions, not a timer each), bounded outgoing queues, and (admission.ts)
 * connection caps and penalties. A user removed from the user file has
 * their sessions closed (code 10). Every event goes to the logger in the options; a
 * failure in one connection closes that connection only.
 *
 * It does not parse flags or print: server.ts and lib/cli/ do.
 *
 * @module
 */

import {
  type AdmissionContext,
  admit,
  beginLogin,
  closeQuietly,
  endStartup,
  type Peer,
  refuse,
  rejectConnection,
  type Startup,
} from "./admission.ts";
import { acceptLoop } from "./accept_loop.ts";
import { type Channel, openChannel } from "../wire/channel.ts";
import { describeError } from "../errors.ts";
import { handshakeAsServer } from "../wire/handshake.ts";
import { settlesWithin, timeoutSignal } from "../wire/deadline.ts";
import { parseAddressList } from "./address.ts";
import { ConnectionGate, PenaltyBox } from "./limits.ts";
import { type GuardedLogger, guardLogger } from "./log.ts";
import { loginAsServer, type UserDirectory } from "../login/login.ts";
import {
  CloseCode,
  type CloseCodeValue,
  HandshakeKind,
  RECORD_OVERHEAD_BYTES,
} from "../wire/protocol.ts";
import { resolveServeOptions, type ServeOptions } from "./serve_options.ts";
import { Session, settleSession } from "./session.ts";
import { KeyRing } from "./key_ring.ts";
import type { KeyEntry } from "../key_file.ts";
import { type Origin, peerOf, resolveOrigin } from "./origin.ts";
import { TaskCount } from "./task_count.ts";
import { KeyedCounter, KeyedSlots, parseMaxStartups } from "./startups.ts";
import { type ClosableSession, serveStreamsIfAsked } from "./forward.ts";
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
  readonly logger: GuardedLogger;
  readonly sessionsByUser: KeyedCounter;
  readonly sessionsBySource: KeyedCounter;
  readonly users: UserDirectory | null;
  readonly keys: KeyRing;
  readonly handler: SessionHandler;
  readonly fakeSaltKey: Uint8Array;
  readonly sessions: Set<ClosableSession>;
  readonly forwardTargets: ForwardTargets;
  readonly starting: Set<Deno.Conn>;
  /** Connections being handled, from accept to their last log line. */
  readonly running: TaskCount;
  readonly proxyFrom: ReturnType<typeof parseAddressList> | null;
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
 * @throws {RangeError} If an option is out of range or malformed: the key
 *   is shorter than 16 bytes, `maxMessageBytes` is not 1 to 16 MiB,
 *   `maxStartups` is neither `N` nor `START:RATE:FULL`, a count or deadline
 *   (`maxConnections`, `loginTimeoutMs`, `handshakeTimeoutMs`, the
 *   per-source and per-user caps, `maxTotalQueueBytes`) is below 1, a
 *   duration is negative, `penaltyExempt` holds something not an address or
 *   range. Every option is checked before the port is bound.
 * @throws {TypeError} If an option has the wrong type.
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
  const keys = options.keys ?? KeyRing.single(settings.psk ?? new Uint8Array());
  const exempt = parseAddressList(settings.penaltyExempt);
  const penalty = {
    baseMs: settings.penaltyBaseMs,
    capMs: settings.penaltyCapMs,
    exempt,
  };
  const stopped = new AbortController();
  const startupLimits = parseMaxStartups(settings.maxStartups);
  const ctx: Context = {
    options: settings,
    users: options.users ?? null,
    keys,
    handler,
    // Metrics count each event before the log aggregates a flood of them.
    logger: guardLogger(settings.logger, {
      observe: settings.metrics
        ? (event) => settings.metrics!.observe(event)
        : undefined,
    }),
    gate: new ConnectionGate({
      maxConnections: settings.maxConnections,
      maxStartups: startupLimits.full,
    }),
    startupLimits,
    exempt,
    startupsBySource: new KeyedCounter(),
    loginsBySource: new KeyedSlots(),
    loginsByUser: new KeyedSlots(),
    sessionsByUser: new KeyedCounter(),
    sessionsBySource: new KeyedCounter(),
    refusing: new Set(),
    random: Math.random,
    addressPenalties: new PenaltyBox(penalty),
    // Per-user delays stay well inside the login deadline: they slow
    // guessing but can never lock the real user out.
    userPenalties: new PenaltyBox({
      ...penalty,
      exempt: undefined,
      capMs: Math.min(settings.penaltyCapMs, settings.loginTimeoutMs / 4),
      refuseAfter: Number.MAX_SAFE_INTEGER,
    }),
    // Never derived from the pre-shared key: every client holds that.
    fakeSaltKey: settings.serverSecret,
    sessions: new Set(),
    forwardTargets: options.forwardTargets ?? new Map(),
    starting: new Set(),
    running: new TaskCount(),
    shuttingDown: false,
    shutdownSignal: stopped.signal,
    proxyFrom: settings.proxyProtocolFrom.length
      ? parseAddressList(settings.proxyProtocolFrom)
      : null,
  };
  settings.penaltyShare?.attach(ctx.addressPenalties);
  // Bound last: everything above may throw, and must not leave it bound.
  const listener = Deno.listen({
    hostname: options.host ?? "127.0.0.1",
    port: options.port ?? 9000,
    ...(options.reusePort ? { reusePort: true } : {}),
  } as Deno.TcpListenOptions);
  const addr = listener.addr;
  ctx.logger.log({
    event: "listening",
    address: `${addr.hostname}:${addr.port}`,
  });
  const timer = startTimer(ctx);
  const stopRevoking = keys.onRevoked((ids) => {
    ctx.logger.log({ event: "keys_revoked", count: ids.size });
    closeSessions(
      ctx,
      (session) => session.keyId !== undefined && ids.has(session.keyId),
      CloseCode.keyRevoked,
      "key revoked",
    );
  });
  const stopWatchingUsers = ctx.users?.onUsersRemoved?.((names) => {
    const removed = new Set(names);
    // Logged as "closed", reason "user removed", once each session ends.
    closeSessions(
      ctx,
      (session) => session.user !== null && removed.has(session.user),
      CloseCode.userRemoved,
      "user removed",
    );
  });
  let nextId = 0;
  const accepting = acceptLoop(listener, (conn) => {
    const id = ++nextId;
    ctx.running.add();
    // Observed here, so no failure (not even the logger's) goes unhandled.
    // It settles once the session runs (which then reports its own end,
    // see endSession) or the connection has ended without one.
    handleConnection(conn, id, ctx).then((running) => {
      if (!running) ctx.running.done();
    }, (error) => {
      ctx.running.done();
      logFailure(ctx, id, error);
    });
  }, { logger: ctx.logger, stopping: () => ctx.shuttingDown });
  const finished = Promise.withResolvers<void>();
  let stopping: Promise<void> | null = null;
  return {
    addr,
    get connections() {
      return ctx.gate.connections;
    },
    shutdown: () =>
      stopping ??= shutdownServer(listener, ctx, {
        accepting,
        timer,
        stopped,
      }).then(() => {
        stopRevoking();
        stopWatchingUsers?.();
        finished.resolve();
      }),
    finished: finished.promise,
  };
}

/**
 * One connection's life, top to bottom, as the protocol reads, up to its
 * session: that runs on without this frame (idle read path, framing.ts).
 *
 * @returns Whether a session now runs (it reports its own end, see
 *   {@link endSession}); `false` once the connection has ended.
 */
async function handleConnection(
  conn: Deno.TcpConn,
  id: number,
  ctx: Context,
): Promise<boolean> {
  const origin = await resolveOrigin(conn, id, {
    proxyFrom: ctx.proxyFrom,
    filter: ctx.options.addressFilter,
    timeoutMs: ctx.options.loginTimeoutMs,
    metrics: ctx.options.metrics,
    logger: ctx.logger,
    refuse: (conn, who, refusal) => refuse(conn, who, refusal, ctx),
  });
  if (!origin) return false;
  const { peer, address } = origin;
  const who = { id, peer, address };
  const startup = admit(conn, who, ctx);
  if (!startup) return false;
  ctx.logger.log({ event: "accepted", conn: id, peer });
  conn.setNoDelay(true);
  ctx.starting.add(conn);
  let start: Awaited<ReturnType<typeof authenticate>> = null;
  try {
    start = await authenticate(conn, { ...who, startup, origin }, ctx);
  } finally {
    ctx.starting.delete(conn);
    endStartup(startup, who, ctx);
    if (!start) ctx.gate.release({ established: true });
  }
  if (!start) return false;
  const source = ctx.exempt.matches(address) ? null : address;
  if (!holdSession(start, who, source, ctx)) {
    ctx.gate.release({ established: true });
    return false;
  }
  runSession(start.channel, {
    id,
    user: start.user,
    key: start.key,
    remoteAddr: origin.remoteAddr,
    source,
  }, ctx);
  return true;
}

/**
 * Handshake then login: the handshake under its own, shorter deadline, both
 * under the login deadline. Its own function so that the deadlines, timers
 * and handshake state are released once the session runs.
 *
 * @returns The channel and user, or `null` once the connection was refused
 *   (logged, penalised and closed).
 */
async function authenticate(
  conn: Deno.TcpConn,
  who: Peer & { startup: Startup; origin: Origin },
  ctx: Context,
): Promise<{ channel: Channel; user: string | null; key: KeyEntry } | null> {
  const { loginTimeoutMs, handshakeTimeoutMs } = ctx.options;
  using deadline = timeoutSignal(loginTimeoutMs);
  // Both start now: the earlier one bounds the handshake, one timer each.
  using handshakeDeadline = handshakeTimeoutMs < loginTimeoutMs
    ? timeoutSignal(handshakeTimeoutMs)
    : null;
  const framed = who.origin.framed;
  // The handshake writes through this wrapper only to learn whether a
  // ServerHello went out (crypto spent: an abandoned handshake counts);
  // the channel writes to the connection directly.
  const sent = { hello: false };
  const handshakeConn = {
    write: (bytes: Uint8Array) => {
      if (!isFailureFlight(bytes)) sent.hello = true;
      return framed.conn.write(bytes);
    },
    close: () => framed.conn.close(),
  };
  let channel: Channel | null = null;
  const login: { release: (() => void) | null } = { release: null };
  try {
    const keys = await handshakeAsServer(
      { conn: handshakeConn, reader: framed.reader },
      ctx.keys,
      {
        signal: handshakeDeadline?.signal ?? deadline.signal,
      },
    );
    const key = keys.key;
    ctx.logger.log({
      event: "authenticated",
      conn: who.id,
      peer: who.peer,
      key: key.id,
    });
    channel = openChannel(framed, keys, { role: "server" });
    const user = ctx.users
      ? await loginAsServer(channel, ctx.users, {
        signal: deadline.signal,
        channelBinding: keys.channelBinding,
        fakeSaltKey: ctx.fakeSaltKey,
        iterations: ctx.options.iterations,
        delayFor: (name) => ctx.userPenalties.delayFor(`user:${name}`),
        allowedUsers: key.users,
        beforeEvaluate: async (name) => {
          login.release = await beginLogin(name, who, ctx, deadline.signal);
        },
      })
      : null;
    if (user !== null) {
      ctx.logger.log({
        event: "login_succeeded",
        conn: who.id,
        peer: who.peer,
        user,
        key: key.id,
      });
    }
    channel.maxRecordBytes = ctx.options.maxMessageBytes +
      RECORD_OVERHEAD_BYTES;
    return { channel, user, key };
  } catch (error) {
    await rejectConnection(error, {
      ...who,
      channel,
      conn,
      helloSent: sent.hello,
      // The next login from this source or of this user may be evaluated
      // once this one's failure is recorded, before its delay starts.
      releaseLogin: () => login.release?.(),
    }, ctx);
    return null;
  } finally {
    login.release?.();
  }
}

/** Whether a handshake write is only the failure frame (and preamble). */
function isFailureFlight(bytes: Uint8Array): boolean {
  return bytes.length <= 13 && bytes.at(-1) === HandshakeKind.failure;
}

/**
 * Counts a new session against its user's and (unless `source` is `null`,
 * exempt) its source's caps; {@link releaseSession} uncounts it.
 *
 * @returns `false` if a cap is reached (the client was then closed with
 *   `tooManySessions`).
 */
function holdSession(
  start: { channel: Channel; user: string | null },
  who: Peer,
  source: string | null,
  ctx: Context,
): boolean {
  const { user, channel } = start;
  let reason = "";
  if (
    user !== null &&
    ctx.sessionsByUser.count(user) >= ctx.options.maxSessionsPerUser
  ) {
    reason = `max sessions per user (${ctx.options.maxSessionsPerUser})`;
  } else if (
    source !== null &&
    ctx.sessionsBySource.count(source) >= ctx.options.maxSessionsPerSource
  ) {
    reason = `max sessions per source (${ctx.options.maxSessionsPerSource})`;
  }
  if (reason) {
    ctx.logger.log({
      event: "limit",
      conn: who.id,
      peer: who.peer,
      user: user ?? undefined,
      reason,
    });
    channel.close(CloseCode.tooManySessions, "too many sessions", {
      signal: AbortSignal.timeout(1000),
    }).catch(() => {});
    return false;
  }
  if (user !== null) ctx.sessionsByUser.tryAcquire(user, Infinity);
  if (source !== null) ctx.sessionsBySource.tryAcquire(source, Infinity);
  return true;
}

/**
 * Uncounts an ended session (see {@link holdSession}), frees its
 * connection's place at the gate, and ends its task.
 */
function releaseSession(
  user: string | null,
  source: string | null,
  ctx: Context,
): void {
  if (user !== null) ctx.sessionsByUser.release(user);
  if (source !== null) ctx.sessionsBySource.release(source);
  ctx.gate.release({ established: true });
  ctx.running.done();
}

/**
 * Closes the sessions with the fullest queues, as too slow, until the bytes
 * queued by the open sessions fit `maxBytes`.
 *
 * @returns How many sessions were closed.
 */
export function enforceQueueBudget(
  sessions: Iterable<ClosableSession>,
  maxBytes: number,
): number {
  let total = 0;
  const open: ClosableSession[] = [];
  for (const session of sessions) {
    if (session.end) continue;
    const queued = session.queuedBytes;
    if (queued === 0) continue;
    total += queued;
    open.push(session);
  }
  if (total <= maxBytes) return 0;
  open.sort((left, right) => right.queuedBytes - left.queuedBytes);
  let closed = 0;
  for (const session of open) {
    if (total <= maxBytes) break;
    total -= session.queuedBytes;
    session.close(
      CloseCode.tooSlow,
      `client too slow: server queue budget of ${maxBytes} bytes exceeded`,
      { immediately: true },
    );
    closed++;
  }
  return closed;
}

/** Who a session about to run is, for its logs and its key checks. */
interface SessionPeer {
  id: number;
  user: string | null;
  key: KeyEntry;
  remoteAddr: Deno.NetAddr;
  /** Its address as counted in the per-source caps; `null`: exempt. */
  source: string | null;
}

/**
 * A tunnel or a message session, until it closes; either way its end is
 * logged and the session released (see {@link releaseSession}).
 */
function runSession(channel: Channel, who: SessionPeer, ctx: Context): void {
  if (ctx.forwardTargets.size === 0) return runMessages(channel, who, ctx);
  const caller = {
    ...who,
    peer: peerOf(who.remoteAddr),
    keyId: who.key.id,
    keyHeld: () => ctx.keys.holds(who.key),
  };
  const forward = {
    ...ctx,
    connectTimeoutMs: ctx.options.loginTimeoutMs,
    maxRecordBytes: ctx.options.maxMessageBytes + RECORD_OVERHEAD_BYTES,
  };
  serveStreamsIfAsked(channel, caller, forward).then((served) => {
    if (!served) return runMessages(channel, who, ctx);
    releaseSession(who.user, who.source, ctx);
  }, (error) => {
    releaseSession(who.user, who.source, ctx);
    logFailure(ctx, who.id, error);
  });
}

/**
 * A message session: the handler, then the close, its log line and the
 * release. One reaction to the handler waits on an idle connection, its
 * two callbacks sharing one context of three (bench: idle memory).
 */
function runMessages(channel: Channel, who: SessionPeer, ctx: Context): void {
  const session = new Session(channel, {
    id: who.id,
    user: who.user,
    keyId: who.key.id,
    remoteAddr: who.remoteAddr,
    maxQueueBytes: ctx.options.maxQueueBytes,
    maxMessageBytes: ctx.options.maxMessageBytes,
  });
  ctx.sessions.add(session);
  if (ctx.shuttingDown) {
    session.close(CloseCode.shuttingDown, "server shutting down");
  } else if (!ctx.keys.holds(who.key)) {
    session.close(CloseCode.keyRevoked, "key revoked"); // during login
  }
  let handled: Promise<void>;
  try {
    handled = Promise.resolve(ctx.handler(session));
  } catch (error) {
    handled = Promise.reject(error);
  }
  const source = who.source;
  handled.then(
    () => endSession(session, source, ctx),
    (error) => endSession(session, source, ctx, { error }),
  );
}

/**
 * Closes a session whose handler is done (or failed: logged, and closed
 * without confirming the message in hand), logs why it closed, and
 * releases it. Never rejects: a failure here is logged.
 */
async function endSession(
  session: Session,
  source: string | null,
  ctx: Context,
  failed?: { error: unknown },
): Promise<void> {
  const peer = peerOf(session.remoteAddr);
  try {
    if (failed) {
      ctx.logger.log({
        event: "error",
        conn: session.id,
        peer,
        key: session.keyId,
        detail: `handler failed: ${describeError(failed.error)}`,
      });
      session.close(CloseCode.handlerError, "handler error", {
        immediately: true,
      });
    }
    await settleSession(session);
    ctx.sessions.delete(session);
    const end = session.end;
    ctx.logger.log({
      event: "closed",
      conn: session.id,
      peer,
      user: session.user ?? undefined,
      key: session.keyId,
      reason: end?.error
        ? `${end.reason}: ${describeError(end.error)}`
        : end?.reason,
    });
  } catch (error) {
    logFailure(ctx, session.id, error);
  } finally {
    releaseSession(session.user, source, ctx);
  }
}

/** Logs a connection's unexpected failure (the guarded logger never throws). */
function logFailure(ctx: Context, id: number, error: unknown): void {
  ctx.logger.log({ event: "error", conn: id, detail: describeError(error) });
}

/**
 * Closes every open session `matches` picks, with one close code and
 * reason: revoked keys, removed users, shutdown.
 */
function closeSessions(
  ctx: Context,
  matches: (session: ClosableSession) => boolean,
  code: CloseCodeValue,
  reason: string,
  options?: { immediately?: boolean },
): void {
  for (const session of ctx.sessions) {
    if (matches(session)) session.close(code, reason, options);
  }
}

/** How often the queue budget is enforced, in ms. */
const QUEUE_CHECK_MS = 50;
/** How often the log's aggregated summaries are written, in ms. */
const LOG_FLUSH_MS = 1000;

/**
 * The one timer of the whole server. Every tick (50 ms, or less for short
 * idle or ping periods) it keeps the bytes queued across all open sessions
 * under `maxTotalQueueBytes`, closing the fullest queues first as too slow;
 * about every quarter of the shortest idle or ping period it closes
 * sessions idle past the idle timeout (if set) and pings quiet clients,
 * closing unresponsive ones; every second it writes the log's aggregated
 * summaries.
 */
function startTimer(ctx: Context): ReturnType<typeof setInterval> {
  const idle = ctx.options.idleTimeoutMs;
  const ping = ctx.options.pingIntervalMs;
  const periods = [idle, ping].filter((ms) => ms > 0);
  const sweepEvery = periods.length === 0
    ? Infinity
    : Math.max(10, Math.min(5000, Math.floor(Math.min(...periods) / 4)));
  const tick = Math.min(QUEUE_CHECK_MS, sweepEvery);
  const sweepTicks = Math.max(1, Math.round(sweepEvery / tick));
  const flushTicks = Math.max(1, Math.round(LOG_FLUSH_MS / tick));
  let ticks = 0;
  return setInterval(() => {
    ticks++;
    enforceQueueBudget(ctx.sessions, ctx.options.maxTotalQueueBytes);
    if (periods.length > 0 && ticks % sweepTicks === 0) {
      const now = Date.now();
      const cutoff = now - idle;
      for (const session of ctx.sessions) {
        if (idle > 0 && session.lastActivity < cutoff) {
          session.close(CloseCode.idleTimeout, "idle timeout");
        } else {
          session.checkLiveness?.(now, ping);
        }
      }
    }
    if (ticks % flushTicks === 0) ctx.logger.flush();
  }, tick);
}

async function shutdownServer(
  listener: Deno.Listener,
  ctx: Context,
  running: {
    accepting: Promise<void>;
    timer: ReturnType<typeof setInterval>;
    stopped: AbortController;
  },
): Promise<void> {
  ctx.shuttingDown = true;
  running.stopped.abort();
  ctx.logger.log({ event: "shutdown", count: ctx.gate.connections });
  closeQuietly(listener);
  await running.accepting;
  for (const conn of ctx.starting) closeQuietly(conn);
  for (const conn of ctx.refusing) closeQuietly(conn);
  const all = () => true;
  closeSessions(ctx, all, CloseCode.shuttingDown, "server shutting down");
  const allClosed = ctx.running.none();
  if (!(await settlesWithin(allClosed, ctx.options.shutdownTimeoutMs))) {
    closeSessions(ctx, all, CloseCode.shuttingDown, "server shutting down", {
      immediately: true,
    });
    for (const conn of ctx.starting) closeQuietly(conn);
    await settlesWithin(allClosed, 1000);
  }
  clearInterval(running.timer);
  ctx.logger.flush({ all: true });
}
