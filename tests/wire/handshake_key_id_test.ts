/**
 * The key id of protocol version 2: sent in clear in the ClientHello, looked
 * up in the server's ring, and an unknown id failing on exactly the path of
 * a wrong key.
 */

import assert from "node:assert/strict";
import { concatBytes, utf8 } from "../../lib/wire/bytes.ts";
import { KeyRejectedError, ProtocolError } from "../../lib/errors.ts";
import { encodeFrame, FrameReader } from "../../lib/wire/framing.ts";
import {
  handshakeAsClient,
  handshakeAsServer,
  type HandshakeKey,
  type KeyLookup,
} from "../../lib/wire/handshake.ts";
import {
  computeProof,
  deriveHandshakeSecret,
  encodePreamble,
  Transcript,
} from "../../lib/wire/key_schedule.ts";
import { generateX25519, x25519SharedSecret } from "../../lib/wire/crypto.ts";
import {
  CLIENT_HELLO_FIXED_BYTES,
  KdfLabel,
  SERVER_HELLO_BYTES,
} from "../../lib/wire/protocol.ts";
import {
  closeQuietly,
  framed,
  recording,
  seededBytes,
  tcpPair,
} from "../helpers.ts";

const ALICE: HandshakeKey = { id: "alice", psk: seededBytes(1, 32) };
const BOB: HandshakeKey = { id: "bob.laptop-2", psk: seededBytes(2, 32) };
const DECOY = seededBytes(3, 32);

/** A ring of ALICE and BOB that counts how often each path reads a key. */
function countingRing() {
  const reads = { known: 0, decoy: 0 };
  const keys = new Map([ALICE, BOB].map((key) => [key.id, key]));
  const ring: KeyLookup = {
    find(keyId) {
      const key = keys.get(keyId);
      if (key) reads.known++;
      return key;
    },
    get decoy() {
      reads.decoy++;
      return DECOY;
    },
  };
  return { ring, reads };
}

async function run(clientKey: HandshakeKey, ring: KeyLookup) {
  await using pair = await tcpPair();
  const serverWrites: Uint8Array[] = [];
  const clientWrites: Uint8Array[] = [];
  const [client, server] = await Promise.allSettled([
    handshakeAsClient(recording(pair.client, clientWrites), clientKey),
    handshakeAsServer(recording(pair.server, serverWrites), ring),
  ]);
  return { client, server, serverWrites, clientWrites };
}

Deno.test("handshakeAsServer() finds the client's key by id and returns the entry", async () => {
  const { ring, reads } = countingRing();
  const { client, server } = await run(BOB, ring);
  assert.equal(client.status, "fulfilled");
  assert.equal(server.status, "fulfilled");
  if (server.status !== "fulfilled" || client.status !== "fulfilled") return;
  assert.equal(server.value.key, BOB);
  assert.deepEqual(server.value.channelBinding, client.value.channelBinding);
  assert.deepEqual(reads, { known: 1, decoy: 0 });
});

Deno.test("handshakeAsClient() sends the key id in clear, length-prefixed, after the share", async () => {
  const { ring } = countingRing();
  const { clientWrites } = await run(ALICE, ring);
  const hello = clientWrites[0].subarray(8 + 4);
  assert.equal(hello.length, CLIENT_HELLO_FIXED_BYTES + 5);
  assert.equal(hello[CLIENT_HELLO_FIXED_BYTES - 1], 5);
  assert.deepEqual(hello.subarray(CLIENT_HELLO_FIXED_BYTES), utf8("alice"));
});

