/**
 * Server layer, files: the server secret, 32 random bytes only the server
 * knows, from which the stable fake salts of unknown user names are derived
 * (docs/PROTOCOL.md, "Server secret and fake salts"). It never comes
 * from the pre-shared key: every client holds that, and could otherwise
 * compute the fake salt of any name and tell real users from unknown ones.
 *
 * The file holds 64 hex digits and a newline, mode 0600, created on first
 * start (next to the user file unless named) and reused after, so fake
 * salts stay the same across restarts. Nothing here goes on the wire.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { randomBytes } from "../wire/crypto.ts";

/** Bytes of a server secret. */
export const SERVER_SECRET_BYTES = 32;
/** File name of the server secret when no path is given: beside the user file. */
export const SERVER_SECRET_FILE_NAME = "doorman-server-secret";

const SECRET_FILE_REGEXP = /^[0-9a-fA-F]{64}\r?\n?$/;

/**
 * Where the server secret lives by default: beside the user file.
 *
 * @param usersPath The user file.
 * @returns `<directory of usersPath>/doorman-server-secret`.
 * @example Usage
 * ```ts
 * defaultServerSecretPath("/etc/doorman/userinfo"); // "/etc/doorman/doorman-server-secret"
 * ```
 */
export function defaultServerSecretPath(usersPath: string): string {
  return join(dirname(usersPath), SERVER_SECRET_FILE_NAME);
}

/**
 * Reads the server secret at `path`, creating it (mode 0600, 32 random
 * bytes as hex) if it does not exist.
 *
 * @param path The secret file.
 * @returns The secret and whether this call created the file.
 * @throws {Error} If the file is not 64 hex digits, or is readable or
 *   writable by group or others (the message names the file and `chmod 600`;
 *   it never shows the content).
 * @example Usage
 * ```ts ignore
 * const { secret } = await loadServerSecret("doorman-server-secret");
 * ```
 */
export async function loadServerSecret(
  path: string,
): Promise<{ secret: Uint8Array; created: boolean }> {
  const fresh = randomBytes(SERVER_SECRET_BYTES);
  try {
    using file = await Deno.open(path, {
      write: true,
      createNew: true,
      mode: 0o600,
    });
    await file.write(new TextEncoder().encode(`${toHex(fresh)}\n`));
    await file.syncData();
    return { secret: fresh, created: true };
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  return { secret: await readServerSecret(path), created: false };
}

async function readServerSecret(path: string): Promise<Uint8Array> {
  const where = `Cannot use server secret ${JSON.stringify(path)}`;
  const info = await Deno.stat(path);
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(3, "0");
    throw new Error(
      `${where}: mode ${mode} lets group or others read it; run "chmod 600 ${path}"`,
    );
  }
  const text = await Deno.readTextFile(path);
  if (!SECRET_FILE_REGEXP.test(text)) {
    throw new Error(`${where}: expected 64 hex digits`);
  }
  const hex = text.trim();
  return Uint8Array.from(
    { length: SERVER_SECRET_BYTES },
    (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16),
  );
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0"))
    .join("");
}
