/**
 * A fake `ClientIo` for in-process client tests: stdin from a string or a
 * stream, every output recorded, and `until()` to wait for the screen.
 *
 * @module
 */

import type { ClientIo } from "../../lib/cli/command_io.ts";

/** The pre-shared key the fake environment holds in `DOORMAN_KEY`. */
export const KEY = "0123456789abcdef".repeat(4);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface FakeIo extends ClientIo {
  readonly out: string[];
  readonly err: string[];
  readonly rawModes: boolean[];
  /** Everything written with `write` and `stdout`, in order. */
  screen(): string;
  /** Resolves once `screen()` satisfies `check`. */
  until(check: (screen: string) => boolean): Promise<void>;
}

export function fakeIo(options: {
  stdin?: string | ReadableStream<Uint8Array>;
  terminal?: boolean;
  env?: Record<string, string>;
  /** Whether stdout is a terminal. @default false */
  stdoutTerminal?: boolean;
  /** The terminal's width. @default unbounded */
  columns?: number;
}): FakeIo {
  const out: string[] = [];
  const err: string[] = [];
  const rawModes: boolean[] = [];
  let screen = "";
  const waiters: { check(s: string): boolean; resolve(): void }[] = [];
  const show = (text: string) => {
    screen += text;
    for (const waiter of waiters.splice(0)) {
      if (waiter.check(screen)) waiter.resolve();
      else waiters.push(waiter);
    }
  };
  const stdin = typeof options.stdin === "string" || !options.stdin
    ? ReadableStream.from([encoder.encode(options.stdin ?? "")])
    : options.stdin;
  return {
    out,
    err,
    rawModes,
    stdout: (line) => (out.push(line), show(`${line}\n`)),
    stderr: (line) => err.push(line),
    write: show,
    writeBytes: (bytes) => {
      const text = decoder.decode(bytes);
      for (const line of text.split("\n").slice(0, -1)) out.push(line);
      show(text);
    },
    stdoutIsTerminal: options.stdoutTerminal ?? false,
    columns: () => options.columns ?? Infinity,
    stdin,
    stdinIsTerminal: options.terminal ?? false,
    env: (name) => ({ DOORMAN_KEY: KEY, ...options.env })[name],
    setRaw: (raw) => rawModes.push(raw),
    screen: () => screen,
    until: (check) => {
      if (check(screen)) return Promise.resolve();
      // A safety net only: no assertion depends on it.
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      const timer = setTimeout(() => {
        reject(new Error(`Gave up waiting; screen: ${JSON.stringify(screen)}`));
      }, 30_000);
      waiters.push({ check, resolve: () => (clearTimeout(timer), resolve()) });
      return promise;
    },
  };
}