Deno.test("handshakeAsServer() fails an unknown id exactly like a wrong key: same work, frames and error", async () => {
  const outcomes = [];
  for (
    const clientKey of [
      { id: "carol", psk: ALICE.psk }, // unknown id, as long as "alice"
      { id: "alice", psk: BOB.psk }, // known id, wrong key
    ]
  ) {
    const { ring, reads } = countingRing();
    const { client, server, serverWrites, clientWrites } = await run(
      clientKey,
      ring,
    );
    assert.equal(client.status, "rejected");
    assert.equal(server.status, "rejected");
    if (client.status !== "rejected" || server.status !== "rejected") return;
    outcomes.push({
      clientError: [client.reason.constructor, client.reason.message],
      serverError: [server.reason.constructor, server.reason.message],
      serverWrites: serverWrites.map((bytes) => bytes.length),
      clientWrites: clientWrites.map((bytes) => bytes.length),
      keyReads: reads.known + reads.decoy,
    });
  }
  const [unknown, wrong] = outcomes;
  assert.equal(unknown.serverError[0], KeyRejectedError);
  assert.deepEqual(unknown.serverError, wrong.serverError);
  assert.deepEqual(unknown.clientError, wrong.clientError);
  // PS ‖ ServerHello, then the failure frame: the same bytes on the wire.
  assert.deepEqual(unknown.serverWrites, [8 + 4 + SERVER_HELLO_BYTES, 5]);
  assert.deepEqual(unknown.serverWrites, wrong.serverWrites);
  assert.deepEqual(unknown.clientWrites, wrong.clientWrites);
  // One key read on each path: the decoy stands in for the missing entry.
  assert.equal(unknown.keyReads, 1);
  assert.equal(wrong.keyReads, 1);
});

Deno.test("handshakeAsServer() answers an unknown id with a real proof under the decoy key", async () => {
  const { ring, reads } = countingRing();
  await using pair = await tcpPair();
  const serverPrivate = seededBytes(4, 32);
  const server = handshakeAsServer(framed(pair.server), ring, {
    fixedRandom: { nonce: seededBytes(5, 32), privateKey: serverPrivate },
  });
  const clientPair = generateX25519(seededBytes(6, 32));
  const hello = concatBytes(
    Uint8Array.of(0x01),
    seededBytes(7, 32),
    clientPair.publicKey,
    Uint8Array.of(7),
    utf8("mallory"),
  );
  await pair.client.write(concatBytes(encodePreamble(), encodeFrame(hello)));
  const reader = new FrameReader(pair.client);
  const serverPreamble = await reader.readExact(8);
  const serverHello = await reader.readFrame(512);
  assert.ok(serverPreamble && serverHello);
  assert.equal(serverHello.length, SERVER_HELLO_BYTES);
  // The proof is the full DH and key schedule, run with the decoy key.
  const secret = deriveHandshakeSecret(
    DECOY,
    x25519SharedSecret(clientPair.privateKey, serverHello.subarray(33, 65)),
  );
  const transcript = new Transcript();
  transcript.append(encodePreamble(), hello, serverPreamble);
  assert.deepEqual(
    serverHello.subarray(65),
    computeProof(
      secret,
      KdfLabel.serverFinished,
      transcript.hash(serverHello.subarray(0, 65)),
    ),
  );
  assert.deepEqual(reads, { known: 0, decoy: 1 });
  // Even a client finishing with a proof under the decoy is refused.
  transcript.append(serverHello);
  const finished = concatBytes(
    Uint8Array.of(0x03),
    computeProof(secret, KdfLabel.clientFinished, transcript.hash()),
  );
  await pair.client.write(encodeFrame(finished));
  await assert.rejects(server, KeyRejectedError);
  closeQuietly(pair.server);
});

Deno.test("handshakeAsServer() rejects a malformed key id or length with ProtocolError", async () => {
  const cases = [
    { length: 5, id: utf8("ali e") }, // a byte outside the alphabet
    { length: 6, id: utf8("alice") }, // length says more than follows
    { length: 4, id: utf8("alice") }, // length says less than follows
    { length: 0, id: new Uint8Array(0) }, // empty id: 66-byte hello
  ];
  for (const { length, id } of cases) {
    const { ring } = countingRing();
    await using pair = await tcpPair();
    const server = handshakeAsServer(framed(pair.server), ring);
    const hello = concatBytes(
      Uint8Array.of(0x01),
      seededBytes(8, 32),
      generateX25519(seededBytes(9, 32)).publicKey,
      Uint8Array.of(length),
      id,
    );
    await pair.client.write(concatBytes(encodePreamble(), encodeFrame(hello)));
    const error = await server.catch((error) => error);
    assert.ok(error instanceof ProtocolError, `length ${length}: ${error}`);
  }
});

Deno.test("handshakeAsClient() refuses a malformed key id before sending anything", async () => {
  for (const id of ["", "a b", "é", "x".repeat(65), "a/b"]) {
    await using pair = await tcpPair();
    await assert.rejects(
      handshakeAsClient(framed(pair.client), { id, psk: ALICE.psk }),
      RangeError,
    );
  }
});
