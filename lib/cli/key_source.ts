/**
 * Top layer (CLI): finds the keys for both programs through `resolveKeys`
 * and `resolveClientKey` (lib/key_file.ts), with the mistakes a new user makes turned
 * into a next step: `DOORMAN_KEY` holding a path, and a client without the
 * server's key file.
 *
 * It never prints the key.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import {
  DEFAULT_KEY_FILE,
  KEY_ENV_VAR,
  type KeyEntry,
  type KeySource,
  resolveClientKey,
  resolveKeys,
} from "../key_file.ts";
import type { CommandIo } from "./command_io.ts";

/** Options of {@link findKey}. */
export interface FindKeyOptions {
  /** `--key-file`, if given. */
  keyFile?: string;
  /** The server creates `doorman.key` when missing; a client never does. */
  createIfMissing: boolean;
  /** The server refuses a key file others can read. */
  strictMode?: boolean;
}

/**
 * The key from `--key-file`, `DOORMAN_KEY` or `doorman.key`.
 *
 * @param io The environment.
 * @param options The key file flag and whether to create the default file.
 * @returns The keys (a ring, or one) and where they came from.
 * @throws {UsageError} If `DOORMAN_KEY` names an existing file.
 * @throws {Error} If a client's key file is missing ("copy the server's
 *   key file here"), or the file is unreadable or too short.
 */
export async function findKey(
  io: CommandIo,
  options: FindKeyOptions,
): Promise<KeySource> {
  await checkKeySource(io, options);
  return await resolveKeys({ ...options, env: io.env });
}

/**
 * The client's one key, as {@link findKey} finds it.
 *
 * @param io The environment.
 * @param keyFile `--key-file`, if given.
 * @returns The key's id and bytes.
 * @throws {UsageError} If `DOORMAN_KEY` names an existing file.
 * @throws {Error} If the key file is missing ("copy the server's key file
 *   here"), unreadable, or holds other than one key.
 */
export async function findClientKey(
  io: CommandIo,
  keyFile: string | undefined,
): Promise<KeyEntry> {
  await checkKeySource(io, { keyFile, createIfMissing: false });
  return await resolveClientKey({ keyFile, env: io.env });
}

async function checkKeySource(
  io: CommandIo,
  options: FindKeyOptions,
): Promise<void> {
  const envKey = io.env(KEY_ENV_VAR);
  if (options.keyFile === undefined && envKey) {
    if (await isFile(envKey.trim())) {
      throw new UsageError(
        `${KEY_ENV_VAR} holds the key itself; use --key-file for a path`,
      );
    }
  }
  const path = options.keyFile ?? (envKey ? undefined : DEFAULT_KEY_FILE);
  if (!options.createIfMissing && path !== undefined && !await exists(path)) {
    throw new Error(
      `Cannot read key file ${JSON.stringify(path)}: not found; ` +
        "copy the server's key file here or give --key-file",
    );
  }
}

async function isFile(path: string): Promise<boolean> {
  if (path === "" || path.length > 4096) return false;
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    return true; // Let the reader report anything else.
  }
}
