import assert from "node:assert/strict";
import { fromBase64 } from "../../lib/wire/bytes.ts";
import { UserinfoSyntaxError } from "../../lib/errors.ts";
import {
  createScramVerifier,
  type ScramVerifier,
} from "../../lib/login/scram.ts";
import { ScramClient } from "../../lib/login/scram_client.ts";
import { ScramServer } from "../../lib/login/scram_server.ts";
import {
  findUser,
  formatScramVerifier,
  formatUserinfo,
  legacyMd5Hex,
  parseScramVerifier,
  parseUserinfo,
  removeUser,
  setUser,
  type Userinfo,
  validateUserName,
} from "../../lib/users/userinfo.ts";

// Stored by PostgreSQL 15 for `CREATE ROLE alice PASSWORD 'pencil'` with
// password_encryption = 'scram-sha-256' (SELECT rolpassword FROM pg_authid).
const POSTGRES_ALICE =
  "SCRAM-SHA-256$4096:8KGIRDEh+ZPLiTBqQscw8g==$+4DyhAqOIJ7oKdJYam/qAzVQ0T5RLw/sv+sGidaKt+A=:kq77DADXBOoFJGcL3tUNI+Lqe+88adfi7Vx9tb1P1rU=";
// The RFC 7677 example (password "pencil") in PostgreSQL's format.
const RFC_7677_USER =
  "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
// The classic lesson: alex with password 123456.
const LEGACY_ALEX = "94e4ccf5e2749b0bfe0428603738c0f9";

const SAMPLE = [
  "# doorman users",
  "",
  `alice|${POSTGRES_ALICE}`,
  `alex|${LEGACY_ALEX}`,
  "   ",
  "# RFC 7677",
  `user|${RFC_7677_USER}`,
  "",
].join("\n");

/** Runs a whole SCRAM exchange in-process; true if both sides accept. */
async function logIn(
  verifier: ScramVerifier,
  user: string,
  password: string,
): Promise<boolean> {
  const client = new ScramClient(user, password);
  const server = new ScramServer();
  assert.equal(server.receiveClientFirst(client.clientFirst()), user);
  const clientFinal = await client.clientFinal(server.serverFirst(verifier));
  const { ok, serverFinal } = server.receiveClientFinal(clientFinal);
  if (ok) client.verifyServerFinal(serverFinal);
  return ok;
}

function scramOf(userinfo: Userinfo, name: string): ScramVerifier {
  const verifier = findUser(userinfo, name);
  assert.equal(verifier?.kind, "scram-sha-256");
  return (verifier as { scram: ScramVerifier }).scram;
}

Deno.test("parseUserinfo() and formatUserinfo() round-trip a file with comments", () => {
  const userinfo = parseUserinfo(SAMPLE);
  assert.deepEqual(
    userinfo.lines.map((line) => line.kind),
    ["comment", "comment", "user", "user", "comment", "comment", "user"],
  );
  assert.equal(formatUserinfo(userinfo), SAMPLE);
  assert.deepEqual(parseUserinfo(formatUserinfo(userinfo)), userinfo);
});

Deno.test("parseUserinfo() reads CRLF and a missing final newline alike", () => {
  const lf = parseUserinfo(SAMPLE);
  assert.deepEqual(parseUserinfo(SAMPLE.replaceAll("\n", "\r\n")), lf);
  assert.deepEqual(parseUserinfo(SAMPLE.slice(0, -1)), lf);
});

Deno.test("formatUserinfo() returns an empty string for no lines", () => {
  assert.equal(formatUserinfo({ lines: [] }), "");
  assert.deepEqual(parseUserinfo(""), { lines: [] });
});

Deno.test("parseScramVerifier() reads a PostgreSQL 15 verifier that logs in", async () => {
  const verifier = parseScramVerifier(POSTGRES_ALICE);
  assert.equal(verifier.iterations, 4096);
  assert.equal(formatScramVerifier(verifier), POSTGRES_ALICE);
  assert.equal(await logIn(verifier, "alice", "pencil"), true);
  assert.equal(await logIn(verifier, "alice", "pencil "), false);
});

Deno.test("formatScramVerifier() writes the RFC 7677 verifier in PostgreSQL's format", async () => {
  const verifier = await createScramVerifier("pencil", {
    iterations: 4096,
    salt: fromBase64("W22ZaJ0SNY7soEsUEjb6gQ=="),
  });
  assert.equal(formatScramVerifier(verifier), RFC_7677_USER);
});

Deno.test("findUser() finds SCRAM users that log in from the parsed file", async () => {
  const userinfo = parseUserinfo(SAMPLE);
  assert.equal(
    await logIn(scramOf(userinfo, "alice"), "alice", "pencil"),
    true,
  );
  assert.equal(await logIn(scramOf(userinfo, "user"), "user", "pencil"), true);
});

