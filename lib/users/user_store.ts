/**
 * Users layer: `UserStore`, the running server's view of the userinfo file.
 * It keeps the last copy that parsed, reloads on demand (SIGHUP) or when the
 * file changes, and upgrades a legacy md5 line to SCRAM-SHA-256 after a
 * login proves the password. Writes go through `updateUserinfo`
 * (`userinfo_file.ts`: locked and atomic), re-exported here.
 *
 * This file does not parse lines (`userinfo.ts`), compute verifiers
 * (`scram.ts`) or write to the console: it reports through `onEvent`.
 *
 * @module
 */

import { FileReloader, type ReloadEvent } from "../file_reloader.ts";
import {
  createScramVerifier,
  DEFAULT_SCRAM_ITERATIONS,
} from "../login/scram.ts";
import { matchesLegacyMd5, type UserVerifier } from "../login/verifier.ts";
import { findUser, setUser, type Userinfo } from "./userinfo.ts";
import { readUserinfoFile, updateUserinfo } from "./userinfo_file.ts";

export { readUserinfoFile, updateUserinfo } from "./userinfo_file.ts";

/**
 * How long the file must stay unchanged before a watched change is loaded
 * (the shared `FileReloader`'s settle time).
 */
export const RELOAD_DEBOUNCE_MS = 300;

/**
 * What a `UserStore` reports; never a verifier. The `event` names match the
 * server's `LogEventName`s, so events can go straight to a logger.
 *
 * @example Usage
 * ```ts ignore
 * const store = await UserStore.open("userinfo", {
 *   onEvent: (event) => logger.log(event),
 * });
 * ```
 */
export type UserStoreEvent =
  | { event: "users_loaded"; count: number; detail?: string }
  | { event: "users_reload_failed"; reason: string }
  | { event: "user_upgraded"; user: string };

/** Options of `UserStore.open`. */
export interface UserStoreOptions {
  /**
   * Receives loads, failed reloads and upgrades.
   *
   * @default {() => {}}
   */
  onEvent?: (event: UserStoreEvent) => void;
  /**
   * Refuse a file that group or others may write (a server's users).
   *
   * @default {false}
   */
  strictMode?: boolean;
  /**
   * How long a changed file must stay unchanged before `watch` loads it.
   *
   * @default {300}
   */
  settleMs?: number;
}

/** Options of `UserStore.upgradeLegacy`. */
export interface UpgradeLegacyOptions {
  /**
   * PBKDF2 iterations of the new verifier.
   *
   * @default {600000}
   */
  iterations?: number;
}

/**
 * The running server's view of the userinfo file: the last copy that
 * parsed, reloaded on demand (`reload`, e.g. on SIGHUP) or on change
 * (`watch`). A malformed file on reload keeps the last good copy.
 *
 * @example Usage
 * ```ts ignore
 * await using store = await UserStore.open("userinfo", { onEvent: log });
 * store.watch();
 * const verifier = store.lookup("bob");
 * ```
 */
export class UserStore {
  readonly #path: string;
  readonly #onEvent: (event: UserStoreEvent) => void;
  #users: Map<string, UserVerifier>;
  #typicalIterations: number | null;
  #removedListeners = new Set<(names: readonly string[]) => void>();
  #queue: Promise<void> = Promise.resolve();
  readonly #reloader: FileReloader<Userinfo>;

