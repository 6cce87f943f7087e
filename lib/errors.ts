/**
 * The error classes callers tell apart, and `exitCodeFor`, the one table that
 * maps them to the exit codes of both programs. No I/O.
 *
 * @module
 */

/** The connection could not be made, or broke (refused, reset). Exit 1. */
export class ConnectionError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionError";
  }
}

/** The peer broke the protocol: not doorman, a bad frame or record. Exit 1. */
export class ProtocolError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
  }
}

/** A frame declared a length above the limit in force. Exit 1. */
export class FrameTooLargeError extends ProtocolError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FrameTooLargeError";
  }
}

/** The peer speaks doorman, but another version of it. Exit 1. */
export class UnsupportedVersionError extends ProtocolError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UnsupportedVersionError";
  }
}

/** A line of a userinfo file is malformed; `line` is 1-based. Exit 1. */
export class UserinfoSyntaxError extends SyntaxError {
  /** The 1-based line number of the malformed line. */
  readonly line: number;
  constructor(message: string, line: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "UserinfoSyntaxError";
    this.line = line;
  }
}

/** A command line was wrong: unknown flag, missing or bad value. Exit 2. */
export class UsageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UsageError";
  }
}

/** The pre-shared-key proof failed, on either side. Exit 3. */
export class KeyRejectedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeyRejectedError";
  }
}

/** Wrong user or password, or a bad server signature. Exit 4. */
export class LoginRejectedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LoginRejectedError";
  }
}

/** The peer closed before the work was confirmed. Exit 5. */
export class ClosedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ClosedError";
  }
}

/** The peer went silent past a deadline. Exit 5. */
export class TimeoutError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TimeoutError";
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
} as const;

/**
 * Maps an error to the exit code of both command-line programs.
 *
 * @param error Anything thrown.
 * @returns 2 usage, 3 key rejected, 4 login rejected, 5 closed or timed out,
 *   1 for everything else.
 */
export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return ExitCode.usage;
  if (error instanceof KeyRejectedError) return ExitCode.keyRejected;
  if (error instanceof LoginRejectedError) return ExitCode.loginRejected;
  if (error instanceof ClosedError || error instanceof TimeoutError) {
    return ExitCode.closed;
  }
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
