/**
 * The client core, tunnels: the local forwarder (`client.ts forward`). It
 * listens on a local port; every accepted connection gets its own doorman
 * connection and stream (`stream.ts`), as spiped does. One failed
 * connection, or a server that is down, fails that connection only; the
 * listener keeps accepting until `stop()`. Each connection gives one
 * `open` and one `close` line (bytes each way, duration, why) to `log`.
 *
 * It does not parse flags, prompt or print: lib/cli/ does.
 *
 * @module
 */

import { describeError } from "../errors.ts";
import { CloseCode } from "../wire/protocol.ts";
import type { StreamStop } from "../wire/stream_pump.ts";
import {
  dialChannel,
  openStreamOn,
  runStream,
  type StreamOptions,
} from "./stream.ts";
import { StreamPool } from "./stream_pool.ts";

/** Options of {@link startForwarder}. */
export interface ForwarderOptions {
  /** Local address to listen on. */
  listen: { hostname: string; port: number };
  /** The server, key, login and target each connection uses. */
  stream: StreamOptions;
  /** Receives one line per event (no trailing newline). */
  log: (line: string) => void;
  /**
   * Logged-in connections kept ready ahead of demand (0: none).
   *
   * @default {0}
   */
  warm?: number;
  /**
   * Most idle connections kept after their stream ended cleanly, for the
   * next one (0: each connection closes after its stream, as spiped).
   *
   * @default {0}
   */
  maxIdle?: number;
}

/** Idle pooled connections older than this are closed, not used. */
const POOL_MAX_AGE_MS = 30_000;

/** A running forwarder, as {@link startForwarder} returns it. */
export interface Forwarder {
  /** The local address actually bound. */
  readonly addr: Deno.NetAddr;
  /** Connections being forwarded now. */
  readonly active: number;
  /**
   * Stops accepting, ends the connections in progress, and resolves once
   * all are closed. Calling it again returns the same promise.
   *
   * @returns A promise that resolves once stopped.
   */
  stop(): Promise<void>;
}

/**
 * Starts a local forwarder.
 *
 * @param options Where to listen, the stream options and the log sink.
 * @returns The running forwarder.
 * @throws {Deno.errors.AddrInUse} If the local port is taken.
 * @example Usage
 * ```ts ignore
 * const forwarder = startForwarder({
 *   listen: { hostname: "127.0.0.1", port: 6380 },
 *   stream: { psk, user: "alice", password, target: "redis",
 *     saltedPasswords: new Map() },
 *   log: console.error,
 * });
 * ```
 */
export function startForwarder(options: ForwarderOptions): Forwarder {
  const listener = Deno.listen({
    hostname: options.listen.hostname,
    port: options.listen.port,
  });
  const stopping = new AbortController();
  const running = new Set<Promise<void>>();
  const pool = new StreamPool({
    dial: () => dialChannel(options.stream),
    warm: options.warm ?? 0,
    maxIdle: options.maxIdle ?? 0,
    maxAgeMs: POOL_MAX_AGE_MS,
  });
  pool.start();
  const accepting = (async () => {
    let nextId = 0;
    while (!stopping.signal.aborted) {
      let local: Deno.TcpConn;
      try {
        local = await listener.accept();
      } catch (error) {
        if (stopping.signal.aborted) return;
        options.log(`forward: cannot accept: ${describeError(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      const task = forwardOne(local, ++nextId, options, {
        pool,
        signal: stopping.signal,
      });
      running.add(task);
      task.finally(() => running.delete(task));
    }
  })();
  let stopped: Promise<void> | null = null;
  return {
    addr: listener.addr,
    get active() {
      return running.size;
    },
    stop: () =>
      stopped ??= (async () => {
        stopping.abort(
          {
            code: CloseCode.normal,
            reason: "forwarder stopping",
          } satisfies StreamStop,
        );
        try {
          listener.close();
        } catch {
          // Already closed.
        }
        await accepting;
        await Promise.allSettled([...running]);
        pool.close();
      })(),
  };
}

async function forwardOne(
  local: Deno.TcpConn,
  id: number,
  options: ForwarderOptions,
  run: { pool: StreamPool; signal: AbortSignal },
): Promise<void> {
  const started = Date.now();
  const from = `${local.remoteAddr.hostname}:${local.remoteAddr.port}`;
  const target = options.stream.target;
  options.log(`forward: open #${id} from ${from} to target "${target}"`);
  local.setNoDelay(true);
  let line: string;
  try {
    const { channel, firstReceive } = await run.pool.take();
    openStreamOn(channel, target);
    const result = await runStream(channel, local, {
      target,
      signal: run.signal,
      firstReceive,
      keepOpen: true,
    });
    if (result.outcome === "ended") run.pool.give(channel);
    const why = result.outcome === "ended"
      ? "ended"
      : `${result.outcome}: ${result.reason}`;
    line = `up=${result.sent} down=${result.received} ${why}`;
  } catch (error) {
    try {
      local.close();
    } catch {
      // Already closed.
    }
    line = `up=0 down=0 failed: ${describeError(error)}`;
  }
  const ms = Date.now() - started;
  options.log(`forward: close #${id} ${line} ms=${ms}`);
}
