/**
 * Server parts: who may start a connection and who may log in now. It
 * holds OpenSSH's `MaxStartups start:rate:full` random early drop, per-source
 * counts (`PerSourceMaxStartups`, logins and sessions per source or user),
 * and the one-login-at-a-time lock per user name.
 *
 * Pure: no `Deno.*`, no timers (waiting uses the caller's `AbortSignal`);
 * randomness is injected. It decides and counts; admission.ts acts.
 *
 * @module
 */

/** OpenSSH's `MaxStartups start:rate:full`. */
export interface MaxStartups {
  /** Below this many startups, every new connection is admitted. */
  readonly start: number;
  /** Percent of new connections dropped at `start` startups. */
  readonly rate: number;
  /** From this many startups on, every new connection is refused. */
  readonly full: number;
}

const MAX_STARTUPS_REGEXP = /^(\d+)(?::(\d+):(\d+))?$/;

/**
 * Parses `N` (a hard cap, as before) or `START:RATE:FULL`.
 *
 * @param value A count, or the text form.
 * @returns The three numbers; `N` is `N:100:N`.
 * @throws {RangeError} If the form is wrong, a count is below 1, the rate
 *   is above 100, or `start` exceeds `full`.
 * @example Usage
 * ```ts
 * parseMaxStartups("10:30:100"); // { start: 10, rate: 30, full: 100 }
 * parseMaxStartups(128); // { start: 128, rate: 100, full: 128 }
 * ```
 */
export function parseMaxStartups(value: number | string): MaxStartups {
  const match = MAX_STARTUPS_REGEXP.exec(String(value).trim());
  if (!match) {
    throw new RangeError(
      `Cannot use maxStartups "${value}": expected N or START:RATE:FULL`,
    );
  }
  const start = Number(match[1]);
  const rate = match[2] === undefined ? 100 : Number(match[2]);
  const full = match[3] === undefined ? start : Number(match[3]);
  if (start < 1 || full < 1 || rate > 100 || start > full) {
    throw new RangeError(
      `Cannot use maxStartups "${value}": need 1 <= START <= FULL and RATE <= 100`,
    );
  }
  return Object.freeze({ start, rate, full });
}

/**
 * Whether to drop a new connection given how many are in startup: never
 * below `start`, always from `full` on, and in between with a probability
 * rising linearly from `rate` % to 100 %.
 *
 * @param startups Connections in handshake or login now.
 * @param limits The three numbers.
 * @param random A number in [0, 1).
 * @returns `true` to refuse the connection.
 */
export function dropStartup(
  startups: number,
  limits: MaxStartups,
  random: number,
): boolean {
  if (startups < limits.start) return false;
  if (startups >= limits.full) return true;
  const span = limits.full - limits.start;
  const percent = limits.rate +
    (100 - limits.rate) * (startups - limits.start) / span;
  return random * 100 < percent;
}

/**
 * Counts something per key (a source address, a user name) under a cap:
 * startups per source, logins per source, sessions per user or source.
 * Keys at zero are forgotten, so memory follows what is open.
 *
 * @example Usage
 * ```ts ignore
 * const perSource = new KeyedCounter();
 * if (!perSource.tryAcquire("192.0.2.7", 10)) refuse();
 * // … later
 * perSource.release("192.0.2.7");
 * ```
 */
export class KeyedCounter {
  readonly #counts = new Map<string, number>();

  /**
   * How many `key` holds now.
   *
   * @param key The key.
   * @returns Its count, 0 if none.
   */
  count(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** How many keys hold at least one. */
  get size(): number {
    return this.#counts.size;
  }

  /**
   * Counts one more for `key` unless it already holds `max`.
   *
   * @param key The key.
   * @param max The cap; `Infinity` for none.
   * @returns Whether it was counted.
   */
  tryAcquire(key: string, max: number): boolean {
    const count = this.#counts.get(key) ?? 0;
    if (count >= max) return false;
    this.#counts.set(key, count + 1);
    return true;
  }

  /**
   * Counts one less for `key`.
   *
   * @param key The key.
   * @throws {RangeError} If `key` holds none.
   */
  release(key: string): void {
    const count = this.#counts.get(key) ?? 0;
    if (count === 0) {
      throw new RangeError(`Cannot release "${key}": it holds none`);
    }
    if (count === 1) this.#counts.delete(key);
    else this.#counts.set(key, count - 1);
  }
}

/**
 * Lets at most `max` holders per key at a time; the others wait in order
 * (a login per user name, logins per source). A waiter whose signal aborts
 * leaves the queue and never holds the slot.
 *
 * @example Usage
 * ```ts ignore
 * const perUser = new KeyedSlots();
 * const release = await perUser.acquire("alice", 1, signal);
 * try {
 *   await evaluate();
 * } finally {
 *   release();
 * }
 * ```
 */
export class KeyedSlots {
  readonly #slots = new Map<
    string,
    { held: number; waiters: (() => void)[] }
  >();

  /** How many keys are held or waited for. */
  get size(): number {
    return this.#slots.size;
  }

  /**
   * Waits for one of `key`'s `max` slots.
   *
   * @param key The key.
   * @param max Slots per key.
   * @param signal Aborting leaves the queue and rejects with its reason.
   * @returns A function that releases the slot (calling it again does
   *   nothing).
   */
  acquire(
    key: string,
    max: number,
    signal?: AbortSignal,
  ): Promise<() => void> {
    signal?.throwIfAborted();
    let entry = this.#slots.get(key);
    if (entry === undefined) {
      entry = { held: 0, waiters: [] };
      this.#slots.set(key, entry);
    }
    const slot = entry;
    const release = this.#releaser(key, slot);
    if (slot.held < max) {
      slot.held++;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener("abort", leave);
        slot.held++;
        resolve(release);
      };
      const leave = () => {
        const at = slot.waiters.indexOf(grant);
        if (at !== -1) slot.waiters.splice(at, 1);
        this.#forgetIfFree(key, slot);
        reject(signal?.reason);
      };
      slot.waiters.push(grant);
      signal?.addEventListener("abort", leave, { once: true });
    });
  }

  #releaser(
    key: string,
    slot: { held: number; waiters: (() => void)[] },
  ): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      slot.held--;
      slot.waiters.shift()?.();
      this.#forgetIfFree(key, slot);
    };
  }

  #forgetIfFree(
    key: string,
    slot: { held: number; waiters: (() => void)[] },
  ): void {
    if (slot.held === 0 && slot.waiters.length === 0) this.#slots.delete(key);
  }
}
