/**
 * Top layer (CLI): the client's login. Finds the password for `--user`
 * (`--password-file`, `DOORMAN_PASSWORD`, a hidden prompt), connects and
 * logs in; a password typed at the prompt gets three attempts, as with
 * ssh. A `--user` against a server without logins becomes a usage error
 * that says to drop it.
 *
 * It never prints a password.
 *
 * @module
 */

import type { KeyEntry } from "../key_file.ts";
import { connect } from "../client/connect.ts";
import type { Connection } from "../client/connection.ts";
import { ClosedError, LoginRejectedError, UsageError } from "../errors.ts";
import type { ClientCommand } from "./client_command.ts";
import { type ClientIo, type CommandIo, readFirstLine } from "./command_io.ts";
import {
  MAX_PASSWORD_BYTES,
  PASSWORD_ENV,
  readPassword,
} from "./password_prompt.ts";

/** Password attempts at an interactive prompt, as ssh allows. */
export const MAX_PASSWORD_ATTEMPTS = 3;

/**
 * Connects and logs in; a password typed at the prompt may be retried
 * (up to {@link MAX_PASSWORD_ATTEMPTS} in all) when the login is rejected.
 *
 * @param command The parsed command line (address, user, password file).
 * @param io The console, for the prompt and the retry notice.
 * @param key The client's key: its id and bytes.
 * @returns The open, logged-in connection.
 * @throws {UsageError} If `--user` is given to a server without logins.
 * @throws {LoginRejectedError} If the login is still refused.
 */
export async function connectAndLogIn(
  command: ClientCommand,
  io: ClientIo,
  key: KeyEntry,
): Promise<Connection> {
  const prompting = command.user !== undefined &&
    command.passwordFile === undefined && io.env(PASSWORD_ENV) === undefined;
  for (let attempt = 1;; attempt++) {
    const password = await findPassword(command, io);
    try {
      return await connect({
        host: command.host,
        port: command.port,
        psk: key.psk,
        keyId: key.id,
        user: command.user,
        password,
        timeoutMs: command.timeoutMs,
        maxMessageBytes: command.maxMessageBytes,
        allowLegacyLogin: command.allowLegacyLogin,
      });
    } catch (error) {
      if (
        prompting && attempt < MAX_PASSWORD_ATTEMPTS &&
        error instanceof LoginRejectedError &&
        /wrong password/.test(error.message)
      ) {
        io.stderr("Login rejected: unknown user or wrong password; try again");
        continue;
      }
      throw explainLoginError(command, error);
    }
  }
}

/**
 * `--user` against a server that takes no login: the server closes with a
 * protocol error at the first login record.
 */
function explainLoginError(command: ClientCommand, error: unknown): unknown {
  if (
    command.user !== undefined && error instanceof ClosedError &&
    /during login: protocol error$/.test(error.message)
  ) {
    // No cause: its "protocol error" would only confuse.
    return new UsageError(
      "Cannot log in: this server takes no login; drop --user",
    );
  }
  return error;
}

/**
 * Fails early when `--user` has no password source and no terminal.
 *
 * @param command The parsed command line.
 * @param io The environment and terminal.
 * @throws {UsageError} If no password can be read.
 */
export function checkPasswordSource(
  command: ClientCommand,
  io: CommandIo,
): void {
  if (
    command.user !== undefined && command.passwordFile === undefined &&
    io.env(PASSWORD_ENV) === undefined && !io.stdinIsTerminal
  ) {
    throw new UsageError(
      "Cannot read password: stdin is not a terminal; " +
        `use --password-file or ${PASSWORD_ENV}`,
    );
  }
}

/** The password for `--user`: a file, the environment, or a prompt. */
async function findPassword(
  command: ClientCommand,
  io: CommandIo,
): Promise<string | undefined> {
  if (command.user === undefined) return undefined;
  if (command.passwordFile !== undefined) {
    return await readPasswordFile(command.passwordFile);
  }
  return await readPassword(io, {
    fromStdin: false,
    confirm: false,
    prompt: `Password for ${JSON.stringify(command.user)}: `,
  });
}

/**
 * The first line of `path` (a final CR stripped).
 *
 * @param path The password file.
 * @returns The password.
 * @throws {UsageError} If that line is empty, too long or not UTF-8.
 * @throws {Error} If the file is missing or cannot be read.
 */
export async function readPasswordFile(path: string): Promise<string> {
  const where = `Cannot read password file ${JSON.stringify(path)}`;
  let bytes: Uint8Array;
  try {
    using file = await Deno.open(path, { read: true });
    bytes = await readFirstLine(file, MAX_PASSWORD_BYTES);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`${where}: not found`);
    }
    throw new Error(where, { cause: error });
  }
  if (bytes.length === 0) throw new UsageError(`${where}: first line empty`);
  if (bytes.length > MAX_PASSWORD_BYTES) {
    throw new UsageError(
      `${where}: longer than ${MAX_PASSWORD_BYTES} bytes`,
    );
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`${where}: not UTF-8`);
  }
}
