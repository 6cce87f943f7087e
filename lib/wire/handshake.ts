/**
 * Layer 2, the mutual pre-shared-key handshake with forward secrecy (see
 * docs/PROTOCOL.md, "Handshake"). It puts on the wire the preamble, the
 * hellos (the ClientHello names the key by id, in clear), the server's and client's proofs and, on failure, one generic
 * failure frame; it returns the per-direction session keys. The design is
 * the TLS 1.3 PSK-DHE key schedule cut down to one suite: an early secret
 * from the PSK, a handshake secret from ephemeral X25519, Finished-style
 * HMAC proofs over the transcript hash with one key per direction, and
 * traffic keys bound to the whole transcript.
 *
 * It does not encrypt records (channel.ts) nor log users in (login.ts).
 *
 * @module
 */

import { concatBytes } from "./bytes.ts";
import {
  constantTimeEqual,
  generateX25519,
  randomBytes,
  x25519SharedSecret,
} from "./crypto.ts";
import {
  ClosedError,
  KeyRejectedError,
  ProtocolError,
  TimeoutError,
  UnsupportedVersionError,
} from "../errors.ts";
import { raceSignal } from "./deadline.ts";
import { parseRefusal } from "./refusal.ts";
import {
  encodeFrame,
  type FramedConn,
  type FrameReader,
  writeAll,
} from "./framing.ts";
import {
  computeProof,
  deriveEarlySalt,
  deriveHandshakeSecret,
  deriveSessionKeys,
  encodePreamble,
  type SessionKeys,
  Transcript,
} from "./key_schedule.ts";
import {
  CLIENT_FINISHED_BYTES,
  CLIENT_HELLO_FIXED_BYTES,
  DEFAULT_KEY_ID,
  FAILURE_BYTES,
  HandshakeKind,
  KdfLabel,
  KEY_BYTES,
  KEY_ID_REGEXP,
  MAX_KEY_ID_BYTES,
  MAX_PREAUTH_FRAME_BYTES,
  MIN_KEY_ID_BYTES,
  MIN_PSK_BYTES,
  NONCE_BYTES,
  PREAMBLE_BYTES,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
  SERVER_HELLO_BYTES,
  SHARE_BYTES,
} from "./protocol.ts";

/** A pre-shared key and its id: what a client holds, a ring entry. */
export interface HandshakeKey {
  /** The key id, 1 to 64 bytes of `[A-Za-z0-9._-]`; sent in clear. */
  readonly id: string;
  /** The key bytes, at least 16. */
  readonly psk: Uint8Array;
}

/**
 * Where the server's handshake finds the key for the id a client sent: a
 * key ring (lib/server/key_ring.ts), or a single key as id `default`.
 */
export interface KeyLookup<K extends HandshakeKey = HandshakeKey> {
  /**
   * The key with this id, or `undefined` if there is none.
   *
   * @param keyId The id from the ClientHello, already checked for syntax.
   */
  find(keyId: string): K | undefined;
  /**
   * A random key no client holds (at least 16 bytes), made once per ring:
   * an unknown id runs the whole handshake with it, so that it fails on
   * the same path, with the same work and frames, as a wrong key.
   */
  readonly decoy: Uint8Array;
  /**
   * `deriveEarlySalt(psk)` (key_schedule.ts) for a key this lookup
   * returned, or for its decoy, computed once per key. Optional: without
   * it the handshake derives the salt itself.
   *
   * @param psk A key's bytes, or the decoy.
   */
  earlySalt?(psk: Uint8Array): Uint8Array;
}

/** What the server's handshake returns: the session keys and whose key. */
export interface ServerSessionKeys<K extends HandshakeKey = HandshakeKey>
  extends SessionKeys {
  /** The ring entry the client proved it holds. */
  readonly key: K;
}

/** Options of both handshake roles. */
export interface HandshakeOptions {
  /** Aborting fails the handshake with a `TimeoutError`. */
  signal?: AbortSignal;
  /** Test vectors only: a fixed nonce and X25519 private key. */
  fixedRandom?: { nonce: Uint8Array; privateKey: Uint8Array };
  /** Client only: the server's `HOST:PORT`, for "no doorman reply" errors. */
  server?: string;
}

