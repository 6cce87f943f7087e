/**
 * Server parts: structured log events, written as one text or JSON line each.
 * `serve()` emits events to the `Logger` in its options; `lib/` never writes
 * to the console itself.
 *
 * Secrets stay out by construction: a {@link LogEvent} has no field meant
 * for a key, password, verifier, proof or frame, and a logger writes only
 * the fields listed there, so any other property is dropped. Values come
 * from peers (user names, reasons), so every value is escaped: no line can
 * hold a newline, another control character, or a bidi override.
 *
 * It deliberately does not buffer, rotate, filter by level or choose where
 * lines go: `write` does that.
 *
 * @module
 */

/**
 * The kinds of event the server logs, from `listening` to `shutdown`.
 *
 * @example Usage
 * ```ts
 * const failures: LogEventName[] = ["handshake_failed", "login_failed"];
 * ```
 */
export type LogEventName =
  | "listening"
  | "accepted"
  | "refused"
  | "handshake_failed"
  | "authenticated"
  | "login_succeeded"
  | "login_failed"
  | "penalty"
  | "limit"
  | "closed"
  | "shutdown"
  | "users_loaded"
  | "users_reload_failed"
  | "keys_loaded"
  | "keys_reload_failed"
  | "keys_revoked"
  | "user_upgraded"
  | "server_secret_created"
  | "warning"
  | "broker"
  | "config_reloaded"
  | "error"
  | "stream_opened"
  | "stream_refused"
  | "stream_failed"
  | "stream_closed";

/**
 * One event. No field may carry a secret: never put a key, password,
 * verifier, proof or raw frame in `reason` or `detail`.
 *
 * @example Usage
 * ```ts
 * const event: LogEvent = {
 *   event: "login_failed",
 *   conn: 7,
 *   peer: "192.0.2.1:50000",
 *   user: "bob",
 *   reason: "wrong password",
 * };
 * ```
 */
export interface LogEvent {
  /** What happened. */
  readonly event: LogEventName;
  /** The server's number for the connection. */
  readonly conn?: number;
  /** The peer, as `host:port`. */
  readonly peer?: string;
  /** The user name the peer gave (untrusted until `login_succeeded`). */
  readonly user?: string;
  /** The id of the key the session authenticated with. */
  readonly key?: string;
  /** The tunnel target a stream named. */
  readonly target?: string;
  /** Why, in a few words: `bad key`, `max startups`, `timeout`. */
  readonly reason?: string;
  /** A duration: penalty, delay or connection length. */
  readonly ms?: number;
  /** A count: users loaded, connections open. */
  readonly count?: number;
  /** An address the event is about: listening address, penalised source. */
  readonly address?: string;
  /** Free text, such as an error's message. */
  readonly detail?: string;
}

/**
 * Where events go: `createLogger` makes one, or implement `log` to send
 * events elsewhere.
 *
 * @example Usage
 * ```ts
 * const failures: LogEvent[] = [];
 * const logger: Logger = {
 *   log: (event) => {
 *     if (event.event === "login_failed") failures.push(event);
 *   },
 * };
 * ```
 */
export interface Logger {
  /**
   * Records one event; never throws for any value of its fields.
   *
   * @param event The event; fields other than those of {@link LogEvent} are
   *   dropped.
   */
  log(event: LogEvent): void;
}

/**
 * Options of {@link createLogger}. `format` and `write` are required.
 *
 * @example Usage
 * ```ts
 * const options: LoggerOptions = { format: "json", write: console.error };
 * ```
 */
export interface LoggerOptions {
  /**
   * `text`: `TIME EVENT key=value…`; `json`: one JSON object per line.
   * Required: there is no default.
   */
  format: "text" | "json";
  /**
   * Receives each line, without a trailing newline. Required: there is no
   * default.
   */
  write: (line: string) => void;
  /**
   * The clock.
   * @default {() => new Date()}
   */
  now?: () => Date;
}

/** The fields a logger writes after `time` and `event`, in this order. */
const FIELDS = [
  "conn",
  "peer",
  "user",
  "key",
  "target",
  "reason",
  "ms",
  "count",
  "address",
  "detail",
] as const;

