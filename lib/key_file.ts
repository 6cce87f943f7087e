/**
 * Key: where the pre-shared keys come from, and the key file format. An
 * explicit key file, else the `DOORMAN_KEY` environment variable (the key
 * itself), else `doorman.key` in the working directory; `writeNewKeyFile`
 * makes a new bare key (`keygen`), `key add` appends ring entries.
 *
 * Two forms (docs/PROTOCOL.md, "Key files"):
 * - entries: one `ID HEX [users=a,b] [added=TIME]` per line, `#` comments
 *   and blank lines allowed; HEX is 64 hex digits and the key is the 32
 *   bytes they spell. A server's file may hold many (its ring), a
 *   client's holds one.
 * - a bare key (version 1 files): the whole content with surrounding ASCII
 *   whitespace trimmed, whose bytes (a generated key's 64 hex characters,
 *   not the 32 bytes they spell) are the key, id `default`.
 *
 * It deliberately never puts a key in an error message. The server checks
 * a key file's mode with `checkKeyFileMode` (no access for group or others).
 *
 * @module
 */

import { createFileExclusively, updateFileAtomically } from "./atomic_file.ts";
import { toHex, utf8 } from "./wire/bytes.ts";
import { randomBytes } from "./wire/crypto.ts";
import { type KeyEntry, parseKeyEntries, parsePsk } from "./key_entries.ts";

export {
  formatKeyEntry,
  type KeyEntry,
  keyFileForm,
  parseClientKey,
  parseKeyEntries,
  parsePsk,
} from "./key_entries.ts";

/** The key file used when no other is named. */
export const DEFAULT_KEY_FILE = "doorman.key";
/** The environment variable that may hold the key itself. */
export const KEY_ENV_VAR = "DOORMAN_KEY";
/** Largest key file read; a longer one is a mistake (`/dev/zero`, a log). */
export const MAX_KEY_FILE_BYTES = 4096;
/** Largest key ring read. */
export const MAX_KEY_RING_BYTES = 1024 * 1024;
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
 * Refuses a key file that group or others may access, as OpenSSH does for
 * private keys. Windows has no such modes: nothing is checked there.
 *
 * @param path The key file.
 * @returns A promise that resolves if the mode is 0600 or stricter.
 * @throws {Error} If group or others have any access: one line naming the
 *   file, its mode, and `chmod 600`.
 * @example Usage
 * ```ts ignore
 * await checkKeyFileMode("doorman.key");
 * ```
 */
export async function checkKeyFileMode(path: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  const { mode } = await Deno.stat(path);
  if (mode !== null && (mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, "0");
    throw new Error(
      `Cannot use key file ${
        quote(path)
      }: mode ${octal} lets group or others read it; run "chmod 600 ${path}"`,
    );
  }
}

/** Options of {@link resolveKeys}. */
export interface ResolveKeysOptions extends ResolvePskOptions {
  /**
   * Refuse a key file that group or others may access (servers).
   * @default {false}
   */
  strictMode?: boolean;
}

/** The keys found by {@link resolveKeys} and where they came from. */
export interface KeySource {
  /** The keys, in file order; never empty. */
  readonly entries: KeyEntry[];
  /** `key file "PATH"` or `DOORMAN_KEY`, for messages. */
  readonly source: string;
  /** The key file, when the keys came from one (to watch it). */
  readonly path?: string;
  /** The path, when the key file was just created. */
  readonly created?: string;
}

/**
 * Finds the keys as {@link resolvePsk} finds the key (`keyFile`, else
 * `DOORMAN_KEY`, else {@link DEFAULT_KEY_FILE}), in either key file form.
 *
 * @param options The named key file, the environment, whether to create
 *   the default file, and whether to check its mode.
 * @returns The keys and where they came from.
 * @throws {Error} If the key file is missing, unreadable, too long, or
 *   (with `strictMode`) open to group or others.
 * @throws {SyntaxError} If an entry is malformed.
 * @throws {RangeError} If a bare key is shorter than 16 bytes.
 * @example Usage
 * ```ts ignore
 * const { entries } = await resolveKeys({ env: (name) => Deno.env.get(name) });
 * ```
 */
