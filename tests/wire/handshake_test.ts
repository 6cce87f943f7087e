import assert from "node:assert/strict";
import { concatBytes, utf8 } from "../../lib/wire/bytes.ts";
import {
  ClosedError,
  KeyRejectedError,
  ProtocolError,
  TimeoutError,
  UnsupportedVersionError,
} from "../../lib/errors.ts";
import { encodeFrame, FrameReader } from "../../lib/wire/framing.ts";
import {
  handshakeAsClient,
  handshakeAsServer,
  type HandshakeOptions,
} from "../../lib/wire/handshake.ts";
import {
  encodePreamble,
  type SessionKeys,
} from "../../lib/wire/key_schedule.ts";
import type { FramedConn } from "../../lib/wire/framing.ts";
import {
  CLIENT_FINISHED_BYTES,
  CLIENT_HELLO_FIXED_BYTES,
  DEFAULT_KEY_ID,
  MAX_PREAUTH_FRAME_BYTES,
  SERVER_HELLO_BYTES,
} from "../../lib/wire/protocol.ts";
import {
  closeQuietly,
  framed,
  recording,
  seededBytes,
  type TcpPair,
  tcpPair,
} from "../helpers.ts";

/** A ClientHello with the `default` key id: 66 + 7 bytes. */
const CLIENT_HELLO_BYTES = CLIENT_HELLO_FIXED_BYTES + DEFAULT_KEY_ID.length;
const PSK = utf8("handshake test key, 32 bytes....");
const OTHER_PSK = utf8("handshake test key, 32 bytes...!");
const FAILURE_FRAME = encodeFrame(Uint8Array.of(0x7f));
/** Deadline for cases that can only end by a deadline. */
const SHORT_DEADLINE_MS = 200;
/** Safety net for cases that should fail on their own long before. */
const SAFETY_DEADLINE_MS = 60_000;

/**
 * Wraps `conn` as a man in the middle would: byte `position` of everything
 * written (counted from the first write) has `bit` flipped on the wire. The
 * writer's own transcript keeps the original byte.
 */
function flipping(conn: Deno.Conn, position: number, bit: number): FramedConn {
  let offset = 0;
  return {
    conn: {
      async write(bytes: Uint8Array): Promise<number> {
        const wire = bytes.slice();
        if (position >= offset && position < offset + wire.length) {
          wire[position - offset] ^= 1 << bit;
        }
        const written = await conn.write(wire);
        offset += written;
        return written;
      },
      close: () => conn.close(),
    },
    reader: new FrameReader(conn),
  };
}

/** Runs both sides over `pair` and reports how each ended. */
async function runBoth(
  client: FramedConn,
  server: FramedConn,
  options: {
    clientPsk?: Uint8Array;
    serverPsk?: Uint8Array;
    client?: HandshakeOptions;
    server?: HandshakeOptions;
  } = {},
): Promise<
  [PromiseSettledResult<SessionKeys>, PromiseSettledResult<SessionKeys>]
> {
  return await Promise.allSettled([
    handshakeAsClient(client, options.clientPsk ?? PSK, options.client),
    handshakeAsServer(server, options.serverPsk ?? PSK, options.server),
  ]);
}

function rejection(result: PromiseSettledResult<unknown>): unknown {
  assert.equal(result.status, "rejected", "the handshake yielded keys");
  return (result as PromiseRejectedResult).reason;
}

/**
 * Asserts that `error` is an instance of `expected`; a plain `ProtocolError`
 * must not be the `UnsupportedVersionError` subclass.
 */
function assertKind(
  error: unknown,
  expected: new (message: string) => Error,
  context: string,
): void {
  assert.ok(
    error instanceof expected &&
      (expected !== ProtocolError ||
        !(error instanceof UnsupportedVersionError)),
    `${context}: expected ${expected.name}, got ${error}`,
  );
}

/** Reads everything `conn` receives until the peer closes. */
async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const chunk = new Uint8Array(4096);
  for (let reads = 0; reads < 1000; reads++) {
    const n = await conn.read(chunk);
    if (n === null) return concatBytes(...chunks);
    chunks.push(chunk.slice(0, n));
  }
  throw new Error("Cannot read to end: too many reads");
}

