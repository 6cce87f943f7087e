/**
 * The client core, tunnels: a pool of logged-in connections with no stream
 * in progress, so a forwarded connection need not wait for a handshake and
 * a login (`docs/PROTOCOL.md`, "Carrying the next stream"). Two
 * sources fill it: warm connections dialed ahead (up to `warm`), and
 * connections whose stream ended cleanly both ways (up to `maxIdle`).
 *
 * While idle, each pooled connection keeps one receive pending, so a close
 * from the server (idle timeout, shutdown) drops it from the pool; whoever
 * takes it reads its first record from that receive. Idle connections older
 * than `maxAgeMs` are closed rather than used. Each connection still has its
 * own handshake and keys: reuse never mixes streams of two connections, and
 * carries one stream at a time.
 *
 * @module
 */

import type { Channel, ChannelRecord } from "../wire/channel.ts";
import { CloseCode } from "../wire/protocol.ts";

/** Options of {@link StreamPool}. */
export interface StreamPoolOptions {
  /** Dials and logs in a new connection (no stream opened). */
  dial: () => Promise<Channel>;
  /** Connections kept ready ahead of demand. */
  warm: number;
  /** Most idle connections kept; 0 closes each after its stream. */
  maxIdle: number;
  /** Idle connections older than this are closed instead of used. */
  maxAgeMs: number;
  /** Told when a warm dial fails (the server may be down). */
  onDialError?: (error: unknown) => void;
}

/** A logged-in connection taken from the pool. */
export interface PooledChannel {
  readonly channel: Channel;
  /** The receive left pending while it idled (undefined when new). */
  readonly firstReceive?: Promise<ChannelRecord | null>;
}

interface Idle {
  channel: Channel;
  watch: Promise<ChannelRecord | null>;
  since: number;
}

/**
 * Logged-in connections ready for the next stream. The idle list and the
 * dials in progress span calls, hence a class.
 */
export class StreamPool {
  #options: StreamPoolOptions;
  #idle: Idle[] = [];
  #dialing = 0;
  #closed = false;
  #failures = 0;

  constructor(options: StreamPoolOptions) {
    this.#options = options;
  }

  /** Idle connections now. */
  get idle(): number {
    return this.#idle.length;
  }

  /** Starts the warm dials. */
  start(): void {
    this.#refill();
  }

  /**
   * A connection for the next stream: an idle one if any is fresh, else a
   * new dial.
   *
   * @returns The channel, and its pending receive if it idled.
   * @throws {Error} What a new dial throws.
   */
  async take(): Promise<PooledChannel> {
    while (this.#idle.length > 0) {
      const entry = this.#idle.pop() as Idle;
      if (Date.now() - entry.since > this.#options.maxAgeMs) {
        void entry.channel.close(CloseCode.normal, "idle too long", {
          signal: AbortSignal.timeout(2000),
        });
        continue;
      }
      this.#refill();
      return { channel: entry.channel, firstReceive: entry.watch };
    }
    this.#refill();
    return { channel: await this.#options.dial() };
  }

  /**
   * Returns a connection whose stream ended cleanly both ways; it is kept
   * if there is room, else closed.
   *
   * @param channel The connection.
   */
  give(channel: Channel): void {
    if (this.#closed || this.#idle.length >= this.#options.maxIdle) {
      void channel.close(CloseCode.normal, "stream ended", {
        signal: AbortSignal.timeout(2000),
      });
      return;
    }
    const entry: Idle = {
      channel,
      watch: channel.receive(),
      since: Date.now(),
    };
    const drop = () => {
      const at = this.#idle.indexOf(entry);
      if (at < 0) return; // Taken: the taker reads the watch.
      this.#idle.splice(at, 1);
      channel.abort(); // Refilled on the next take(), never in a loop here.
    };
    entry.watch.then(drop, drop);
    this.#idle.push(entry);
  }

  /** Closes every idle connection and stops refilling. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#idle.splice(0)) {
      void entry.channel.close(CloseCode.normal, "client stopping", {
        signal: AbortSignal.timeout(2000),
      });
    }
  }

  #refill(): void {
    const { warm, maxIdle } = this.#options;
    const wanted = Math.min(warm, maxIdle);
    // After failures, dial one at a time (the server may be down).
    const parallel = this.#failures > 0 ? 1 : wanted;
    while (
      !this.#closed && this.#idle.length + this.#dialing < wanted &&
      this.#dialing < parallel
    ) {
      this.#dialing++;
      this.#options.dial().then((channel) => {
        this.#dialing--;
        this.#failures = 0;
        this.give(channel);
      }, (error) => {
        this.#dialing--;
        this.#failures++;
        this.#options.onDialError?.(error);
        // Retried on the next take(), not in a loop here.
      });
    }
  }
}
