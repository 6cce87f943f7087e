/**
 * The error classes callers tell apart, and `exitCodeFor`, the one table that
 * maps them to the exit codes of both programs. No I/O.
 *
 * @module
 */

/**
 * The connection could not be made, or broke (refused, reset). Exit 1.
 *
 * Thrown by `connect()` when the server cannot be reached; the network
 * error is its `cause`.
 *
 * @example Usage
 * ```ts
 * const error = new ConnectionError("Cannot connect to 127.0.0.1:9000");
 * exitCodeFor(error); // 1
 * ```
 */
export class ConnectionError extends Error {
  /**
   * Creates the error.
   *
   * @param message What went wrong, in one line for the user.
   * @param options The underlying error, as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionError";
  }
}

/**
 * The peer broke the protocol: not doorman, a bad frame or record. Exit 1.
 *
 * A record that fails to open (tampered, replayed, reordered) ends the
 * connection with this error too.
 *
 * @example Usage
 * ```ts
 * const error = new ProtocolError("Unexpected record kind 9");
 * exitCodeFor(error); // 1
 * ```
 */
export class ProtocolError extends Error {
  /**
   * Creates the error.
   *
   * @param message What went wrong, in one line for the user.
   * @param options The underlying error, as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
  }
}

/**
 * A frame declared a length above the limit in force. Exit 1.
 *
 * @example Usage
 * ```ts
 * const error = new FrameTooLargeError("Frame of 2000000 bytes is too large");
 * error instanceof ProtocolError; // true
 * ```
 */
export class FrameTooLargeError extends ProtocolError {
  /**
   * Creates the error.
   *
   * @param message What went wrong, in one line for the user.
   * @param options The underlying error, as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FrameTooLargeError";
  }
}

/**
 * The peer speaks doorman, but another version of it. Exit 1.
 *
 * A kind of {@link ProtocolError}, thrown during the handshake.
 *
 * @example Usage
 * ```ts
 * const error = new UnsupportedVersionError("Server speaks version 2");
 * error instanceof ProtocolError; // true
 * ```
 */
export class UnsupportedVersionError extends ProtocolError {
  /**
   * Creates the error.
   *
   * @param message What went wrong, in one line for the user.
   * @param options The underlying error, as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UnsupportedVersionError";
  }
}

/**
 * A line of a userinfo file is malformed; `line` is 1-based. Exit 1.
 *
 * Thrown by `UserStore.open` (a failed reload keeps the last good copy
 * instead).
 *
 * @example Usage
 * ```ts
 * const error = new UserinfoSyntaxError("Bad verifier", 3);
 * error.line; // 3
 * ```
 */
export class UserinfoSyntaxError extends SyntaxError {
  /** The 1-based line number of the malformed line. */
  readonly line: number;
  /**
   * Creates the error.
   *
   * @param message What is wrong with the line.
   * @param line The 1-based line number.
   * @param options The underlying error, as `cause`.
   */
  constructor(message: string, line: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "UserinfoSyntaxError";
    this.line = line;
  }
}

/**
 * A command line was wrong: unknown flag, missing or bad value. Exit 2.
 *
 * @example Usage
 * ```ts
 * const error = new UsageError("Unknown flag --prot");
 * exitCodeFor(error); // 2
 * ```
 */
export class UsageError extends Error {
  /**
   * Creates the error.
   *
   * @param message What went wrong, in one line for the user.
   * @param options The underlying error, as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UsageError";
  }
}

/**
 * The pre-shared-key proof failed, on either side. Exit 3.
 *
 * The client gets it from `connect()` when the server's key differs from
 * its own; the message never shows either key.
 *
 * @example Usage
 * ```ts
 * const error = new KeyRejectedError("Server rejected the key proof");
 * exitCodeFor(error); // 3
 * ```
 */
export class KeyRejectedError extends Error {
  /**
   * Creates the error.
   *
   * @param message What went wrong, in one line for the user.
   * @param options The underlying error, as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeyRejectedError";
  }
}

/**
 * Wrong user or password, or a bad server signature. Exit 4.
 *
 * The client is not told which of user or password was wrong.
 *
 * @example Usage
 * ```ts
 * const error = new LoginRejectedError("Unknown user or wrong password");
 * exitCodeFor(error); // 4
 * ```
 */
export class LoginRejectedError extends Error {
  /**
   * Creates the error.
   *
   * @param message What went wrong, in one line for the user.
   * @param options The underlying error, as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LoginRejectedError";
  }
}

/**
 * Why a login failed, for the server's log only: the generic `loginFailed`
 * close is all the client is told. Exit 4.
 *
 * @example Usage
 * ```ts
 * const error = new LoginFailure("bob", "wrong password");
 * error instanceof LoginRejectedError; // true
 * ```
 */
export class LoginFailure extends LoginRejectedError {
  /** The name the client tried. */
  readonly user: string;
  /**
   * Creates the error.
   *
   * @param user The name the client tried.
   * @param message Why the login failed, for the server's log.
   */
  constructor(user: string, message: string) {
    super(message);
    this.name = "LoginFailure";
    this.user = user;
  }
}

/**
 * A client sent a message before logging in to a server with users. Exit 1.
 *
 * @example Usage
 * ```ts
 * const error = new LoginRequiredError();
 * error instanceof ProtocolError; // true
 * ```
 */
export class LoginRequiredError extends ProtocolError {
  /** Creates the error. */
  constructor() {
    super("Client sent a message before logging in");
    this.name = "LoginRequiredError";
  }
}

/**
 * The peer closed before the work was confirmed. Exit 5.
 *
 * Every message a `Connection` sent but the server had not yet confirmed
 * is rejected with it when the connection ends.
 *
 * @example Usage
 * ```ts
 * const error = new ClosedError("Server closed the connection");
 * exitCodeFor(error); // 5
 * ```
 */
export class ClosedError extends Error {
  /**
   * Creates the error.
   *
   * @param message What went wrong, in one line for the user.
   * @param options The underlying error, as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ClosedError";
  }
}

/**
 * The peer went silent past a deadline. Exit 5.
 *
 * `connect()` throws it when connect, handshake and login take longer than
 * `timeoutMs`.
 *
 * @example Usage
 * ```ts
 * const error = new TimeoutError("Handshake timed out after 10000 ms");
 * exitCodeFor(error); // 5
 * ```
 */
export class TimeoutError extends Error {
  /**
   * Creates the error.
   *
   * @param message What went wrong, in one line for the user.
   * @param options The underlying error, as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TimeoutError";
  }
}

/**
 * The server refused the connection before the handshake and said why and
 * when to retry (docs/PROTOCOL.md). Exit 6.
 *
 * @example Usage
 * ```ts
 * const error = new RefusedError("server refused the connection: shutting down; retry in 5 s", {
 *   reason: 4,
 *   retryAfterSeconds: 5,
 * });
 * exitCodeFor(error); // 6
 * ```
 */
export class RefusedError extends Error {
  /** The reason code of the refusal frame (1 tooManyConnections … 6). */
  readonly reason: number;
  /** Seconds the server asks the client to wait before retrying. */
  readonly retryAfterSeconds: number;
  /**
   * Creates the error.
   *
   * @param message What went wrong, in one line for the user.
   * @param options The reason code and retry-after from the frame.
   */
  constructor(
    message: string,
    options: ErrorOptions & { reason: number; retryAfterSeconds: number },
  ) {
    super(message, options);
    this.name = "RefusedError";
    this.reason = options.reason;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** Exit codes of `server.ts` and `client.ts`, as documented in `--help`. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  keyRejected: 3,
  loginRejected: 4,
  closed: 5,
  refused: 6,
} as const;

/**
 * Maps an error to the exit code of both command-line programs.
 *
 * @param error Anything thrown.
 * @returns 2 usage, 3 key rejected, 4 login rejected, 5 closed or timed out,
 *   6 refused (try later), 1 for everything else.
 * @example Usage
 * ```ts
 * exitCodeFor(new LoginRejectedError("Wrong password")); // 4
 * exitCodeFor(new RangeError("Out of range")); // 1
 * ```
 */
export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return ExitCode.usage;
  if (error instanceof KeyRejectedError) return ExitCode.keyRejected;
  if (error instanceof LoginRejectedError) return ExitCode.loginRejected;
  if (error instanceof ClosedError || error instanceof TimeoutError) {
    return ExitCode.closed;
  }
  if (error instanceof RefusedError) return ExitCode.refused;
  return ExitCode.failure;
}

/**
 * One line describing an error for a user: its message, and the message of
 * its cause when that adds something. Never a stack trace.
 *
 * @param error Anything thrown.
 * @returns A single line of text.
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : "";
  const text = cause && !error.message.includes(cause)
    ? `${error.message}: ${cause}`
    : error.message;
  return text.replaceAll(/\s*\n\s*/g, " ");
}
