/**
 * Key: where the pre-shared key comes from. An explicit key file, else the
 * `DOORMAN_KEY` environment variable (the key itself), else `doorman.key`
 * in the working directory; `writeNewKeyFile` makes a new one (`keygen`).
 *
 * The key is the file's bytes with surrounding ASCII whitespace trimmed: a
 * generated key is 64 hex characters, and those characters (not the 32
 * bytes they spell) are the key, so any text of at least 16 bytes works.
 *
 * It deliberately never puts a key in an error message, and does not check
 * the file's permissions or owner (`writeNewKeyFile` creates it 0600).
 *
 * @module
 */

import { createFileExclusively, updateFileAtomically } from "./atomic_file.ts";
import { toHex, utf8 } from "./wire/bytes.ts";
import { randomBytes } from "./wire/crypto.ts";
import { MIN_PSK_BYTES } from "./wire/protocol.ts";

/** The key file used when no other is named. */
export const DEFAULT_KEY_FILE = "doorman.key";
/** The environment variable that may hold the key itself. */
export const KEY_ENV_VAR = "DOORMAN_KEY";
/** Largest key file read; a longer one is a mistake (`/dev/zero`, a log). */
export const MAX_KEY_FILE_BYTES = 4096;
/** Random bytes in a generated key (written as twice as many hex digits). */
const NEW_KEY_BYTES = 32;
const KEY_FILE_MODE = 0o600;

/** A pre-shared key and where it came from. */
export interface PskSource {
  /** The key. */
  readonly psk: Uint8Array;
  /** `key file "PATH"` or `DOORMAN_KEY`, for messages. */
  readonly source: string;
  /** The path, when the key file was just created. */
  readonly created?: string;
}

/** Options of {@link resolvePsk}. */
export interface ResolvePskOptions {
  /** A key file named on the command line; wins over everything else. */
  keyFile?: string;
  /** Reads an environment variable (`(name) => Deno.env.get(name)`). */
  env: (name: string) => string | undefined;
  /**
   * Create {@link DEFAULT_KEY_FILE} if it is missing and neither `keyFile`
   * nor `DOORMAN_KEY` was given.
   * @default {false}
   */
  createIfMissing?: boolean;
}

/**
 * Turns key file content or `DOORMAN_KEY` into a key: surrounding ASCII
 * whitespace (space, tab, CR, LF) is trimmed.
 *
 * @param content The raw bytes, or text (taken as UTF-8).
 * @param where Where it came from, for the error: `key file "x"`.
 * @returns The key bytes.
 * @throws {RangeError} If fewer than 16 bytes remain (the key is never
 *   shown).
 * @example Usage
 * ```ts
 * const psk = parsePsk("0123456789abcdef0123\n", "DOORMAN_KEY"); // 20 bytes
 * ```
 */
export function parsePsk(
  content: Uint8Array | string,
  where: string,
): Uint8Array {
  const bytes = typeof content === "string" ? utf8(content) : content;
  let start = 0;
  let end = bytes.length;
  while (start < end && isAsciiWhitespace(bytes[start])) start++;
  while (end > start && isAsciiWhitespace(bytes[end - 1])) end--;
  const length = end - start;
  if (length < MIN_PSK_BYTES) {
    throw new RangeError(
      `Cannot use key from ${where}: ${length} bytes, at least ${MIN_PSK_BYTES} required`,
    );
  }
  return bytes.slice(start, end);
}

/**
 * Reads a key file and parses the key in it with {@link parsePsk}.
 *
 * @param path The key file.
 * @returns The key bytes.
 * @throws {Error} If the file is missing (the message says how to create
 *   one), unreadable, or longer than 4096 bytes.
 * @throws {RangeError} If the key is shorter than 16 bytes.
 * @example Usage
 * ```ts ignore
 * const psk = await readKeyFile("doorman.key");
 * ```
 */
export async function readKeyFile(path: string): Promise<Uint8Array> {
  const psk = await readKeyFileIfPresent(path);
  if (psk === null) {
    throw new Error(
      `Cannot read key file ${
        quote(path)
      }: not found; create one with "server.ts keygen"`,
    );
  }
  return psk;
}