/** Closes the server end, then returns what the client end received. */
async function serverOutput(pair: TcpPair): Promise<Uint8Array> {
  closeQuietly(pair.server);
  return await readToEnd(pair.client);
}

Deno.test("handshakeAsClient() and handshakeAsServer() derive equal keys", async () => {
  await using pair = await tcpPair();
  const [client, server] = await Promise.all([
    handshakeAsClient(framed(pair.client), PSK),
    handshakeAsServer(framed(pair.server), PSK),
  ]);
  const { key, ...serverKeys } = server;
  assert.deepEqual(client, serverKeys);
  assert.deepEqual(key, { id: DEFAULT_KEY_ID, psk: PSK });
  assert.equal(client.channelBinding.length, 32);
  assert.equal(client.clientToServer.length, 32);
  assert.equal(client.serverToClient.length, 32);
  assert.equal(client.transcriptHash.length, 32);
  assert.notDeepEqual(client.clientToServer, client.serverToClient);
});

Deno.test("handshakeAsClient() derives fresh keys on every connection", async () => {
  const keys: SessionKeys[] = [];
  for (let run = 0; run < 2; run++) {
    await using pair = await tcpPair();
    const [client] = await Promise.all([
      handshakeAsClient(framed(pair.client), PSK),
      handshakeAsServer(framed(pair.server), PSK),
    ]);
    keys.push(client);
  }
  assert.notDeepEqual(keys[0].clientToServer, keys[1].clientToServer);
  assert.notDeepEqual(keys[0].serverToClient, keys[1].serverToClient);
});

Deno.test("handshakeAsServer() accepts a 16-byte key", async () => {
  await using pair = await tcpPair();
  const psk = PSK.subarray(0, 16);
  const [client, server] = await Promise.all([
    handshakeAsClient(framed(pair.client), psk),
    handshakeAsServer(framed(pair.server), psk),
  ]);
  assert.deepEqual(client.transcriptHash, server.transcriptHash);
});

Deno.test("handshakeAsClient() and handshakeAsServer() reject a key shorter than 16 bytes", async () => {
  await using pair = await tcpPair();
  const psk = PSK.subarray(0, 15);
  await assert.rejects(handshakeAsClient(framed(pair.client), psk), RangeError);
  await assert.rejects(handshakeAsServer(framed(pair.server), psk), RangeError);
});

Deno.test("handshake with different keys fails on both sides with KeyRejectedError", async () => {
  for (const [clientPsk, serverPsk] of [[PSK, OTHER_PSK], [OTHER_PSK, PSK]]) {
    await using pair = await tcpPair();
    const [client, server] = await runBoth(
      framed(pair.client),
      framed(pair.server),
      { clientPsk, serverPsk },
    );
    // The client checks the server's proof first (S1) and sends the failure
    // frame; the server reads it in place of ClientFinished.
    assertKind(rejection(client), KeyRejectedError, "client");
    assertKind(rejection(server), KeyRejectedError, "server");
  }
});

/** Where one side's handshake frames start in its writes, and their sizes. */
type Layout = {
  start: number;
  size: number;
  preamble: boolean;
  /** Offset in the payload of the key id's length byte (ClientHello). */
  keyIdAt?: number;
}[];

/**
 * The error the honest reader must fail with when bit `bit` of byte
 * `position` of the other side's writes is flipped.
 */
function expectedFailure(
  position: number,
  bit: number,
  layout: Layout,
): new (message: string) => Error {
  for (const { start, size, preamble, keyIdAt } of layout) {
    if (preamble && position >= start && position < start + 8) {
      return position - start === 7 ? UnsupportedVersionError : ProtocolError;
    }
    const header = start + (preamble ? 8 : 0);
    if (position >= header && position < header + 4) {
      const declared =
        (size ^ ((1 << bit) << (8 * (header + 3 - position)))) >>>
        0;
      // A longer frame that fits the limit waits for bytes that never come.
      return declared > size && declared <= MAX_PREAUTH_FRAME_BYTES
        ? TimeoutError
        : ProtocolError;
    }
    if (position === header + 4) return ProtocolError; // the kind byte
    if (keyIdAt !== undefined && position === header + 4 + keyIdAt) {
      return ProtocolError; // the key id length no longer fits the frame
    }
    if (
      keyIdAt !== undefined && position > header + 4 + keyIdAt &&
      position < header + 4 + size
    ) {
      // A flipped id is another id (unknown: rejected like a wrong key)
      // or no id at all (malformed).
      const index = position - (header + 4 + keyIdAt + 1);
      const flipped = String.fromCharCode(
        DEFAULT_KEY_ID.charCodeAt(index) ^ (1 << bit),
      );
      return /^[A-Za-z0-9._-]$/.test(flipped)
        ? KeyRejectedError
        : ProtocolError;
    }
    if (position > header + 4 && position < header + 4 + size) {
      return KeyRejectedError; // nonce, share or proof
    }
  }
  throw new RangeError(`No frame at position ${position}`);
}

