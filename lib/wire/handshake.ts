/**
 * Layer 2, the mutual pre-shared-key handshake with forward secrecy (see
 * docs/PROTOCOL.md, "Handshake"). It puts on the wire the preamble, the
 * hellos, the server's and client's proofs and, on failure, one generic
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
  sha256,
  x25519SharedSecret,
} from "./crypto.ts";
import {
  ClosedError,
  KeyRejectedError,
  ProtocolError,
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
  deriveHandshakeSecret,
  deriveSessionKeys,
  encodePreamble,
  type SessionKeys,
} from "./key_schedule.ts";
import {
  CLIENT_FINISHED_BYTES,
  CLIENT_HELLO_BYTES,
  FAILURE_BYTES,
  HandshakeKind,
  KdfLabel,
  MAX_PREAUTH_FRAME_BYTES,
  MIN_PSK_BYTES,
  NONCE_BYTES,
  PREAMBLE_BYTES,
  PROOF_BYTES,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
  SERVER_HELLO_BYTES,
  SHARE_BYTES,
} from "./protocol.ts";

/** Options of both handshake roles. */
export interface HandshakeOptions {
  /** Aborting fails the handshake with a `TimeoutError`. */
  signal?: AbortSignal;
  /** Test vectors only: a fixed nonce and X25519 private key. */
  fixedRandom?: { nonce: Uint8Array; privateKey: Uint8Array };
}

/**
 * Runs the client side: sends preamble and ClientHello, checks the server's
 * proof, sends ClientFinished.
 *
 * @throws {KeyRejectedError} If the server's proof is wrong (keys differ).
 * @throws {ProtocolError} If the server is not doorman or breaks the protocol.
 * @throws {UnsupportedVersionError} If the server speaks another version.
 * @throws {RefusedError} If the server refused the connection (its reason
 *   and retry-after; docs/protocol/refusal.md).
 * @throws {TimeoutError} If `options.signal` aborts first.
 * @throws {ClosedError} If the server closes before answering (it may be
 *   at a connection limit, or refusing this address).
 */
export async function handshakeAsClient(
  framed: FramedConn,
  psk: Uint8Array,
  options: HandshakeOptions = {},
): Promise<SessionKeys> {
  checkPsk(psk);
  const state = { preambleSent: true };
  return await guard(framed, options.signal, state, async () => {
    const { nonce, keyPair } = ephemeral(options);
    const preamble = encodePreamble();
    const hello = concatBytes(
      Uint8Array.of(HandshakeKind.clientHello),
      nonce,
      keyPair.publicKey,
    );
    await writeAll(framed.conn, concatBytes(preamble, encodeFrame(hello)));

    const serverPreamble = await readPreamble(framed.reader, "Server");
    const serverHello = await readHandshakeFrame(
      framed.reader,
      HandshakeKind.serverHello,
      SERVER_HELLO_BYTES,
      "Server",
    );
    const proofStart = 1 + NONCE_BYTES + SHARE_BYTES;
    const serverShare = serverHello.subarray(1 + NONCE_BYTES, proofStart);
    const serverProof = serverHello.subarray(
      proofStart,
      proofStart + PROOF_BYTES,
    );
    const secret = deriveHandshakeSecret(
      psk,
      keyShareSecret(keyPair.privateKey, serverShare),
    );
    const upToServerProof = sha256(
      preamble,
      hello,
      serverPreamble,
      serverHello.subarray(0, proofStart),
    );
    const expected = computeProof(
      secret,
      KdfLabel.serverFinished,
      upToServerProof,
    );
    if (!constantTimeEqual(serverProof, expected)) {
      throw new KeyRejectedError(
        "Server key proof is wrong: the pre-shared keys differ",
      );
    }
    const upToClientProof = sha256(
      preamble,
      hello,
      serverPreamble,
      serverHello,
    );
    const finished = concatBytes(
      Uint8Array.of(HandshakeKind.clientFinished),
      computeProof(secret, KdfLabel.clientFinished, upToClientProof),
    );
    await writeAll(framed.conn, encodeFrame(finished));
    return deriveSessionKeys(
      secret,
      sha256(preamble, hello, serverPreamble, serverHello, finished),
    );
  });
}

/**
 * Runs the server side: reads preamble and ClientHello, answers with its
 * share and proof, checks the client's proof.
 *
 * @throws {KeyRejectedError} If the client's proof is wrong or the client
 *   rejected ours (keys differ).
 * @throws {ProtocolError} If the client is not doorman or breaks the protocol.
 * @throws {UnsupportedVersionError} If the client speaks another version.
 * @throws {TimeoutError} If `options.signal` aborts first.
 * @throws {ClosedError} If the client closes during the handshake.
 */
export async function handshakeAsServer(
  framed: FramedConn,
  psk: Uint8Array,
  options: HandshakeOptions = {},
): Promise<SessionKeys> {
  checkPsk(psk);
  const state = { preambleSent: false };
  return await guard(framed, options.signal, state, async () => {
    const clientPreamble = await readPreamble(framed.reader, "Client");
    const hello = await readHandshakeFrame(
      framed.reader,
      HandshakeKind.clientHello,
      CLIENT_HELLO_BYTES,
      "Client",
    );
    const { nonce, keyPair } = ephemeral(options);
    const secret = deriveHandshakeSecret(
      psk,
      keyShareSecret(keyPair.privateKey, hello.subarray(1 + NONCE_BYTES)),
    );
    const preamble = encodePreamble();
    const serverHelloStart = concatBytes(
      Uint8Array.of(HandshakeKind.serverHello),
      nonce,
      keyPair.publicKey,
    );
    const serverProof = computeProof(
      secret,
      KdfLabel.serverFinished,
      sha256(clientPreamble, hello, preamble, serverHelloStart),
    );
    const serverHello = concatBytes(serverHelloStart, serverProof);
    state.preambleSent = true;
    await writeAll(
      framed.conn,
      concatBytes(preamble, encodeFrame(serverHello)),
    );

    const finished = await readHandshakeFrame(
      framed.reader,
      HandshakeKind.clientFinished,
      CLIENT_FINISHED_BYTES,
      "Client",
    );
    const expected = computeProof(
      secret,
      KdfLabel.clientFinished,
      sha256(clientPreamble, hello, preamble, serverHello),
    );
    if (!constantTimeEqual(finished.subarray(1), expected)) {
      throw new KeyRejectedError(
        "Client key proof is wrong: the pre-shared keys differ",
      );
    }
    return deriveSessionKeys(
      secret,
      sha256(clientPreamble, hello, preamble, serverHello, finished),
    );
  });
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

async function readHandshakeFrame(
  reader: FrameReader,
  kind: number,
  size: number,
  peer: string,
): Promise<Uint8Array> {
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
  if (frame.length !== size || frame[0] !== kind) {
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
async function guard(
  framed: FramedConn,
  signal: AbortSignal | undefined,
  state: { preambleSent: boolean },
  steps: () => Promise<SessionKeys>,
): Promise<SessionKeys> {
  try {
    return await raceSignal(
      steps(),
      signal,
      "Cannot finish handshake: deadline passed",
    );
  } catch (error) {
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