/**
 * Runs the client side: sends preamble and ClientHello (with the key id),
 * checks the server's proof, sends ClientFinished.
 *
 * @param framed The connection and its frame reader.
 * @param key The key and its id; bare bytes are id `default`.
 * @param options The deadline.
 * @returns The session keys.
 * @throws {KeyRejectedError} If the server's proof is wrong (keys differ,
 *   or the server has no key with this id).
 * @throws {ProtocolError} If the server is not doorman or breaks the protocol.
 * @throws {UnsupportedVersionError} If the server speaks another version.
 * @throws {RefusedError} If the server refused the connection (its reason
 *   and retry-after; docs/PROTOCOL.md).
 * @throws {TimeoutError} If `options.signal` aborts first.
 * @throws {ClosedError} If the server closes before answering (it may be
 *   at a connection limit, or refusing this address).
 * @throws {ProtocolError} "no doorman reply from HOST:PORT" when what came
 *   back (or nothing, by the deadline) is not a doorman preamble.
 * @throws {RangeError} If the key is shorter than 16 bytes or its id is
 *   malformed, before anything is sent.
 */
export async function handshakeAsClient(
  framed: FramedConn,
  key: Uint8Array | HandshakeKey,
  options: HandshakeOptions = {},
): Promise<SessionKeys> {
  const { id, psk } = key instanceof Uint8Array
    ? { id: DEFAULT_KEY_ID, psk: key }
    : key;
  checkPsk(psk);
  const keyId = encodeKeyId(id);
  const state = { preambleSent: true, replied: false, server: options.server };
  return await guard(framed, options.signal, state, async () => {
    const { nonce, keyPair } = ephemeral(options);
    const preamble = encodePreamble();
    const hello = concatBytes(
      Uint8Array.of(HandshakeKind.clientHello),
      nonce,
      keyPair.publicKey,
      Uint8Array.of(keyId.length),
      keyId,
    );
    await writeAll(framed.conn, concatBytes(preamble, encodeFrame(hello)));
    const transcript = new Transcript();
    transcript.append(preamble, hello);

    transcript.append(await readServerPreamble(framed.reader, options));
    state.replied = true;
    const serverHello = await readHandshakeFrame(
      framed.reader,
      HandshakeKind.serverHello,
      "Server",
    );
    const proofStart = 1 + NONCE_BYTES + SHARE_BYTES;
    const serverShare = serverHello.subarray(1 + NONCE_BYTES, proofStart);
    const serverProof = serverHello.subarray(proofStart);
    const secret = deriveHandshakeSecret(
      psk,
      keyShareSecret(keyPair.privateKey, serverShare),
    );
    const expected = computeProof(
      secret,
      KdfLabel.serverFinished,
      transcript.hash(serverHello.subarray(0, proofStart)),
    );
    if (!constantTimeEqual(serverProof, expected)) {
      throw new KeyRejectedError(
        "Server key proof is wrong: the pre-shared keys differ",
      );
    }
    transcript.append(serverHello);
    const finished = concatBytes(
      Uint8Array.of(HandshakeKind.clientFinished),
      computeProof(secret, KdfLabel.clientFinished, transcript.hash()),
    );
    await writeAll(framed.conn, encodeFrame(finished));
    transcript.append(finished);
    return deriveSessionKeys(secret, transcript.hash());
  });
}

/**
 * Runs the server side: reads preamble and ClientHello, looks up the key
 * id, answers with its share and proof, checks the client's proof.
 *
 * An id the server does not know takes exactly the path of a wrong key:
 * the server runs the DH and proofs with `keys.decoy`, sends a ServerHello
 * of the same size, and fails with the same `KeyRejectedError` (and the
 * same failure frame) when the client's proof cannot match.
 *
 * @param framed The connection and its frame reader.
 * @param keys The key ring; bare bytes are a ring of one key, `default`.
 * @param options The deadline.
 * @returns The session keys and the ring entry used.
 * @throws {KeyRejectedError} If the client's proof is wrong or the client
 *   rejected ours (keys differ, or the id is unknown).
 * @throws {ProtocolError} If the client is not doorman or breaks the protocol.
 * @throws {UnsupportedVersionError} If the client speaks another version.
 * @throws {TimeoutError} If `options.signal` aborts first.
 * @throws {ClosedError} If the client closes during the handshake.
 */
