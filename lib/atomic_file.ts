/**
 * Atomic file replacement, written once for the key file and the user
 * file: lock → read → change → write a temp file → fsync → rename over the
 * file → fsync the directory. A process killed at any point leaves the old
 * or the new file, never a broken one (stray temp files may remain).
 * Readers take no lock: a rename is atomic, so they see one whole file.
 *
 * Safe against another writer in the same directory: the lock is a
 * sidecar `${path}.lock` (created if missing, never deleted) that is never
 * opened through a symbolic link and must be a regular file; the temp file
 * is created exclusively (`O_EXCL | O_NOFOLLOW`, a fresh random name) and
 * its mode, owner and content are set through the open handle only, never
 * by path. A replaced file keeps its mode and, when the process may (root),
 * its owner and group.
 *
 * It does not parse or format: callers (`key_file.ts`,
 * `users/userinfo_file.ts`) do. It does not follow a symbolic link at
 * `path` either: a caller that wants a link's target replaced resolves it.
 *
 * @module
 */

import { constants, type FileHandle, open } from "node:fs/promises";
import { dirname, join } from "node:path";

/** Options of {@link updateFileAtomically}. */
export interface AtomicFileOptions {
  /** What the file is, for messages: `"users file"`. */
  what: string;
  /** Mode of a file that did not exist. */
  newFileMode: number;
  /**
   * An existing file keeps its mode; `false` gives it `newFileMode`.
   *
   * @default {true}
   */
  keepMode?: boolean;
  /** Start of the temp files' names, such as `".userinfo-"`. */
  tempPrefix: string;
  /**
   * Take the `${path}.lock` lock, so that read-change-write cycles of
   * several processes take turns. A writer that does not read (a new key)
   * may go without, and leaves no lock file behind.
   *
   * @default {true}
   */
  lock?: boolean;
}

/**
 * Changes a file under its lock and replaces it atomically.
 *
 * @param path The file (not followed if it is a symbolic link).
 * @param change Computes the new bytes from the current ones (`null` when
 *   the file does not exist); returns `null` to leave the file as it is.
 *   Whatever it throws propagates and nothing is written.
 * @param options What the file is, modes and the temp files' prefix.
 * @returns Whether the file was written.
 * @throws {Error} If the lock, the file or its directory cannot be used;
 *   the message names the file and the cause is kept.
 * @example Usage
 * ```ts ignore
 * await updateFileAtomically("notes.txt", () => utf8("hello\n"), {
 *   what: "notes file",
 *   newFileMode: 0o600,
 *   tempPrefix: ".notes-",
 * });
 * ```
 */
export async function updateFileAtomically(
  path: string,
  change: (
    current: Uint8Array | null,
  ) => Uint8Array | null | Promise<Uint8Array | null>,
  options: AtomicFileOptions,
): Promise<boolean> {
  using lock = options.lock === false
    ? null
    : await openLockFile(path, options);
  await lock?.lock(true);
  const current = await readIfPresent(path, options);
  const next = await change(current?.bytes ?? null);
  if (next === null) return false;
  await writeAtomically(path, next, { ...options, existing: current?.stat });
  return true;
}

/**
 * Opens `${path}.lock` for `FsFile.lock`, never through a symbolic link:
 * an existing lock must be a regular file, and the file opened must be the
 * one checked (same device and inode), so a swap in between is caught.
 */
async function openLockFile(
  path: string,
  options: AtomicFileOptions,
): Promise<Deno.FsFile> {
  const lockPath = `${path}.lock`;
  const fail = (detail: string, cause?: unknown) =>
    new Error(`Cannot lock ${options.what} ${quote(path)}: ${detail}`, {
      cause,
    });
  for (let attempt = 0; attempt < 3; attempt++) {
    let before: Deno.FileInfo;
    try {
      before = await Deno.lstat(lockPath);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        throw fail("cannot read the lock file", error);
      }
      try {
        // O_CREAT | O_EXCL: fails on any existing name, links included.
        return await Deno.open(lockPath, {
          read: true,
          write: true,
          createNew: true,
          mode: 0o600,
        });
      } catch (error) {
        if (error instanceof Deno.errors.AlreadyExists) continue;
        throw fail("cannot create the lock file", error);
      }
    }
    if (!before.isFile) {
      throw fail(`${quote(lockPath)} is not a regular file`);
    }
    let file: Deno.FsFile;
    try {
      file = await Deno.open(lockPath, { read: true, write: true });
    } catch (error) {
      throw fail("cannot open the lock file", error);
    }
    const opened = await file.stat();
    if (opened.isFile && sameFile(opened, before)) return file;
    file.close();
    throw fail(`${quote(lockPath)} changed while it was opened`);
  }
  throw fail("the lock file keeps changing");
}

