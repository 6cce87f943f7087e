/**
 * Server parts: metrics in the Prometheus text exposition format (0.0.4).
 * A {@link MetricsRegistry} holds counters and gauges (at most one label
 * each) and renders them; {@link createServerMetrics} defines doorman's set
 * and {@link ServerMetrics.observe} turns log events into counts, so the
 * server core needs no metrics calls beyond the byte meters.
 *
 * Why not npm `prom-client` (15.1.3): it does run under Deno, and its
 * unlabelled `inc()` costs about as little (measured: 5.9 ns against 3.4 ns
 * per call), but a labelled `inc()` builds a key per call (292 ns against
 * 18 ns), it brings two packages, and its default registry is module state
 * (STYLE §4). The text format is three line shapes; writing it is smaller
 * than the dependency. It does no I/O: metrics_http.ts serves it.
 *
 * @module
 */

import type { LogEvent } from "./log.ts";

/** A value that only goes up, optionally split by one label. */
export interface Counter {
  /** Adds `n` (default 1) to the unlabelled value, or to `label`'s. */
  inc(n?: number, label?: string): void;
  /** The current value for `label` (or the unlabelled one). */
  value(label?: string): number;
}

/** A value that goes up and down, optionally split by one label. */
export interface Gauge extends Counter {
  /** Subtracts `n` (default 1). */
  dec(n?: number, label?: string): void;
  /** Sets the value. */
  set(n: number, label?: string): void;
}

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge";
  readonly labelName?: string;
  read(): Map<string, number>;
}

/**
 * How long an address counts as penalised after its last penalty: the
 * penalty box's default memory (`forgetAfterMs`), during which a new failure
 * doubles the delay.
 */
const PENALTY_MEMORY_MS = 600_000;
const NAME_REGEXP = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * Counters and gauges, rendered in the Prometheus text format.
 * State (the values) spans calls, hence a class.
 *
 * @example Usage
 * ```ts
 * const registry = new MetricsRegistry();
 * const logins = registry.counter("logins_total", "Logins.", "result");
 * logins.inc(1, "ok");
 * registry.render(); // "# HELP logins_total Logins.\n…"
 * ```
 */
export class MetricsRegistry {
  #metrics: Metric[] = [];

  /** Adds a counter; `labelName` splits it by one label. */
  counter(name: string, help: string, labelName?: string): Counter {
    return this.#add(name, help, "counter", labelName);
  }

  /** Adds a gauge; `labelName` splits it by one label. */
  gauge(name: string, help: string, labelName?: string): Gauge {
    return this.#add(name, help, "gauge", labelName);
  }

  /** Adds a gauge read at each render (connections open, queued bytes). */
  gaugeFrom(name: string, help: string, read: () => number): void {
    checkName(name);
    this.#metrics.push({
      name,
      help,
      type: "gauge",
      read: () => new Map([["", read()]]),
    });
  }

  /** The whole registry in the Prometheus text format, ending in a newline. */
  render(): string {
    const lines: string[] = [];
    for (const metric of this.#metrics) {
      lines.push(`# HELP ${metric.name} ${escapeHelp(metric.help)}`);
      lines.push(`# TYPE ${metric.name} ${metric.type}`);
      for (const [label, value] of metric.read()) {
        const labels = metric.labelName && label !== ""
          ? `{${metric.labelName}="${escapeLabel(label)}"}`
          : "";
        lines.push(`${metric.name}${labels} ${formatValue(value)}`);
      }
    }
    return lines.join("\n") + "\n";
  }

  #add(
    name: string,
    help: string,
    type: "counter" | "gauge",
    labelName?: string,
  ): Gauge {
    checkName(name);
    if (labelName !== undefined) checkName(labelName);
    let plain = 0;
    const labelled = new Map<string, number>();
    const add = (n: number, label?: string) => {
      if (label === undefined || labelName === undefined) plain += n;
      else labelled.set(label, (labelled.get(label) ?? 0) + n);
    };
    const metric: Gauge = {
      inc: (n = 1, label) => add(n, label),
      dec: (n = 1, label) => add(-n, label),
      set: (n, label) => {
        if (label === undefined || labelName === undefined) plain = n;
        else labelled.set(label, n);
      },
      value: (label) => label === undefined ? plain : labelled.get(label) ?? 0,
    };
    this.#metrics.push({
      name,
      help,
      type,
      labelName,
      read: () =>
        labelName === undefined || labelled.size === 0
          ? new Map([["", plain]])
          : new Map(labelled),
    });
    return metric;
  }
}

/**
 * doorman's metrics. The byte and frame counters are plain fields, added to
 * on every read and write; the rest follow the log events through
 * {@link ServerMetrics.observe}.
 */