export async function resolveKeys(
  options: ResolveKeysOptions,
): Promise<KeySource> {
  const envKey = options.keyFile === undefined
    ? options.env(KEY_ENV_VAR)
    : undefined;
  if (envKey !== undefined && envKey !== "") {
    return {
      entries: nonEmpty(parseKeyEntries(envKey, KEY_ENV_VAR), KEY_ENV_VAR),
      source: KEY_ENV_VAR,
    };
  }
  const path = options.keyFile ?? DEFAULT_KEY_FILE;
  let created: string | undefined;
  if (options.keyFile === undefined && options.createIfMissing) {
    if (await createKeyFile(path)) created = path;
  }
  if (options.strictMode) {
    await checkKeyFileMode(path).catch((error) => {
      if (error instanceof Deno.errors.NotFound) return; // reported below
      throw error;
    });
  }
  const entries = nonEmpty(await readKeyEntries(path), describeFile(path));
  return {
    entries,
    source: describeFile(path),
    path,
    ...(created ? { created } : {}),
  };
}

/**
 * Finds a client's key as {@link resolveKeys} does, and requires exactly
 * one (a client's key file holds one line).
 *
 * @param options The named key file and the environment.
 * @returns The key and its id.
 * @throws {Error} If the key file is missing or unreadable.
 * @throws {SyntaxError} If it is malformed or holds several keys.
 * @throws {RangeError} If a bare key is shorter than 16 bytes.
 * @example Usage
 * ```ts ignore
 * const key = await resolveClientKey({ env: (name) => Deno.env.get(name) });
 * ```
 */
export async function resolveClientKey(
  options: Omit<ResolvePskOptions, "createIfMissing">,
): Promise<KeyEntry> {
  const { entries, source } = await resolveKeys(options);
  if (entries.length !== 1) {
    throw new SyntaxError(
      `Cannot use keys from ${source}: a client's key file holds one key, found ${entries.length}`,
    );
  }
  return entries[0];
}

/**
 * Reads a key file in either form (up to 1 MiB).
 *
 * @param path The key file.
 * @returns Its keys (none for a ring of comments only).
 * @throws {Error} If the file is missing (the message says how to create
 *   one), unreadable, or longer than 1 MiB.
 * @throws {SyntaxError} If an entry is malformed.
 * @example Usage
 * ```ts ignore
 * const entries = await readKeyEntries("ring.keys");
 * ```
 */
export async function readKeyEntries(path: string): Promise<KeyEntry[]> {
  const content = await readFileIfPresent(path, MAX_KEY_RING_BYTES);
  if (content === null) {
    throw new Error(
      `Cannot read key file ${
        quote(path)
      }: not found; create one with "server.ts keygen" or "server.ts key add"`,
    );
  }
  return parseKeyEntries(content, describeFile(path));
}

/**
 * Writes `text` to `path` atomically with mode 0600: a temporary file in
 * the same directory, synced, then renamed over `path`.
 *
 * @param path The file.
 * @param text The whole new content.
 * @returns A promise that resolves once the file is replaced.
 * @throws {Error} If it cannot be written.
 * @example Usage
 * ```ts ignore
 * await replaceKeyFileText("ring.keys", "laptop 00...00\n");
 * ```
 */
export async function replaceKeyFileText(
  path: string,
  text: string,
): Promise<void> {
  await updateFileAtomically(path, () => utf8(text), {
    what: "key file",
    newFileMode: KEY_FILE_MODE,
    keepMode: false,
    tempPrefix: ".doorman-key-",
    lock: false,
  });
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
    await replaceKeyFileText(path, newKeyText());
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
  const content = await readFileIfPresent(path, MAX_KEY_FILE_BYTES);
  return content === null ? null : parsePsk(content, describeFile(path));
}

/** The bytes of `path` (at most `limit`), or `null` if there is no file. */
async function readFileIfPresent(
  path: string,
  limit: number,
): Promise<Uint8Array | null> {
  let content: Uint8Array;
  try {
    using file = await Deno.open(path, { read: true });
    content = await readAtMost(file, limit + 1);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new Error(`Cannot read key file ${quote(path)}`, { cause: error });
  }
  if (content.length > limit) {
    throw new Error(
      `Cannot read key file ${quote(path)}: longer than ${limit} bytes`,
    );
  }
  return content;
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

function newKeyText(): string {
  return `${toHex(randomBytes(NEW_KEY_BYTES))}\n`;
}

function nonEmpty(entries: KeyEntry[], where: string): KeyEntry[] {
  if (entries.length === 0) {
    throw new SyntaxError(
      `Cannot use ${where}: no key in it; add one with "server.ts key add ID"`,
    );
  }
  return entries;
}

function describeFile(path: string): string {
  return `key file ${quote(path)}`;
}

/** A value quoted for a message, with any control character escaped. */
function quote(value: string): string {
  return JSON.stringify(value);
}