/**
 * Flips each bit of each byte the `flipper` side writes in `range`, as a man
 * in the middle would, one bit per connection, and asserts that the honest
 * reader fails with the expected typed error and neither side yields keys
 * (except a client whose ClientFinished was hit: it is done by then).
 */
async function flipEveryByte(
  flipper: "client" | "server",
  range: { from: number; to: number },
  layout: Layout,
): Promise<void> {
  for (let position = range.from; position < range.to; position++) {
    const bits = [0, 1, 2, 3, 4, 5, 6, 7];
    await Promise.all(
      bits.map((bit) => flipOne(flipper, position, bit, layout)),
    );
  }
}

async function flipOne(
  flipper: "client" | "server",
  position: number,
  bit: number,
  layout: Layout,
): Promise<void> {
  const expected = expectedFailure(position, bit, layout);
  // Only the reader of the flip may hit a deadline: a short one where the
  // flip leaves it waiting for bytes that never come.
  const readerDeadline = AbortSignal.timeout(
    expected === TimeoutError ? SHORT_DEADLINE_MS : SAFETY_DEADLINE_MS,
  );
  const writerDeadline = AbortSignal.timeout(SAFETY_DEADLINE_MS);
  await using pair = await tcpPair();
  const fromClient = flipper === "client";
  const [clientResult, serverResult] = await runBoth(
    fromClient ? flipping(pair.client, position, bit) : framed(pair.client),
    fromClient ? framed(pair.server) : flipping(pair.server, position, bit),
    {
      client: { signal: fromClient ? writerDeadline : readerDeadline },
      server: { signal: fromClient ? readerDeadline : writerDeadline },
    },
  );
  const context = `${flipper} byte ${position} bit ${bit}`;
  // The server never ends with keys: either it read the flip, or the
  // client did and sent the failure frame in place of ClientFinished.
  const serverError = rejection(serverResult);
  if (!fromClient) {
    assertKind(rejection(clientResult), expected, context);
  } else {
    assertKind(serverError, expected, context);
    if (position < layout[1].start) rejection(clientResult);
  }
}

const CLIENT_FRAMES: Layout = [
  {
    start: 0,
    size: CLIENT_HELLO_BYTES,
    preamble: true,
    keyIdAt: CLIENT_HELLO_FIXED_BYTES - 1,
  },
  {
    start: 8 + 4 + CLIENT_HELLO_BYTES,
    size: CLIENT_FINISHED_BYTES,
    preamble: false,
  },
];
const CLIENT_WRITES_BYTES = 8 + 4 + CLIENT_HELLO_BYTES + 4 +
  CLIENT_FINISHED_BYTES;
const SERVER_FRAMES: Layout = [{
  start: 0,
  size: SERVER_HELLO_BYTES,
  preamble: true,
}];
const SERVER_WRITES_BYTES = 8 + 4 + SERVER_HELLO_BYTES;

Deno.test("handshakeAsServer() fails typed on any flipped bit in any byte of the client preamble and ClientHello", async () => {
  await flipEveryByte(
    "client",
    { from: 0, to: CLIENT_FRAMES[1].start },
    CLIENT_FRAMES,
  );
});

Deno.test("handshakeAsServer() fails typed on any flipped bit in any byte of ClientFinished", async () => {
  await flipEveryByte(
    "client",
    { from: CLIENT_FRAMES[1].start, to: CLIENT_WRITES_BYTES },
    CLIENT_FRAMES,
  );
});

Deno.test("handshakeAsClient() fails typed on any flipped bit in any byte of the server preamble and ServerHello", async () => {
  await flipEveryByte(
    "server",
    { from: 0, to: SERVER_WRITES_BYTES },
    SERVER_FRAMES,
  );
});

