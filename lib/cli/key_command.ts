/**
 * CLI: `server.ts key add|list|revoke`, which manage a server's key ring
 * (one `ID HEX [users=...] [added=...]` line per client, mode 0600) and
 * write each client's one-line key file. A running server picks changes up
 * by itself (watch, or SIGHUP) and closes the sessions of a revoked key.
 *
 * It never prints key bytes. Every ring write is atomic (temp file, fsync,
 * rename) and keeps comments and the other lines as they are.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { parseFlags } from "./flags.ts";
import { randomBytes } from "../wire/crypto.ts";
import { KEY_BYTES, KEY_ID_REGEXP } from "../wire/protocol.ts";
import {
  DEFAULT_KEY_FILE,
  formatKeyEntry,
  keyFileForm,
  MAX_KEY_RING_BYTES,
  parseKeyEntries,
  replaceKeyFileText,
} from "../key_file.ts";

/** Where the command writes its output. */
export interface KeyCommandIo {
  /** Writes one line of program output. */
  stdout(line: string): void;
}

/** The `key --help` text. */
export const KEY_USAGE =
  `Usage: server.ts key add ID [--key-file RING] [--out FILE] [--users A,B]
       server.ts key list [--key-file RING]
       server.ts key revoke ID [--key-file RING]

Manages the server's key ring: one key per client, each with an id
(1 to 64 of A-Z a-z 0-9 . _ -) that the client sends in clear.

  add      appends a fresh random key to RING (created with mode 0600) and
           writes the client's one-line key file FILE (mode 0600; refused if
           it exists). Give FILE to that client only (--key-file FILE).
  list     prints each id and when it was added; never key bytes.
  revoke   removes the key: a running server closes its sessions within
           seconds and refuses it afterwards.

Flags:
  --key-file RING  the server's key ring (default: ${DEFAULT_KEY_FILE})
  --out FILE       add: the client's key file (default: ID.key)
  --users A,B      add: only these users may log in with the key
                   (default: any user)
  -h, --help       print this help and exit (default: off)`;

/**
 * Runs `key` with the arguments that follow it.
 *
 * @param args The arguments after `key`.
 * @param io Where to print.
 * @returns The exit code: 0.
 * @throws {UsageError} On a bad action, id or flag.
 * @throws {Error} If the ring cannot be read or written, the id exists
 *   (add) or is missing (revoke), or the client's file exists.
 * @example Usage
 * ```ts ignore
 * await runKeyCommand(["add", "laptop", "--key-file", "ring.keys"], {
 *   stdout: (line) => console.log(line),
 * });
 * ```
 */
export async function runKeyCommand(
  args: string[],
  io: KeyCommandIo,
): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    "key-file": { type: "string", default: DEFAULT_KEY_FILE },
    out: { type: "string" },
    users: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  }, {
    command: "key",
    help: "server.ts key --help",
    allowPositionals: true,
  });
  if (values.help) {
    io.stdout(KEY_USAGE);
    return 0;
  }
  const [action, id, ...extra] = positionals;
  const ring = values["key-file"];
  if (extra.length > 0) {
    throw new UsageError(`Cannot run key ${action}: unexpected "${extra[0]}"`);
  }
  if (action === "list") {
    if (id !== undefined) {
      throw new UsageError(`Cannot run key list: unexpected "${id}"`);
    }
    for (const line of await listKeys(ring)) io.stdout(line);
    return 0;
  }
  if (action !== "add" && action !== "revoke") {
    throw new UsageError(
      `Cannot run key ${
        action === undefined ? "" : JSON.stringify(action)
      }: choose add, list or revoke; see "server.ts key --help"`,
    );
  }
  if (id === undefined || !KEY_ID_REGEXP.test(id)) {
    throw new UsageError(
      `Cannot run key ${action}: give an ID of 1 to 64 characters of A-Z a-z 0-9 . _ -`,
    );
  }
  if (action === "revoke") {
    const left = await revokeKey(ring, id);
    io.stdout(
      `revoked key "${id}" in "${ring}"; ${left} left` +
        (left === 0
          ? " (a running server keeps its keys until SIGHUP: an empty ring is never applied on its own)"
          : ""),
    );
    return 0;
  }
  const out = values.out ?? `${id}.key`;
  const users = values.users === undefined
    ? undefined
    : values.users.split(",").map((user) => user.trim());
  if (
    users && (users.length === 0 || users.some((user) => !/^\S+$/.test(user)))
  ) {
    throw new UsageError(
      "Cannot use --users: give names separated by commas, without spaces",
    );
  }
  await addKey(ring, { id, out, users });
  io.stdout(
    `added key "${id}" to "${ring}"; wrote the client's key file "${out}" (mode 0600): give it to that client only`,
  );
  return 0;
}