Deno.test("findUser() returns the legacy md5 verifier of alex", () => {
  const userinfo = parseUserinfo(SAMPLE);
  assert.deepEqual(findUser(userinfo, "alex"), {
    kind: "md5",
    md5Hex: legacyMd5Hex("alex", "123456"),
  });
  assert.equal(legacyMd5Hex("alex", "123456"), LEGACY_ALEX);
});

Deno.test("findUser() returns null for an absent or differently cased name", () => {
  const userinfo = parseUserinfo(SAMPLE);
  assert.equal(findUser(userinfo, "bob"), null);
  assert.equal(findUser(userinfo, "Alex"), null);
});

Deno.test("parseUserinfo() accepts upper-case md5 and stores it lower-case", () => {
  const userinfo = parseUserinfo(`alex|${LEGACY_ALEX.toUpperCase()}\n`);
  assert.deepEqual(findUser(userinfo, "alex"), {
    kind: "md5",
    md5Hex: LEGACY_ALEX,
  });
  assert.equal(formatUserinfo(userinfo), `alex|${LEGACY_ALEX}\n`);
});

Deno.test("parseUserinfo() reports each malformed line with its number", () => {
  const [, salt, keys] = POSTGRES_ALICE.split("$");
  const [iterations] = salt.split(":");
  const short = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="; // 31 bytes
  const cases: [string, string, RegExp][] = [
    ["missing |", `bob ${LEGACY_ALEX}`, /no "\|"/],
    ["empty name", `|${LEGACY_ALEX}`, /name is empty/],
    ["too-long name", `${"b".repeat(65)}|${LEGACY_ALEX}`, /64 bytes/],
    ["too-long UTF-8", `${"\u00e9".repeat(33)}|${LEGACY_ALEX}`, /64 bytes/],
    ["tab in name", `b\tob|${LEGACY_ALEX}`, /control character/],
    ["DEL in name", `b\u007fob|${LEGACY_ALEX}`, /control character/],
    ["C1 in name", `b\u0085ob|${LEGACY_ALEX}`, /control character/],
    ["leading space", ` bob|${LEGACY_ALEX}`, /whitespace/],
    ["trailing space", `bob |${LEGACY_ALEX}`, /whitespace/],
    ["not SASLprep form", `\u2168|${LEGACY_ALEX}`, /SASLprep/],
    ["md5 too short", `bob|${LEGACY_ALEX.slice(1)}`, /32 hex digits/],
    ["md5 too long", `bob|${LEGACY_ALEX}0`, /32 hex digits/],
    ["md5 not hex", `bob|${LEGACY_ALEX.slice(1)}g`, /unknown verifier/],
    ["empty verifier", "bob|", /unknown verifier/],
    ["plain password", "bob|123456x", /unknown verifier/],
    ["second |", `bob|${LEGACY_ALEX}|x`, /unknown verifier/],
    [
      "bad iterations",
      `bob|SCRAM-SHA-256$abc:${salt.slice(5)}$${keys}`,
      /iteration/,
    ],
    [
      "zero iterations",
      `bob|SCRAM-SHA-256$0:${salt.slice(5)}$${keys}`,
      /iteration/,
    ],
    [
      "low iterations",
      `bob|SCRAM-SHA-256$4095:${salt.slice(5)}$${keys}`,
      /iteration/,
    ],
    [
      "leading zero",
      `bob|SCRAM-SHA-256$04096:${salt.slice(5)}$${keys}`,
      /iteration/,
    ],
    [
      "huge iterations",
      `bob|SCRAM-SHA-256$10000001:${salt.slice(5)}$${keys}`,
      /iteration/,
    ],
    [
      "bad salt",
      `bob|SCRAM-SHA-256$${iterations}:8KGIRDEh!ZPLiTBqQscw8g==$${keys}`,
      /salt is not base64/,
    ],
    ["empty salt", `bob|SCRAM-SHA-256$${iterations}:$${keys}`, /salt is empty/],
    [
      "bad StoredKey",
      `bob|SCRAM-SHA-256$${salt}$abc:${keys.split(":")[1]}`,
      /StoredKey is not base64/,
    ],
    [
      "short ServerKey",
      `bob|SCRAM-SHA-256$${salt}$${keys.split(":")[0]}:${short}`,
      /32 bytes/,
    ],
    [
      "missing ServerKey",
      `bob|SCRAM-SHA-256$${salt}$${keys.split(":")[0]}`,
      /expected SCRAM-SHA-256/,
    ],
    ["extra field", `bob|${POSTGRES_ALICE}:AAAA`, /expected SCRAM-SHA-256/],
    ["indented comment", `  # note`, /no "\|"/],
    ["duplicate", `alice|${LEGACY_ALEX}`, /earlier line/],
  ];
  const prefix = `# users\nalice|${POSTGRES_ALICE}\n\n`; // bad line is line 4
  for (const [label, badLine, reason] of cases) {
    const verifierText = badLine.slice(badLine.indexOf("|") + 1);
    assert.throws(
      () => parseUserinfo(`${prefix}${badLine}\nzed|${LEGACY_ALEX}\n`),
      (error: unknown) =>
        error instanceof UserinfoSyntaxError && error.line === 4 &&
        error.message.startsWith("Cannot parse userinfo line 4: ") &&
        reason.test(error.message) &&
        (verifierText.length < 8 || !error.message.includes(verifierText)),
      label,
    );
  }
});