function sameFile(left: Deno.FileInfo, right: Deno.FileInfo): boolean {
  return left.dev === right.dev && left.ino === right.ino;
}

async function readIfPresent(
  path: string,
  options: AtomicFileOptions,
): Promise<{ bytes: Uint8Array; stat: Deno.FileInfo } | null> {
  try {
    const stat = await Deno.stat(path);
    return { bytes: await Deno.readFile(path), stat };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new Error(`Cannot read ${options.what} ${quote(path)}`, {
      cause: error,
    });
  }
}

/**
 * Creates `path` only if no file (or link) has that name, and writes
 * `bytes` with mode `options.mode`, synced. Mode and content are set
 * through the open handle, never by path. On failure the new file is
 * removed again.
 *
 * @param path The file to create.
 * @param bytes Its content.
 * @param options What the file is (for messages), and its mode.
 * @returns `false` if the name already exists.
 * @throws {Error} If the file cannot be created or written.
 * @example Usage
 * ```ts ignore
 * if (!await createFileExclusively("doorman.key", key, { what: "key file", mode: 0o600 })) {
 *   console.log("already there");
 * }
 * ```
 */
export async function createFileExclusively(
  path: string,
  bytes: Uint8Array,
  options: { what: string; mode: number },
): Promise<boolean> {
  try {
    await writeNewFile(path, bytes, { mode: options.mode });
    return true;
  } catch (error) {
    if (error instanceof Error && "code" in error && error.code === "EEXIST") {
      return false;
    }
    if (error instanceof Deno.errors.AlreadyExists) return false;
    throw new Error(`Cannot write ${options.what} ${quote(path)}`, {
      cause: error,
    });
  }
}

/**
 * Creates `path` exclusively (`O_EXCL | O_NOFOLLOW`), then sets owner,
 * mode and content through the handle and syncs it; removes it again if
 * any step after the creation fails.
 */
async function writeNewFile(
  path: string,
  bytes: Uint8Array,
  options: { mode: number; existing?: Deno.FileInfo },
): Promise<void> {
  const handle: FileHandle = await open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL |
      (constants.O_NOFOLLOW ?? 0),
    0o600,
  );
  try {
    try {
      await keepOwner(handle, options.existing);
      if (Deno.build.os !== "windows") await handle.chmod(options.mode);
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await removeQuietly(path);
    throw error;
  }
}

async function writeAtomically(
  path: string,
  bytes: Uint8Array,
  options: AtomicFileOptions & { existing: Deno.FileInfo | undefined },
): Promise<void> {
  const directory = dirname(path);
  const tempPath = join(directory, `${options.tempPrefix}${randomName()}.tmp`);
  const keep = options.keepMode ?? true;
  const mode = keep && options.existing?.mode != null
    ? options.existing.mode & 0o7777
    : options.newFileMode;
  try {
    await writeNewFile(tempPath, bytes, { mode, existing: options.existing });
    try {
      await Deno.rename(tempPath, path);
    } catch (error) {
      await removeQuietly(tempPath);
      throw error;
    }
  } catch (error) {
    throw new Error(`Cannot write ${options.what} ${quote(path)}`, {
      cause: error,
    });
  }
  await syncDirectory(directory);
}

/**
 * Gives the temp file the replaced file's owner and group, when they
 * differ from ours and the process may change them (root; a group the
 * user is in). Otherwise the new file is ours, as any new file would be.
 */
async function keepOwner(
  handle: FileHandle,
  existing: Deno.FileInfo | undefined,
): Promise<void> {
  if (!existing || existing.uid === null || existing.gid === null) return;
  const ours = await handle.stat();
  if (ours.uid === existing.uid && ours.gid === existing.gid) return;
  try {
    await handle.chown(existing.uid, existing.gid);
  } catch {
    // Not permitted (not root): the file becomes ours, as before.
  }
}

function randomName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0"))
    .join("");
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

function quote(value: string): string {
  return JSON.stringify(value);
}
