/**
 * Tests of lib/cli/flags.ts: nearest-match suggestions, and numbers, ports
 * and durations parsed with one wording and range.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  MAX_DURATION_SECONDS,
  nearest,
  parseFlags,
  parsePort,
  parseSeconds,
  positiveInteger,
  unknownCommand,
} from "../../lib/cli/flags.ts";
import { UsageError } from "../../lib/errors.ts";

Deno.test("nearest() suggests a likely typo and nothing for a different word", () => {
  const flags = ["user", "host", "port", "password-file", "key-file"];
  assert.equal(nearest("usr", flags), "user");
  assert.equal(nearest("prot", flags), "port");
  assert.equal(nearest("keyfile", flags), "key-file");
  assert.equal(nearest("password", flags), "password-file");
  assert.equal(nearest("frobnicate", flags), null);
  assert.equal(nearest("x", flags), null);
});

Deno.test("parseFlags() names the nearest flag and the help command as run", () => {
  assert.throws(
    () =>
      parseFlags(["--usr", "alice"], { user: { type: "string" } }, {
        command: "client",
        help: "deno task client --help",
      }),
    (error: Error) => {
      assert.ok(error instanceof UsageError);
      assert.equal(
        error.message,
        'Cannot parse client arguments: unknown flag "--usr" (did you mean ' +
          '"--user"?); see "deno task client --help"',
      );
      return true;
    },
  );
});

Deno.test("unknownCommand() suggests the nearest subcommand", () => {
  assert.equal(
    unknownCommand("sned", ["send"], "doorman-client --help").message,
    'Cannot run "sned": unknown command (did you mean "send"?); ' +
      'see "doorman-client --help"',
  );
  assert.doesNotMatch(
    unknownCommand("zzzzzz", ["send"], "x").message,
    /did you mean/,
  );
});

Deno.test("parseSeconds() takes fractions and refuses what a timer cannot hold", () => {
  assert.equal(parseSeconds("10", "--timeout", { min: 0.001 }), 10_000);
  assert.equal(parseSeconds("0.5", "--timeout", { min: 0.001 }), 500);
  assert.equal(parseSeconds("0", "--idle-timeout", { min: 0 }), 0);
  assert.equal(
    parseSeconds(String(MAX_DURATION_SECONDS), "--idle-timeout", { min: 0 }),
    2_147_483_000,
  );
  for (const text of ["2147484", "99999999999", "1e3", "-1", "", "abc"]) {
    assert.throws(
      () => parseSeconds(text, "--idle-timeout", { min: 0 }),
      UsageError,
      text,
    );
  }
  assert.throws(() => parseSeconds("0", "--timeout", { min: 0.001 }));
  assert.throws(
    () => parseSeconds("86401", "--timeout", { min: 1, max: 86_400 }),
    /expected seconds from 1 to 86400/,
  );
});

Deno.test("positiveInteger() and parsePort() hold their ranges", () => {
  assert.equal(positiveInteger("4096", "--iterations", { min: 4096 }), 4096);
  assert.throws(
    () =>
      positiveInteger("20000000", "--iterations", {
        min: 4096,
        max: 10_000_000,
      }),
    /--iterations "20000000": expected a whole number from 4096 to 10000000/,
  );
  assert.equal(parsePort("0", { allowZero: true }), 0);
  assert.throws(() => parsePort("0"), UsageError);
  assert.throws(() => parsePort("65536"), UsageError);
});