Deno.test("parseScramVerifier() throws a SyntaxError without the verifier text", () => {
  const broken = POSTGRES_ALICE.replace("$4096:", "$12:");
  assert.throws(
    () => parseScramVerifier(broken),
    (error: unknown) =>
      error instanceof SyntaxError && !error.message.includes("8KGIRDEh"),
  );
});

Deno.test("validateUserName() accepts printable names up to 64 bytes", () => {
  const names = [
    "alex",
    "a,b=c",
    "J\u00fcrgen",
    "\u5c71\u7530",
    "x".repeat(64),
    "a b",
  ];
  for (const name of names) validateUserName(name);
});

Deno.test("validateUserName() rejects names with the reason", () => {
  const cases: [string, RegExp][] = [
    ["", /empty/],
    ["x".repeat(65), /64 bytes/],
    ["a|b", /"\|"/],
    ["a\nb", /control character/],
    ["a\u0000b", /control character/],
    ["a\u009fb", /control character/],
    ["\u00a0ab", /whitespace/],
    ["ab ", /whitespace/],
    ["a\uD800b", /UTF-8/],
    ["I\u00ADX", /SASLprep form/],
    ["a\uE000b", /SASLprep prohibits/],
  ];
  for (const [name, reason] of cases) {
    assert.throws(
      () => validateUserName(name),
      (error: unknown) =>
        error instanceof RangeError &&
        error.message.startsWith("Cannot use user name: ") &&
        reason.test(error.message),
      JSON.stringify(name),
    );
  }
});

Deno.test("setUser() replaces a user in place and leaves the original unchanged", async () => {
  const original = parseUserinfo(SAMPLE);
  const scram = await createScramVerifier("s3cret", { iterations: 4096 });
  const updated = setUser(original, "alex", { kind: "scram-sha-256", scram });
  assert.equal(updated.lines.length, original.lines.length);
  assert.equal(
    formatUserinfo(updated),
    SAMPLE.replace(`alex|${LEGACY_ALEX}`, `alex|${formatScramVerifier(scram)}`),
  );
  assert.equal(formatUserinfo(original), SAMPLE);
  assert.equal(await logIn(scramOf(updated, "alex"), "alex", "s3cret"), true);
});

Deno.test("setUser() appends a new user and lower-cases md5", () => {
  const updated = setUser(parseUserinfo(SAMPLE), "bob", {
    kind: "md5",
    md5Hex: LEGACY_ALEX.toUpperCase(),
  });
  assert.equal(formatUserinfo(updated), `${SAMPLE}bob|${LEGACY_ALEX}\n`);
});

Deno.test("setUser() rejects a bad name or verifier", () => {
  const userinfo = parseUserinfo(SAMPLE);
  const md5 = { kind: "md5", md5Hex: LEGACY_ALEX } as const;
  assert.throws(() => setUser(userinfo, "a|b", md5), RangeError);
  assert.throws(
    () => setUser(userinfo, "bob", { kind: "md5", md5Hex: "abc" }),
    RangeError,
  );
  const weak = { ...parseScramVerifier(POSTGRES_ALICE), iterations: 100 };
  assert.throws(
    () => setUser(userinfo, "bob", { kind: "scram-sha-256", scram: weak }),
    RangeError,
  );
});

Deno.test("removeUser() removes one user and keeps the comments", () => {
  const updated = removeUser(parseUserinfo(SAMPLE), "alex");
  assert.equal(
    formatUserinfo(updated),
    SAMPLE.replace(`alex|${LEGACY_ALEX}\n`, ""),
  );
  assert.equal(findUser(updated, "alex"), null);
});

Deno.test("removeUser() throws a RangeError for an absent user", () => {
  assert.throws(() => removeUser(parseUserinfo(SAMPLE), "bob"), RangeError);
});

Deno.test("formatUserinfo() refuses a comment that would not parse back", () => {
  for (const text of ["not a comment", "# two\nlines"]) {
    assert.throws(
      () => formatUserinfo({ lines: [{ kind: "comment", text }] }),
      RangeError,
    );
  }
});

Deno.test("legacyMd5Hex() hashes the name followed by the password", () => {
  assert.equal(legacyMd5Hex("alex", "123456"), LEGACY_ALEX);
  assert.notEqual(legacyMd5Hex("alex1", "23456"), legacyMd5Hex("bob", "x"));
  assert.match(legacyMd5Hex("\u00e9", "\u00e9"), /^[0-9a-f]{32}$/);
});
