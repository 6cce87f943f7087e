/**
 * doorman: authenticated TCP servers and clients for Deno. A client proves
 * it holds the server's pre-shared key (and the server proves it back) in a
 * handshake with forward secrecy, every frame after it is encrypted, and
 * users log in with SCRAM-SHA-256 against a `userinfo` file.
 *
 * ```ts ignore
 * import { connect, echoService, serve } from "./mod.ts";
 *
 * const psk = new TextEncoder().encode("a shared secret of 16+ bytes");
 * const server = serve({ port: 0, psk }, echoService);
 * const conn = await connect({ port: server.addr.port, psk });
 * console.log(new TextDecoder().decode(await conn.request("hello")));
 * await conn.close();
 * await server.shutdown();
 * ```
 *
 * @module
 */

// Server: serve() runs a SessionHandler for each authenticated client.
export {
  serve,
  type ServeOptions,
  type Server,
  type SessionHandler,
} from "./lib/server/serve.ts";
export {
  type IncomingMessage,
  Session,
  type SessionCloseOptions,
  type SessionEnd,
} from "./lib/server/session.ts";
export { loadServerSecret } from "./lib/server/server_secret.ts";
export { CloseCode, type CloseCodeValue } from "./lib/wire/protocol.ts";
export { RefusalReason, type RefusalReasonValue } from "./lib/wire/refusal.ts";
// Tunnels: the targets serve() may forward streams to.
export {
  type ForwardFlags,
  type ForwardTarget,
  type ForwardTargets,
  mayUseTarget,
  parseForwardTargets,
  type StreamIdentity,
} from "./lib/server/forward_targets.ts";

// Client: connect() returns a Connection.
export { connect, type ConnectOptions } from "./lib/client/connect.ts";
export { Connection } from "./lib/client/connection.ts";
export type { CloseInfo } from "./lib/wire/channel.ts";

// Services: ready-made session handlers.
export {
  type ChatServiceOptions,
  createChatService,
} from "./lib/services/chat.ts";
export { echoService } from "./lib/services/echo.ts";
export { upperService } from "./lib/services/upper.ts";

// Scale-out: allow/deny lists, metrics, chat across servers through NATS.
export {
  AddressFilter,
  type AddressFilterLists,
} from "./lib/server/address_filter.ts";
export {
  type Counter,
  createServerMetrics,
  type Gauge,
  MetricsRegistry,
  type ServerMetrics,
} from "./lib/server/metrics.ts";
export { type MetricsServer, serveMetrics } from "./lib/server/metrics_http.ts";
export {
  connectPenaltyShare,
  type FailureRecorder,
  type PenaltyShare,
} from "./lib/server/penalty_share.ts";
export {
  type ChatBridge,
  type ChatBridgeOptions,
  connectChatBridge,
} from "./lib/server/chat_bridge.ts";

// Users: the userinfo file, and what serve() needs of it.
export {
  type UpgradeLegacyOptions,
  UserStore,
  type UserStoreEvent,
  type UserStoreOptions,
} from "./lib/users/user_store.ts";
export type { UserDirectory } from "./lib/login/login.ts";
export type { UserVerifier } from "./lib/users/userinfo.ts";
export type { ScramVerifier } from "./lib/login/scram.ts";

// Key: the pre-shared key file.
export { readKeyFile, writeNewKeyFile } from "./lib/key_file.ts";
export type { KeyEntry } from "./lib/key_file.ts";
export type { HandshakeKey, KeyLookup } from "./lib/wire/handshake.ts";
export { KeyRing } from "./lib/server/key_ring.ts";

// Logging.
export {
  createLogger,
  type LogEvent,
  type LogEventName,
  type Logger,
  type LoggerOptions,
} from "./lib/server/log.ts";

// Errors, and the exit code each one means.
export {
  ClosedError,
  ConnectionError,
  exitCodeFor,
  KeyRejectedError,
  LoginRejectedError,
  ProtocolError,
  RefusedError,
  TimeoutError,
  UnsupportedVersionError,
  UserinfoSyntaxError,
} from "./lib/errors.ts";
