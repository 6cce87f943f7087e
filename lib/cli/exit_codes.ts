/**
 * Top layer (CLI): the exit-code table as text, written once for both
 * programs' `--help` (the README shows the same table). The codes
 * themselves come from `exitCodeFor` in lib/errors.ts.
 *
 * @module
 */

/** The exit codes of `server.ts` and `client.ts`, for `--help`. */
export const EXIT_CODES_TEXT = `Exit codes:
  0  success (client: every message sent was confirmed)
  1  connection or runtime error (refused, reset, not a doorman port, bad
     key file, malformed userinfo, port in use, ...)
  2  usage error (unknown flag, missing or bad value)
  3  key rejected (the pre-shared keys differ)
  4  login rejected (unknown user, wrong password, login required, or the
     server asked for the legacy plaintext login without --allow-legacy-login)
  5  the server closed or timed out before confirming
  6  the server refused the connection for now; retry later
  130  interrupted by Ctrl-C at a password prompt`;
