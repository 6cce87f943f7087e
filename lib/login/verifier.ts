/**
 * Layer 4, login: "does this password match this verifier", written once.
 * A verifier is either a SCRAM-SHA-256 one (the PBKDF2 of the password,
 * reduced to StoredKey and ServerKey) or a legacy md5 of the name followed
 * by the password. Every comparison is in constant time.
 *
 * It puts nothing on the wire: the login (`login.ts`) runs SCRAM against a
 * verifier without ever seeing the password; this file is for the places
 * that hold a password and a verifier at once (the legacy login and its
 * upgrade, the server's demo-password warning).
 *
 * @module
 */

import { utf8 } from "../wire/bytes.ts";
import { constantTimeEqual, md5Hex, pbkdf2Sha256 } from "../wire/crypto.ts";
import { deriveKeys, preparePassword, type ScramVerifier } from "./scram.ts";

/**
 * How a user's password is checked: a SCRAM-SHA-256 verifier, or a legacy
 * md5 hash (upgraded to SCRAM at the user's next login).
 *
 * @example Usage
 * ```ts ignore
 * const verifier = store.lookup("bob");
 * if (verifier?.kind === "md5") console.log("bob has a legacy password");
 * ```
 */
export type UserVerifier =
  | { readonly kind: "scram-sha-256"; readonly scram: ScramVerifier }
  | { readonly kind: "md5"; readonly md5Hex: string };

/**
 * The legacy verifier: md5 of the name followed by the password.
 *
 * @param name The user name.
 * @param password The password.
 * @returns 32 lower-case hex digits.
 * @example Usage
 * ```ts
 * legacyMd5Hex("alex", "123456"); // "94e4ccf5e2749b0bfe0428603738c0f9"
 * ```
 */
export function legacyMd5Hex(name: string, password: string): string {
  return md5Hex(utf8(name + password));
}

/**
 * Whether `verifier` is a legacy md5 line that `password` matches, compared
 * in constant time (hex case ignored).
 *
 * @param verifier The stored verifier, or `null` for no such user.
 * @param name The user name.
 * @param password The password to check.
 * @returns `true` only for an md5 verifier that matches.
 * @example Usage
 * ```ts
 * const verifier = { kind: "md5", md5Hex: legacyMd5Hex("alex", "123456") } as const;
 * matchesLegacyMd5(verifier, "alex", "123456"); // true
 * ```
 */
export function matchesLegacyMd5(
  verifier: UserVerifier | null,
  name: string,
  password: string,
): boolean {
  return verifier?.kind === "md5" &&
    constantTimeEqual(
      utf8(verifier.md5Hex.toLowerCase()),
      utf8(legacyMd5Hex(name, password)),
    );
}

/**
 * Whether `password` is the password behind `verifier`: for SCRAM, the
 * PBKDF2 of the prepared password gives the stored StoredKey and ServerKey;
 * for md5, the hash of name and password is the stored one. Compared in
 * constant time.
 *
 * @param verifier The stored verifier.
 * @param name The user name (the md5 hash includes it).
 * @param password The password to check.
 * @returns Whether it matches.
 * @example Usage
 * ```ts
 * import { createScramVerifier } from "./scram.ts";
 * const scram = await createScramVerifier("pencil", { iterations: 4096 });
 * await verifyPassword({ kind: "scram-sha-256", scram }, "user", "pencil"); // true
 * ```
 */
export async function verifyPassword(
  verifier: UserVerifier,
  name: string,
  password: string,
): Promise<boolean> {
  if (verifier.kind === "md5") {
    return matchesLegacyMd5(verifier, name, password);
  }
  const { salt, iterations, storedKey, serverKey } = verifier.scram;
  const saltedPassword = await pbkdf2Sha256(
    preparePassword(password),
    salt,
    iterations,
  );
  const keys = deriveKeys(saltedPassword);
  // Both compared, always: no early exit on the first.
  const storedMatches = constantTimeEqual(keys.storedKey, storedKey);
  const serverMatches = constantTimeEqual(keys.serverKey, serverKey);
  return storedMatches && serverMatches;
}
