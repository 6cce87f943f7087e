/**
 * Top layer (CLI): the scale-out flags of `server.ts serve`, turned into
 * `serve()` options and the pieces around the server: `--proxy-protocol-from`,
 * `--allow`/`--deny` (reloaded from `--config` on SIGHUP), `--metrics`
 * (the `/metrics` endpoint), `--broker` (chat through NATS), and the
 * worker flags (`--workers`, internal `--worker-index`).
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { parseAddressList, parseHostPort } from "../server/address.ts";
import { AddressFilter } from "../server/address_filter.ts";
import type { Logger } from "../server/log.ts";
import { createServerMetrics, type ServerMetrics } from "../server/metrics.ts";
import { type MetricsServer, serveMetrics } from "../server/metrics_http.ts";
import type { ServeOptions, Server, SessionHandler } from "../server/serve.ts";
import type { Session } from "../server/session.ts";
import { createChatService } from "../services/chat.ts";
import {
  type ChatBridge,
  connectChatBridge,
  parseBrokerUrl,
} from "../server/chat_bridge.ts";
import {
  connectPenaltyShare,
  type PenaltyShare,
} from "../server/penalty_share.ts";
import { configPath, flagsGiven, readConfigFile } from "./serve_config.ts";
import { parentGone } from "./workers.ts";

/** The scale-out flags, merged into `serve`'s option specs. */
export const SCALEOUT_OPTIONS = {
  "proxy-protocol-from": { type: "string", multiple: true },
  allow: { type: "string", multiple: true },
  deny: { type: "string", multiple: true },
  metrics: { type: "string" },
  broker: { type: "string" },
  "broker-penalties": { type: "boolean", default: false },
  "broker-room": { type: "string", default: "lobby" },
  workers: { type: "string", default: "1" },
  "worker-index": { type: "string" },
  config: { type: "string" },
  "print-config": { type: "boolean", default: false },
} as const;

/** Their lines in `server.ts serve --help`. */
export const SCALEOUT_USAGE = `
Running more than one (see README "Running more than one"):
  --config FILE            read flags from a TOML (or .json) file; keys are flag
                           names; flags on the command line win
  --print-config           print the effective configuration as TOML and exit
  --workers N              N processes share the port (Linux, SO_REUSEPORT; needs
                           --allow-run); caps are totals divided among workers,
                           penalties are per worker (default 1)
  --proxy-protocol-from LIST  load balancers (CIDR ranges) that must send a PROXY
                           protocol v1/v2 header; its client address is used
                           everywhere (default none)
  --allow LIST             only these addresses or CIDR ranges may connect
  --deny LIST              these may not (wins over --allow); both checked on the
                           real address before any crypto, reloaded from --config
                           on SIGHUP
  --metrics HOST:PORT      serve Prometheus metrics at http://HOST:PORT/metrics
                           (worker i uses PORT+i)
  --broker nats://HOST:PORT  bridge the chat room through NATS
  --broker-room NAME       the room's subject suffix (default lobby)
  --broker-penalties       share failed-login penalties with the other servers
                           and workers through the broker
  --worker-index N         internal: set by --workers for each worker`;

type Values = Record<string, string | boolean | string[] | undefined>;

/** The scale-out pieces of one running `serve`. */
export interface Scaleout {
  /** Options to spread into `serve()`. */
  readonly options: Partial<ServeOptions>;
  /** The logger, publishing penalties to the broker when they are shared. */
  readonly logger: Logger;
  /** The handler for `service`, bridged and counted. */
  handler(service: string, create: () => SessionHandler): SessionHandler;
  /** Starts the metrics endpoint once the server runs. */
  attach(server: Server): void;
  /** Resolves when this worker's parent is gone; never outside workers. */
  readonly parentGone: Promise<void>;
  /** SIGHUP: re-reads the allow/deny lists from the config file. */
  reload(): Promise<void>;
  /** Stops the endpoint and the bridge. */
  close(): Promise<void>;
}

/**
 * Reads a comma-separated, repeatable list flag.
 *
 * @throws {UsageError} If an entry is not an address or CIDR range.
 */
export function addressListFlag(values: Values, name: string): string[] {
  const entries = (values[name] as string[] | undefined ?? [])
    .flatMap((entry) => entry.split(","))
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  try {
    parseAddressList(entries);
  } catch (error) {
    throw new UsageError(`Cannot use --${name}: ${(error as Error).message}`);
  }
  return entries;
}

/**
 * Sets up the scale-out flags for one server process.
 *
 * @param values The parsed flags.
 * @param context The command line (for reloads) and the base logger.
 * @returns The pieces to wire into `serve()`.
 * @throws {UsageError} On a bad list, address or broker URL.
 */
