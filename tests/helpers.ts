/**
 * Shared test helpers: a loopback TCP pair, a framed connection and a
 * temporary directory, each disposable with `await using` so that Deno's
 * resource and op sanitizers stay quiet.
 *
 * @module
 */

import { join } from "node:path";
import { FrameReader } from "../lib/wire/framing.ts";
import type { FramedConn } from "../lib/wire/framing.ts";

/** Both ends of one loopback TCP connection. */
export interface TcpPair extends AsyncDisposable {
  /** The end that called `Deno.connect`. */
  readonly client: Deno.TcpConn;
  /** The end returned by `listener.accept()`. */
  readonly server: Deno.TcpConn;
}

/**
 * Opens a loopback TCP connection on an ephemeral port, with Nagle off on
 * both ends. The listener is closed before this returns. Disposing closes
 * both ends, ignoring ends that are already closed.
 *
 * @returns The two ends.
 */
export async function tcpPair(): Promise<TcpPair> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  client.setNoDelay(true);
  server.setNoDelay(true);
  return {
    client,
    server,
    [Symbol.asyncDispose]() {
      closeQuietly(client);
      closeQuietly(server);
      return Promise.resolve();
    },
  };
}

/** Closes `conn`, ignoring the error if it is already closed. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}

/** `conn` with its frame reader: what the handshake and channel run over. */
export function framed(conn: Deno.Conn): FramedConn {
  return { conn, reader: new FrameReader(conn) };
}

/** A temporary directory, removed with everything in it on disposal. */
export interface TempDir extends AsyncDisposable {
  /** Absolute path of the directory. */
  readonly path: string;
  /** `path` joined with `name` (a plain file name, no separators). */
  join(name: string): string;
}

/**
 * Creates an empty temporary directory.
 *
 * @returns The directory; `await using dir = await tempDir()` removes it.
 */
export async function tempDir(): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix: "doorman_test_" });
  return {
    path,
    join: (name) => `${path}/${name}`,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

/**
 * A seeded pseudo-random generator (mulberry32), so that "random" test inputs
 * are the same on every run.
 *
 * @param seed Any 32-bit integer.
 * @returns A function giving integers from 0 to `below - 1`.
 */
export function seededRandom(seed: number): (below: number) => number {
  let state = seed >>> 0;
  return (below) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000) * below);
  };
}

/** `length` bytes from {@link seededRandom}. */
export function seededBytes(seed: number, length: number): Uint8Array {
  const next = seededRandom(seed);
  return Uint8Array.from({ length }, () => next(256));
}

/** Wraps `conn` so that every byte written is also appended to `writes`. */
export function recording(conn: Deno.Conn, writes: Uint8Array[]): FramedConn {
  return {
    conn: {
      write(bytes: Uint8Array): Promise<number> {
        writes.push(bytes.slice());
        return conn.write(bytes);
      },
      close: () => conn.close(),
    },
    reader: new FrameReader(conn),
  };
}

/** A temp dir holding `userinfo` with `text` (no file when empty), mode 0600. */
export async function makeUsersFile(
  text: string,
): Promise<{ dir: string; path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "doorman_store_" });
  const path = join(dir, "userinfo");
  if (text !== "") await Deno.writeTextFile(path, text, { mode: 0o600 });
  return {
    dir,
    path,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}
