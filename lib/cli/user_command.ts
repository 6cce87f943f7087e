/**
 * Top layer (CLI): `server.ts user add|passwd|del|list`, administration of
 * the userinfo file. Each change goes through `updateUserinfo` (locked,
 * atomic), so it is safe while the server runs; the server picks it up by
 * watching the file.
 *
 * This file does not print errors or choose exit codes for them: it throws,
 * and `server.ts` prints `server: <message>` and maps `exitCodeFor`. It never
 * prints a password or verifier.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import {
  createScramVerifier,
  DEFAULT_SCRAM_ITERATIONS,
  MAX_SCRAM_ITERATIONS,
  MIN_SCRAM_ITERATIONS,
} from "../login/scram.ts";
import { readUserinfoFile, updateUserinfo } from "../users/userinfo_file.ts";
import {
  findUser,
  removeUser,
  setUser,
  type UserVerifier,
  validateUserName,
} from "../users/userinfo.ts";
import type { CommandIo } from "./command_io.ts";
import { parseFlags, positiveInteger, unknownCommand } from "./flags.ts";
import { PASSWORD_ENV, readPassword } from "./password_prompt.ts";

/** The userinfo file used when `--users` is not given. */
export const DEFAULT_USERS_FILE = "userinfo";

const USER_USAGE = `Usage: server.ts user <command> [options]

Manage the userinfo file. Changes are locked and atomic, so they are safe
while the server runs; a watching server reloads the file by itself.

Commands:
  add NAME      add a user (asks for the password)
  passwd NAME   set a user's password (also upgrades a legacy md5 line)
  del NAME      delete a user
  list          print each user's name and verifier kind

Run "server.ts user <command> --help" for a command's options.`;

const USERS_FLAG =
  `  --users FILE        the userinfo file (default: ${DEFAULT_USERS_FILE})`;
const HELP_FLAG = "  -h, --help          print this help";
const PASSWORD_FLAGS =
  `  --iterations N      PBKDF2 iterations, ${MIN_SCRAM_ITERATIONS} to ${MAX_SCRAM_ITERATIONS} \
(default: ${DEFAULT_SCRAM_ITERATIONS})
  --password-stdin    read the password from the first line of stdin
                      (default: ${PASSWORD_ENV} if set, else a hidden prompt)`;

function commandUsage(
  synopsis: string,
  summary: string,
  options: { passwordFlags?: boolean } = {},
): string {
  return [
    `Usage: server.ts user ${synopsis} [options]`,
    "",
    summary,
    "",
    "Options:",
    USERS_FLAG,
    ...(options.passwordFlags ? [PASSWORD_FLAGS] : []),
    HELP_FLAG,
  ].join("\n");
}

const PASSWORD_OPTIONS = {
  users: { type: "string", default: DEFAULT_USERS_FILE },
  iterations: { type: "string", default: String(DEFAULT_SCRAM_ITERATIONS) },
  "password-stdin": { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

const PLAIN_OPTIONS = {
  users: { type: "string", default: DEFAULT_USERS_FILE },
  help: { type: "boolean", short: "h", default: false },
} as const;

/**
 * Runs `server.ts user ...`.
 *
 * @param args The arguments after `user`.
 * @param io The console, stdin and environment.
 * @returns 0 on success (including `--help`).
 * @throws {UsageError} On an unknown flag or command, a missing or bad NAME,
 *   a bad `--iterations`, or no way to read the password.
 * @throws {Error} If `add` finds the user, `passwd` or `del` does not, or
 *   the file cannot be read or written.
 * @example Usage
 * ```ts ignore
 * const code = await runUserCommand(["list"], denoCommandIo());
 * ```
 */
export async function runUserCommand(
  args: string[],
  io: CommandIo,
): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "add":
    case "passwd":
      return await setPasswordCommand(command, rest, io);
    case "del":
      return await deleteCommand(rest, io);
    case "list":
      return await listCommand(rest, io);
    case "-h":
    case "--help":
      io.stdout(USER_USAGE);
      return 0;
    case undefined:
      throw new UsageError(
        'Cannot run "user": missing command (add, passwd, del or list)',
      );
    default:
      throw unknownCommand(
        command,
        ["add", "passwd", "del", "list"],
        `${io.program ?? "server.ts"} user --help`,
      );
  }
}