export async function handshakeAsServer<K extends HandshakeKey>(
  framed: FramedConn,
  keys: Uint8Array | KeyLookup<K>,
  options: HandshakeOptions = {},
): Promise<ServerSessionKeys<K>> {
  // With bare bytes K is HandshakeKey itself: the cast only names that.
  const ring = keys instanceof Uint8Array
    ? singleKey(keys) as KeyLookup<K>
    : keys;
  const state = { preambleSent: false };
  return await guard(framed, options.signal, state, async () => {
    const transcript = new Transcript();
    transcript.append(await readPreamble(framed.reader, "Client"));
    const hello = await readHandshakeFrame(
      framed.reader,
      HandshakeKind.clientHello,
      "Client",
    );
    transcript.append(hello);
    // Known or not, the same work follows: only the key bytes differ.
    const key = ring.find(decodeKeyId(hello));
    const psk = key?.psk ?? ring.decoy;
    const { nonce, keyPair } = ephemeral(options);
    const shareEnd = 1 + NONCE_BYTES + SHARE_BYTES;
    const secret = deriveHandshakeSecret(
      psk,
      keyShareSecret(
        keyPair.privateKey,
        hello.subarray(1 + NONCE_BYTES, shareEnd),
      ),
      { earlySalt: ring.earlySalt?.(psk) },
    );
    const preamble = encodePreamble();
    transcript.append(preamble);
    const serverHelloStart = concatBytes(
      Uint8Array.of(HandshakeKind.serverHello),
      nonce,
      keyPair.publicKey,
    );
    const serverProof = computeProof(
      secret,
      KdfLabel.serverFinished,
      transcript.hash(serverHelloStart),
    );
    const serverHello = concatBytes(serverHelloStart, serverProof);
    transcript.append(serverHello);
    state.preambleSent = true;
    await writeAll(
      framed.conn,
      concatBytes(preamble, encodeFrame(serverHello)),
    );

    const finished = await readHandshakeFrame(
      framed.reader,
      HandshakeKind.clientFinished,
      "Client",
    );
    const expected = computeProof(
      secret,
      KdfLabel.clientFinished,
      transcript.hash(),
    );
    // `key === undefined` cannot pass the proof (nobody holds the decoy);
    // it is checked as well so that no bug can turn a decoy into a login.
    if (!constantTimeEqual(finished.subarray(1), expected) || !key) {
      throw new KeyRejectedError(
        "Client key proof is wrong: the pre-shared keys differ",
      );
    }
    transcript.append(finished);
    // Not a spread: that would read (and so derive) the lazy binding.
    return Object.assign(deriveSessionKeys(secret, transcript.hash()), {
      key,
    });
  });
}

/** A ring of one key, id `default`, as a bare key file makes. */
function singleKey(psk: Uint8Array): KeyLookup {
  checkPsk(psk);
  const key = { id: DEFAULT_KEY_ID, psk };
  const decoy = randomBytes(KEY_BYTES);
  const salts = new Map([psk, decoy].map((bytes) => [
    bytes,
    deriveEarlySalt(bytes),
  ]));
  return {
    find: (keyId) => keyId === DEFAULT_KEY_ID ? key : undefined,
    decoy,
    earlySalt: (bytes) => salts.get(bytes) ?? deriveEarlySalt(bytes),
  };
}

/** The id's bytes, checked: 1 to 64 of `[A-Za-z0-9._-]`. */
function encodeKeyId(id: string): Uint8Array {
  if (!KEY_ID_REGEXP.test(id)) {
    throw new RangeError(
      `Cannot use key id ${
        JSON.stringify(id)
      }: it must be ${MIN_KEY_ID_BYTES} to ${MAX_KEY_ID_BYTES} characters of A-Z a-z 0-9 . _ -`,
    );
  }
  return new TextEncoder().encode(id);
}

/**
 * The key id of a ClientHello whose length `readHandshakeFrame` checked:
 * `u8 length || id`, filling the rest of the frame.
 *
 * @throws {ProtocolError} If the length byte disagrees with the frame or
 *   the id has a byte outside `[A-Za-z0-9._-]`.
 */
function decodeKeyId(hello: Uint8Array): string {
  const length = hello[CLIENT_HELLO_FIXED_BYTES - 1];
  if (length !== hello.length - CLIENT_HELLO_FIXED_BYTES) {
    throw new ProtocolError(
      `Client sent an unexpected handshake message: key id length ${length} in a ${hello.length}-byte ClientHello`,
    );
  }
  const id = String.fromCharCode(...hello.subarray(CLIENT_HELLO_FIXED_BYTES));
  if (!KEY_ID_REGEXP.test(id)) {
    throw new ProtocolError(
      "Client sent an unexpected handshake message: malformed key id",
    );
  }
  return id;
}

function checkPsk(psk: Uint8Array): void {
  if (psk.length < MIN_PSK_BYTES) {
    throw new RangeError(
      `Cannot use pre-shared key: ${psk.length} bytes, at least ${MIN_PSK_BYTES} required`,
    );
  }
}

function ephemeral(options: HandshakeOptions) {
  const fixed = options.fixedRandom;
  return {
    nonce: fixed?.nonce ?? randomBytes(NONCE_BYTES),
    keyPair: generateX25519(fixed?.privateKey),
  };
}

function keyShareSecret(
  privateKey: Parameters<typeof x25519SharedSecret>[0],
  share: Uint8Array,
): Uint8Array {
  try {
    return x25519SharedSecret(privateKey, share);
  } catch (error) {
    throw new ProtocolError("Cannot complete handshake: bad key share", {
      cause: error,
    });
  }
}

