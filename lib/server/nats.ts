/**
 * Server parts: the NATS client (`@nats-io/transport-node`, pinned), loaded
 * on first use so that a server without `--broker` never pays for loading
 * it (about 1.5 s of start-up on the busy 2-core test machine), and the one
 * link to the broker ({@link connectBroker}: connect, subscribe, reconnect
 * for ever, report changes) that the chat bridge and the penalty share use.
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

/** A change in a {@link BrokerLink}'s connection, for the owner to log. */
export type BrokerChange =
  | "connected"
  | "disconnected"
  | "reconnected"
  | "failed";

/** Options of {@link connectBroker}. */
export interface BrokerLinkOptions {
  /** The broker, `HOST:PORT` (as `parseBrokerUrl` returns). */
  readonly server: string;
  /** The connection's name at the broker. */
  readonly name: string;
  /** The one subject this link publishes to and subscribes to. */
  readonly subject: string;
  /** Called with each message from other servers. */
  readonly onMessage: (data: Uint8Array) => void;
  /** Called on each connection change; `detail` says why it failed. */
  readonly onChange: (change: BrokerChange, detail?: string) => void;
  /** Drop what is published while disconnected rather than let the client buffer it. @default {false} */
  readonly dropWhileAway?: boolean;
  /** Time between reconnect attempts, in ms. @default {500} */
  readonly reconnectWaitMs?: number;
}

/** One subject's link to the broker, reconnecting for ever. */
export interface BrokerLink {
  /**
   * Publishes to the subject.
   *
   * @returns `false` if it was dropped (not connected).
   */
  publish(data: Uint8Array): boolean;
  /** Whether the broker is connected now. */
  readonly connected: boolean;
  /** Resolves once connected and subscribed (or closed). */
  ready(): Promise<void>;
  /** Stops the link and closes the connection. */
  close(): Promise<void>;
}

/**
 * Connects to the broker in the background, subscribes to one subject and
 * keeps reconnecting: the one NATS connection routine of the chat bridge
 * and the penalty share. Messages this link publishes are not echoed back.
 *
 * @param options The broker, subject, and the callbacks.
 * @returns The link; `close()` it on shutdown.
 */
export function connectBroker(options: BrokerLinkOptions): BrokerLink {
  let nc: NatsConnection | null = null;
  let connected = false;
  let closing = false;
  const ready = Promise.withResolvers<void>();
  const running = (async () => {
    try {
      const nats = await loadNats();
      const connection = await nats.connect({
        servers: options.server,
        name: options.name,
        noEcho: true,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: options.reconnectWaitMs ?? 500,
        waitOnFirstConnect: true,
      });
      if (closing) {
        await connection.close();
        return;
      }
      nc = connection;
      const subscription = connection.subscribe(options.subject, {
        callback: (error, message) => {
          if (error === null) options.onMessage(message.data);
        },
      });
      const watching = (async () => {
        for await (const status of connection.status()) {
          if (status.type === "disconnect") {
            connected = false;
            options.onChange("disconnected");
          } else if (status.type === "reconnect") {
            connected = true;
            options.onChange("reconnected");
          }
        }
      })();
      // The subscription is live at the broker once flush() returns.
      await connection.flush();
      connected = true;
      options.onChange("connected");
      ready.resolve();
      await connection.closed();
      subscription.unsubscribe();
      await watching;
    } catch (error) {
      if (!closing) {
        options.onChange(
          "failed",
          error instanceof Error ? error.message : String(error),
        );
      }
    }
  })();
  const close = async () => {
    closing = true;
    connected = false;
    ready.resolve();
    // Still dialling: the dial loop sees `closing` once it connects; a
    // broker that never answers leaves only the timer of the next try.
    if (nc !== null) {
      await nc.close();
      await running;
    }
  };
  return {
    publish(data: Uint8Array): boolean {
      if (nc === null || nc.isClosed()) return false;
      if (options.dropWhileAway && !connected) return false;
      try {
        nc.publish(options.subject, data);
        return true;
      } catch {
        return false; // Disconnected: dropped.
      }
    },
    get connected() {
      return connected;
    },
    ready: () => ready.promise,
    close,
  };
}