/** Characters that make a text value quoted. */
const NEEDS_QUOTES_REGEXP = /[\s"=\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|^$/u;
/**
 * Characters JSON.stringify leaves raw but a line must not hold: C1
 * controls (NEL among them), DEL, line and paragraph separators, and format
 * characters (bidi overrides, zero-width spaces, BOM).
 */
const EXTRA_ESCAPES_REGEXP = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/**
 * A logger that writes one line per event, as text or JSON.
 *
 * Text: `2026-11-23T10:00:00.000Z accepted conn=3 peer=127.0.0.1:50000`,
 * then the present fields in the order of {@link LogEvent}; a value with
 * whitespace, `"`, `=`, `\` or a control or format character is quoted with
 * JSON string escaping. JSON: one object per line, `time` first, then
 * `event` and the present fields in the same order.
 *
 * @param options The format, the line sink and the clock.
 * @returns A logger.
 * @example Usage
 * ```ts
 * const logger = createLogger({ format: "text", write: console.log });
 * logger.log({ event: "accepted", conn: 3, peer: "127.0.0.1:50000" });
 * ```
 */
export function createLogger(options: LoggerOptions): Logger {
  const { format, write } = options;
  const now = options.now ?? (() => new Date());
  const formatLine = format === "json" ? formatJsonLine : formatTextLine;
  // A failed write (disk full, EPIPE on a closed stderr) drops the line and
  // is counted; the next line that gets through is preceded by the count.
  let dropped = 0;
  return Object.freeze({
    log(event: LogEvent): void {
      try {
        const time = now();
        if (dropped > 0) {
          write(formatLine(time, {
            event: "warning",
            count: dropped,
            detail: `${dropped} log lines dropped: write failed`,
          }));
          dropped = 0;
        }
        write(formatLine(time, event));
      } catch {
        dropped++;
      }
    },
  });
}

/** Options of {@link guardLogger}. */
export interface GuardLoggerOptions {
  /**
   * Sees every event before any is aggregated (the metrics count them all,
   * a flood included); a throw is counted in `dropped`.
   */
  observe?: (event: LogEvent) => void;
  /**
   * Events of these kinds from one address are aggregated.
   * @default {["refused", "handshake_failed", "limit"]}
   */
  aggregate?: readonly LogEventName[];
  /**
   * The aggregation window, in ms.
   * @default {10000}
   */
  windowMs?: number;
  /**
   * Events of one kind from one address passed through per window before
   * the rest are only counted.
   * @default {10}
   */
  passPerWindow?: number;
  /**
   * The clock, in ms.
   * @default {Date.now}
   */
  now?: () => number;
}

/** A logger that never throws and aggregates floods; see {@link guardLogger}. */
export interface GuardedLogger extends Logger {
  /** Events the inner logger threw on, so far. */
  readonly dropped: number;
  /**
   * Writes the summaries of windows that have ended (`serve()` calls it
   * every second, and with `all` at shutdown).
   *
   * @param options `all`: end every window now.
   */
  flush(options?: { all?: boolean }): void;
}

interface AggregateWindow {
  readonly event: LogEventName;
  readonly address: string;
  readonly startedAt: number;
  passed: number;
  held: number;
}

/**
 * Wraps a logger so that logging can never take the server down and a
 * flood cannot fill the disk: `log` never throws (an inner failure is
 * counted in `dropped`), and past `passPerWindow` events of one kind
 * (`refused`, `handshake_failed`) from one address in a window, the rest
 * become one summary line, `… N more from ADDR in the last 10 s`.
 *
 * @param logger The logger to guard.
 * @param options What to aggregate, the window, and the clock.
 * @returns The guarded logger.
 * @example Usage
 * ```ts
 * const logger = guardLogger(createLogger({ format: "text", write: console.log }));
 * logger.log({ event: "refused", peer: "192.0.2.7:4000", reason: "penalty" });
 * logger.flush({ all: true });
 * ```
 */
export function guardLogger(
  logger: Logger,
  options: GuardLoggerOptions = {},
): GuardedLogger {
  const aggregate = new Set(
    options.aggregate ?? ["refused", "handshake_failed", "limit"],
  );
  const windowMs = options.windowMs ?? 10_000;
  const passPerWindow = options.passPerWindow ?? 10;
  const now = options.now ?? Date.now;
  const windows = new Map<string, AggregateWindow>();
  let dropped = 0;
  const emit = (event: LogEvent) => {
    try {
      logger.log(event);
    } catch {
      dropped++;
    }
  };
  const summarise = (window: AggregateWindow) => {
    if (window.held === 0) return;
    emit({
      event: window.event,
      address: window.address,
      count: window.held,
      detail: `… ${window.held} more from ${window.address} in the last ${
        Math.round(windowMs / 1000)
      } s`,
    });
  };
  const flush = (flushOptions: { all?: boolean } = {}) => {
    const at = now();
    for (const [key, window] of windows) {
      if (flushOptions.all || at - window.startedAt >= windowMs) {
        windows.delete(key);
        summarise(window);
      }
    }
  };
  return {
    get dropped() {
      return dropped;
    },
    flush,
    log(event: LogEvent): void {
      if (options.observe) {
        try {
          options.observe(event);
        } catch {
          dropped++;
        }
      }
      if (!aggregate.has(event.event) || event.peer === undefined) {
        emit(event);
        return;
      }
      let address = event.address ?? hostOf(event.peer);
      let key = `${event.event} ${address}`;
      // A flood from many addresses shares one window past the bound.
      if (windows.size >= MAX_WINDOWS && !windows.has(key)) {
        address = "many addresses";
        key = `${event.event} *`;
      }
      const at = now();
      let window = windows.get(key);
      if (window !== undefined && at - window.startedAt >= windowMs) {
        windows.delete(key);
        summarise(window);
        window = undefined;
      }
      if (window === undefined) {
        window = {
          event: event.event,
          address,
          startedAt: at,
          passed: 0,
          held: 0,
        };
        windows.set(key, window);
      }
      if (window.passed < passPerWindow) {
        window.passed++;
        emit(event);
      } else {
        window.held++;
      }
    },
  };
}

/** Most addresses aggregated separately at once. */
const MAX_WINDOWS = 4096;

/** The host part of `host:port` or `[v6]:port`. */
function hostOf(peer: string): string {
  if (peer.startsWith("[")) {
    const end = peer.indexOf("]");
    return end === -1 ? peer : peer.slice(1, end);
  }
  const colon = peer.lastIndexOf(":");
  return colon === -1 || peer.indexOf(":") !== colon
    ? peer
    : peer.slice(0, colon);
}

/** A logger that drops every event. */
export const silentLogger: Logger = Object.freeze({
  log(_event: LogEvent): void {},
});

/**
 * A logger that keeps every event (a frozen copy) in `events`, for tests.
 *
 * @returns The logger and its list of events, oldest first.
 * @example Usage
 * ```ts
 * const logger = collectingLogger();
 * logger.log({ event: "listening", address: "127.0.0.1:4000" });
 * logger.events[0].event; // "listening"
 * ```
 */
export function collectingLogger(): Logger & { readonly events: LogEvent[] } {
  const events: LogEvent[] = [];
  return Object.freeze({
    events,
    log(event: LogEvent): void {
      events.push(Object.freeze({ ...event }));
    },
  });
}

function formatTextLine(time: Date, event: LogEvent): string {
  const parts = [time.toISOString(), formatTextValue(event.event)];
  for (const field of FIELDS) {
    const value = event[field];
    if (value !== undefined) parts.push(`${field}=${formatTextValue(value)}`);
  }
  return parts.join(" ");
}

function formatTextValue(value: string | number): string {
  const text = String(value);
  return NEEDS_QUOTES_REGEXP.test(text) ? escapeJson(text) : text;
}

function formatJsonLine(time: Date, event: LogEvent): string {
  const record: Record<string, string | number> = {
    time: time.toISOString(),
    event: String(event.event),
  };
  for (const field of FIELDS) {
    const value = event[field];
    if (value !== undefined) {
      record[field] = typeof value === "number" ? value : String(value);
    }
  }
  return JSON.stringify(record).replace(EXTRA_ESCAPES_REGEXP, escapeCodePoint);
}

/** `text` as a JSON string literal that is safe on one line. */
function escapeJson(text: string): string {
  return JSON.stringify(text).replace(EXTRA_ESCAPES_REGEXP, escapeCodePoint);
}

/** `\uXXXX` escapes (a surrogate pair above U+FFFF) of one code point. */
function escapeCodePoint(char: string): string {
  let out = "";
  for (let i = 0; i < char.length; i++) {
    out += `\\u${char.charCodeAt(i).toString(16).padStart(4, "0")}`;
  }
  return out;
}