Deno.test("handshakeAsServer() rejects a replayed client handshake with KeyRejectedError", async () => {
  const writes: Uint8Array[] = [];
  {
    await using pair = await tcpPair();
    await Promise.all([
      handshakeAsClient(recording(pair.client, writes), PSK),
      handshakeAsServer(framed(pair.server), PSK),
    ]);
  }
  const [hello, finished] = writes;
  assert.equal(finished.length, 4 + CLIENT_FINISHED_BYTES);

  await using pair = await tcpPair();
  const server = handshakeAsServer(framed(pair.server), PSK);
  await pair.client.write(hello);
  const reader = new FrameReader(pair.client);
  assert.deepEqual(await reader.readExact(8), encodePreamble());
  assert.equal((await reader.readFrame(512))?.length, SERVER_HELLO_BYTES);
  await pair.client.write(finished);
  await assert.rejects(server, KeyRejectedError);
  closeQuietly(pair.server);
  // The server has sent its preamble already: only the failure frame follows.
  assert.deepEqual(await reader.readFrame(512), Uint8Array.of(0x7f));
  assert.equal(await reader.readFrame(512), null);
});

Deno.test("handshakeAsServer() rejects an HTTP client with ProtocolError and answers one failure frame", async () => {
  await using pair = await tcpPair();
  const server = handshakeAsServer(framed(pair.server), PSK, {
    signal: AbortSignal.timeout(SAFETY_DEADLINE_MS),
  });
  await pair.client.write(utf8("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const error = await server.catch((error) => error);
  assertKind(error, ProtocolError, "server");
  assert.deepEqual(
    await serverOutput(pair),
    concatBytes(encodePreamble(), FAILURE_FRAME),
  );
});

Deno.test("handshakeAsServer() rejects random bytes with ProtocolError", async () => {
  for (let seed = 1; seed <= 5; seed++) {
    await using pair = await tcpPair();
    const server = handshakeAsServer(framed(pair.server), PSK, {
      signal: AbortSignal.timeout(SAFETY_DEADLINE_MS),
    });
    await pair.client.write(seededBytes(seed, 77));
    assertKind(
      await server.catch((error) => error),
      ProtocolError,
      `seed ${seed}`,
    );
  }
});

Deno.test("handshakeAsServer() rejects a version 1 client with UnsupportedVersionError naming both versions and tells its own", async () => {
  await using pair = await tcpPair();
  const server = handshakeAsServer(framed(pair.server), PSK);
  // A version 1 ClientHello: kind, nonce, share, no key id.
  const hello = concatBytes(
    Uint8Array.of(0x01),
    new Uint8Array(32),
    seededBytes(2, 32),
  );
  await pair.client.write(concatBytes(encodePreamble(1), encodeFrame(hello)));
  const error = await server.catch((error) => error);
  assert.ok(error instanceof UnsupportedVersionError);
  assert.match(error.message, /version 1\b.*version 2\b/);
  assert.deepEqual(
    await serverOutput(pair),
    concatBytes(encodePreamble(2), FAILURE_FRAME),
  );
});

Deno.test("handshakeAsClient() rejects a version 1 server with UnsupportedVersionError naming both versions", async () => {
  await using pair = await tcpPair();
  const client = handshakeAsClient(framed(pair.client), PSK);
  const reader = new FrameReader(pair.server);
  assert.deepEqual(await reader.readExact(8), encodePreamble(2));
  assert.equal((await reader.readFrame(512))?.length, CLIENT_HELLO_BYTES);
  // What a version 1 server answers a preamble it does not speak.
  await pair.server.write(concatBytes(encodePreamble(1), FAILURE_FRAME));
  const error = await client.catch((error) => error);
  assert.ok(error instanceof UnsupportedVersionError);
  assert.match(error.message, /version 1\b.*version 2\b/);
  // The client has sent its preamble already: only the failure frame follows.
  assert.deepEqual(await reader.readFrame(512), Uint8Array.of(0x7f));
});

Deno.test("handshakeAsClient() rejects a failure frame in place of ServerHello with ProtocolError", async () => {
  await using pair = await tcpPair();
  const client = handshakeAsClient(framed(pair.client), PSK);
  await pair.server.write(concatBytes(encodePreamble(), FAILURE_FRAME));
  assertKind(await client.catch((error) => error), ProtocolError, "client");
});

Deno.test("handshakeAsServer() rejects a small-order key share with ProtocolError", async () => {
  for (
    const share of [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))]
  ) {
    await using pair = await tcpPair();
    const server = handshakeAsServer(framed(pair.server), PSK);
    const hello = concatBytes(
      Uint8Array.of(0x01),
      new Uint8Array(32),
      share,
      Uint8Array.of(DEFAULT_KEY_ID.length),
      utf8(DEFAULT_KEY_ID),
    );
    await pair.client.write(concatBytes(encodePreamble(), encodeFrame(hello)));
    assertKind(
      await server.catch((error) => error),
      ProtocolError,
      "server",
    );
    assert.deepEqual(
      await serverOutput(pair),
      concatBytes(encodePreamble(), FAILURE_FRAME),
    );
  }
});

