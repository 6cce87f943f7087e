/**
 * Server parts: the caps that keep one source from exhausting the server.
 * `PenaltyBox` penalises repeated failures per key (a peer address, or
 * `user:NAME`), like OpenSSH's `PerSourcePenalties`; `ConnectionGate` counts
 * open connections and those still in their startup (handshake and login).
 * Address parsing lives in `address.ts` (imported from there, one path).
 *
 * Pure: no `Deno.*`, no timers; time comes from an injected clock. It
 * decides, it does not wait: callers delay replies and close connections.
 *
 * @module
 */

import type { AddressMatcher } from "./address.ts";

/** Options of {@link PenaltyBox}. */
export interface PenaltyOptions {
  /**
   * Penalty of a key's first failure, in ms; it doubles with each failure.
   * @default {1000}
   */
  baseMs?: number;
  /**
   * No penalty ever exceeds this, in ms, so an attacker sharing an address
   * cannot lock real users out for longer.
   * @default {60000}
   */
  capMs?: number;
  /**
   * From this many failures on, the key is refused (not just delayed) until
   * its penalty expires.
   * @default {3}
   */
  refuseAfter?: number;
  /**
   * A key's failures are forgotten this many ms after its last failure.
   * @default {600000}
   */
  forgetAfterMs?: number;
  /**
   * Most keys remembered; when full, the entries that expire soonest go.
   * @default {65536}
   */
  maxEntries?: number;
  /** Keys this matches (keys that are addresses) are never penalised. */
  exempt?: AddressMatcher;
  /**
   * The clock, in ms.
   * @default {Date.now}
   */
  now?: () => number;
}

/** What to do with a key: let it in, delay the failure reply, or refuse. */
export type PenaltyVerdict =
  | { readonly action: "allow" }
  | { readonly action: "delay"; readonly ms: number }
  | { readonly action: "refuse"; readonly ms: number };

interface PenaltyEntry {
  failures: number;
  lastFailureAt: number;
  penaltyUntil: number;
}

const ALLOW: PenaltyVerdict = Object.freeze({ action: "allow" });
/** Beyond this many doublings every penalty is at the cap anyway. */
const MAX_DOUBLINGS = 52;

/**
 * Per-key failure penalties. The n-th failure of a key (counted since its
 * failures were last forgotten) earns a penalty of
 * `min(capMs, baseMs * 2^(n-1))`; from the `refuseAfter`-th failure on, new
 * connections from that key are refused while the penalty lasts. Keys are
 * independent: a penalised key never affects another.
 *
 * @example Usage
 * ```ts
 * import { parseAddressList } from "./address.ts";
 * const box = new PenaltyBox({ exempt: parseAddressList(["127.0.0.1"]) });
 * const peer = "192.0.2.7";
 * if (box.verdict(peer).action === "refuse") console.log("refused");
 * const verdict = box.recordFailure(peer); // after a failed handshake
 * ```
 */
export class PenaltyBox {
  readonly #baseMs: number;
  readonly #capMs: number;
  readonly #refuseAfter: number;
  readonly #forgetAfterMs: number;
  readonly #maxEntries: number;
  readonly #exempt: AddressMatcher | undefined;
  readonly #now: () => number;
  readonly #entries = new Map<string, PenaltyEntry>();