async function setPasswordCommand(
  command: "add" | "passwd",
  args: string[],
  io: CommandIo,
): Promise<number> {
  const adding = command === "add";
  const { values, positionals } = parseUserFlags(
    command,
    args,
    PASSWORD_OPTIONS,
    io,
  );
  if (values.help) {
    io.stdout(commandUsage(
      `${command} NAME`,
      adding
        ? "Add a user with a SCRAM-SHA-256 verifier."
        : "Set a user's password (a SCRAM-SHA-256 verifier).",
      { passwordFlags: true },
    ));
    return 0;
  }
  const name = parseName(command, positionals);
  const iterations = parseIterations(values.iterations);
  const path = values.users;
  const action = adding
    ? `Cannot add user ${JSON.stringify(name)}`
    : `Cannot change password of user ${JSON.stringify(name)}`;
  const check = (verifier: UserVerifier | null) => {
    if (adding && verifier !== null) {
      throw new Error(`${action}: already exists`);
    }
    if (!adding && verifier === null) {
      throw new Error(`${action}: no such user`);
    }
  };
  // Check before asking for the password; check again under the lock.
  check(await findInFile(path, name));
  const password = await readPassword(io, {
    fromStdin: values["password-stdin"],
    confirm: true,
    prompt: `Password for ${JSON.stringify(name)}: `,
  });
  const scram = await createScramVerifier(password, { iterations });
  await updateUserinfo(path, (userinfo) => {
    check(findUser(userinfo, name));
    return setUser(userinfo, name, { kind: "scram-sha-256", scram });
  });
  const done = adding ? "added user" : "changed password of user";
  io.stdout(
    `${done} ${JSON.stringify(name)} (scram-sha-256, ${iterations} iterations)`,
  );
  return 0;
}

async function deleteCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseUserFlags(
    "del",
    args,
    PLAIN_OPTIONS,
    io,
  );
  if (values.help) {
    io.stdout(commandUsage("del NAME", "Delete a user."));
    return 0;
  }
  const name = parseName("del", positionals);
  await updateUserinfo(values.users, (userinfo) => {
    if (findUser(userinfo, name) === null) {
      throw new Error(
        `Cannot delete user ${JSON.stringify(name)}: no such user`,
      );
    }
    return removeUser(userinfo, name);
  });
  io.stdout(`deleted user ${JSON.stringify(name)}`);
  return 0;
}

async function listCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseUserFlags(
    "list",
    args,
    PLAIN_OPTIONS,
    io,
  );
  if (values.help) {
    io.stdout(commandUsage(
      "list",
      "Print one line per user: NAME KIND, where KIND is scram-sha-256 or " +
        "md5 (legacy).",
    ));
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(
      `Cannot run "user list": unexpected argument ${
        JSON.stringify(positionals[0])
      }`,
    );
  }
  const userinfo = await readUserinfoFile(values.users);
  let count = 0;
  for (const line of userinfo.lines) {
    if (line.kind !== "user") continue;
    const kind = line.verifier.kind === "md5"
      ? "md5 (legacy)"
      : "scram-sha-256";
    io.stdout(`${line.name} ${kind}`);
    count++;
  }
  if (count === 0) io.stderr(`no users in ${JSON.stringify(values.users)}`);
  return 0;
}

type Options = typeof PASSWORD_OPTIONS | typeof PLAIN_OPTIONS;

function parseUserFlags<T extends Options>(
  command: string,
  args: string[],
  options: T,
  io: CommandIo,
) {
  return parseFlags(args, options, {
    command: `user ${command}`,
    help: `${io.program ?? "server.ts"} user ${command} --help`,
    allowPositionals: true,
  });
}

function parseName(command: string, positionals: string[]): string {
  if (positionals.length === 0) {
    throw new UsageError(`Cannot run "user ${command}": missing NAME`);
  }
  if (positionals.length > 1) {
    throw new UsageError(
      `Cannot run "user ${command}": unexpected argument ${
        JSON.stringify(positionals[1])
      }`,
    );
  }
  const name = positionals[0];
  try {
    validateUserName(name);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new UsageError(
      `Cannot use user name ${JSON.stringify(name)}: ${
        error.message.replace(/^Cannot use user name: /, "")
      }`,
    );
  }
  return name;
}

function parseIterations(text: string): number {
  return positiveInteger(text, "--iterations", {
    min: MIN_SCRAM_ITERATIONS,
    max: MAX_SCRAM_ITERATIONS,
  });
}

async function findInFile(
  path: string,
  name: string,
): Promise<UserVerifier | null> {
  try {
    return findUser(await readUserinfoFile(path), name);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}
