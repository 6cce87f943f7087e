/**
 * Server parts: who a new connection really is, decided before any crypto.
 * From an address on `proxyProtocolFrom`, a PROXY header (v1 or v2) must
 * come first and its source becomes the client's address everywhere
 * (penalties, caps, allow/deny, logs); from any other address the
 * connection's own address holds and a header would fail the handshake as
 * a bad preamble. Then the allow/deny lists run on that address: a refused
 * client gets the refusal frame with reason `addressDenied` (5), written
 * by admission.ts like every other refusal.
 *
 * It also wraps the connection in byte and frame meters when metrics are
 * on. The header is read straight from the socket, exactly, so the frame
 * reader and the meters start at the doorman preamble.
 *
 * @module
 */

import { describeError } from "../errors.ts";
import type { AddressMatcher } from "./address.ts";
import { normalizeAddress } from "./address.ts";
import type { AddressFilter } from "./address_filter.ts";
import { closeQuietly, type Peer, type Refusal } from "./admission.ts";
import type { Logger } from "./log.ts";
import type { ServerMetrics } from "./metrics.ts";
import { readProxyHeader } from "./proxy_protocol.ts";
import { raceSignal } from "../wire/deadline.ts";
import { type FramedConn, FrameReader } from "../wire/framing.ts";
import { PREAMBLE_BYTES } from "../wire/protocol.ts";
import { RefusalReason } from "../wire/refusal.ts";

/** What the accept path needs to place a connection. */
export interface OriginContext {
  /** Proxies allowed to send a PROXY header; `null`: none. */
  readonly proxyFrom: AddressMatcher | null;
  /** The allow/deny lists; `null`: none. */
  readonly filter: AddressFilter | null;
  /** Deadline for the PROXY header, in ms (the pre-auth deadline). */
  readonly timeoutMs: number;
  /** Byte and frame meters; `null`: off. */
  readonly metrics: ServerMetrics | null;
  /** Where a bad PROXY header is logged. */
  readonly logger: Logger;
  /** Refuses a denied address: admission.ts's `refuse`, the one writer. */
  readonly refuse: (conn: Deno.TcpConn, who: Peer, refusal: Refusal) => void;
}

/** A connection placed: its real peer, and the framed connection to use. */
export interface Origin {
  /** `host:port` of the client, for logs. */
  readonly peer: string;
  /** The client's address, normalised: the key for penalties and caps. */
  readonly address: string;
  /** The client as a `NetAddr` (for the session). */
  readonly remoteAddr: Deno.NetAddr;
  /** The connection with its frame reader, metered if metrics are on. */
  readonly framed: FramedConn;
}

/**
 * Places a new connection: reads the PROXY header if its sender is a
 * listed proxy, then applies the allow/deny lists.
 *
 * @param conn The accepted connection.
 * @param id The server's number for it, for logs.
 * @param ctx The lists, deadline, meters and logger.
 * @returns The origin, or `null` once the connection was refused (logged
 *   and closed).
 */
export async function resolveOrigin(
  conn: Deno.TcpConn,
  id: number,
  ctx: OriginContext,
): Promise<Origin | null> {
  let remoteAddr: Deno.NetAddr = conn.remoteAddr;
  const socketPeer = peerOf(remoteAddr);
  if (ctx.proxyFrom?.matches(remoteAddr.hostname)) {
    try {
      const header = await raceSignal(
        readProxyHeader(exactReader(conn)),
        AbortSignal.timeout(ctx.timeoutMs),
        "Cannot read PROXY header: timed out",
      );
      if (header.source !== null) {
        remoteAddr = {
          transport: "tcp",
          hostname: header.source.address,
          port: header.source.port,
        };
      }
    } catch (error) {
      ctx.logger.log({
        event: "refused",
        conn: id,
        peer: socketPeer,
        reason: `proxy header: ${describeError(error)}`,
      });
      closeQuietly(conn);
      return null;
    }
  }
  const address = normalizeAddress(remoteAddr.hostname);
  const peer = peerOf(remoteAddr);
  if (ctx.filter && !ctx.filter.permits(address)) {
    ctx.refuse(conn, { id, peer, address }, {
      reason: RefusalReason.addressDenied,
      seconds: 0,
      log: "address denied",
    });
    return null;
  }
  return { peer, address, remoteAddr, framed: frame(conn, ctx.metrics) };
}

/**
 * `host:port` of a client, as logs show it: made when a log line needs it,
 * so that a running session keeps no string of its own (bench: idle
 * memory).
 *
 * @param addr The client's address (its PROXY header's source, if any).
 * @returns For example `127.0.0.1:53412`.
 */
export function peerOf(addr: Deno.NetAddr): string {
  return `${addr.hostname}:${addr.port}`;
}

/** Reads exactly what is asked from the socket, never more. */
function exactReader(conn: Deno.Conn) {
  return {
    async readExact(n: number): Promise<Uint8Array | null> {
      const bytes = new Uint8Array(n);
      let filled = 0;
      while (filled < n) {
        const count = await conn.read(bytes.subarray(filled));
        if (count === null) return filled === 0 ? null : bytes;
        filled += count;
      }
      return bytes;
    },
  };
}

function frame(conn: Deno.TcpConn, metrics: ServerMetrics | null): FramedConn {
  if (metrics === null) return { conn, reader: new FrameReader(conn) };
  const incoming = new FrameCounter();
  const outgoing = new FrameCounter();
  return {
    conn: {
      async write(bytes: Uint8Array): Promise<number> {
        const n = await conn.write(bytes);
        metrics.bytesOut.inc(n);
        metrics.framesOut.inc(outgoing.count(bytes.subarray(0, n)));
        return n;
      },
      close: () => conn.close(),
    },
    reader: new FrameReader({
      async read(target: Uint8Array): Promise<number | null> {
        const n = await conn.read(target);
        if (n !== null) {
          metrics.bytesIn.inc(n);
          metrics.framesIn.inc(incoming.count(target.subarray(0, n)));
        }
        return n;
      },
    }),
  };
}

/**
 * Counts frames in one direction of a byte stream: skips the 8-byte
 * preamble, then follows the 4-byte length headers. State spans calls.
 */
class FrameCounter {
  #skip = PREAMBLE_BYTES;
  #header = 0;
  #headerBytes = 0;

  /** The frames whose header completes within `bytes`. */
  count(bytes: Uint8Array): number {
    let frames = 0;
    let offset = 0;
    while (offset < bytes.length) {
      if (this.#skip > 0) {
        const step = Math.min(this.#skip, bytes.length - offset);
        this.#skip -= step;
        offset += step;
        continue;
      }
      this.#header = (this.#header * 256 + bytes[offset++]) >>> 0;
      if (++this.#headerBytes === 4) {
        frames++;
        this.#skip = this.#header;
        this.#header = 0;
        this.#headerBytes = 0;
      }
    }
    return frames;
  }
}