  /**
   * Use {@link UserStore.open}; not constructed directly.
   *
   * @param path The userinfo file.
   * @param userinfo Its parsed content.
   * @param onEvent Where events go.
   */
  private constructor(
    path: string,
    userinfo: Userinfo,
    options: UserStoreOptions,
  ) {
    this.#path = path;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#users = indexUsers(userinfo);
    this.#reloader = new FileReloader(path, userinfo, {
      read: readUserinfoFile,
      index: (value) =>
        new Map(
          [...indexUsers(value)].map(([name, verifier]) => [
            name,
            JSON.stringify(verifier),
          ]),
        ),
      apply: (value) => this.#replaceUsers(indexUsers(value)),
      onEvent: (event) => this.#onEvent(toStoreEvent(event)),
      settleMs: options.settleMs ?? RELOAD_DEBOUNCE_MS,
      exclusive: (task) => this.#serialise(task),
    });
    this.#typicalIterations = mostCommonIterations(this.#users);
  }

  /**
   * Loads the userinfo file.
   *
   * @param path The userinfo file.
   * @param options Where events go.
   * @returns The store, holding the file's users.
   * @throws {UserinfoSyntaxError} If a line is malformed (with its number).
   * @throws {Deno.errors.NotFound} If the file does not exist.
   * @example Usage
   * ```ts ignore
   * const store = await UserStore.open("userinfo");
   * console.log(`${store.userCount} users`);
   * ```
   */
  static async open(
    path: string,
    options: UserStoreOptions = {},
  ): Promise<UserStore> {
    let userinfo: Userinfo;
    try {
      userinfo = await readUserinfoFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      throw new Deno.errors.NotFound(
        `Cannot load users: file ${JSON.stringify(path)} not found ` +
          `(create it with "server.ts user add NAME")`,
      );
    }
    if (options.strictMode) await checkUserinfoMode(path);
    const store = new UserStore(path, userinfo, options);
    store.#onEvent({ event: "users_loaded", count: store.userCount });
    return store;
  }

  /**
   * The userinfo file, as given to `open`.
   *
   * @returns The path.
   */
  get path(): string {
    return this.#path;
  }

  /**
   * How many users the last good copy holds.
   *
   * @returns The number of users.
   */
  get userCount(): number {
    return this.#users.size;
  }

  /**
   * The user names of the last good copy, in file order.
   *
   * @returns A new array of names.
   */
  userNames(): string[] {
    return [...this.#users.keys()];
  }

  /**
   * A user's verifier, from the last good copy (no I/O).
   *
   * @param name The user name.
   * @returns The verifier, or `null` if there is no such user.
   * @example Usage
   * ```ts ignore
   * if (store.lookup("bob") === null) console.log("no user bob");
   * ```
   */
  lookup(name: string): UserVerifier | null {
    return this.#users.get(name) ?? null;
  }

  /**
   * The most common iteration count among the SCRAM users, so that fake
   * verifiers for unknown names look like real ones.
   *
   * @returns The count, or `null` when no user has a SCRAM verifier.
   * @example Usage
   * ```ts ignore
   * const iterations = store.typicalIterations() ?? 600_000;
   * ```
   */
  typicalIterations(): number | null {
    // Computed once per load: counting 20,000 users on every unknown name
    // made unknown names answer later than known ones.
    return this.#typicalIterations;
  }

  /**
   * Registers `listener` for users removed by a reload (the file changed
   * or SIGHUP), so the server can close their sessions. A changed password
   * is not a removal.
   *
   * @param listener Called with the names a reload removed.
   * @returns A function that unregisters the listener.
   * @example Usage
   * ```ts ignore
   * const stop = store.onUsersRemoved((names) => console.log(names));
   * ```
   */
  onUsersRemoved(listener: (names: readonly string[]) => void): () => void {
    this.#removedListeners.add(listener);
    return () => this.#removedListeners.delete(listener);
  }

  /**
   * Re-reads the file. On success emits `users_loaded`; on any failure
   * keeps the last good copy and emits `users_reload_failed`. Never throws.
   *
   * @returns A promise that resolves once the reload is done.
   * @example Usage
   * ```ts ignore
   * Deno.addSignalListener("SIGHUP", () => store.reload());
   * ```
   */
  reload(): Promise<void> {
    return this.#reloader.reload({ forced: true });
  }

  /**
   * Reloads whenever the file changes. Watches the file's directory, since
   * editors and `updateUserinfo` replace the file rather than write into
   * it, and waits `RELOAD_DEBOUNCE_MS` after the last event. Calling it
   * again does nothing. A watch that fails emits `users_reload_failed`.
   */
  watch(): void {
    this.#reloader.watch();
  }

  /**
   * Replaces a legacy md5 line with a SCRAM-SHA-256 verifier (fresh salt)
   * once the user has proven the password. Under the lock it re-reads the
   * file and changes it only if the user's line is still that md5 verifier
   * and `password` matches it; then emits `user_upgraded`.
   *
   * @param name The user name.
   * @param password The password the user just logged in with.
   * @param options The new verifier's iterations.
   * @returns Whether the file was changed.
   * @throws {Error} If the file cannot be read or written.
   */
  upgradeLegacy(
    name: string,
    password: string,
    options: UpgradeLegacyOptions = {},
  ): Promise<boolean> {
    const matches = (verifier: UserVerifier | null) =>
      matchesLegacyMd5(verifier, name, password);
    return this.#serialise(async () => {
      if (!matches(this.lookup(name))) return false;
      const scram = await createScramVerifier(password, {
        iterations: options.iterations ?? DEFAULT_SCRAM_ITERATIONS,
      });
      let upgraded = false;
      const userinfo = await updateUserinfo(this.#path, (current) => {
        if (!matches(findUser(current, name))) return current;
        upgraded = true;
        return setUser(current, name, { kind: "scram-sha-256", scram });
      });
      if (!upgraded) return false;
      this.#replaceUsers(indexUsers(userinfo));
      this.#onEvent({ event: "user_upgraded", user: name });
      return true;
    });
  }

  /** Stops watching and cancels a pending reload. */
  close(): void {
    this.#reloader.close();
  }

  /** Same as `close`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Closes, then waits for the watcher and any running reload to finish.
   *
   * @returns A promise that resolves once everything has stopped.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#reloader[Symbol.asyncDispose]();
    await this.#queue;
  }

  /** Installs a new copy, recounts, and reports the names it lost. */
  #replaceUsers(users: Map<string, UserVerifier>): void {
    const removed = [...this.#users.keys()].filter((name) => !users.has(name));
    this.#users = users;
    this.#typicalIterations = mostCommonIterations(users);
    if (removed.length === 0) return;
    for (const listener of this.#removedListeners) listener(removed);
  }

  // Runs reloads and upgrades one at a time, so an older read never
  // replaces a newer copy.
  #serialise<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(task);
    this.#queue = result.then(() => {}, () => {});
    return result;
  }
}

