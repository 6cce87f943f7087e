/**
 * Server parts: the `--allow` and `--deny` lists, applied to a client's real
 * address (after any PROXY header) before any crypto. A denied address is
 * refused; with an allow list, only listed addresses are admitted; deny
 * wins over allow. Addresses and ranges are parsed and IPv4-mapped IPv6 is
 * normalised by address.ts, as for the penalty exemptions. The lists can be
 * replaced while the server runs (SIGHUP).
 *
 * Pure: no `Deno.*`.
 *
 * @module
 */

import { type AddressMatcher, parseAddressList } from "./address.ts";

/** The two lists, as CIDR ranges or single addresses. */
export interface AddressFilterLists {
  /** If not empty, only these addresses are admitted. @default {[]} */
  allow?: readonly string[];
  /** These addresses are refused, even if allowed. @default {[]} */
  deny?: readonly string[];
}

/**
 * An allow list and a deny list that can be swapped in one step.
 * State (the current lists) spans calls, hence a class.
 *
 * @example Usage
 * ```ts
 * const filter = new AddressFilter({ allow: ["10.0.0.0/8"], deny: ["10.6.6.0/24"] });
 * filter.permits("::ffff:10.1.2.3"); // true
 * filter.permits("10.6.6.6"); // false
 * ```
 */
export class AddressFilter {
  #allow: AddressMatcher | null = null;
  #deny: AddressMatcher | null = null;

  /**
   * Creates the filter.
   *
   * @param lists The lists.
   * @throws {RangeError} If an entry is not an address or range.
   */
  constructor(lists: AddressFilterLists = {}) {
    this.update(lists);
  }

  /**
   * Replaces both lists at once; on error the old lists stay in force.
   *
   * @throws {RangeError} If an entry is not an address or range.
   */
  update(lists: AddressFilterLists): void {
    const allow = lists.allow?.length ? parseAddressList(lists.allow) : null;
    const deny = lists.deny?.length ? parseAddressList(lists.deny) : null;
    this.#allow = allow;
    this.#deny = deny;
  }

  /** Whether neither list is set (every address is admitted). */
  get empty(): boolean {
    return this.#allow === null && this.#deny === null;
  }

  /**
   * Whether `address` may connect: not denied, and allowed if there is an
   * allow list. Anything that is not an IP address is refused when a list
   * is set.
   */
  permits(address: string): boolean {
    if (this.#deny?.matches(address)) return false;
    if (this.#allow === null) return true;
    return this.#allow.matches(address);
  }
}
