import assert from "node:assert/strict";
import { fromBase64, toBase64, utf8 } from "../../lib/wire/bytes.ts";
import { LoginRejectedError, ProtocolError } from "../../lib/errors.ts";
import {
  createScramVerifier,
  DEFAULT_SCRAM_ITERATIONS,
  preparePassword,
  type ScramVerifier,
} from "../../lib/login/scram.ts";
import { ScramClient } from "../../lib/login/scram_client.ts";
import {
  fakeScramVerifier,
  ScramServer,
} from "../../lib/login/scram_server.ts";

// RFC 7677 section 3.
const RFC = {
  user: "user",
  password: "pencil",
  clientNonce: "rOprNGfwEbeRWgbNEkqO",
  serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
  salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
  clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
  serverFirst:
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
  clientFinal:
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

function rfcVerifier(): Promise<ScramVerifier> {
  return createScramVerifier(RFC.password, {
    iterations: 4096,
    salt: fromBase64(RFC.salt),
  });
}

function rfcClient(password = RFC.password): ScramClient {
  return new ScramClient(RFC.user, password, { nonce: RFC.clientNonce });
}

/** A server that has read the RFC client-first and sent its server-first. */
async function rfcServerAwaitingFinal(): Promise<ScramServer> {
  const server = new ScramServer({ nonce: RFC.serverNonce });
  server.receiveClientFirst(RFC.clientFirst);
  server.serverFirst(await rfcVerifier());
  return server;
}

/** A client that has sent its client-first and client-final. */
async function rfcClientAwaitingServerFinal(): Promise<ScramClient> {
  const client = rfcClient();
  client.clientFirst();
  await client.clientFinal(RFC.serverFirst);
  return client;
}

Deno.test("ScramClient reproduces the RFC 7677 exchange", async () => {
  const client = rfcClient();
  assert.equal(client.clientFirst(), RFC.clientFirst);
  assert.equal(await client.clientFinal(RFC.serverFirst), RFC.clientFinal);
  client.verifyServerFinal(RFC.serverFinal);
});

Deno.test("ScramServer reproduces the RFC 7677 exchange", async () => {
  const server = new ScramServer({ nonce: RFC.serverNonce });
  assert.equal(server.receiveClientFirst(RFC.clientFirst), "user");
  assert.equal(server.serverFirst(await rfcVerifier()), RFC.serverFirst);
  assert.deepEqual(server.receiveClientFinal(RFC.clientFinal), {
    ok: true,
    serverFinal: RFC.serverFinal,
  });
});

Deno.test("ScramClient and ScramServer agree with random nonces and salt", async () => {
  const verifier = await createScramVerifier("pässwörd", { iterations: 4096 });
  const client = new ScramClient("a,b=c", "pässwörd");
  const server = new ScramServer();
  const clientFirst = client.clientFirst();
  assert.match(clientFirst, /^n,,n=a=2Cb=3Dc,r=[A-Za-z0-9+/]{32}$/);
  assert.equal(server.receiveClientFirst(clientFirst), "a,b=c");
  const clientFinal = await client.clientFinal(server.serverFirst(verifier));
  const { ok, serverFinal } = server.receiveClientFinal(clientFinal);
  assert.equal(ok, true);
  client.verifyServerFinal(serverFinal);
});

Deno.test("ScramClient applies SASLprep to the user name and password", async () => {
  const verifier = await createScramVerifier("IX", { iterations: 4096 });
  const client = new ScramClient("I\u00ADX", "\u2168", { nonce: "abc" });
  const server = new ScramServer();
  assert.equal(client.clientFirst(), "n,,n=IX,r=abc");
  assert.equal(server.receiveClientFirst("n,,n=IX,r=abc"), "IX");
  const clientFinal = await client.clientFinal(server.serverFirst(verifier));
  assert.equal(server.receiveClientFinal(clientFinal).ok, true);
});

Deno.test("ScramServer answers e=invalid-proof to a wrong password", async () => {
  const server = await rfcServerAwaitingFinal();
  const client = rfcClient("pencil2");
  client.clientFirst();
  const clientFinal = await client.clientFinal(RFC.serverFirst);
  assert.deepEqual(server.receiveClientFinal(clientFinal), {
    ok: false,
    serverFinal: "e=invalid-proof",
    reason: "invalid-proof",
  });
});

Deno.test("ScramServer answers e=invalid-proof to a flipped proof bit", async () => {
  const proof = fromBase64(RFC.clientFinal.split(",p=")[1]);
  proof[7] ^= 0x10;
  const tampered = `${RFC.clientFinal.split(",p=")[0]},p=${toBase64(proof)}`;
  const server = await rfcServerAwaitingFinal();
  assert.equal(server.receiveClientFinal(tampered).ok, false);
});

Deno.test("ScramClient.verifyServerFinal() rejects a wrong or refused server-final", async () => {
  const signature = fromBase64(RFC.serverFinal.slice(2));
  signature[0] ^= 1;
  const rejected = [`v=${toBase64(signature)}`, "e=invalid-proof", "e=x y"];
  for (const serverFinal of rejected) {
    const client = await rfcClientAwaitingServerFinal();
    assert.throws(
      () => client.verifyServerFinal(serverFinal),
      LoginRejectedError,
      serverFinal,
    );
  }
});

Deno.test("ScramClient.verifyServerFinal() rejects a malformed server-final", async () => {
  const malformed = ["", "v", "x=abc", "v=not base64!", "6rriTRBi"];
  for (const serverFinal of malformed) {
    const client = await rfcClientAwaitingServerFinal();
    assert.throws(
      () => client.verifyServerFinal(serverFinal),
      ProtocolError,
      serverFinal,
    );
  }
});

Deno.test("ScramClient.clientFinal() rejects a server nonce that does not extend its own", async () => {
  const badNonces = [
    "r=rOprNGfwEbeRWgbNEkqO", // equal, not longer
    "r=XOprNGfwEbeRWgbNEkqO%hvYD", // different prefix
    "r=rOprNGfw", // shorter
  ];
  for (const nonce of badNonces) {
    const client = rfcClient();
    client.clientFirst();
    await assert.rejects(
      client.clientFinal(`${nonce},s=${RFC.salt},i=4096`),
      ProtocolError,
      nonce,
    );
  }
});

Deno.test("ScramClient.clientFinal() refuses iteration counts outside its range", async () => {
  const cases: [number, { minIterations?: number; maxIterations?: number }][] =
    [
      [4095, {}],
      [10_000_001, {}],
      [4096, { minIterations: 10_000 }],
      [20_000, { maxIterations: 10_000 }],
    ];
  for (const [iterations, options] of cases) {
    const client = new ScramClient("user", "pencil", {
      nonce: RFC.clientNonce,
      ...options,
    });
    client.clientFirst();
    const serverFirst = RFC.serverFirst.replace("i=4096", `i=${iterations}`);
    await assert.rejects(
      client.clientFinal(serverFirst),
      LoginRejectedError,
      `${iterations}`,
    );
  }
});

Deno.test("ScramClient.clientFinal() rejects malformed server-first messages", async () => {
  const nonce = `r=${RFC.clientNonce}xyz`;
  const malformed = [
    "",
    "garbage",
    `${nonce}`,
    `${nonce},s=${RFC.salt}`,
    `s=${RFC.salt},${nonce},i=4096`, // wrong order
    `m=ext,${nonce},s=${RFC.salt},i=4096`, // mandatory extension
    `${nonce},s=,i=4096`, // empty salt
    `${nonce},s=W22ZaJ0SNY7so!EsUEjb6gQ==,i=4096`, // bad base64
    `${nonce},s=${RFC.salt},i=`,
    `${nonce},s=${RFC.salt},i=0`,
    `${nonce},s=${RFC.salt},i=04096`,
    `${nonce},s=${RFC.salt},i=4096.0`,
    `${nonce},s=${RFC.salt},i=-4096`,
    `${nonce}\u00e9,s=${RFC.salt},i=4096`, // non-printable nonce
    `${nonce},,s=${RFC.salt},i=4096`, // empty attribute
  ];
  for (const serverFirst of malformed) {
    const client = rfcClient();
    client.clientFirst();
    await assert.rejects(
      client.clientFinal(serverFirst),
      ProtocolError,
      JSON.stringify(serverFirst),
    );
  }
});

Deno.test("ScramClient.clientFinal() ignores extensions after the iteration count", async () => {
  const client = rfcClient();
  client.clientFirst();
  const clientFinal = await client.clientFinal(`${RFC.serverFirst},x=ext`);
  assert.match(clientFinal, /^c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYD/);
});

Deno.test("ScramServer.receiveClientFirst() rejects malformed client-first messages", () => {
  const malformed = [
    "",
    "n=user,r=abc", // no gs2 header
    "y,,n=user,r=abc", // channel binding
    "p=tls-unique,,n=user,r=abc",
    "n,a=admin,n=user,r=abc", // authorization identity
    "n,x,n=user,r=abc",
    "n,,r=abc,n=user", // wrong order
    "n,,n=user", // no nonce
    "n,,n=,r=abc", // empty name
    "n,,n=us=er,r=abc", // bad escape
    "n,,n=user,r=", // empty nonce
    "n,,n=user,r=a\u00e9", // non-printable nonce
    "n,,m=ext,n=user,r=abc", // mandatory extension
    "n,,n=user,,r=abc",
  ];
  for (const clientFirst of malformed) {
    const server = new ScramServer();
    assert.throws(
      () => server.receiveClientFirst(clientFirst),
      ProtocolError,
      JSON.stringify(clientFirst),
    );
  }
});

Deno.test("ScramServer answers e=channel-bindings-dont-match to a c= other than its own", async () => {
  const [withoutProof, proof] = RFC.clientFinal.split(",p=");
  const nonce = withoutProof.slice("c=biws,".length);
  const server = await rfcServerAwaitingFinal();
  assert.deepEqual(server.receiveClientFinal(`c=eSws,${nonce},p=${proof}`), {
    ok: false,
    serverFinal: "e=channel-bindings-dont-match",
    reason: "channel-bindings-dont-match",
  });
});

Deno.test("ScramServer.receiveClientFinal() rejects malformed client-final messages", async () => {
  const [withoutProof, proof] = RFC.clientFinal.split(",p=");
  const nonce = withoutProof.slice("c=biws,".length);
  const malformed = [
    "",
    withoutProof, // no proof
    `c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDX,p=${proof}`, // other nonce
    `${nonce},c=biws,p=${proof}`, // wrong order
    `c=biws,p=${proof}`, // no nonce
    `${withoutProof},p=not-base64!`,
    `${withoutProof},p=${toBase64(new Uint8Array(31))}`, // short proof
    `${withoutProof},p=${proof},x=ext`, // proof not last
  ];
  for (const clientFinal of malformed) {
    const server = await rfcServerAwaitingFinal();
    assert.throws(
      () => server.receiveClientFinal(clientFinal),
      ProtocolError,
      JSON.stringify(clientFinal),
    );
  }
});

Deno.test("ScramClient methods throw when called at the wrong step", async () => {
  const calls: [string, (client: ScramClient) => unknown][] = [
    ["clientFinal first", (client) => client.clientFinal(RFC.serverFirst)],
    ["verifyServerFinal first", (c) => c.verifyServerFinal(RFC.serverFinal)],
    ["clientFirst twice", (client) => {
      client.clientFirst();
      client.clientFirst();
    }],
  ];
  for (const [label, call] of calls) {
    await assert.rejects(
      async () => await call(rfcClient()),
      /wrong step/,
      label,
    );
  }
  const done = await rfcClientAwaitingServerFinal();
  done.verifyServerFinal(RFC.serverFinal);
  assert.throws(() => done.verifyServerFinal(RFC.serverFinal), /wrong step/);
});

Deno.test("ScramServer methods throw when called at the wrong step", async () => {
  const verifier = await rfcVerifier();
  const calls: [string, (server: ScramServer) => unknown][] = [
    ["serverFirst first", (server) => server.serverFirst(verifier)],
    ["receiveClientFinal first", (s) => s.receiveClientFinal(RFC.clientFinal)],
    ["receiveClientFirst twice", (server) => {
      server.receiveClientFirst(RFC.clientFirst);
      server.receiveClientFirst(RFC.clientFirst);
    }],
    ["receiveClientFinal before serverFirst", (server) => {
      server.receiveClientFirst(RFC.clientFirst);
      server.receiveClientFinal(RFC.clientFinal);
    }],
  ];
  for (const [label, call] of calls) {
    const server = new ScramServer({ nonce: RFC.serverNonce });
    assert.throws(() => call(server), /wrong step/, label);
  }
  const done = await rfcServerAwaitingFinal();
  assert.equal(done.receiveClientFinal(RFC.clientFinal).ok, true);
  assert.throws(() => done.receiveClientFinal(RFC.clientFinal), /wrong step/);
});

Deno.test("ScramClient stays failed after a failed step", async () => {
  const client = rfcClient();
  client.clientFirst();
  await assert.rejects(client.clientFinal("garbage"), ProtocolError);
  await assert.rejects(client.clientFinal(RFC.serverFirst), /wrong step/);
});

Deno.test("ScramClient.clientFinal() fails when called again while deriving", async () => {
  const client = rfcClient();
  client.clientFirst();
  const first = client.clientFinal(RFC.serverFirst);
  await assert.rejects(client.clientFinal(RFC.serverFirst), /wrong step/);
  await assert.rejects(first, /wrong step/);
});

Deno.test("ScramServer stays failed after a failed step or a wrong proof", async () => {
  const server = new ScramServer({ nonce: RFC.serverNonce });
  assert.throws(
    () => server.receiveClientFirst("y,,n=user,r=a"),
    ProtocolError,
  );
  assert.throws(() => server.receiveClientFirst(RFC.clientFirst), /wrong step/);

  const refused = await rfcServerAwaitingFinal();
  const wrong = RFC.clientFinal.replace("p=dHzb", "p=eHzb");
  assert.equal(refused.receiveClientFinal(wrong).ok, false);
  assert.throws(
    () => refused.receiveClientFinal(RFC.clientFinal),
    /wrong step/,
  );
});

Deno.test("ScramClient rejects an empty user name or a bad nonce option", () => {
  assert.throws(() => new ScramClient("", "pencil"), RangeError);
  assert.throws(() => new ScramClient("\u00AD", "pencil"), RangeError);
  assert.throws(
    () => new ScramClient("user", "pencil", { nonce: "a,b" }),
    RangeError,
  );
  assert.throws(() => new ScramServer({ nonce: "" }), RangeError);
});

Deno.test("createScramVerifier() rejects iterations outside 4096 to 10,000,000", async () => {
  for (const iterations of [0, 4095, 4096.5, 10_000_001, NaN]) {
    await assert.rejects(
      createScramVerifier("pencil", { iterations }),
      RangeError,
      `${iterations}`,
    );
  }
  await assert.rejects(
    createScramVerifier("pencil", { iterations: 4096, salt: new Uint8Array() }),
    RangeError,
  );
});

Deno.test("createScramVerifier() defaults to 600,000 iterations and a random 16-byte salt", async () => {
  const first = await createScramVerifier("pencil");
  assert.equal(first.iterations, DEFAULT_SCRAM_ITERATIONS);
  assert.equal(first.salt.length, 16);
  assert.equal(first.storedKey.length, 32);
  assert.equal(first.serverKey.length, 32);
  const second = await createScramVerifier("pencil", { iterations: 4096 });
  assert.notDeepEqual(second.salt, first.salt);
});

// Generated once by PostgreSQL 15 (`SET password_encryption =
// 'scram-sha-256'; CREATE ROLE … PASSWORD …; SELECT rolpassword FROM
// pg_authid`), then fixed here.
const POSTGRES_VERIFIERS: [string, string, string][] = [
  [
    "ASCII",
    "pencil",
    "SCRAM-SHA-256$4096:8KGIRDEh+ZPLiTBqQscw8g==$+4DyhAqOIJ7oKdJYam/qAzVQ0T5RLw/sv+sGidaKt+A=:kq77DADXBOoFJGcL3tUNI+Lqe+88adfi7Vx9tb1P1rU=",
  ],
  [
    "mapped and normalized by SASLprep",
    "I\u00ADX \u2168 p\u00e4ssw\u00f6rd",
    "SCRAM-SHA-256$4096:DbAZWH4VGkY6LuxrfkB3dg==$kbVp3mVUG1IST18PT9UG8UlMGHcrMqwH947Lpiev0JE=:O4WKPGGjEFyu2plbH6MMije+ON56B9zn+HnsB4PBkVo=",
  ],
  [
    "prohibited, so hashed raw",
    "caf\u00e9\u0007",
    "SCRAM-SHA-256$4096:lt94Mn1hxsH3+5zTiWKJgg==$Ia34pY4obcWPczI9CaOU1KMOIISC3xYpRZxSY56lnD0=:0iEClcxNAfGlSvyWUr8gY/ZAFM+DfZfjjclN/O3VkA4=",
  ],
  [
    "unassigned in Unicode 3.2, so hashed raw",
    "\u0221\u2168",
    "SCRAM-SHA-256$4096:ZcT7icV2vs+Q8EibLmiRVQ==$JHm0fYRyVdKeTvYtXeIPH8nT/38PAQN+vVfSNf5KsGc=:mVo4Sc3VDqXi8YkPcb66h3O8E0Z55cMGWs+F7hX98oI=",
  ],
];

Deno.test("createScramVerifier() matches verifiers PostgreSQL 15 stored", async () => {
  for (const [label, password, line] of POSTGRES_VERIFIERS) {
    const [, iterations, salt, storedKey, serverKey] = line.split(/[$:]/);
    const verifier = await createScramVerifier(password, {
      iterations: Number(iterations),
      salt: fromBase64(salt),
    });
    assert.equal(toBase64(verifier.storedKey), storedKey, label);
    assert.equal(toBase64(verifier.serverKey), serverKey, label);
  }
});

Deno.test("preparePassword() follows PostgreSQL's SASLprep rule", () => {
  const cases: [string, string][] = [
    ["pencil", "pencil"],
    ["bell\u0007", "bell\u0007"], // ASCII is never changed
    ["I\u00ADX", "IX"],
    ["\u2168", "IX"],
    ["caf\u00e9\u0007", "caf\u00e9\u0007"], // prohibited: raw
    ["\u0221\u2168", "\u0221\u2168"], // unassigned: raw
    ["\u00AD", "\u00AD"], // maps to nothing: raw
  ];
  for (const [password, prepared] of cases) {
    assert.deepEqual(preparePassword(password), utf8(prepared), password);
  }
});

Deno.test("fakeScramVerifier() gives a stable salt per user and keys no proof matches", async () => {
  const key = utf8("0123456789abcdef0123456789abcdef");
  const first = fakeScramVerifier(key, "mallory", 4096);
  const again = fakeScramVerifier(key, "mallory", 4096);
  assert.equal(first.salt.length, 16);
  assert.equal(first.storedKey.length, 32);
  assert.equal(first.serverKey.length, 32);
  assert.equal(first.iterations, 4096);
  assert.deepEqual(again.salt, first.salt);
  assert.notDeepEqual(again.storedKey, first.storedKey);
  assert.notDeepEqual(again.serverKey, first.serverKey);
  assert.notDeepEqual(
    fakeScramVerifier(key, "mallory2", 4096).salt,
    first.salt,
  );
  assert.notDeepEqual(
    fakeScramVerifier(utf8("another key"), "mallory", 4096).salt,
    first.salt,
  );

  const server = new ScramServer();
  const client = new ScramClient("mallory", "pencil");
  server.receiveClientFirst(client.clientFirst());
  const clientFinal = await client.clientFinal(server.serverFirst(first));
  assert.deepEqual(server.receiveClientFinal(clientFinal), {
    ok: false,
    serverFinal: "e=invalid-proof",
    reason: "invalid-proof",
  });
});

Deno.test("ScramClient errors never include the password", async () => {
  const password = "correct horse";
  const client = new ScramClient("user", password, { nonce: RFC.clientNonce });
  client.clientFirst();
  await client.clientFinal(RFC.serverFirst);
  assert.throws(
    () => client.verifyServerFinal(RFC.serverFinal),
    (error: unknown) =>
      error instanceof LoginRejectedError &&
      !error.message.includes(password) && !error.message.includes("horse"),
  );
});
