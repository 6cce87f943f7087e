import assert from "node:assert/strict";
import { saslprep } from "../../lib/login/saslprep.ts";

Deno.test("saslprep() maps the RFC 4013 section 3 examples", () => {
  const examples: [string, string][] = [
    ["I\u00ADX", "IX"], // soft hyphen mapped to nothing
    ["user", "user"], // no transformation
    ["USER", "USER"], // case preserved
    ["\u00AA", "a"], // NFKC
    ["\u2168", "IX"], // NFKC
  ];
  for (const [input, expected] of examples) {
    assert.equal(saslprep(input), expected);
  }
});

Deno.test("saslprep() maps non-ASCII spaces to SPACE", () => {
  assert.equal(saslprep("a\u00A0b\u3000c"), "a b c");
});

Deno.test("saslprep() returns the empty string unchanged", () => {
  assert.equal(saslprep(""), "");
});

Deno.test("saslprep() rejects the RFC 4013 section 3 error examples", () => {
  const prohibited = [
    "\u0007", // control character
    "\u0627\u0031", // bidi: RandALCat not last
  ];
  for (const input of prohibited) {
    assert.throws(() => saslprep(input), RangeError);
  }
});

Deno.test("saslprep() rejects each prohibited class with a RangeError", () => {
  const cases: [string, RegExp][] = [
    ["a\u0000b", /prohibited character/], // C.2.1 ASCII control
    ["a\u0085b", /prohibited character/], // C.2.2 non-ASCII control
    ["a\uE000b", /prohibited character/], // C.3 private use
    ["a\uFFFFb", /prohibited character/], // C.4 non-character
    ["a\uD800b", /prohibited character/], // C.5 lone surrogate
    ["a\uFFFDb", /prohibited character/], // C.6 inappropriate for plain text
    ["a\u2FF0b", /prohibited character/], // C.7 ideographic description
    ["a\u200Eb", /prohibited character/], // C.8 left-to-right mark
    ["a\uDB40\uDC01b", /prohibited character/], // C.9 language tag
    ["\u0627a\u0627", /bidirectional/], // RandALCat mixed with LCat
    ["\u00AD", /nothing is left/], // maps to the empty string
  ];
  for (const [input, reason] of cases) {
    assert.throws(
      () => saslprep(input),
      (error: unknown) =>
        error instanceof RangeError &&
        error.message.startsWith("Cannot prepare string: ") &&
        reason.test(error.message),
      `case ${JSON.stringify(input)}`,
    );
  }
});

Deno.test("saslprep() accepts right-to-left text that starts and ends with RandALCat", () => {
  assert.equal(saslprep("\u0627\u0031\u0628"), "\u0627\u0031\u0628");
});

Deno.test("saslprep() allows unassigned code points unless told otherwise", () => {
  const unassigned = "a\u0221"; // assigned after Unicode 3.2
  assert.equal(saslprep(unassigned), unassigned);
  assert.throws(
    () => saslprep(unassigned, { allowUnassigned: false }),
    /unassigned code point/,
  );
});

Deno.test("saslprep() never puts its input in the error message", () => {
  const secret = "hunter2\u0007";
  assert.throws(
    () => saslprep(secret),
    (error: unknown) =>
      error instanceof RangeError && !error.message.includes("hunter2"),
  );
});