/**
 * Refuses a userinfo file that group or others may write, as OpenSSH does
 * for `authorized_keys`. Windows has no such modes: nothing is checked.
 *
 * @param path The userinfo file.
 * @returns A promise that resolves if the mode is safe.
 * @throws {Error} If group or others may write: one line naming the file,
 *   its mode, and `chmod go-w`.
 * @example Usage
 * ```ts ignore
 * await checkUserinfoMode("userinfo");
 * ```
 */
export async function checkUserinfoMode(path: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  const { mode } = await Deno.stat(path);
  if (mode !== null && (mode & 0o022) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, "0");
    throw new Error(
      `Cannot use users file ${
        JSON.stringify(path)
      }: mode ${octal} lets group or others write it; run "chmod go-w ${path}"`,
    );
  }
}

function toStoreEvent(event: ReloadEvent): UserStoreEvent {
  if (event.kind === "applied") {
    return {
      event: "users_loaded",
      count: event.count,
      detail:
        `added ${event.added}, removed ${event.removed}, changed ${event.changed}`,
    };
  }
  return { event: "users_reload_failed", reason: event.reason };
}

/** The most common iteration count among SCRAM users, or `null`. */
function mostCommonIterations(
  users: Map<string, UserVerifier>,
): number | null {
  const counts = new Map<number, number>();
  let best: number | null = null;
  for (const verifier of users.values()) {
    if (verifier.kind !== "scram-sha-256") continue;
    const iterations = verifier.scram.iterations;
    const count = (counts.get(iterations) ?? 0) + 1;
    counts.set(iterations, count);
    if (best === null || count > (counts.get(best) ?? 0)) best = iterations;
  }
  return best;
}

function indexUsers(userinfo: Userinfo): Map<string, UserVerifier> {
  const users = new Map<string, UserVerifier>();
  for (const line of userinfo.lines) {
    if (line.kind === "user" && !users.has(line.name)) {
      users.set(line.name, line.verifier);
    }
  }
  return users;
}
