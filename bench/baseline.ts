/**
 * The bench's baseline, the limit on this machine: plain `Deno.listen` /
 * `Deno.connect` with doorman's 4-byte length framing (`lib/wire/framing.ts`) and
 * no handshake, login or encryption. Writes go through the same
 * `FrameWriter` as `lib/wire/channel.ts` (small frames queued while a write is
 * in flight leave together), so the comparison isolates doorman's own cost.
 *
 * Services mirror the doorman ones: `echo` answers each frame with itself,
 * `sink` with an empty frame (the ack), `chat` forwards each frame to every
 * other connection and acks the sender with an empty frame.
 *
 * It also holds {@link RawLink}, the client side, which the Python and
 * spiped peers reuse (their wire is the same framing once connected).
 *
 * @module
 */

import { encodeFrame, FrameReader, FrameWriter } from "../lib/wire/framing.ts";

/** What a bench server does with each message. */
export type ServiceName = "echo" | "sink" | "chat";

/** Largest frame the baseline accepts: the bulk workload's 64 KiB and more. */
export const MAX_RAW_FRAME_BYTES = 1024 * 1024;
const EMPTY_FRAME = new Uint8Array(4);

/** A running baseline server. */
export interface BaselineServer {
  readonly addr: Deno.NetAddr;
  /** Connections open now. */
  readonly connections: number;
  /** Stops accepting and closes every connection. */
  shutdown(): Promise<void>;
}

/**
 * Starts a baseline server on 127.0.0.1.
 *
 * @param options The port (0 picks one) and the service.
 * @returns The running server.
 */
export function serveBaseline(
  options: {
    port: number;
    service: ServiceName;
    /** PEM certificate and key: serve over `Deno.listenTls` (rustls). */
    tls?: { cert: string; key: string };
  },
): BaselineServer {
  const where = { hostname: "127.0.0.1", port: options.port };
  const listener: Deno.Listener<Deno.Conn, Deno.NetAddr> = options.tls
    ? Deno.listenTls({ ...where, ...options.tls })
    : Deno.listen(where);
  const members = new Map<Deno.Conn, FrameWriter>();
  const tasks = new Set<Promise<void>>();
  const accepting = (async () => {
    for await (const conn of listener) {
      const task = handleRaw(conn, options.service, members).catch(() => {});
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  })().catch(() => {});
  return {
    addr: listener.addr,
    get connections() {
      return members.size;
    },
    async shutdown() {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await accepting;
      for (const conn of members.keys()) closeQuietly(conn);
      await Promise.all(tasks);
    },
  };
}

async function handleRaw(
  conn: Deno.Conn,
  service: ServiceName,
  members: Map<Deno.Conn, FrameWriter>,
): Promise<void> {
  // A TlsConn has no setNoDelay (the Deno TLS peer runs with what Deno sets).
  if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
  const reader = new FrameReader(conn);
  const writer = new FrameWriter(conn);
  members.set(conn, writer);
  try {
    while (true) {
      const payload = await reader.readFrame(MAX_RAW_FRAME_BYTES);
      if (payload === null) return;
      if (service === "echo") {
        writer.write(encodeFrame(payload));
      } else if (service === "sink") {
        writer.write(EMPTY_FRAME);
      } else {
        const frame = encodeFrame(payload);
        for (const [member, other] of members) {
          if (member !== conn) other.write(frame);
        }
        writer.write(EMPTY_FRAME);
      }
    }
  } finally {
    members.delete(conn);
    closeQuietly(conn);
  }
}

/**
 * The client side of a raw framed connection: `request` sends one frame and
 * resolves with the next answer in order (`null` for an empty frame, the
 * ack); with `pushes`, non-empty frames are counted as pushed messages
 * instead. Pending answers span calls, hence a class.
 */
export class RawLink {
  #conn: Deno.Conn;
  #reader: FrameReader;
  #writer: FrameWriter;
  #pushes: boolean;
  #pending: {
    resolve(reply: Uint8Array | null): void;
    reject(error: Error): void;
  }[] = [];
  #reading: Promise<void>;
  #onPush: (() => void) | null = null;
  #closed = false;

  constructor(
    conn: Deno.Conn,
    options: { reader?: FrameReader; pushes?: boolean } = {},
  ) {
    this.#conn = conn;
    this.#reader = options.reader ?? new FrameReader(conn);
    this.#writer = new FrameWriter(conn);
    this.#pushes = options.pushes ?? false;
    this.#reading = this.#readLoop();
  }

  /** Calls `onPush` for each pushed message; resolves when the link ends. */
  countPushes(onPush: () => void): Promise<void> {
    this.#onPush = onPush;
    return this.#reading;
  }

  /** Sends `payload`; resolves with the answer (`null` for an ack). */
  request(payload: Uint8Array): Promise<Uint8Array | null> {
    if (this.#closed) return Promise.reject(new Error("Link closed"));
    return new Promise((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      this.#writer.write(encodeFrame(payload));
    });
  }

  /** Closes the connection and waits for the read loop to end. */
  async close(): Promise<void> {
    this.#closed = true;
    closeQuietly(this.#conn);
    await this.#reading;
  }

  async #readLoop(): Promise<void> {
    let failure: Error = new Error("Link closed");
    try {
      while (true) {
        const frame = await this.#reader.readFrame(MAX_RAW_FRAME_BYTES);
        if (frame === null) break;
        if (this.#pushes && frame.length > 0) {
          this.#onPush?.();
          continue;
        }
        const head = this.#pending.shift();
        if (!head) throw new Error("Answer without a request");
        head.resolve(frame.length === 0 ? null : frame);
      }
    } catch (error) {
      if (!this.#closed && error instanceof Error) failure = error;
    }
    for (const pending of this.#pending.splice(0)) pending.reject(failure);
  }
}

/** Connects to a raw framed server on 127.0.0.1. */
export async function connectRaw(
  port: number,
  options: { pushes?: boolean } = {},
): Promise<RawLink> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  return new RawLink(conn, options);
}

/** Closes `closable`, ignoring an already closed one. */
export function closeQuietly(closable: { close(): void }): void {
  try {
    closable.close();
  } catch {
    // Already closed.
  }
}
