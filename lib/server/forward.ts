/**
 * Server core, tunnels: after login the client's first record is either a
 * `message` (a message session, as before) or a `streamOpen` naming a
 * target (`docs/PROTOCOL.md`). For a stream, this file checks the
 * target table and its rule, dials the target (sending a PROXY v2 header
 * when asked), answers `streamOpened` and pumps bytes both ways; after a
 * stream that ended cleanly the same connection may open the next one.
 *
 * Refused and failed streams close the connection with a tunnel close code
 * and a reason naming the target, and are logged with user, key id and
 * target; they never count as login failures. It does not parse flags.
 *
 * @module
 */

import type { Channel, ChannelRecord } from "../wire/channel.ts";
import { describeError, ProtocolError } from "../errors.ts";
import {
  CloseCode,
  type CloseCodeValue,
  RecordKind,
} from "../wire/protocol.ts";
import {
  decodeStreamOpen,
  MAX_STREAM_RECORD_BYTES,
} from "../wire/stream_records.ts";
import { pumpStream, type StreamStop } from "../wire/stream_pump.ts";
import { writeAll } from "../wire/framing.ts";
import {
  type ForwardTarget,
  type ForwardTargets,
  mayUseTarget,
} from "./forward_targets.ts";
import type { Logger } from "./log.ts";
import { encodeProxyV2Header } from "./proxy_header.ts";

/** What the server core shares with tunnels. */
export interface ForwardContext {
  readonly forwardTargets: ForwardTargets;
  readonly logger: Logger;
  /** Open sessions and tunnels: the idle sweeper and shutdown close them. */
  readonly sessions: Set<ClosableSession>;
  /** Deadline for dialing a target, in ms. */
  readonly connectTimeoutMs: number;
  /** Largest record accepted before streams; raised to fit stream data. */
  readonly maxRecordBytes: number;
  shuttingDown: boolean;
}

/**
 * What the server's sweeper, caps, revocation and shutdown need of a
 * message session or a tunnel (`Session` has all of it).
 */
export interface ClosableSession {
  readonly lastActivity: number;
  readonly user: string | null;
  readonly keyId?: string;
  readonly queuedBytes: number;
  /** Set once a message session has ended (tunnels leave the set instead). */
  readonly end?: unknown;
  close(
    code?: CloseCodeValue,
    reason?: string,
    options?: { immediately?: boolean },
  ): void | Promise<void>;
  /** Pings a quiet peer (message sessions; tunnels have no pings). */
  checkLiveness?(now: number, intervalMs: number): void;
}

/** The logged-in client asking for streams. */
export interface StreamCaller {
  readonly id: number;
  readonly peer: string;
  readonly user: string | null;
  /** The id of the key the client proved. */
  readonly keyId: string | null;
  readonly remoteAddr: Deno.NetAddr;
  /**
   * Whether the key the client proved is still in the ring: a key revoked
   * while the client logged in is closed at once, as for a message session.
   */
  readonly keyHeld?: () => boolean;
}

/**
 * Reads the first record after login. A `streamOpen` makes this connection
 * a tunnel: its streams are served here until it closes, and `true` is
 * returned. Anything else is handed back to the channel (`unreceive`) and
 * `false` returned, for a message session.
 *
 * @param channel The logged-in channel.
 * @param caller The client: user, key id, address.
 * @param ctx Targets, logger and the set of open sessions.
 * @returns Whether the connection was a tunnel (and is now closed).
 */
export async function serveStreamsIfAsked(
  channel: Channel,
  caller: StreamCaller,
  ctx: ForwardContext,
): Promise<boolean> {
  const tunnel = new Tunnel(channel, caller);
  ctx.sessions.add(tunnel);
  if (ctx.shuttingDown) {
    tunnel.close(CloseCode.shuttingDown, "server shutting down");
  } else if (caller.keyHeld?.() === false) {
    tunnel.close(CloseCode.keyRevoked, "key revoked"); // during login
  }
  let first: ChannelRecord | null;
  try {
    first = await channel.receive();
  } catch {
    ctx.sessions.delete(tunnel);
    // Closed by the server (revoked, removed, idle, shutdown) before its
    // first record: ended here. Else the session reads again and reports.
    const stopped = tunnel.stopped;
    if (stopped) logClosed(ctx, caller, stopped.reason);
    return stopped !== null;
  }
  if (first === null || first.kind !== RecordKind.streamOpen) {
    ctx.sessions.delete(tunnel);
    if (first !== null) channel.unreceive(first);
    return false;
  }
  channel.maxRecordBytes = Math.max(
    ctx.maxRecordBytes,
    MAX_STREAM_RECORD_BYTES,
  );
  let reason = "client closed";
  try {
    let record: ChannelRecord | null = first;
    let streams = 0;
    while (record !== null) {
      if (record.kind !== RecordKind.streamOpen) {
        throw new ProtocolError(`Unexpected record kind ${record.kind}`);
      }
      streams++;
      const outcome = await runStream(
        channel,
        decodeStreamOpen(record.body),
        { caller, ctx, tunnel },
      );
      if (outcome !== "ended") {
        reason = `stream ${outcome}`;
        return true;
      }
      const stop = tunnel.beforeNextStream();
      if (stop) {
        reason = stop.reason;
        await channel.close(stop.code, stop.reason, {
          signal: AbortSignal.timeout(2000),
        });
        return true;
      }
      record = await channel.receive();
      tunnel.touch();
    }
    reason = channel.closeInfo?.reason || "client closed";
    channel.abort();
    return true;
  } catch (error) {
    reason = `failed: ${describeError(error)}`;
    const code = error instanceof ProtocolError
      ? CloseCode.protocolError
      : CloseCode.normal;
    await channel.close(code, "protocol error", {
      signal: AbortSignal.timeout(2000),
    });
    return true;
  } finally {
    ctx.sessions.delete(tunnel);
    logClosed(ctx, caller, reason);
  }
}

