/**
 * Top layer (CLI): the client's interactive mode, for people at a terminal.
 * A `>>> ` prompt with its own small line editor in raw mode, so messages
 * pushed by others (chat) and late replies are printed above the line being
 * typed without garbling it: clear the line (`\r\x1b[K`), print, redraw the
 * prompt and the partial input.
 *
 * `LineEditor` is pure (bytes in, events out) and tested without a
 * terminal. The editor handles printable characters (UTF-8), Backspace,
 * Ctrl-U, Enter, Ctrl-C and Ctrl-D on an empty line; it ignores other
 * control keys and escape sequences (arrows). There is no history and no
 * cursor movement. A line longer than the terminal wraps; every row of it
 * is cleared and redrawn.
 *
 * Lines starting with `/` are commands, run locally: `/help`, `/quit`; any
 * other `/word` is refused rather than sent (`//text` sends `/text`).
 * Received messages are shown through `sanitizeForTerminal`.
 *
 * @module
 */

import type { Connection } from "../client/connection.ts";
import type { ClientIo } from "./command_io.ts";
import { endError, watchEnd } from "./client_end.ts";
import { displayWidth, sanitizeForTerminal } from "./terminal_text.ts";

/** The prompt shown before the line being typed. */
export const PROMPT = ">>> ";

/** Shown once when the session starts. */
export const START_HINT =
  "Connected. Type a message and press Enter; /help lists commands; " +
  "/quit or Ctrl-D leaves.";

/** What `/help` prints. */
export const COMMANDS_HELP = [
  "Commands:",
  "  /help   show this list",
  "  /quit   leave (also Ctrl-D on an empty line, or Ctrl-C)",
  "  //text  send a message that starts with /",
  "Any other line is sent as a message.",
].join("\r\n");
const CTRL_C = 0x03;
const CTRL_D = 0x04;
const BACKSPACE = 0x08;
const LF = 0x0a;
const CR = 0x0d;
const CTRL_U = 0x15;
const ESC = 0x1b;
const DEL = 0x7f;

/** What a chunk of keystrokes asks for. */
export type EditorEvent =
  | { readonly kind: "submit"; readonly line: string }
  | { readonly kind: "quit" };

/**
 * A one-line editor fed raw terminal bytes. The text typed so far spans
 * chunks (and so may a UTF-8 character or an escape sequence), hence a
 * class.
 */
export class LineEditor {
  #text = "";
  #decoder = new TextDecoder();
  #escape: "none" | "esc" | "csi" | "ss3" = "none";
  #afterCr = false;

  /** The partial line typed so far. */
  get text(): string {
    return this.#text;
  }

  /**
   * Applies `bytes`; the text after the last event is {@link text}.
   *
   * @returns `submit` for each Enter, `quit` for Ctrl-C or Ctrl-D on an
   *   empty line (later bytes are then ignored).
   */
  feed(bytes: Uint8Array): EditorEvent[] {
    const events: EditorEvent[] = [];
    let printable = -1; // start of the current run of printable bytes
    const flush = (end: number) => {
      if (printable === -1) return;
      this.#text += this.#decoder.decode(bytes.subarray(printable, end), {
        stream: true,
      });
      printable = -1;
    };
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i];
      if (this.#skipEscape(byte)) continue;
      if (byte >= 0x20 && byte !== DEL) {
        if (printable === -1) printable = i;
        this.#afterCr = false;
        continue;
      }
      flush(i);
      this.#text += this.#decoder.decode(); // an unfinished character
      const event = this.#control(byte);
      if (event) events.push(event);
      if (event?.kind === "quit") return events;
    }
    flush(bytes.length);
    return events;
  }

  /** Consumes bytes of an escape sequence; `true` if `byte` was one. */
  #skipEscape(byte: number): boolean {
    switch (this.#escape) {
      case "esc":
        this.#escape = byte === 0x5b ? "csi" : byte === 0x4f ? "ss3" : "none";
        return true;
      case "csi":
        if (byte >= 0x40 && byte <= 0x7e) this.#escape = "none";
        return true;
      case "ss3":
        this.#escape = "none";
        return true;
      default:
        return false;
    }
  }

  #control(byte: number): EditorEvent | null {
    const afterCr = this.#afterCr;
    this.#afterCr = byte === CR;
    switch (byte) {
      case CR:
      case LF: {
        if (byte === LF && afterCr) return null; // CR LF is one Enter
        const line = this.#text;
        this.#text = "";
        return { kind: "submit", line };
      }
      case CTRL_C:
        return { kind: "quit" };
      case CTRL_D:
        return this.#text === "" ? { kind: "quit" } : null;
      case BACKSPACE:
      case DEL:
        this.#text = Array.from(this.#text).slice(0, -1).join("");
        return null;
      case CTRL_U:
        this.#text = "";
        return null;
      case ESC:
        this.#escape = "esc";
        return null;
      default:
        return null;
    }
  }
}

