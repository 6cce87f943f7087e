/**
 * The bench's load generator: each workload drives any system through a
 * {@link Dial} (doorman, the raw baseline, a peer) and returns what it
 * counted. Every loop stops at a deadline and at a count cap; every
 * connection is closed before a workload returns.
 *
 * The workloads know nothing of processes or servers: `suite.ts` starts
 * those and measures their CPU and memory around each call.
 *
 * @module
 */

import { connect } from "../lib/client/connect.ts";
import type { Connection } from "../lib/client/connection.ts";

/** One client connection, whatever the system. */
export interface Link {
  /** Sends one message; resolves with the reply, or `null` for an ack. */
  request(payload: Uint8Array): Promise<Uint8Array | null>;
  /** Calls `onPush` for each pushed message; resolves when the link ends. */
  countPushes(onPush: () => void): Promise<void>;
  /** Closes the connection. */
  close(): Promise<void>;
}

/** Opens one connection: connect, handshake, login where there is one. */
export type Dial = () => Promise<Link>;

/** What a workload counted. */
export interface Count {
  /** Operations completed: handshakes, round trips, messages, deliveries. */
  ops: number;
  /** Payload bytes moved (bulk only). */
  bytes: number;
  /** Wall time of the measured part, in ms. */
  elapsedMs: number;
}

/**
 * Called by a workload where its measured part starts (after connections
 * are open) and ends (before they close), so CPU time read around it leaves
 * connection setup and teardown out.
 */
export interface MeasureHooks {
  start(): Promise<void>;
  end(): Promise<void>;
}

/** Most operations one workload call may count, whatever its duration. */
export const MAX_OPS = 50_000_000;
const OPEN_CONCURRENCY = 64;

/** Dials doorman with `connect()` from lib/client/connect.ts. */
export function doormanDial(options: {
  port: number;
  psk: Uint8Array;
  user?: string;
  password?: string;
}): Dial {
  return async () =>
    doormanLink(
      await connect({
        host: "127.0.0.1",
        port: options.port,
        psk: options.psk,
        user: options.user,
        password: options.password,
        timeoutMs: 30_000,
      }),
    );
}

function doormanLink(connection: Connection): Link {
  return {
    request: (payload) => connection.send(payload),
    async countPushes(onPush) {
      try {
        for await (const _push of connection) onPush();
      } catch {
        // The connection ended; the count stands.
      }
    },
    close: () => connection.close(),
  };
}

/** A payload of `length` bytes (not all zero). */
export function payloadOf(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, index) => 0x41 + (index % 26));
}

/**
 * Handshake rate: each client in a loop connects, handshakes (and logs in
 * if the dial does), makes one round trip of `payload`, closes.
 */
export async function handshakes(
  dial: Dial,
  options: { clients: number; durationMs: number; payload: Uint8Array },
): Promise<Count> {
  let ops = 0;
  const start = performance.now();
  const deadline = start + options.durationMs;
  await Promise.all(
    Array.from({ length: options.clients }, async () => {
      while (performance.now() < deadline && ops < MAX_OPS) {
        const link = await dial();
        try {
          checkReply(await link.request(options.payload), options.payload);
        } finally {
          await link.close();
        }
        ops++;
      }
    }),
  );
  return { ops, bytes: 0, elapsedMs: performance.now() - start };
}

/** What {@link drive} keeps outstanding and for how long. */
interface DriveOptions {
  /** Requests outstanding on each connection. */
  window: number;
  durationMs: number;
  payload: Uint8Array;
  hooks?: MeasureHooks;
}

/**
 * Round trips on `connections` connections with `window` requests
 * outstanding on each (1: strict request/response; more: pipelined).
 */
export async function roundTrips(
  dial: Dial,
  options: DriveOptions & { connections: number },
): Promise<Count> {
  const links = await openLinks(dial, options.connections);
  try {
    return await drive(links, options);
  } finally {
    await closeLinks(links);
  }
}

/**
 * Bulk: one connection sends `payload` (64 KiB) messages one way with
 * `window` outstanding; the server only acknowledges. Counts payload bytes.
 */
export async function bulk(
  dial: Dial,
  options: DriveOptions,
): Promise<Count> {
  const links = await openLinks(dial, 1);
  try {
    const count = await drive(links, options);
    return { ...count, bytes: count.ops * options.payload.length };
  } finally {
    await closeLinks(links);
  }
}

async function drive(
  links: Link[],
  options: DriveOptions,
): Promise<Count> {
  await options.hooks?.start();
  let ops = 0;
  let running = true;
  const timer = setTimeout(() => running = false, options.durationMs);
  const start = performance.now();
  try {
    await Promise.all(
      links.flatMap((link) =>
        Array.from({ length: options.window }, async () => {
          while (running && ops < MAX_OPS) {
            await link.request(options.payload);
            ops++;
          }
        })
      ),
    );
  } finally {
    clearTimeout(timer);
  }
  const elapsedMs = performance.now() - start;
  await options.hooks?.end();
  return { ops, bytes: 0, elapsedMs };
}

