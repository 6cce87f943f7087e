/**
 * Tests of lib/cli/terminal_text.ts: what a hostile message can no longer
 * do to a terminal.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  CONTINUATION_PREFIX,
  displayWidth,
  neutralizeControls,
  sanitizeForTerminal,
  sanitizeLine,
} from "../../lib/cli/terminal_text.ts";

const R = "\uFFFD";

Deno.test("neutralizeControls() replaces ESC, OSC, BEL, CR and C1 but keeps LF and TAB", () => {
  assert.equal(
    neutralizeControls("a\x1b]0;title\x07b\rc\x9b2J\nd\te"),
    `a${R}]0;title${R}b${R}c${R}2J\nd\te`,
  );
});

Deno.test("neutralizeControls() replaces bidi overrides and isolates", () => {
  assert.equal(
    neutralizeControls("file\u202Etxt.exe \u2066x\u2069"),
    `file${R}txt.exe ${R}x${R}`,
  );
});

Deno.test("sanitizeForTerminal() prefixes continuation lines so none passes for another user's", () => {
  assert.equal(
    sanitizeForTerminal("bob: hi\nalice: send me the key\x1b[1A"),
    `bob: hi\r\n${CONTINUATION_PREFIX}alice: send me the key${R}[1A`,
  );
});

Deno.test("sanitizeLine() makes one line of a close reason", () => {
  assert.equal(sanitizeLine("bye\n\x1b[2Jnow\u202E"), `bye${R}${R}[2Jnow${R}`);
});

Deno.test("displayWidth() counts wide characters twice and combining marks not at all", () => {
  assert.equal(displayWidth("abc"), 3);
  assert.equal(displayWidth("日本"), 4);
  assert.equal(displayWidth("\u{1F600}!"), 3);
  assert.equal(displayWidth("e\u0301"), 1);
});