export interface ServerMetrics {
  /** The registry, to render or to add gauges to. */
  readonly registry: MetricsRegistry;
  /** Bytes received from clients (after any PROXY header). */
  readonly bytesIn: Counter;
  /** Bytes sent to clients. */
  readonly bytesOut: Counter;
  /** Frames received: handshake, login and message records. */
  readonly framesIn: Counter;
  /** Frames sent. */
  readonly framesOut: Counter;
  /** Sessions running now, by service. */
  readonly sessions: Gauge;
  /** Tunnels open now (for the tunnels service to call). */
  readonly tunnelsOpen: Gauge;
  /** Bytes through tunnels, by direction (`in`, `out`). */
  readonly tunnelBytes: Counter;
  /** Counts one log event (accepted, refused, failures, logins, penalties). */
  observe(event: LogEvent): void;
}

/**
 * Creates doorman's metrics in a new registry.
 *
 * @param options `now` for the penalty gauge (tests).
 * @returns The metrics; serve `metrics.registry.render()`.
 * @example Usage
 * ```ts
 * const metrics = createServerMetrics();
 * metrics.observe({ event: "login_succeeded", user: "alice" });
 * metrics.registry.render().includes("doorman_logins_total{result=\"ok\"} 1"); // true
 * ```
 */
export function createServerMetrics(
  options: { now?: () => number } = {},
): ServerMetrics {
  const now = options.now ?? Date.now;
  const registry = new MetricsRegistry();
  const accepted = registry.counter(
    "doorman_connections_accepted_total",
    "Connections accepted (admitted to the handshake).",
  );
  const refused = registry.counter(
    "doorman_connections_refused_total",
    "Connections refused before any crypto, by reason.",
    "reason",
  );
  const handshakes = registry.counter(
    "doorman_handshakes_failed_total",
    "Handshakes failed, by reason.",
    "reason",
  );
  const logins = registry.counter(
    "doorman_logins_total",
    "Logins, by result (ok, failed).",
    "result",
  );
  const penaltyUntil = new Map<string, number>();
  registry.gaugeFrom(
    "doorman_penalties_active",
    "Addresses penalised for failed logins in the last 10 minutes.",
    () => {
      const time = now();
      for (const [address, until] of penaltyUntil) {
        if (until <= time) penaltyUntil.delete(address);
      }
      return penaltyUntil.size;
    },
  );
  const metrics: ServerMetrics = {
    registry,
    sessions: registry.gauge(
      "doorman_sessions",
      "Sessions running now, by service.",
      "service",
    ),
    bytesIn: registry.counter("doorman_bytes_in_total", "Bytes received."),
    bytesOut: registry.counter("doorman_bytes_out_total", "Bytes sent."),
    framesIn: registry.counter(
      "doorman_frames_in_total",
      "Frames received (handshake, login and message records).",
    ),
    framesOut: registry.counter(
      "doorman_frames_out_total",
      "Frames sent (handshake, login and message records).",
    ),
    tunnelsOpen: registry.gauge("doorman_tunnels_open", "Tunnels open now."),
    tunnelBytes: registry.counter(
      "doorman_tunnel_bytes_total",
      "Bytes through tunnels, by direction.",
      "direction",
    ),
    observe(event: LogEvent): void {
      switch (event.event) {
        case "accepted":
          accepted.inc();
          break;
        case "refused":
          refused.inc(1, refusalReason(event.reason ?? ""));
          break;
        case "handshake_failed":
          handshakes.inc(1, failureReason(event.reason ?? ""));
          break;
        case "login_succeeded":
          logins.inc(1, "ok");
          break;
        case "login_failed":
          logins.inc(1, "failed");
          break;
        case "penalty":
          if (event.address !== undefined && event.ms !== undefined) {
            const ms = Math.max(event.ms, PENALTY_MEMORY_MS);
            penaltyUntil.set(event.address, now() + ms);
          }
          break;
      }
    },
  };
  return metrics;
}

/** A label from a refusal's free-text reason: its words before any detail. */
function refusalReason(reason: string): string {
  const head = reason.split(/[:(]/)[0].trim().toLowerCase();
  return head.replaceAll(/[^a-z0-9]+/g, "_").slice(0, 40) || "other";
}

/** A handshake failure's reason as one of a few labels (bounded cardinality). */
function failureReason(reason: string): string {
  const text = reason.toLowerCase();
  if (text.includes("timed out") || text.includes("timeout")) return "timeout";
  if (text.includes("proxy")) return "proxy_header";
  if (text.includes("key") || text.includes("proof")) return "bad_key";
  if (text.includes("version")) return "version";
  if (text.includes("closed") || text.includes("reset")) return "closed";
  return "protocol";
}

function checkName(name: string): void {
  if (!NAME_REGEXP.test(name)) {
    throw new RangeError(
      `Cannot add metric: invalid name ${JSON.stringify(name)}`,
    );
  }
}

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function escapeLabel(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll(
    '"',
    '\\"',
  );
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
