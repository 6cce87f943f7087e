/**
 * Server parts, tunnels: the table of targets a server may reach
 * (`--forward NAME=HOST:PORT`), who may use each (`--forward-users
 * NAME=alice,key:laptop-alice`) and which get a PROXY protocol v2 header
 * (`--forward-proxy-protocol NAME`). Pure: parsing and the access rule,
 * no I/O; `forward.ts` dials.
 *
 * @module
 */

import { TARGET_NAME_REGEXP } from "../wire/stream_records.ts";

/** One target a client may open a stream to. */
export interface ForwardTarget {
  /** The name clients give in `streamOpen`. */
  readonly name: string;
  /** The host the server connects to. */
  readonly host: string;
  /** The port the server connects to. */
  readonly port: number;
  /** Users allowed, or `null`: no rule, every logged-in user may. */
  readonly users: ReadonlySet<string> | null;
  /** Key ids allowed (`key:ID` entries), or `null`. */
  readonly keys: ReadonlySet<string> | null;
  /** Whether the server sends a PROXY protocol v2 header first. */
  readonly proxyProtocol: boolean;
}

/** The targets by name. */
export type ForwardTargets = ReadonlyMap<string, ForwardTarget>;

/** The flag values {@link parseForwardTargets} reads, each repeatable. */
export interface ForwardFlags {
  /** `NAME=HOST:PORT` entries. */
  forward?: readonly string[];
  /** `NAME=user,key:ID,...` entries; several for one name add up. */
  users?: readonly string[];
  /** Target names that get a PROXY protocol v2 header. */
  proxyProtocol?: readonly string[];
}

/** Who asks to use a target: the session's user and, with key ids, key. */
export interface StreamIdentity {
  /** The logged-in user, or `null` on a server without users. */
  readonly user: string | null;
  /** The id of the key the client proved, when the server knows one. */
  readonly keyId?: string | null;
}

const HOST_PORT_REGEXP =
  /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s\[\]]+)):([0-9]{1,5})$/;

/**
 * Builds the target table from the flag values.
 *
 * @param flags The `--forward`, `--forward-users` and
 *   `--forward-proxy-protocol` values.
 * @returns The targets by name (empty without `--forward`).
 * @throws {RangeError} On a malformed entry, a repeated name, or a rule
 *   or proxy flag for a name no `--forward` defines.
 * @example Usage
 * ```ts
 * const targets = parseForwardTargets({
 *   forward: ["redis=127.0.0.1:6379"],
 *   users: ["redis=alice,key:laptop-bob"],
 * });
 * targets.get("redis")?.port; // 6379
 * ```
 */
export function parseForwardTargets(
  flags: ForwardFlags,
): Map<string, ForwardTarget> {
  const targets = new Map<string, ForwardTarget>();
  for (const entry of flags.forward ?? []) {
    const [name, address] = splitEntry(entry, "--forward", "NAME=HOST:PORT");
    const match = HOST_PORT_REGEXP.exec(address);
    const port = match ? Number(match[3]) : NaN;
    if (!match || !(port >= 1 && port <= 65535)) {
      throw new RangeError(
        `Cannot use --forward ${
          JSON.stringify(entry)
        }: expected NAME=HOST:PORT`,
      );
    }
    if (targets.has(name)) {
      throw new RangeError(
        `Cannot use --forward: target "${name}" given twice`,
      );
    }
    targets.set(name, {
      name,
      host: match[1] ?? match[2],
      port,
      users: null,
      keys: null,
      proxyProtocol: false,
    });
  }
  for (const entry of flags.users ?? []) {
    const [name, list] = splitEntry(entry, "--forward-users", "NAME=USER,...");
    const target = known(targets, name, "--forward-users");
    const users = new Set(target.users);
    const keys = new Set(target.keys);
    for (const item of list.split(",").map((part) => part.trim())) {
      if (item === "") continue;
      if (item.startsWith("key:") && item.length > 4) keys.add(item.slice(4));
      else users.add(item);
    }
    targets.set(name, { ...target, users, keys });
  }
  for (const name of flags.proxyProtocol ?? []) {
    const target = known(targets, name, "--forward-proxy-protocol");
    targets.set(name, { ...target, proxyProtocol: true });
  }
  return targets;
}

/**
 * Whether `who` may open a stream to `target`: always without a rule;
 * with one, when the user or the key id is listed. This is the only place
 * the rule lives.
 *
 * @param target The target asked for.
 * @param who The session's user and key id.
 * @returns `true` if allowed.
 * @example Usage
 * ```ts
 * const [target] = parseForwardTargets({
 *   forward: ["db=127.0.0.1:5432"],
 *   users: ["db=alice"],
 * }).values();
 * mayUseTarget(target, { user: "alice" }); // true
 * mayUseTarget(target, { user: "bob" }); // false
 * ```
 */
export function mayUseTarget(
  target: ForwardTarget,
  who: StreamIdentity,
): boolean {
  if (target.users === null && target.keys === null) return true;
  if (who.user !== null && target.users?.has(who.user)) return true;
  return who.keyId != null && target.keys?.has(who.keyId) === true;
}

function splitEntry(
  entry: string,
  flag: string,
  shape: string,
): [string, string] {
  const at = entry.indexOf("=");
  const name = at < 0 ? "" : entry.slice(0, at);
  if (!TARGET_NAME_REGEXP.test(name)) {
    throw new RangeError(
      `Cannot use ${flag} ${JSON.stringify(entry)}: expected ${shape}, ` +
        `NAME being 1 to 64 letters, digits, ".", "_" or "-"`,
    );
  }
  return [name, entry.slice(at + 1)];
}

function known(
  targets: Map<string, ForwardTarget>,
  name: string,
  flag: string,
): ForwardTarget {
  const target = targets.get(name);
  if (!target) {
    throw new RangeError(
      `Cannot use ${flag} for "${name}": no --forward ${name}=HOST:PORT`,
    );
  }
  return target;
}
