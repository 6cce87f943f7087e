/**
 * Layer 4, login math: SASLprep (RFC 4013), the string preparation SCRAM
 * applies to user names and passwords. It maps non-ASCII spaces to SPACE and
 * the "commonly mapped to nothing" characters away, normalizes with NFKC,
 * then refuses prohibited characters (RFC 3454 C.1.2–C.9) and strings that
 * break the bidirectional rules.
 *
 * The tables come from the pinned npm package `@mongodb-js/saslprep` (the one
 * the MongoDB drivers use); this file only fixes the profile and turns its
 * failures into a `RangeError` that never repeats the input, which may be a
 * password. No I/O.
 *
 * @module
 */

// Pinned inline (and locked in deno.lock) rather than through deno.json's
// import map, so that programs importing mod.ts from elsewhere resolve it.
// deno-lint-ignore no-import-prefix
import { saslprep as prepareWithTables } from "npm:@mongodb-js/saslprep@1.6.3";

/** Options for {@link saslprep}. */
export interface SaslprepOptions {
  /**
   * Allow code points unassigned in Unicode 3.2: `true` is the "query"
   * profile, `false` the "stored strings" profile (RFC 3454 §7).
   *
   * @default {true}
   */
  readonly allowUnassigned?: boolean;
}

/**
 * Prepares a user name or password with SASLprep (RFC 4013).
 *
 * @param text The string to prepare.
 * @param options The profile (query by default).
 * @returns The prepared string; `""` only for `""`.
 * @throws {RangeError} If `text` holds a prohibited character, an unassigned
 *   code point (stored profile only), breaks the bidirectional rules, or
 *   maps to nothing. The message never includes `text`.
 * @example Usage
 * ```ts
 * saslprep("I\u00ADX"); // "IX"
 * ```
 */
export function saslprep(text: string, options?: SaslprepOptions): string {
  if (text === "") return "";
  try {
    return prepareWithTables(text, {
      allowUnassigned: options?.allowUnassigned ?? true,
    });
  } catch (error) {
    throw new RangeError(`Cannot prepare string: ${reasonFor(error)}`);
  }
}

/** A reason naming the rule `error` reports, without any of the input. */
function reasonFor(error: unknown): string {
  const message = error instanceof Error ? error.message : "";
  if (message.startsWith("Prohibited character")) {
    return "it contains a prohibited character";
  }
  if (message.startsWith("Unassigned code point")) {
    return "it contains an unassigned code point";
  }
  if (message.includes("RandALCat")) {
    return "it breaks the bidirectional text rules";
  }
  // The package fails on an empty mapped string (for example a lone U+00AD)
  // with a TypeError while checking the first character.
  if (error instanceof TypeError) return "nothing is left after mapping";
  return "SASLprep failed";
}