Deno.test("handshakeAsServer() rejects a 513-byte frame before reading it", async () => {
  await using pair = await tcpPair();
  const server = handshakeAsServer(framed(pair.server), PSK);
  // Only the header: a server that waited for the payload would see EOF.
  await pair.client.write(
    concatBytes(encodePreamble(), Uint8Array.of(0, 0, 2, 1)),
  );
  pair.client.closeWrite();
  assertKind(await server.catch((error) => error), ProtocolError, "server");
});

Deno.test("handshakeAsServer() rejects a ClientHello of the wrong size with ProtocolError", async () => {
  for (const size of [CLIENT_HELLO_BYTES - 1, CLIENT_HELLO_BYTES + 1]) {
    await using pair = await tcpPair();
    const server = handshakeAsServer(framed(pair.server), PSK);
    const hello = concatBytes(Uint8Array.of(0x01), seededBytes(size, size - 1));
    await pair.client.write(concatBytes(encodePreamble(), encodeFrame(hello)));
    assertKind(
      await server.catch((error) => error),
      ProtocolError,
      `${size} bytes`,
    );
  }
});

Deno.test("handshakeAsServer() fails with TimeoutError on a silent client and still sends the failure frame", async () => {
  await using pair = await tcpPair();
  await assert.rejects(
    handshakeAsServer(framed(pair.server), PSK, {
      signal: AbortSignal.timeout(SHORT_DEADLINE_MS),
    }),
    TimeoutError,
  );
  assert.deepEqual(
    await serverOutput(pair),
    concatBytes(encodePreamble(), FAILURE_FRAME),
  );
});

Deno.test('handshakeAsClient() fails with ProtocolError "no doorman reply" on a silent server', async () => {
  await using pair = await tcpPair();
  await assert.rejects(
    handshakeAsClient(framed(pair.client), PSK, {
      signal: AbortSignal.timeout(SHORT_DEADLINE_MS),
      server: "127.0.0.1:1",
    }),
    ProtocolError,
    "No doorman reply from 127.0.0.1:1; is this a doorman port?",
  );
});

Deno.test("handshakeAsServer() fails with TimeoutError on an aborted signal", async () => {
  await using pair = await tcpPair();
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(
    handshakeAsServer(framed(pair.server), PSK, { signal: controller.signal }),
    TimeoutError,
  );
});

Deno.test("handshakeAsClient() fails with ClosedError when the server closes before answering", async () => {
  await using pair = await tcpPair();
  const client = handshakeAsClient(framed(pair.client), PSK);
  closeQuietly(pair.server);
  await assert.rejects(client, ClosedError);
});

Deno.test("handshakeAsServer() fails with ClosedError when the client closes before ClientFinished", async () => {
  await using pair = await tcpPair();
  const server = handshakeAsServer(framed(pair.server), PSK);
  const reader = new FrameReader(pair.client);
  const hello = concatBytes(
    Uint8Array.of(0x01),
    new Uint8Array(32),
    seededBytes(3, 32),
    Uint8Array.of(DEFAULT_KEY_ID.length),
    utf8(DEFAULT_KEY_ID),
  );
  await pair.client.write(concatBytes(encodePreamble(), encodeFrame(hello)));
  assert.deepEqual(await reader.readExact(8), encodePreamble());
  assert.equal((await reader.readFrame(512))?.length, SERVER_HELLO_BYTES);
  closeQuietly(pair.client);
  await assert.rejects(server, ClosedError);
});
