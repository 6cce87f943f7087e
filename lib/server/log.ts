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
  | "user_upgraded"
  | "warning"
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
  /** The id of the key the client proved (tunnels log it). */
  readonly keyId?: string;
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
  "keyId",
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
  return Object.freeze({
    log(event: LogEvent): void {
      write(formatLine(now(), event));
    },
  });
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