/** The lines of `key list`: id, when added, and the user restriction. */
async function listKeys(ring: string): Promise<string[]> {
  const text = await readRingText(ring, { missingOk: false });
  return parseKeyEntries(text, `key file "${ring}"`).map((entry) =>
    [
      entry.id,
      entry.added ?? "-",
      entry.users ? `users=${entry.users.join(",")}` : "",
    ].join("  ").trimEnd()
  );
}

async function addKey(
  ring: string,
  key: { id: string; out: string; users?: string[] },
): Promise<void> {
  const text = await readRingText(ring, { missingOk: true });
  const entries = text.trim() === ""
    ? []
    : parseKeyEntries(text, `key file "${ring}"`);
  if (entries.length > 0 && keyFileForm(text) === "bare") {
    throw new Error(
      `Cannot add to key file "${ring}": it holds a bare key (version 1 form); start a ring in another file with --key-file`,
    );
  }
  if (entries.some((entry) => entry.id === key.id)) {
    throw new Error(
      `Cannot add key "${key.id}": the id is already in "${ring}"`,
    );
  }
  const entry = {
    id: key.id,
    psk: randomBytes(KEY_BYTES),
    users: key.users,
    added: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
  };
  await writeClientKeyFile(
    key.out,
    `${formatKeyEntry({ id: entry.id, psk: entry.psk })}\n`,
  );
  try {
    const before = text === "" || text.endsWith("\n") ? text : `${text}\n`;
    await replaceKeyFileText(ring, `${before}${formatKeyEntry(entry)}\n`);
  } catch (error) {
    await Deno.remove(key.out).catch(() => {}); // keep the first error
    throw error;
  }
}

/** Removes `id`'s line; returns how many keys are left. */
async function revokeKey(ring: string, id: string): Promise<number> {
  const text = await readRingText(ring, { missingOk: false });
  const entries = parseKeyEntries(text, `key file "${ring}"`);
  if (
    !entries.some((entry) => entry.id === id) || keyFileForm(text) === "bare"
  ) {
    throw new Error(`Cannot revoke key "${id}": no such id in "${ring}"`);
  }
  const lines = text.split("\n").filter((line) => {
    const trimmed = line.trim();
    return trimmed.startsWith("#") || trimmed.split(/[ \t]+/)[0] !== id;
  });
  await replaceKeyFileText(ring, lines.join("\n"));
  return entries.length - 1;
}

async function readRingText(
  path: string,
  options: { missingOk: boolean },
): Promise<string> {
  try {
    const info = await Deno.stat(path);
    if (info.size > MAX_KEY_RING_BYTES) {
      throw new Error(
        `Cannot read key file "${path}": longer than ${MAX_KEY_RING_BYTES} bytes`,
      );
    }
    return await Deno.readTextFile(path);
  } catch (error) {
    if (options.missingOk && error instanceof Deno.errors.NotFound) return "";
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `Cannot read key file "${path}": not found; create it with "server.ts key add ID --key-file ${path}"`,
      );
    }
    throw error;
  }
}

/** Creates the client's key file, mode 0600; refuses an existing file. */
async function writeClientKeyFile(path: string, text: string): Promise<void> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new Error(
        `Cannot write the client's key file "${path}": it exists; choose another with --out`,
      );
    }
    throw new Error(`Cannot write the client's key file "${path}"`, {
      cause: error,
    });
  }
  try {
    using _ = file;
    if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
    const bytes = new TextEncoder().encode(text);
    for (let offset = 0; offset < bytes.length;) {
      offset += await file.write(bytes.subarray(offset));
    }
    await file.syncData();
  } catch (error) {
    await Deno.remove(path).catch(() => {}); // keep the first error
    throw new Error(`Cannot write the client's key file "${path}"`, {
      cause: error,
    });
  }
}