export function setupScaleout(
  values: Values,
  context: {
    args: string[];
    logger: Logger;
    specs: Readonly<Record<string, { type: "string" | "boolean" }>>;
  },
): Scaleout {
  const filter = new AddressFilter({
    allow: addressListFlag(values, "allow"),
    deny: addressListFlag(values, "deny"),
  });
  const metricsAddress = values.metrics === undefined
    ? null
    : hostPort(String(values.metrics), "--metrics");
  const metrics: ServerMetrics | null = metricsAddress
    ? createServerMetrics()
    : null;
  let brokerServer: string | null = null;
  if (values.broker !== undefined) {
    try {
      brokerServer = parseBrokerUrl(String(values.broker));
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  if (values["broker-penalties"] && brokerServer === null) {
    throw new UsageError("Cannot use --broker-penalties without --broker");
  }
  const base = context.logger;
  let share: PenaltyShare | null = null;
  const logger: Logger = {
    log(event) {
      if (event.event === "penalty" && event.address !== undefined) {
        share?.publish(event.address);
      }
      base.log(event);
    },
  };
  if (values["broker-penalties"] && brokerServer !== null) {
    share = connectPenaltyShare({ server: brokerServer, logger });
  }
  let bridge: ChatBridge | null = null;
  const sessions = new Set<Session>();
  let endpoint: MetricsServer | null = null;
  return {
    options: {
      proxyProtocolFrom: addressListFlag(values, "proxy-protocol-from"),
      addressFilter: filter.empty
        ? filterIfReloadable(filter, context)
        : filter,
      metrics,
      reusePort: values["worker-index"] !== undefined,
      penaltyShare: share,
    },
    logger,
    parentGone: values["worker-index"] === undefined
      ? new Promise<void>(() => {})
      : parentGone().then(() =>
        logger.log({ event: "shutdown", reason: "parent process gone" })
      ),
    handler(service, create) {
      let handler = create();
      if (service === "chat" && values.broker !== undefined) {
        bridge = connectChatBridge({
          url: String(values.broker),
          room: String(values["broker-room"] ?? "lobby"),
          logger,
        });
        handler = createChatService({ bridge });
      }
      if (!metrics) return handler;
      const inner = handler;
      return async (session) => {
        sessions.add(session);
        metrics.sessions.inc(1, service);
        try {
          await inner(session);
        } finally {
          sessions.delete(session);
          metrics.sessions.dec(1, service);
        }
      };
    },
    attach(server) {
      if (!metrics || !metricsAddress) return;
      metrics.registry.gaugeFrom(
        "doorman_connections_open",
        "Connections open now.",
        () => server.connections,
      );
      metrics.registry.gaugeFrom(
        "doorman_queued_bytes",
        "Bytes queued to clients and not yet written.",
        () => {
          let total = 0;
          for (const session of sessions) total += session.queuedBytes;
          return total;
        },
      );
      endpoint = serveMetrics(metrics.registry, metricsAddress);
      logger.log({
        event: "listening",
        reason: "metrics",
        address: `${endpoint.addr.hostname}:${endpoint.addr.port}`,
      });
    },
    async reload() {
      const path = configPath(context.args);
      if (path === null) return;
      const given = flagsGiven(context.args);
      try {
        const file = await readConfigFile(path, context.specs);
        const list = (name: string) =>
          given.has(name)
            ? addressListFlag(values, name)
            : addressListFlag({ [name]: file.get(name) as string[] }, name);
        filter.update({ allow: list("allow"), deny: list("deny") });
        logger.log({ event: "config_reloaded", reason: "allow/deny lists" });
      } catch (error) {
        logger.log({
          event: "error",
          detail: `allow/deny lists not reloaded: ${(error as Error).message}`,
        });
      }
    },
    async close() {
      await endpoint?.shutdown();
      await (bridge as ChatBridge | null)?.close();
      await share?.close();
    },
  };
}

/** With a config file, an empty filter is still passed: SIGHUP may fill it. */
function filterIfReloadable(
  filter: AddressFilter,
  context: { args: string[] },
): AddressFilter | null {
  return configPath(context.args) === null ? null : filter;
}

/**
 * Parses `HOST:PORT` (`[::1]:9100` for IPv6).
 *
 * @throws {UsageError} If it is not that.
 */
export function hostPort(
  text: string,
  flag: string,
): { hostname: string; port: number } {
  const address = parseHostPort(text);
  if (address === null) {
    throw new UsageError(`Cannot use ${flag} "${text}": expected HOST:PORT`);
  }
  return address;
}
