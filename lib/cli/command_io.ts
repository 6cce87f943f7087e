/**
 * Top layer (CLI): `CommandIo`, everything a subcommand needs from the
 * outside world (output lines, stdin, the terminal, the environment), so
 * tests can pass a fake. `denoCommandIo` is the real one.
 *
 * This file does not parse flags or read passwords (`password_prompt.ts`).
 *
 * @module
 */

/** What a CLI subcommand reads from and writes to. */
export interface CommandIo {
  /** Writes one line of program output. */
  stdout(line: string): void;
  /** Writes one line of diagnostics. */
  stderr(line: string): void;
  /** The standard input bytes. */
  readonly stdin: ReadableStream<Uint8Array>;
  /** Whether stdin is a terminal (a hidden prompt is possible). */
  readonly stdinIsTerminal: boolean;
  /** An environment variable, or `undefined` if unset. */
  env(name: string): string | undefined;
  /** Writes `text` to stderr without a newline (a prompt). @default `stderr` */
  prompt?(text: string): void;
  /** Turns the terminal's raw mode on or off. @default do nothing */
  setRaw?(raw: boolean): void;
}

/**
 * The real `CommandIo`: the console, `Deno.stdin` and `Deno.env`.
 *
 * @returns A `CommandIo` bound to this process.
 * @example Usage
 * ```ts ignore
 * const code = await runUserCommand(["list"], denoCommandIo());
 * ```
 */
export function denoCommandIo(): CommandIo {
  const encoder = new TextEncoder();
  return {
    stdout: (line) => console.log(line),
    stderr: (line) => console.error(line),
    get stdin() {
      return Deno.stdin.readable;
    },
    get stdinIsTerminal() {
      return Deno.stdin.isTerminal();
    },
    env: (name) => Deno.env.get(name),
    prompt: (text) => {
      const bytes = encoder.encode(text);
      for (let offset = 0; offset < bytes.length;) {
        offset += Deno.stderr.writeSync(bytes.subarray(offset));
      }
    },
    setRaw: (raw) => Deno.stdin.setRaw(raw),
  };
}
