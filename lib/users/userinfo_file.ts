/**
 * Users layer, file side: reads a userinfo file, and changes one under a
 * lock with an atomic write (`updateUserinfo`), safe against other writers
 * and against being killed.
 *
 * Every change is lock → read → modify → write a temp file in the same
 * directory → fsync → rename over the file → fsync the directory. The lock is
 * an exclusive `FsFile.lock` on a sidecar `${path}.lock` (created if missing,
 * never deleted), so writers in different processes take turns. A process
 * killed at any point leaves the old or the new file, never a broken one;
 * stray `.userinfo-*` temp files may remain. Readers take no lock: a rename
 * is atomic, so they see one whole file.
 *
 * This file does not parse lines (`userinfo.ts`) or keep a copy in memory
 * (`user_store.ts`).
 *
 * @module
 */

import { dirname } from "node:path";
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
 * file keeps its mode. If `change` returns its argument unchanged, an
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
  using lock = await openLockFile(target);
  await lock.lock(true);
  const text = await readText(target);
  const current = text === null ? { lines: [] } : parseText(path, text);
  const next = await change(current);
  if (text !== null && next === current) return current;
  const mode = text === null ? NEW_FILE_MODE : await fileMode(target);
  await writeAtomically(target, formatUserinfo(next), mode);
  return next;
}

// The real path if `path` exists (so a link's target is replaced, not the
// link), else `path` itself.
async function followLink(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return path;
    throw new Error(`Cannot read users file ${JSON.stringify(path)}`, {
      cause: error,
    });
  }
}

async function openLockFile(path: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(`${path}.lock`, {
      read: true,
      write: true,
      create: true,
      mode: NEW_FILE_MODE,
    });
  } catch (error) {
    throw new Error(
      `Cannot lock users file ${JSON.stringify(path)}`,
      { cause: error },
    );
  }
}

async function readText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
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

async function fileMode(path: string): Promise<number> {
  const { mode } = await Deno.stat(path);
  return mode === null ? NEW_FILE_MODE : mode & 0o7777;
}

async function writeAtomically(
  path: string,
  text: string,
  mode: number,
): Promise<void> {
  const directory = dirname(path);
  let tempPath: string | undefined;
  try {
    tempPath = await Deno.makeTempFile({ dir: directory, prefix: TEMP_PREFIX });
    await Deno.chmod(tempPath, mode);
    {
      using file = await Deno.open(tempPath, { write: true, truncate: true });
      await writeAll(file, utf8(text));
      await file.sync();
    }
    await Deno.rename(tempPath, path);
    tempPath = undefined;
  } catch (error) {
    if (tempPath !== undefined) await removeQuietly(tempPath);
    throw new Error(`Cannot write users file ${JSON.stringify(path)}`, {
      cause: error,
    });
  }
  await syncDirectory(directory);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) {
    offset += await file.write(bytes.subarray(offset));
  }
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch {
    // The write already failed; a stray temp file is harmless and that
    // failure is the one worth reporting.
  }
}

async function syncDirectory(directory: string): Promise<void> {
  try {
    using handle = await Deno.open(directory, { read: true });
    await handle.sync();
  } catch {
    // Some platforms (Windows) cannot open or fsync a directory. The rename
    // is done; only its durability across a power cut is weaker there.
  }
}
