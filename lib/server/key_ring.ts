/**
 * Server parts: `KeyRing`, the running server's keys by id, as the
 * handshake looks them up (`KeyLookup`), and `watchKeyRing`, which keeps it
 * in step with the ring file through the shared `FileReloader` (settled,
 * whole files; never emptied except by SIGHUP).
 *
 * A key is revoked when its id leaves the ring or its bytes change; the
 * ring then tells its listeners (serve() closes that key's sessions with
 * close code 9, `keyRevoked`), and the next handshake with it fails like a
 * wrong key.
 *
 * It never reports key bytes: events carry ids and counts only.
 *
 * @module
 */

import { toHex } from "../wire/bytes.ts";
import { constantTimeEqual, randomBytes } from "../wire/crypto.ts";
import type { KeyLookup } from "../wire/handshake.ts";
import { deriveEarlySalt } from "../wire/key_schedule.ts";
import { DEFAULT_KEY_ID, KEY_BYTES, MIN_PSK_BYTES } from "../wire/protocol.ts";
import { type KeyEntry, readKeyEntries } from "../key_file.ts";
import {
  FileReloader,
  type FileReloaderOptions,
  type ReloadEvent,
} from "../file_reloader.ts";

/**
 * The keys a server accepts, by id. Lookups are one `Map.get`; `replace`
 * swaps the whole set and reports the revoked ids to listeners.
 *
 * @example Usage
 * ```ts
 * const ring = new KeyRing([{ id: "laptop", psk: new Uint8Array(32) }]);
 * ring.find("laptop")?.id; // "laptop"
 * ```
 */
export class KeyRing implements KeyLookup<KeyEntry> {
  /** A random key no client holds: unknown ids handshake against it. */
  readonly decoy: Uint8Array = randomBytes(KEY_BYTES);
  #keys: Map<string, KeyEntry>;
  /** Each key's (and the decoy's) early salt, made when the key arrives. */
  #salts = new WeakMap<Uint8Array, Uint8Array>();
  readonly #listeners = new Set<(revoked: ReadonlySet<string>) => void>();

  /**
   * Makes a ring of `entries`.
   *
   * @param entries The keys; ids must be unique.
   * @throws {RangeError} If a key is shorter than 16 bytes or an id repeats.
   */
  constructor(entries: readonly KeyEntry[]) {
    this.#keys = indexEntries(entries);
    this.#addSalts([this.decoy, ...entries.map((entry) => entry.psk)]);
  }

  /**
   * A ring of one key, id `default` (a bare key file, or `ServeOptions.psk`).
   *
   * @param psk The key.
   * @returns The ring.
   */
  static single(psk: Uint8Array): KeyRing {
    return new KeyRing([{ id: DEFAULT_KEY_ID, psk }]);
  }

  /**
   * The key with this id.
   *
   * @param keyId The id.
   * @returns The entry, or `undefined`.
   */
  find(keyId: string): KeyEntry | undefined {
    return this.#keys.get(keyId);
  }

  /**
   * The early salt of a key in the ring or of the decoy, computed when the
   * key arrived, so that both paths of a handshake do the same work.
   *
   * @param psk A key's bytes, or the decoy.
   * @returns `deriveEarlySalt(psk)`.
   */
  earlySalt(psk: Uint8Array): Uint8Array {
    return this.#salts.get(psk) ?? deriveEarlySalt(psk);
  }

  /**
   * Whether `entry` is still in the ring with the same bytes.
   *
   * @param entry An entry a handshake returned.
   * @returns `false` once it was removed or its bytes changed.
   */
  holds(entry: KeyEntry): boolean {
    const current = this.#keys.get(entry.id);
    return current !== undefined && sameKey(current, entry);
  }

  /**
   * The ids, in file order.
   *
   * @returns A new array.
   */
  ids(): string[] {
    return [...this.#keys.keys()];
  }

  /**
   * Replaces every key; ids that left or whose bytes changed are revoked
   * and reported to the listeners.
   *
   * @param entries The new keys.
   * @returns The revoked ids.
   * @throws {RangeError} If a key is shorter than 16 bytes or an id repeats.
   */
  replace(entries: readonly KeyEntry[]): ReadonlySet<string> {
    const next = indexEntries(entries);
    const revoked = new Set<string>();
    for (const [id, entry] of this.#keys) {
      const kept = next.get(id);
      if (kept === undefined || !sameKey(kept, entry)) revoked.add(id);
    }
    this.#keys = next;
    this.#addSalts(entries.map((entry) => entry.psk));
    if (revoked.size > 0) {
      for (const listener of this.#listeners) listener(revoked);
    }
    return revoked;
  }

  /**
   * Calls `listener` with the revoked ids after each `replace` that revokes
   * any.
   *
   * @param listener Receives the ids.
   * @returns A function that removes the listener.
   */
  onRevoked(listener: (revoked: ReadonlySet<string>) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #addSalts(keys: readonly Uint8Array[]): void {
    for (const psk of keys) {
      if (!this.#salts.has(psk)) this.#salts.set(psk, deriveEarlySalt(psk));
    }
  }
}

/** Options of {@link watchKeyRing}. */
export interface WatchKeyRingOptions {
  /** Receives each reload's outcome (ids and counts only). */
  onEvent: (event: ReloadEvent) => void;
  /** See `FileReloaderOptions.settleMs`. */
  settleMs?: number;
}

/**
 * Keeps `ring` in step with its file: returns a started `FileReloader`
 * (call `reload({ forced: true })` on SIGHUP, `close()` at shutdown).
 *
 * @param path The ring file.
 * @param ring The ring loaded from it.
 * @param options Where events go.
 * @returns The reloader, already watching.
 * @example Usage
 * ```ts ignore
 * const reloader = watchKeyRing("ring.keys", ring, { onEvent: console.log });
 * ```
 */
export function watchKeyRing(
  path: string,
  ring: KeyRing,
  options: WatchKeyRingOptions,
): FileReloader<KeyEntry[]> {
  const reloaderOptions: FileReloaderOptions<KeyEntry[]> = {
    read: readKeyEntries,
    index: (entries) =>
      new Map(
        entries.map((entry) => [entry.id, fingerprint(entry)]),
      ),
    apply: (entries) => void ring.replace(entries),
    onEvent: options.onEvent,
    settleMs: options.settleMs,
  };
  const current = ring.ids().map((id) => ring.find(id)).filter((entry) =>
    entry !== undefined
  );
  const reloader = new FileReloader(path, current, reloaderOptions);
  reloader.watch();
  return reloader;
}

function indexEntries(entries: readonly KeyEntry[]): Map<string, KeyEntry> {
  const keys = new Map<string, KeyEntry>();
  for (const entry of entries) {
    if (entry.psk.length < MIN_PSK_BYTES) {
      throw new RangeError(
        `Cannot use key ${
          JSON.stringify(entry.id)
        }: ${entry.psk.length} bytes, at least ${MIN_PSK_BYTES} required`,
      );
    }
    if (keys.has(entry.id)) {
      throw new RangeError(
        `Cannot use key ring: id ${JSON.stringify(entry.id)} repeats`,
      );
    }
    keys.set(entry.id, entry);
  }
  return keys;
}

function sameKey(a: KeyEntry, b: KeyEntry): boolean {
  return a.psk.length === b.psk.length && constantTimeEqual(a.psk, b.psk);
}

/** What makes an entry "changed" in reload counts: bytes and users. */
function fingerprint(entry: KeyEntry): string {
  return `${toHex(entry.psk)} ${entry.users?.join(",") ?? "*"}`;
}