function logClosed(
  ctx: ForwardContext,
  caller: StreamCaller,
  reason: string,
): void {
  ctx.logger.log({
    event: "closed",
    conn: caller.id,
    peer: caller.peer,
    user: caller.user ?? undefined,
    key: caller.keyId ?? undefined,
    reason,
  });
}

/**
 * One tunnel connection as the sweeper and shutdown see it. Activity and
 * the stream in progress span calls, hence a class.
 */
class Tunnel implements ClosableSession {
  #channel: Channel;
  #lastActivity = Date.now();
  #stream: AbortController | null = null;
  #pendingStop: StreamStop | null = null;
  readonly user: string | null;
  readonly keyId?: string;

  constructor(channel: Channel, caller: StreamCaller) {
    this.#channel = channel;
    this.user = caller.user;
    if (caller.keyId !== null) this.keyId = caller.keyId;
  }

  get queuedBytes(): number {
    return this.#channel.queuedBytes;
  }

  /** The close the server sent or holds for later, if any. */
  get stopped(): StreamStop | null {
    return this.#pendingStop;
  }

  get lastActivity(): number {
    return this.#lastActivity;
  }

  touch(): void {
    this.#lastActivity = Date.now();
  }

  /** Starts a stream: returns the signal that stops it. */
  startStream(): AbortSignal {
    this.#stream = new AbortController();
    return this.#stream.signal;
  }

  /** After a clean stream: the close to send instead of reading on. */
  beforeNextStream(): StreamStop | null {
    this.#stream = null;
    return this.#pendingStop;
  }

  /**
   * Shutdown lets a stream in progress finish; any other reason (idle
   * timeout) stops it now. Between streams, the connection closes now.
   */
  close(
    code: CloseCodeValue = CloseCode.normal,
    reason = "closed by server",
    options: { immediately?: boolean } = {},
  ): void {
    if (
      this.#stream && code === CloseCode.shuttingDown && !options.immediately
    ) {
      this.#pendingStop ??= { code, reason };
      return;
    }
    this.#stop(code, reason);
  }

  #stop(code: CloseCodeValue, reason: string): void {
    if (this.#stream) {
      this.#stream.abort({ code, reason } satisfies StreamStop);
    } else {
      this.#pendingStop = { code, reason };
      void this.#channel.close(code, reason, {
        signal: AbortSignal.timeout(2000),
      });
    }
  }
}

async function runStream(
  channel: Channel,
  name: string,
  run: { caller: StreamCaller; ctx: ForwardContext; tunnel: Tunnel },
): Promise<"ended" | "aborted" | "closed"> {
  const { caller, ctx, tunnel } = run;
  const who = {
    conn: caller.id,
    peer: caller.peer,
    user: caller.user ?? undefined,
    key: caller.keyId ?? undefined,
    target: name,
  };
  const target = ctx.forwardTargets.get(name);
  const refusal = !target
    ? { code: CloseCode.targetUnknown, reason: `unknown target "${name}"` }
    : !mayUseTarget(target, caller)
    ? {
      code: CloseCode.targetForbidden,
      reason: `not allowed to use target "${name}"`,
    }
    : null;
  if (refusal || !target) {
    ctx.logger.log({
      event: "stream_refused",
      ...who,
      reason: refusal?.reason,
    });
    await channel.close(
      refusal?.code ?? CloseCode.targetUnknown,
      refusal?.reason ?? "",
      {
        signal: AbortSignal.timeout(2000),
      },
    );
    return "closed";
  }
  const started = Date.now();
  let socket: Deno.TcpConn;
  try {
    socket = await dialTarget(target, ctx.connectTimeoutMs);
    if (target.proxyProtocol) {
      await writeAll(
        socket,
        encodeProxyV2Header({
          source: caller.remoteAddr,
          destination: socket.localAddr,
          user: caller.user,
          keyId: caller.keyId,
        }),
      ).catch((error) => {
        socket.close();
        throw error;
      });
    }
  } catch (error) {
    ctx.logger.log({
      event: "stream_failed",
      ...who,
      reason: `cannot reach target "${name}"`,
      detail: `${target.host}:${target.port}: ${describeError(error)}`,
    });
    await channel.close(
      CloseCode.targetUnreachable,
      `cannot reach target "${name}"`,
      { signal: AbortSignal.timeout(2000) },
    );
    return "closed";
  }
  ctx.logger.log({ event: "stream_opened", ...who });
  const signal = tunnel.startStream();
  let result;
  try {
    channel.send(RecordKind.streamOpened);
    result = await pumpStream(channel, socket, {
      label: `target "${name}"`,
      onActivity: () => tunnel.touch(),
      signal,
    });
  } catch (error) {
    socket.close();
    throw error;
  }
  ctx.logger.log({
    event: "stream_closed",
    ...who,
    reason: result.outcome === "ended"
      ? "ended"
      : `${result.outcome}: ${result.reason}`,
    ms: Date.now() - started,
    detail: `up=${result.received} down=${result.sent}`,
  });
  return result.outcome;
}

async function dialTarget(
  target: ForwardTarget,
  timeoutMs: number,
): Promise<Deno.TcpConn> {
  const connecting = Deno.connect({ hostname: target.host, port: target.port });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("timed out")), timeoutMs);
  });
  try {
    const socket = await Promise.race([connecting, timeout]);
    socket.setNoDelay(true);
    return socket;
  } catch (error) {
    connecting.then((late) => late.close(), () => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