/** Connections held open by {@link establish}. */
export interface Established {
  readonly links: Link[];
  /** Time to open them all, each with one round trip, in ms. */
  readonly elapsedMs: number;
}

/**
 * Opens `count` connections, `concurrency` at a time, each confirmed by
 * one round trip (so the server holds them as established). The caller
 * closes them with {@link closeLinks}.
 */
export async function establish(
  dial: Dial,
  options: { count: number; concurrency: number; payload: Uint8Array },
): Promise<Established> {
  const start = performance.now();
  const links = await openLinks(dial, options.count, {
    concurrency: options.concurrency,
    confirm: options.payload,
  });
  return { links, elapsedMs: performance.now() - start };
}

/**
 * Chat fan-out: `clients` members each send `payload` messages in a loop
 * (one outstanding each, waiting for the ack); every message reaches the
 * others as a push. Sending pauses while more than `maxInFlight` deliveries
 * are owed, so no member's queue at the server grows without bound. Counts
 * deliveries within the measured time, after `warmupMs`.
 */
export async function chat(
  dial: Dial,
  options: {
    clients: number;
    durationMs: number;
    warmupMs: number;
    payload: Uint8Array;
    maxInFlight: number;
    hooks?: MeasureHooks;
  },
): Promise<Count & { messages: number }> {
  const links = await openLinks(dial, options.clients);
  const fanout = options.clients - 1;
  let delivered = 0;
  let sent = 0;
  const gate: { waiting: { promise: Promise<void>; resolve(): void } | null } =
    { waiting: null };
  const owed = () => sent * fanout - delivered;
  const onPush = () => {
    delivered++;
    if (gate.waiting && owed() < options.maxInFlight / 2) {
      gate.waiting.resolve();
      gate.waiting = null;
    }
  };
  const readers = links.map((link) => link.countPushes(onPush));
  let running = true;
  const credit = () => {
    if (!gate.waiting) {
      let resolve = () => {};
      const promise = new Promise<void>((done) => resolve = done);
      gate.waiting = { promise, resolve };
    }
    return Promise.race([gate.waiting.promise, sleep(50)]);
  };
  let failure: unknown = null;
  const senders = links.map(async (link) => {
    try {
      while (running && sent < MAX_OPS) {
        if (owed() > options.maxInFlight) {
          await credit();
          continue;
        }
        sent++;
        await link.request(options.payload);
      }
    } catch (error) {
      failure ??= error;
      running = false;
    }
  });
  try {
    await sleep(options.warmupMs);
    await options.hooks?.start();
    const startDelivered = delivered;
    const startSent = sent;
    const start = performance.now();
    await sleep(options.durationMs);
    const count = {
      ops: delivered - startDelivered,
      messages: sent - startSent,
      bytes: 0,
      elapsedMs: performance.now() - start,
    };
    await options.hooks?.end();
    running = false;
    await Promise.all(senders);
    if (failure !== null) throw failure;
    return count;
  } finally {
    running = false;
    gate.waiting?.resolve();
    await Promise.allSettled(senders);
    await closeLinks(links);
    await Promise.allSettled(readers);
  }
}

/** Opens `count` links, a bounded number at a time. */
export async function openLinks(
  dial: Dial,
  count: number,
  options: { concurrency?: number; confirm?: Uint8Array } = {},
): Promise<Link[]> {
  const links: Link[] = [];
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < count && !failed) {
      next++;
      const link = await dial();
      links.push(link);
      if (options.confirm) {
        checkReply(await link.request(options.confirm), options.confirm);
      }
    }
  };
  const concurrency = Math.min(options.concurrency ?? OPEN_CONCURRENCY, count);
  const outcomes = await Promise.allSettled(
    Array.from({ length: concurrency }, () =>
      worker().catch((error) => {
        failed = true;
        throw error;
      })),
  );
  for (const outcome of outcomes) {
    if (outcome.status === "rejected") {
      await closeLinks(links);
      throw outcome.reason;
    }
  }
  return links;
}

/** Closes links, a bounded number at a time, ignoring failures. */
export async function closeLinks(links: Link[]): Promise<void> {
  for (let index = 0; index < links.length; index += 512) {
    await Promise.allSettled(
      links.slice(index, index + 512).map((link) => link.close()),
    );
  }
}

function checkReply(reply: Uint8Array | null, payload: Uint8Array): void {
  if (reply === null || reply.length !== payload.length) {
    throw new Error("Echo reply has the wrong length");
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
