/**
 * Users layer, file side: reads a userinfo file, and changes one under a
 * lock with an atomic write (`updateUserinfo`), safe against other writers
 * and against being killed.
 *
 * Every change goes through `updateFileAtomically` (`../atomic_file.ts`):
 * lock → read → modify → write a temp file → fsync → rename → fsync the
 * directory, safe against other writers, symbolic-link swaps and being
 * killed; stray `.userinfo-*` temp files may remain. Readers take no lock.
 *
 * This file does not parse lines (`userinfo.ts`) or keep a copy in memory
 * (`user_store.ts`).
 *
 * @module
 */

import { updateFileAtomically } from "../atomic_file.ts";
import { utf8 } from "../wire/bytes.ts";
import { UserinfoSyntaxError } from "../errors.ts";
import { formatUserinfo, parseUserinfo, type Userinfo } from "./userinfo.ts";

const NEW_FILE_MODE = 0o600;
const TEMP_PREFIX = ".userinfo-";

/**
 * Reads and parses a userinfo file, without taking the lock.
 *
 * @param path The userinfo file.
 * @returns The parsed file.
 * @throws {UserinfoSyntaxError} If a line is malformed; `line` is kept and
 *   the message names the file.
 * @throws {Deno.errors.NotFound} If the file does not exist (the message
 *   names it).
 * @example Usage
 * ```ts ignore
 * const userinfo = await readUserinfoFile("userinfo");
 * ```
 */
export async function readUserinfoFile(path: string): Promise<Userinfo> {
  const text = await readText(path);
  if (text === null) {
    throw new Deno.errors.NotFound(
      `Cannot read users file ${JSON.stringify(path)}: not found`,
    );
  }
  return parseText(path, text);
}

/**
 * Changes a userinfo file under its lock and replaces it atomically. A
 * missing file starts empty and is created with mode 0600; an existing
 * file keeps its mode (and, under root, its owner and group). If `change` returns its argument unchanged, an
 * existing file is left as it is. A symbolic link is followed: its target
 * is replaced, the link stays.
 *
 * @param path The userinfo file.
 * @param change Computes the new contents from the current ones; whatever it
 *   throws propagates and the file is left as it was.
 * @returns The contents now on disk.
 * @throws {UserinfoSyntaxError} If the current file is malformed (nothing
 *   is written).
 * @example Usage
 * ```ts ignore
 * await updateUserinfo("userinfo", (info) => removeUser(info, "bob"));
 * ```
 */
export async function updateUserinfo(
  path: string,
  change: (userinfo: Userinfo) => Userinfo | Promise<Userinfo>,
): Promise<Userinfo> {
  const target = await followLink(path);
  let result: Userinfo = { lines: [] };
  await updateFileAtomically(target, async (bytes) => {
    const current = bytes === null
      ? { lines: [] }
      : parseText(path, new TextDecoder().decode(bytes));
    result = await change(current);
    if (bytes !== null && result === current) return null;
    return utf8(formatUserinfo(result));
  }, {
    what: "users file",
    newFileMode: NEW_FILE_MODE,
    tempPrefix: TEMP_PREFIX,
  });
  return result;
}

// The real path if `path` exists (so a link's target is replaced, not the
// link), else `path` itself.
async function followLink(path: string): Promise<string> {
  return await ifPresent(path, () => Deno.realPath(path)) ?? path;
}

function readText(path: string): Promise<string | null> {
  return ifPresent(path, () => Deno.readTextFile(path));
}

/** What `read` gives, or `null` if the users file is missing. */
async function ifPresent<T>(
  path: string,
  read: () => Promise<T>,
): Promise<T | null> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new Error(`Cannot read users file ${JSON.stringify(path)}`, {
      cause: error,
    });
  }
}

function parseText(path: string, text: string): Userinfo {
  try {
    return parseUserinfo(text);
  } catch (error) {
    if (!(error instanceof UserinfoSyntaxError)) throw error;
    // "Cannot parse userinfo line 3: reason" → "line 3: reason". No cause:
    // the message already holds all of it, and describeError would repeat it.
    const detail = error.message.replace(/^Cannot parse userinfo /, "");
    const where = detail.includes(`line ${error.line}`)
      ? ""
      : ` (line ${error.line})`;
    throw new UserinfoSyntaxError(
      `Cannot read users file ${JSON.stringify(path)}: ${detail}${where}`,
      error.line,
    );
  }
}