/**
 * The server's preamble; anything else, even a short reply cut off, means
 * this is not a doorman port (whatever bytes came, the same answer).
 */
async function readServerPreamble(
  reader: FrameReader,
  options: HandshakeOptions,
): Promise<Uint8Array> {
  try {
    return await readPreamble(reader, "Server");
  } catch (error) {
    if (error instanceof UnsupportedVersionError) throw error;
    if (error instanceof ClosedError && reader.buffered === 0) throw error;
    throw noDoormanReply(options);
  }
}

// No cause: whatever came back (or the deadline) would only confuse.
function noDoormanReply(options: HandshakeOptions) {
  return new ProtocolError(
    `No doorman reply from ${options.server ?? "the server"}; ` +
      "is this a doorman port?",
  );
}

async function readPreamble(
  reader: FrameReader,
  peer: string,
): Promise<Uint8Array> {
  const preamble = await reader.readExact(PREAMBLE_BYTES);
  if (preamble === null) {
    throw new ClosedError(`${peer} closed the connection before the handshake`);
  }
  const magic = preamble.subarray(0, PROTOCOL_MAGIC.length);
  if (!magic.every((byte, i) => byte === PROTOCOL_MAGIC[i])) {
    throw new ProtocolError(
      `${peer} is not doorman: unexpected first bytes`,
    );
  }
  const version = preamble[PREAMBLE_BYTES - 1];
  if (version !== PROTOCOL_VERSION) {
    throw new UnsupportedVersionError(
      `${peer} speaks doorman protocol version ${version}; this side speaks version ${PROTOCOL_VERSION}`,
    );
  }
  return preamble;
}

/** Frame payload sizes each handshake kind may have, kind byte included. */
const HANDSHAKE_SIZES: Record<number, { min: number; max: number }> = {
  [HandshakeKind.clientHello]: {
    min: CLIENT_HELLO_FIXED_BYTES + MIN_KEY_ID_BYTES,
    max: CLIENT_HELLO_FIXED_BYTES + MAX_KEY_ID_BYTES,
  },
  [HandshakeKind.serverHello]: {
    min: SERVER_HELLO_BYTES,
    max: SERVER_HELLO_BYTES,
  },
  [HandshakeKind.clientFinished]: {
    min: CLIENT_FINISHED_BYTES,
    max: CLIENT_FINISHED_BYTES,
  },
};

async function readHandshakeFrame(
  reader: FrameReader,
  kind: number,
  peer: string,
): Promise<Uint8Array> {
  const size = HANDSHAKE_SIZES[kind];
  const frame = await reader.readFrame(MAX_PREAUTH_FRAME_BYTES);
  if (frame === null) {
    throw new ClosedError(`${peer} closed the connection during the handshake`);
  }
  if (frame.length === FAILURE_BYTES && frame[0] === HandshakeKind.failure) {
    if (kind === HandshakeKind.clientFinished) {
      throw new KeyRejectedError(
        "Client rejected the server's key proof: the pre-shared keys differ",
      );
    }
    throw new ProtocolError(`${peer} rejected the handshake`);
  }
  const refusal = kind === HandshakeKind.serverHello && parseRefusal(frame);
  if (refusal) throw refusal;
  if (
    frame.length < size.min || frame.length > size.max || frame[0] !== kind
  ) {
    throw new ProtocolError(
      `${peer} sent an unexpected handshake message: kind ${
        frame[0]
      }, ${frame.length} bytes`,
    );
  }
  return frame.slice();
}

/**
 * Runs `steps` under the deadline; on any failure sends the peer one generic
 * failure frame (preceded by our preamble if we had not sent it yet, so the
 * peer can tell our version), then rethrows. Closing the connection is the
 * caller's job.
 */
async function guard<T>(
  framed: FramedConn,
  signal: AbortSignal | undefined,
  state: { preambleSent: boolean; replied?: boolean; server?: string },
  steps: () => Promise<T>,
): Promise<T> {
  try {
    return await raceSignal(
      steps(),
      signal,
      "Cannot finish handshake: deadline passed",
    );
  } catch (caught) {
    // Client: silence until the deadline is no doorman reply either.
    const error = state.replied === false && caught instanceof TimeoutError
      ? noDoormanReply({ server: state.server })
      : caught;
    const failure = encodeFrame(Uint8Array.of(HandshakeKind.failure));
    const bytes = state.preambleSent
      ? failure
      : concatBytes(encodePreamble(), failure);
    try {
      await writeAll(framed.conn, bytes);
    } catch {
      // The peer may already be gone; the typed error already says why.
    }
    throw error;
  }
}