/**
 * Finds the pre-shared key: `keyFile` if given, else `DOORMAN_KEY` if set
 * and non-empty (it holds the key, not a path), else
 * {@link DEFAULT_KEY_FILE}, which `createIfMissing` creates when missing.
 *
 * @param options The named key file, the environment, and whether to create.
 * @returns The key, where it came from, and whether a file was created.
 * @throws {Error} If the chosen key file is missing or unreadable.
 * @throws {RangeError} If the key is shorter than 16 bytes.
 * @example Usage
 * ```ts ignore
 * const { psk, source } = await resolvePsk({
 *   env: (name) => Deno.env.get(name),
 *   createIfMissing: true,
 * });
 * ```
 */
export async function resolvePsk(
  options: ResolvePskOptions,
): Promise<PskSource> {
  const { keyFile } = options;
  if (keyFile !== undefined) {
    return { psk: await readKeyFile(keyFile), source: describeFile(keyFile) };
  }
  const envKey = options.env(KEY_ENV_VAR);
  if (envKey !== undefined && envKey !== "") {
    return { psk: parsePsk(envKey, KEY_ENV_VAR), source: KEY_ENV_VAR };
  }
  const source = describeFile(DEFAULT_KEY_FILE);
  if (!options.createIfMissing) {
    return { psk: await readKeyFile(DEFAULT_KEY_FILE), source };
  }
  const existing = await readKeyFileIfPresent(DEFAULT_KEY_FILE);
  if (existing !== null) return { psk: existing, source };
  // Another process may create it first; then use that one.
  const created = await createKeyFile(DEFAULT_KEY_FILE);
  return {
    psk: await readKeyFile(DEFAULT_KEY_FILE),
    source,
    ...(created ? { created: DEFAULT_KEY_FILE } : {}),
  };
}

/**
 * Writes a new random key: 32 random bytes as 64 lower-case hex characters
 * and a newline, mode 0600. Without `force` the file is created only if
 * absent; with `force` it is replaced atomically with mode 0600 (`updateFileAtomically` in `atomic_file.ts`).
 *
 * @param path The key file.
 * @param options `force`: replace an existing file (default `false`).
 * @returns A promise that resolves once the key is written and synced.
 * @throws {Error} If the file exists and `force` is not set, or it cannot
 *   be written.
 * @example Usage
 * ```ts ignore
 * await writeNewKeyFile("doorman.key", { force: true });
 * ```
 */
export async function writeNewKeyFile(
  path: string,
  options: { force?: boolean } = {},
): Promise<void> {
  if (options.force) {
    await replaceKeyFile(path);
  } else if (!await createKeyFile(path)) {
    throw new Error(
      `Cannot write key file ${
        quote(path)
      }: already exists; use --force to replace it`,
    );
  }
}

/** The key in `path`, or `null` if there is no such file. */
async function readKeyFileIfPresent(path: string): Promise<Uint8Array | null> {
  let content: Uint8Array;
  try {
    using file = await Deno.open(path, { read: true });
    content = await readAtMost(file, MAX_KEY_FILE_BYTES + 1);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new Error(`Cannot read key file ${quote(path)}`, { cause: error });
  }
  if (content.length > MAX_KEY_FILE_BYTES) {
    throw new Error(
      `Cannot read key file ${
        quote(path)
      }: longer than ${MAX_KEY_FILE_BYTES} bytes`,
    );
  }
  return parsePsk(content, describeFile(path));
}

/** Up to `limit` bytes from the start of `file`. */
async function readAtMost(file: Deno.FsFile, limit: number) {
  const content = new Uint8Array(limit);
  let length = 0;
  while (length < limit) {
    const count = await file.read(content.subarray(length));
    if (count === null) break;
    length += count;
  }
  return content.slice(0, length);
}

/** Creates `path` with a new key; `false` if it already exists. */
function createKeyFile(path: string): Promise<boolean> {
  return createFileExclusively(path, utf8(newKeyText()), {
    what: "key file",
    mode: KEY_FILE_MODE,
  });
}

/** Replaces `path` atomically with a new key, mode 0600. */
async function replaceKeyFile(path: string): Promise<void> {
  await updateFileAtomically(path, () => utf8(newKeyText()), {
    what: "key file",
    newFileMode: KEY_FILE_MODE,
    keepMode: false,
    tempPrefix: ".doorman-key-",
    lock: false,
  });
}

function newKeyText(): string {
  return `${toHex(randomBytes(NEW_KEY_BYTES))}\n`;
}

function isAsciiWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0d || byte === 0x0a;
}

function describeFile(path: string): string {
  return `key file ${quote(path)}`;
}

/** A value quoted for a message, with any control character escaped. */
function quote(value: string): string {
  return JSON.stringify(value);
}
