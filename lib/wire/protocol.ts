/**
 * Layer 0, the wire: every constant that appears on the wire or in the key
 * schedule, named as in `docs/PROTOCOL.md` (read that first; this file only
 * mirrors it). No I/O, no logic.
 *
 * @module
 */

/** ASCII "doorman": the first seven bytes each side sends. */
export const PROTOCOL_MAGIC: Uint8Array = new TextEncoder().encode("doorman");
/** The protocol version this code speaks: the eighth byte of the preamble. */
export const PROTOCOL_VERSION = 2;
/** Preamble: magic (7 bytes) then version (1 byte). */
export const PREAMBLE_BYTES = 8;

/** A frame is a 4-byte big-endian length, then that many payload bytes. */
export const FRAME_HEADER_BYTES = 4;
/** Largest frame payload accepted before the peer has logged in. */
export const MAX_PREAUTH_FRAME_BYTES = 512;
/** Default largest application message after login. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;
/** Largest value `maxMessageBytes` may be set to. */
export const MAX_MESSAGE_BYTES_LIMIT = 16 * 1024 * 1024;

/** Sizes of the handshake fields, in bytes. */
export const NONCE_BYTES = 32;
export const SHARE_BYTES = 32;
export const PROOF_BYTES = 32;
export const KEY_BYTES = 32;
/** Minimum pre-shared key length, in bytes. */
export const MIN_PSK_BYTES = 16;

/** Shortest key id, in bytes. */
export const MIN_KEY_ID_BYTES = 1;
/** Longest key id, in bytes. */
export const MAX_KEY_ID_BYTES = 64;
/** A key id: 1 to 64 bytes of `[A-Za-z0-9._-]`. */
export const KEY_ID_REGEXP = /^[A-Za-z0-9._-]{1,64}$/;
/** The id of a key written without one (a bare key, as in version 1). */
export const DEFAULT_KEY_ID = "default";

/** Handshake message kinds: the first byte of each handshake frame. */
export const HandshakeKind = {
  clientHello: 0x01,
  serverHello: 0x02,
  clientFinished: 0x03,
  /** The server refuses before any crypto (docs/PROTOCOL.md). */
  refusal: 0x7d,
  failure: 0x7f,
} as const;

/**
 * Frame payload sizes of the handshake messages, kind byte included. A
 * ClientHello is `CLIENT_HELLO_FIXED_BYTES` then the key id's bytes, so
 * 67 to 130 bytes.
 */
export const CLIENT_HELLO_FIXED_BYTES = 1 + NONCE_BYTES + SHARE_BYTES + 1;
export const SERVER_HELLO_BYTES = 1 + NONCE_BYTES + SHARE_BYTES + PROOF_BYTES;
export const CLIENT_FINISHED_BYTES = 1 + PROOF_BYTES;
export const FAILURE_BYTES = 1;

/** Labels of the key schedule (HKDF-Expand `info` prefixes, UTF-8). */
export const KdfLabel = {
  derived: "doorman v2 derived",
  serverFinished: "doorman v2 server finished",
  clientFinished: "doorman v2 client finished",
  clientToServer: "doorman v2 c2s key",
  serverToClient: "doorman v2 s2c key",
  scramBinding: "doorman v2 scram binding",
} as const;

/** Poly1305 tag appended to every record. */
export const TAG_BYTES = 16;
/** ChaCha20-Poly1305 nonce: 4 zero bytes then a 64-bit big-endian counter. */
export const RECORD_NONCE_BYTES = 12;

