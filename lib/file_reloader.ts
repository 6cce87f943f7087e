/**
 * Shared: `FileReloader`, which keeps a running server's copy of a file it
 * reads (the key ring, the userinfo file) in step with the file, safely.
 *
 * - **Whole files only.** A watched change is applied once the file has
 *   been stable (same size, mtime and inode, no new event) for `settleMs`,
 *   so an in-place writer that pauses mid-file (shell `>`, some editors) is
 *   not loaded cut short. A writer that pauses longer than `settleMs` can
 *   still expose a cut file: replace files atomically (rename) instead.
 * - **Never empty by accident.** A watched change that would remove every
 *   entry is not applied; only `reload({ forced: true })` (SIGHUP) may.
 * - **Last good copy.** A file that does not parse is not applied.
 * - **Counts only.** Each applied change is reported as counts of entries
 *   added, removed and changed, never their content.
 *
 * It does not parse (`read` does) nor decide what a change means to
 * sessions (`apply` does).
 *
 * @module
 */

import { basename, dirname, resolve } from "node:path";

/** Default stable time before a watched change is applied, in ms. */
export const DEFAULT_SETTLE_MS = 300;

/**
 * What a reloader reports. `applied` carries counts only; `skipped` and
 * `failed` a reason without content.
 *
 * @example Usage
 * ```ts
 * const event: ReloadEvent = {
 *   kind: "applied",
 *   count: 3,
 *   added: 1,
 *   removed: 0,
 *   changed: 0,
 * };
 * ```
 */
export type ReloadEvent =
  | {
    kind: "applied";
    /** Entries now loaded. */
    count: number;
    added: number;
    removed: number;
    changed: number;
  }
  | { kind: "skipped" | "failed"; reason: string };

/** Options of {@link FileReloader}. */
export interface FileReloaderOptions<T> {
  /** Reads and parses the file; throws if it is missing or malformed. */
  read: (path: string) => Promise<T>;
  /**
   * The entries of a parsed copy, by name, each with a fingerprint that
   * changes when the entry does (kept in memory only, never reported).
   */
  index: (value: T) => Map<string, string>;
  /** Installs a new copy; called only with a copy that passed the checks. */
  apply: (value: T) => void;
  /** Receives what happened on each reload. */
  onEvent: (event: ReloadEvent) => void;
  /**
   * How long the file must stay unchanged before a watched change applies.
   *
   * @default {300}
   */
  settleMs?: number;
  /**
   * Runs each read-and-apply, so that an owner can order reloads with its
   * own writes.
   *
   * @default {(task) => task()}
   */
  exclusive?: (task: () => Promise<void>) => Promise<void>;
}

/** Options of {@link FileReloader.reload}. */
export interface ReloadOptions {
  /**
   * An operator's explicit reload (SIGHUP): applied even if it removes
   * every entry.
   *
   * @default {false}
   */
  forced?: boolean;
}

/**
 * Watches one file and applies its whole, stable changes (see the module
 * comment for the rules).
 *
 * @example Usage
 * ```ts ignore
 * const reloader = new FileReloader("ring.keys", current, {
 *   read: readKeyEntries,
 *   index: (entries) => new Map(entries.map((e) => [e.id, toHex(e.psk)])),
 *   apply: (entries) => ring.replace(entries),
 *   onEvent: (event) => console.log(event),
 * });
 * reloader.watch();
 * Deno.addSignalListener("SIGHUP", () => reloader.reload({ forced: true }));
 * ```
 */
export class FileReloader<T> {
  readonly #path: string;
  readonly #options: FileReloaderOptions<T>;
  readonly #settleMs: number;
  #current: Map<string, string>;
  #queue: Promise<void> = Promise.resolve();
  #watcher: Deno.FsWatcher | undefined;
  #watching: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastSeen: string | null = null;
  #closed = false;