  /**
   * Creates an empty penalty box.
   *
   * @param options Penalty sizes, memory bound, exemptions and clock.
   * @throws {RangeError} If a number is negative, or a count is not a
   *   positive integer.
   */
  constructor(options: PenaltyOptions = {}) {
    this.#baseMs = checkMs("baseMs", options.baseMs ?? 1000);
    this.#capMs = checkMs("capMs", options.capMs ?? 60_000);
    this.#refuseAfter = checkCount("refuseAfter", options.refuseAfter ?? 3);
    this.#forgetAfterMs = checkMs(
      "forgetAfterMs",
      options.forgetAfterMs ?? 600_000,
    );
    this.#maxEntries = checkCount("maxEntries", options.maxEntries ?? 65_536);
    this.#exempt = options.exempt;
    this.#now = options.now ?? Date.now;
  }

  /** How many keys are remembered. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Records one failure of `key` and penalises it.
   *
   * A lighter failure (OpenSSH's `noauth`, `grace-exceeded`) counts as a
   * fraction of one: `weight` 0.25 takes four to make one full failure.
   *
   * @param key A normalised address, or `user:NAME`.
   * @param options `weight`: how much this failure counts, in (0, 1]
   *   (default 1).
   * @returns `allow` for an exempt key; else `delay` (delay the failure reply
   *   by `ms`) below `refuseAfter` failures, and `refuse` (close, and refuse
   *   new connections for `ms`) from then on.
   */
  recordFailure(
    key: string,
    options: { weight?: number } = {},
  ): PenaltyVerdict {
    if (this.#exempt?.matches(key)) return ALLOW;
    const now = this.#now();
    let entry = this.#liveEntry(key, now);
    if (entry === undefined) {
      this.#makeRoom(now);
      entry = { failures: 0, lastFailureAt: now, penaltyUntil: now };
      this.#entries.set(key, entry);
    }
    const weight = options.weight ?? 1;
    entry.failures += weight > 0 && weight <= 1 ? weight : 1;
    entry.lastFailureAt = now;
    const doublings = Math.min(entry.failures - 1, MAX_DOUBLINGS);
    const ms = Math.min(this.#capMs, this.#baseMs * 2 ** doublings);
    entry.penaltyUntil = Math.max(entry.penaltyUntil, now + ms);
    const action = entry.failures < this.#refuseAfter ? "delay" : "refuse";
    return Object.freeze({ action, ms });
  }

  /**
   * The verdict for a new connection from `key`.
   *
   * @param key A normalised address, or `user:NAME`.
   * @returns `refuse` with the remaining ms while a refusing penalty is
   *   active, else `allow`.
   */
  verdict(key: string): PenaltyVerdict {
    const now = this.#now();
    const entry = this.#liveEntry(key, now);
    if (
      entry === undefined || entry.failures < this.#refuseAfter ||
      entry.penaltyUntil <= now
    ) {
      return ALLOW;
    }
    return Object.freeze({ action: "refuse", ms: entry.penaltyUntil - now });
  }

  /**
   * The remaining ms of any active penalty of `key`, delaying or refusing;
   * used to delay a failure reply for a user name.
   *
   * @param key A normalised address, or `user:NAME`.
   * @returns The remaining ms, or 0 if none is active.
   */
  delayFor(key: string): number {
    const now = this.#now();
    const entry = this.#liveEntry(key, now);
    return entry === undefined ? 0 : Math.max(0, entry.penaltyUntil - now);
  }

  /** The entry of `key`, dropping it first if it has expired. */
  #liveEntry(key: string, now: number): PenaltyEntry | undefined {
    const entry = this.#entries.get(key);
    if (entry !== undefined && this.#expiresAt(entry) <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /** When an entry is no longer worth keeping: forgotten and served. */
  #expiresAt(entry: PenaltyEntry): number {
    return Math.max(
      entry.penaltyUntil,
      entry.lastFailureAt + this.#forgetAfterMs,
    );
  }

  /**
   * Makes room when full: drops expired entries, then the soonest to expire
   * until an eighth is free, so a flood of new keys costs O(log n) each.
   */
  #makeRoom(now: number): void {
    if (this.#entries.size < this.#maxEntries) return;
    const target = this.#maxEntries - Math.max(1, this.#maxEntries >> 3);
    const byExpiry: [string, number][] = [];
    for (const [key, entry] of this.#entries) {
      const expiresAt = this.#expiresAt(entry);
      if (expiresAt <= now) this.#entries.delete(key);
      else byExpiry.push([key, expiresAt]);
    }
    const excess = this.#entries.size - target;
    if (excess <= 0) return;
    byExpiry.sort((left, right) => left[1] - right[1]);
    for (const [key] of byExpiry.slice(0, excess)) this.#entries.delete(key);
  }
}

/** Bounds of {@link ConnectionGate}. */
export interface ConnectionGateOptions {
  /** Most connections open at once. */
  maxConnections: number;
  /** Most connections still in handshake or login at once. */
  maxStartups: number;
}

/**
 * Counts open connections and startups (connections not yet through
 * handshake and login), and refuses new ones past either bound.
 *
 * @example Usage
 * ```ts
 * const gate = new ConnectionGate({ maxConnections: 100, maxStartups: 10 });
 * const login = () => Promise.resolve();
 * if (!gate.tryAdmit()) throw new Error("refused");
 * let established = false;
 * try {
 *   await login();
 *   gate.established();
 *   established = true;
 * } finally {
 *   gate.release({ established });
 * }
 * ```
 */
export class ConnectionGate {
  readonly #maxConnections: number;
  readonly #maxStartups: number;
  #connections = 0;
  #startups = 0;

  /**
   * Creates a gate with no connection open.
   *
   * @param options The two bounds.
   * @throws {RangeError} If a bound is not a positive integer.
   */
  constructor(options: ConnectionGateOptions) {
    this.#maxConnections = checkCount(
      "maxConnections",
      options.maxConnections,
    );
    this.#maxStartups = checkCount("maxStartups", options.maxStartups);
  }

  /** Connections open now. */
  get connections(): number {
    return this.#connections;
  }

  /** Connections in startup now. */
  get startups(): number {
    return this.#startups;
  }

  /**
   * Admits one new connection, counted as in startup, if both bounds allow.
   *
   * @returns `false` if `maxConnections` or `maxStartups` is reached.
   */
  tryAdmit(): boolean {
    if (
      this.#connections >= this.#maxConnections ||
      this.#startups >= this.#maxStartups
    ) {
      return false;
    }
    this.#connections++;
    this.#startups++;
    return true;
  }

  /**
   * Marks one startup as established (through handshake and login).
   *
   * @throws {RangeError} If no connection is in startup.
   */
  established(): void {
    if (this.#startups === 0) {
      throw new RangeError("Cannot mark established: no connection in startup");
    }
    this.#startups--;
  }

  /**
   * Releases one admitted connection.
   *
   * @param options `established`: whether it had been marked established.
   * @throws {RangeError} If there is no such connection to release.
   */
  release(options: { established: boolean }): void {
    if (this.#connections === 0) {
      throw new RangeError("Cannot release connection: none is open");
    }
    if (!options.established) {
      if (this.#startups === 0) {
        throw new RangeError("Cannot release startup: none is in startup");
      }
      this.#startups--;
    } else if (this.#connections === this.#startups) {
      throw new RangeError("Cannot release connection: none is established");
    }
    this.#connections--;
  }
}

function checkMs(name: string, value: number): number {
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(
      `Cannot use ${name}: ${value} is not a finite number of ms >= 0`,
    );
  }
  return value;
}

function checkCount(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot use ${name}: ${value} is not a positive integer`,
    );
  }
  return value;
}
