/**
 * The code against the login test vectors of docs/PROTOCOL.md: the binding
 * data, a bound SCRAM exchange and a fake salt. Each is computed by lib/
 * and, for the binding and the fake salt, independently from the
 * document's formulas with node:crypto; the document must show each value.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { fromBase64, toBase64, toHex } from "../../lib/wire/bytes.ts";
import { deriveSessionKeys } from "../../lib/wire/key_schedule.ts";
import { createScramVerifier } from "../../lib/login/scram.ts";
import { ScramClient } from "../../lib/login/scram_client.ts";
import {
  fakeScramVerifier,
  ScramServer,
} from "../../lib/login/scram_server.ts";

const DOC = await Deno.readTextFile(
  new URL("../../docs/PROTOCOL.md", import.meta.url),
);

const VECTORS = {
  channelBinding:
    "e055a00c8feed7aab507db6340e67cb666c1fd8eb5321502b46293a59504f32c",
  clientFirst: "p=doorman-handshake,,n=user,r=rOprNGfwEbeRWgbNEkqO",
  serverFirst:
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
  clientFinal:
    "c=cD1kb29ybWFuLWhhbmRzaGFrZSws4FWgDI/u16q1B9tjQOZ8tmbB/Y61MhUCtGKTpZUE8yw=,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=cJX2EWEZ6zs3GVSGExse8aQQXyxGlJzw7Xzqn9WBKts=",
  serverFinal: "v=vACc4ed4mCrRjDd3+Qp44Yetdzxli2Z2PwnIQAnRbUM=",
  fakeSalt: "1d8535c9c737bce366a66d5bf9936dd0",
};

/** 32 bytes counting up from `from`. */
function run32(from: number): Uint8Array {
  return Uint8Array.from({ length: 32 }, (_, i) => from + i);
}

Deno.test("docs/PROTOCOL.md shows every login vector", () => {
  for (const [name, value] of Object.entries(VECTORS)) {
    assert.ok(DOC.includes(`${name} = ${value}`), `${name} not in PROTOCOL.md`);
  }
});

Deno.test("deriveSessionKeys() gives the documented channel binding, as the formula computes it", () => {
  const keys = deriveSessionKeys(run32(0x00), run32(0x20));
  assert.equal(toHex(keys.channelBinding), VECTORS.channelBinding);
  // HKDF-Expand with one block: HMAC(secret, label ‖ transcriptHash ‖ 0x01).
  const independent = createHmac("sha256", run32(0x00))
    .update("doorman v2 scram binding")
    .update(run32(0x20))
    .update(Uint8Array.of(1))
    .digest("hex");
  assert.equal(independent, VECTORS.channelBinding);
  // The c= value is base64(gs2 header ‖ binding data): 53 bytes.
  const cValue = VECTORS.clientFinal.split(",")[0].slice(2);
  assert.equal(
    toBase64(fromBase64(cValue)),
    cValue,
  );
  const decoded = fromBase64(cValue);
  assert.equal(decoded.length, 53);
  assert.equal(
    new TextDecoder().decode(decoded.subarray(0, 21)),
    "p=doorman-handshake,,",
  );
  assert.equal(toHex(decoded.subarray(21)), VECTORS.channelBinding);
});

Deno.test("ScramClient and ScramServer bound to the vector binding reproduce the documented exchange", async () => {
  const channelBinding = deriveSessionKeys(run32(0x00), run32(0x20))
    .channelBinding;
  const verifier = await createScramVerifier("pencil", {
    iterations: 4096,
    salt: fromBase64("W22ZaJ0SNY7soEsUEjb6gQ=="),
  });
  const client = new ScramClient("user", "pencil", {
    nonce: "rOprNGfwEbeRWgbNEkqO",
    channelBinding,
  });
  const server = new ScramServer({
    nonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    channelBinding,
  });
  const clientFirst = client.clientFirst();
  assert.equal(clientFirst, VECTORS.clientFirst);
  assert.equal(server.receiveClientFirst(clientFirst), "user");
  const serverFirst = server.serverFirst(verifier);
  assert.equal(serverFirst, VECTORS.serverFirst);
  const clientFinal = await client.clientFinal(serverFirst);
  assert.equal(clientFinal, VECTORS.clientFinal);
  const result = server.receiveClientFinal(clientFinal);
  assert.deepEqual(result, { ok: true, serverFinal: VECTORS.serverFinal });
  client.verifyServerFinal(result.serverFinal);
});

Deno.test("ScramServer with a binding refuses the gs2 flags n, y and other binding types", () => {
  const channelBinding = new Uint8Array(32);
  for (
    const clientFirst of [
      "n,,n=user,r=abc",
      "y,,n=user,r=abc",
      "p=tls-exporter,,n=user,r=abc",
      "p=tls-unique,,n=user,r=abc",
      "p=doorman-handshake,a=admin,n=user,r=abc",
    ]
  ) {
    const server = new ScramServer({ channelBinding });
    assert.throws(
      () => server.receiveClientFirst(clientFirst),
      /Cannot parse client-first message/,
      clientFirst,
    );
  }
});

Deno.test("fakeScramVerifier() gives the documented fake salt, as the formula computes it", () => {
  const salt = fakeScramVerifier(run32(0x40), "mallory", 4096).salt;
  assert.equal(toHex(salt), VECTORS.fakeSalt);
  const independent = createHmac("sha256", run32(0x40))
    .update("doorman fake salt")
    .update("mallory")
    .digest("hex")
    .slice(0, 32);
  assert.equal(independent, VECTORS.fakeSalt);
});