  /**
   * Makes a reloader; it does nothing until `watch` or `reload`.
   *
   * @param path The file.
   * @param initial The copy already loaded (the baseline for the counts).
   * @param options How to read, index, apply and report.
   */
  constructor(path: string, initial: T, options: FileReloaderOptions<T>) {
    this.#path = path;
    this.#options = options;
    this.#settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;
    this.#current = options.index(initial);
  }

  /**
   * Reads the file now and applies it if it parses (and, unless `forced`,
   * keeps at least one entry). Never throws: outcomes go to `onEvent`.
   *
   * @param options `forced` for an operator's reload (SIGHUP).
   * @returns A promise that resolves once the reload is done.
   */
  reload(options: ReloadOptions = {}): Promise<void> {
    const task = () => this.#readAndApply(options.forced ?? false);
    const exclusive = this.#options.exclusive ?? ((run) => run());
    const result = this.#queue.then(() => exclusive(task));
    this.#queue = result.catch(() => {});
    return this.#queue;
  }

  /**
   * Applies changes as they settle. Watches the file's directory, since
   * editors and atomic writers replace the file rather than write into it.
   * Calling it again does nothing; a watch that fails is reported as
   * `failed`.
   */
  watch(): void {
    if (this.#watcher !== undefined || this.#closed) return;
    const absolute = resolve(this.#path);
    const name = basename(absolute);
    const watcher = Deno.watchFs(dirname(absolute), { recursive: false });
    this.#watcher = watcher;
    this.#watching = (async () => {
      try {
        for await (const event of watcher) {
          if (event.paths.some((path) => basename(path) === name)) {
            this.#lastSeen = null;
            this.#schedule();
          }
        }
      } catch (error) {
        if (this.#closed) return;
        this.#options.onEvent({
          kind: "failed",
          reason: `Cannot watch ${JSON.stringify(this.#path)}: ${
            error instanceof Error ? error.message : String(error)
          }`,
        });
      }
    })();
  }

  /** Stops watching and cancels a pending check. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#watcher?.close();
  }

  /**
   * Closes, then waits for the watcher and any running reload to finish.
   *
   * @returns A promise that resolves once everything has stopped.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#watching;
    await this.#queue;
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#checkSettled();
    }, this.#settleMs);
  }

  /** Applies the file once two looks `settleMs` apart see it unchanged. */
  async #checkSettled(): Promise<void> {
    if (this.#closed) return;
    const seen = await fingerprintOf(this.#path);
    if (this.#closed) return;
    if (seen !== this.#lastSeen || seen === null) {
      this.#lastSeen = seen;
      if (seen !== null) this.#schedule();
      return;
    }
    this.#lastSeen = null;
    await this.reload();
  }

  async #readAndApply(forced: boolean): Promise<void> {
    const { onEvent } = this.#options;
    let value: T;
    try {
      value = await this.#options.read(this.#path);
    } catch (error) {
      onEvent({
        kind: "failed",
        reason: error instanceof Error ? error.message : String(error),
      });
      return;
    }
    const next = this.#options.index(value);
    if (next.size === 0 && this.#current.size > 0 && !forced) {
      onEvent({
        kind: "skipped",
        reason:
          `the new ${this.#path} would remove all ${this.#current.size} entries; send SIGHUP to apply it`,
      });
      return;
    }
    let added = 0;
    let changed = 0;
    for (const [name, fingerprint] of next) {
      const before = this.#current.get(name);
      if (before === undefined) added++;
      else if (before !== fingerprint) changed++;
    }
    const removed = [...this.#current.keys()].filter((name) => !next.has(name))
      .length;
    this.#current = next;
    this.#options.apply(value);
    onEvent({ kind: "applied", count: next.size, added, removed, changed });
  }
}

/** Size, mtime and inode of `path`, or `null` if it is missing. */
async function fingerprintOf(path: string): Promise<string | null> {
  try {
    const info = await Deno.stat(path);
    return `${info.size}:${info.mtime?.getTime()}:${info.ino}:${info.dev}`;
  } catch {
    return null;
  }
}
