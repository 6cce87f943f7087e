/**
 * Peers the bench compares doorman with, where installed:
 *
 * - Python's `multiprocessing.connection` with an authkey: the server is
 *   `peers/mp_echo_server.py`; the client is here, in Deno, so every system
 *   is driven by the same load generator. Its handshake is Python's HMAC
 *   challenge both ways (HMAC-SHA256 with a `{sha256}` prefix from Python
 *   3.12, HMAC-MD5 before); after it the wire is the same 4-byte framing as
 *   the baseline, so `RawLink` carries the messages.
 * - spiped (`spiped -e` → `spiped -d` → the baseline server): the client
 *   speaks the baseline's framing to the local `spiped -e` end.
 *
 * Each finder returns a reason instead of a peer when it is not installed.
 *
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { concatBytes, toHex, utf8 } from "../lib/wire/bytes.ts";
import { randomBytes } from "../lib/wire/crypto.ts";
import { encodeFrame, FrameReader, writeAll } from "../lib/wire/framing.ts";
import { closeQuietly, RawLink } from "./baseline.ts";
import {
  type Child,
  freePort,
  startListeningProgram,
  startSilentProgram,
} from "./processes.ts";

const CHALLENGE = utf8("#CHALLENGE#");
const WELCOME = utf8("#WELCOME#");
const LEGACY_CHALLENGE_BYTES = 20;
const MAX_AUTH_FRAME_BYTES = 256;

/** A Python interpreter the bench can run. */
export interface Python {
  readonly command: string;
  readonly version: string;
}

/**
 * Finds Python 3.12 if it runs (as `python3.12`, or from pyenv's versions
 * directory), else `python3`.
 *
 * @returns The interpreter, or a reason why there is none.
 */
export async function findPython(): Promise<Python | { skip: string }> {
  const candidates = ["python3.12"];
  const pyenvRoot = Deno.env.get("PYENV_ROOT") ??
    `${Deno.env.get("HOME") ?? "/root"}/.pyenv`;
  try {
    for await (const entry of Deno.readDir(`${pyenvRoot}/versions`)) {
      if (entry.name.startsWith("3.12")) {
        candidates.push(`${pyenvRoot}/versions/${entry.name}/bin/python3.12`);
      }
    }
  } catch {
    // No pyenv.
  }
  candidates.push("python3");
  for (const command of candidates) {
    try {
      const output = await new Deno.Command(command, {
        args: ["--version"],
        stdout: "piped",
        stderr: "null",
      }).output();
      if (output.success) {
        const version = new TextDecoder().decode(output.stdout).trim();
        return { command, version };
      }
    } catch {
      // Not installed; try the next one.
    }
  }
  return { skip: "no python3 found" };
}

/** Starts the Python echo server with `authkey`. */
export function startPythonServer(
  python: Python,
  authkey: Uint8Array,
): Promise<Child> {
  const script = new URL("./peers/mp_echo_server.py", import.meta.url).pathname;
  return startListeningProgram(python.command, [script], {
    BENCH_AUTHKEY: toHex(authkey),
    PATH: Deno.env.get("PATH") ?? "",
  });
}

/**
 * Connects to a `multiprocessing.connection.Listener` and runs its
 * authentication as `Client(address, authkey=...)` does.
 *
 * @throws {Error} If either side's HMAC check fails.
 */
export async function connectPython(
  port: number,
  authkey: Uint8Array,
): Promise<RawLink> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const reader = new FrameReader(conn);
  try {
    // answer_challenge: the server's challenge first.
    const challenge = await readAuthFrame(reader);
    if (!startsWith(challenge, CHALLENGE)) {
      throw new Error("Python peer sent no challenge");
    }
    const message = challenge.subarray(CHALLENGE.length);
    const legacy = message.length === LEGACY_CHALLENGE_BYTES;
    await writeAll(conn, encodeFrame(respond(authkey, message, legacy)));
    if (!equal(await readAuthFrame(reader), WELCOME)) {
      throw new Error("Python peer rejected our digest");
    }
    // deliver_challenge: ours, in the same protocol generation.
    const ours = legacy
      ? randomBytes(LEGACY_CHALLENGE_BYTES)
      : concatBytes(utf8("{sha256}"), randomBytes(40));
    await writeAll(conn, encodeFrame(concatBytes(CHALLENGE, ours)));
    const answer = await readAuthFrame(reader);
    const expected = respond(authkey, ours, legacy);
    if (
      answer.length !== expected.length || !timingSafeEqual(answer, expected)
    ) {
      throw new Error("Python peer's digest is wrong");
    }
    await writeAll(conn, encodeFrame(WELCOME));
  } catch (error) {
    closeQuietly(conn);
    throw error;
  }
  return new RawLink(conn, { reader });
}

function respond(
  authkey: Uint8Array,
  message: Uint8Array,
  legacy: boolean,
): Uint8Array {
  if (legacy) return createHmac("md5", authkey).update(message).digest();
  const mac = createHmac("sha256", authkey).update(message).digest();
  return concatBytes(utf8("{sha256}"), mac);
}

async function readAuthFrame(reader: FrameReader): Promise<Uint8Array> {
  const frame = await reader.readFrame(MAX_AUTH_FRAME_BYTES);
  if (frame === null) throw new Error("Python peer closed during auth");
  return frame.slice();
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return bytes.length >= prefix.length &&
    equal(bytes.subarray(0, prefix.length), prefix);
}

function equal(left: Uint8Array, right: Uint8Array): boolean {
  return left.length === right.length && left.every((v, i) => v === right[i]);
}

/** A running `spiped -e` → `spiped -d` pair in front of a target port. */
export interface Spiped extends AsyncDisposable {
  /** Where clients connect: the local `spiped -e` end. */
  readonly port: number;
  readonly version: string;
  /** The `spiped -d` end (the server side, with the target). */
  readonly decrypt: Child;
  readonly encrypt: Child;
}

/**
 * Starts spiped in front of `targetPort`, with a fresh key file in `dir`.
 *
 * @returns The pair, or a reason why spiped cannot run.
 */
export async function startSpiped(
  targetPort: number,
  dir: string,
): Promise<Spiped | { skip: string }> {
  let version: string;
  try {
    const output = await new Deno.Command("spiped", {
      args: ["-v"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    version = (decoder.decode(output.stdout) + decoder.decode(output.stderr))
      .trim();
  } catch {
    return { skip: "spiped not installed (apt-get install spiped)" };
  }
  const keyFile = `${dir}/spiped.key`;
  await Deno.writeFile(keyFile, randomBytes(32), { mode: 0o600 });
  const decryptPort = freePort();
  const common = ["-F", "-k", keyFile, "-n", "20000", "-o", "30"];
  const decrypt = await startSilentProgram("spiped", [
    "-d",
    "-s",
    `[127.0.0.1]:${decryptPort}`,
    "-t",
    `[127.0.0.1]:${targetPort}`,
    ...common,
  ], decryptPort);
  const encryptPort = freePort();
  let encrypt: Child;
  try {
    encrypt = await startSilentProgram("spiped", [
      "-e",
      "-s",
      `[127.0.0.1]:${encryptPort}`,
      "-t",
      `[127.0.0.1]:${decryptPort}`,
      ...common,
    ], encryptPort);
  } catch (error) {
    await decrypt[Symbol.asyncDispose]();
    throw error;
  }
  return {
    port: encryptPort,
    version,
    decrypt,
    encrypt,
    async [Symbol.asyncDispose]() {
      await encrypt[Symbol.asyncDispose]();
      await decrypt[Symbol.asyncDispose]();
    },
  };
}