/** Record kinds: the first plaintext byte of every record. */
export const RecordKind = {
  /** Login step (SCRAM or legacy), body = step byte + UTF-8 text. */
  login: 0x01,
  /** Client to server: u32 id, then the message. */
  message: 0x10,
  /** Server to client: u32 id of the message answered, then the reply. */
  reply: 0x11,
  /** Server to client: u32 id of the message confirmed without a reply. */
  ack: 0x12,
  /** Server to client: an unsolicited message (chat from others). */
  push: 0x13,
  /**
   * Either way: several records sealed as one, body = per record a u16 BE
   * length, then its kind and body (docs/PROTOCOL.md).
   */
  batch: 0x14,
  /** Either way: are you there? body = 8 opaque bytes (docs/PROTOCOL.md). */
  ping: 0x20,
  /** Either way: the answer to a ping, body = the ping's 8 bytes. */
  pong: 0x21,
  /** Client to server: open a stream to a named target (docs/PROTOCOL.md, "Streams"). */
  streamOpen: 0x30,
  /** Server to client: the target is connected; stream bytes may flow. */
  streamOpened: 0x31,
  /** Either way: stream bytes, 1 to 65536 of them. */
  streamData: 0x32,
  /** Either way: the sender shut down its writing half (EOF). */
  streamEnd: 0x33,
  /** Either way: authenticated close, body = reason code + UTF-8 text. */
  close: 0x7e,
} as const;
/** Bytes of the u32 message id that follows `message`, `reply` and `ack`. */
export const MESSAGE_ID_BYTES = 4;
/** Record bytes around a message body: kind, id and tag. */
export const RECORD_OVERHEAD_BYTES = 1 + MESSAGE_ID_BYTES + TAG_BYTES;

/**
 * Reason codes carried by a `close` record: `Session.close` sends one,
 * `SessionEnd.code` and `Connection.closed` report one.
 *
 * @example Usage
 * ```ts ignore
 * await session.close(CloseCode.shuttingDown, "maintenance");
 * ```
 */
export const CloseCode = {
  /** A normal end, by either side. */
  normal: 0,
  /** The server is shutting down. */
  shuttingDown: 1,
  /** Unknown user or wrong password. */
  loginFailed: 2,
  /** The server has users, and the client sent a message without login. */
  loginRequired: 3,
  /** The client was silent past the server's idle timeout. */
  idleTimeout: 4,
  /** The client fell too far behind reading its messages. */
  tooSlow: 5,
  /** A message exceeded the server's `maxMessageBytes`. */
  messageTooLarge: 6,
  /** The peer broke the protocol. */
  protocolError: 7,
  /** The server's session handler threw. */
  handlerError: 8,
  /** The key this session authenticated with was removed from the ring. */
  keyRevoked: 9,
  /** The user was removed from the server's user file. */
  userRemoved: 10,
  /** The peer answered nothing, not even pings, for several ping intervals. */
  peerUnresponsive: 11,
  /** Past the server's per-user or per-source session cap. */
  tooManySessions: 12,
  /** Tunnels: the stream named a target the server does not offer. */
  targetUnknown: 16,
  /** Tunnels: the user (or key) may not use the target it named. */
  targetForbidden: 17,
  /** Tunnels: the server could not connect to the target. */
  targetUnreachable: 18,
  /** Tunnels: one end of the stream was reset or failed mid-stream. */
  streamAborted: 19,
} as const;
/**
 * One of the values of {@link CloseCode}.
 *
 * @example Usage
 * ```ts
 * const code: CloseCodeValue = CloseCode.tooSlow;
 * ```
 */
export type CloseCodeValue = typeof CloseCode[keyof typeof CloseCode];

/** Login steps: the first byte of a `login` record body. */
export const LoginStep = {
  /** C: SCRAM client-first-message. */
  clientFirst: 0x01,
  /** S: SCRAM server-first-message. */
  serverFirst: 0x02,
  /** C: SCRAM client-final-message. */
  clientFinal: 0x03,
  /** S: SCRAM server-final-message (`v=` on success, `e=` on failure). */
  serverFinal: 0x04,
  /** S: the user has a legacy md5 line; send the password. */
  legacyRequest: 0x05,
  /** C: the password, for a legacy md5 line only. */
  legacyPassword: 0x06,
  /** S: legacy login accepted (the line is now upgraded). */
  legacyAccepted: 0x07,
} as const;

/** Default deadline for handshake plus login. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
