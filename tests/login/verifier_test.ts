import assert from "node:assert/strict";
import { createScramVerifier } from "../../lib/login/scram.ts";
import {
  legacyMd5Hex,
  matchesLegacyMd5,
  verifyPassword,
} from "../../lib/login/verifier.ts";

Deno.test("verifyPassword() accepts the password behind a SCRAM verifier and nothing else", async () => {
  const scram = await createScramVerifier("pencil", { iterations: 4096 });
  const verifier = { kind: "scram-sha-256", scram } as const;
  assert.equal(await verifyPassword(verifier, "user", "pencil"), true);
  for (const wrong of ["Pencil", "pencil ", "", "pencils"]) {
    assert.equal(await verifyPassword(verifier, "user", wrong), false, wrong);
  }
  // SASLprep: a soft hyphen is mapped to nothing, as at login.
  assert.equal(await verifyPassword(verifier, "user", "pen\u00ADcil"), true);
});

Deno.test("verifyPassword() and matchesLegacyMd5() check a legacy md5 line, hex case ignored", async () => {
  const md5Hex = legacyMd5Hex("alex", "123456");
  assert.equal(md5Hex, "94e4ccf5e2749b0bfe0428603738c0f9");
  const verifier = { kind: "md5", md5Hex } as const;
  assert.equal(await verifyPassword(verifier, "alex", "123456"), true);
  assert.equal(await verifyPassword(verifier, "alex", "1234567"), false);
  assert.equal(await verifyPassword(verifier, "bob", "123456"), false);
  const upper = { kind: "md5", md5Hex: md5Hex.toUpperCase() } as const;
  assert.equal(matchesLegacyMd5(upper, "alex", "123456"), true);
  assert.equal(matchesLegacyMd5(null, "alex", "123456"), false);
  const scram = await createScramVerifier("123456", { iterations: 4096 });
  assert.equal(
    matchesLegacyMd5({ kind: "scram-sha-256", scram }, "alex", "123456"),
    false,
  );
});
