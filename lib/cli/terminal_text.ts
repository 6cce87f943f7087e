/**
 * Top layer (CLI): text from the server made safe to show on a terminal.
 * A message is untrusted: escape sequences (ESC, CSI, OSC), BEL, CR and
 * other control characters could move the cursor, retitle the window or
 * overwrite what is on screen, and bidi overrides could reorder what the
 * reader sees. Each is replaced by U+FFFD.
 *
 * This file does no I/O: callers decide when output goes to a terminal
 * (bytes to files and pipes pass through unchanged).
 *
 * @module
 */

/** C0 controls except TAB and LF, DEL, and C1 controls (CSI, OSC, ...). */
// deno-lint-ignore no-control-regex
const CONTROL_REGEXP = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;
/** Every control character, LF and TAB included. */
// deno-lint-ignore no-control-regex
const ANY_CONTROL_REGEXP = /[\x00-\x1f\x7f-\x9f]/g;
/** Bidi embeddings, overrides and isolates, and the Arabic letter mark. */
const BIDI_REGEXP = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** Printed before the second and later lines of one message. */
export const CONTINUATION_PREFIX = "  | ";

/**
 * One message for a terminal in pipe or `send` mode: control characters
 * and bidi overrides replaced, line breaks (LF) and tabs kept.
 *
 * @param text The decoded message.
 * @returns The text, safe to print.
 */
export function neutralizeControls(text: string): string {
  return text.replace(CONTROL_REGEXP, "\uFFFD").replace(BIDI_REGEXP, "\uFFFD");
}

/**
 * One message for the interactive screen: {@link neutralizeControls}, and
 * every line after the first prefixed with {@link CONTINUATION_PREFIX} so
 * a multi-line message cannot pass for another user's line. Lines end in
 * CR LF (the terminal is in raw mode).
 *
 * @param text The decoded message.
 * @returns The text, safe to print in raw mode.
 */
export function sanitizeForTerminal(text: string): string {
  return text.split("\n")
    .map((line) => neutralizeControls(line))
    .join(`\r\n${CONTINUATION_PREFIX}`);
}

/**
 * A text from the peer (a close reason) for a one-line error message: every
 * control character and bidi override replaced.
 *
 * @param text The untrusted text.
 * @returns One line, safe to print.
 */
export function sanitizeLine(text: string): string {
  return text.replace(ANY_CONTROL_REGEXP, "\uFFFD").replace(
    BIDI_REGEXP,
    "\uFFFD",
  );
}

/** Characters a terminal draws two columns wide (CJK, Hangul, emoji). */
const WIDE_REGEXP =
  /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1f64f}\u{1f900}-\u{1f9ff}\u{20000}-\u{3fffd}]/u;
/** Characters drawn over the previous one (combining marks). */
const ZERO_WIDTH_REGEXP = /[\p{Mn}\p{Me}\u200b-\u200d]/u;

/**
 * The columns `text` takes on a terminal: wide characters count two,
 * combining marks none (an approximation of wcwidth).
 *
 * @param text Text without control characters.
 * @returns The width in columns.
 */
export function displayWidth(text: string): number {
  let width = 0;
  for (const character of text) {
    if (ZERO_WIDTH_REGEXP.test(character)) continue;
    width += WIDE_REGEXP.test(character) ? 2 : 1;
  }
  return width;
}