/** What a submitted line asks for: a message, or a local command. */
export type LineAction =
  | { readonly kind: "send"; readonly message: string }
  | { readonly kind: "quit" }
  | { readonly kind: "help" }
  | { readonly kind: "unknown"; readonly command: string };

/**
 * Reads a submitted line: `/quit`, `/help`, another `/word` (refused), or a
 * message (`//text` sends `/text`).
 *
 * @param line The line as typed.
 * @returns What to do with it.
 */
export function lineAction(line: string): LineAction {
  if (line.startsWith("//")) return { kind: "send", message: line.slice(1) };
  if (!line.startsWith("/")) return { kind: "send", message: line };
  const command = line.trim().split(/\s+/)[0];
  if (command === "/quit") return { kind: "quit" };
  if (command === "/help") return { kind: "help" };
  return { kind: "unknown", command };
}

/**
 * The escape sequence that clears an input line of `width` characters
 * drawn from column 0 on a terminal `columns` wide, leaving the cursor at
 * the start of its first row. Terminals defer the wrap at the last column,
 * so a full row does not count an extra one.
 *
 * @param width The characters shown (prompt included).
 * @param columns The terminal width.
 * @returns The sequence.
 */
export function clearInput(width: number, columns: number): string {
  const rows = Math.max(1, Math.ceil(width / Math.max(1, columns)));
  return rows > 1 ? `\r\x1b[${rows - 1}A\x1b[J` : "\r\x1b[J";
}

/**
 * Runs the interactive mode until `/quit`, Ctrl-C, Ctrl-D on an empty line
 * or the end of stdin, then closes once every message was confirmed.
 *
 * @throws {ClosedError} If the server ends the connection first.
 * @throws {Error} The first message that failed.
 */
export async function runInteractive(
  connection: Connection,
  io: ClientIo,
): Promise<void> {
  const editor = new LineEditor();
  const decoder = new TextDecoder();
  let active = true;
  let shownWidth = 0; // characters of the input line on screen
  const clear = () => clearInput(shownWidth, io.columns?.() ?? Infinity);
  const input = () => {
    shownWidth = PROMPT.length + displayWidth(editor.text);
    return `${PROMPT}${editor.text}`;
  };
  const show = (text: string) => {
    if (active) io.write(`${clear()}${text}\r\n${input()}`);
    else io.stdout(text);
  };
  const print = (data: Uint8Array) =>
    show(sanitizeForTerminal(decoder.decode(data)));
  let failure: Error | null = null;
  const outstanding = new Set<Promise<void>>();
  const reader = io.stdin.getReader();
  let connectionEnded = false;
  const ended = watchEnd(connection, print);
  const watching = ended.then(() => {
    connectionEnded = true;
    reader.cancel().catch(() => {}); // the pending read resolves as done
  });
  io.setRaw?.(true);
  let endedFirst = false;
  try {
    io.write(`${START_HINT}\r\n${input()}`);
    let quit = false;
    while (!quit && !connectionEnded) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const event of editor.feed(value)) {
        const action: LineAction = event.kind === "quit"
          ? event
          : lineAction(event.line);
        if (action.kind === "quit") {
          quit = true;
          break;
        }
        if (event.kind === "submit") {
          io.write(`${clear()}${PROMPT}${event.line}\r\n`);
          shownWidth = 0;
        }
        if (action.kind === "help") {
          show(COMMANDS_HELP);
        } else if (action.kind === "unknown") {
          show(
            `unknown command ${action.command} (not sent); /help lists ` +
              "commands, //text sends a line starting with /",
          );
        } else if (action.kind === "send") {
          const sending = connection.send(action.message)
            .then((reply) => {
              if (reply !== null) print(reply);
            })
            .catch((error) => {
              failure ??= error;
            });
          outstanding.add(sending);
          sending.finally(() => outstanding.delete(sending));
        }
      }
      if (!quit) io.write(`${clear()}${input()}`);
    }
    endedFirst = connectionEnded;
  } finally {
    active = false;
    io.write("\r\n");
    io.setRaw?.(false);
    reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  await Promise.all(outstanding);
  await connection.close();
  await watching;
  if (failure !== null) throw failure;
  if (endedFirst) throw await endError(connection, ended);
}
