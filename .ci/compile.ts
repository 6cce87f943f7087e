/**
 * Release build (`deno task compile`): `deno compile` turns `server.ts` and
 * `client.ts` into standalone binaries, one per target, in `dist/`, then
 * writes `dist/SHA256SUMS` in the format `sha256sum -c` reads.
 *
 * Each binary gets exactly the permission flags of its `deno.json` task
 * (`serve` for the server, `client` for the client), parsed from the task
 * string, so `deno run` and the binaries share one permission list.
 *
 * It deliberately does not download anything itself: `deno compile` fetches
 * its `denort` base binary per target (or reads `DENORT_BIN`, host only).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import denoConfig from "../deno.json" with { type: "json" };

/** The targets built by default, as `deno compile --target` names them. */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

/** A target of {@link TARGETS}. */
export type Target = typeof TARGETS[number];

/** The two programs, each built from its script with its task's flags. */
export const PROGRAMS = {
  server: { task: "serve", script: "server.ts" },
  client: { task: "client", script: "client.ts" },
} as const;

/** `server` or `client`. */
export type Program = keyof typeof PROGRAMS;

/** Deno's variable naming a local `denort`, used for the host target only. */
export const DENORT_ENV_VAR = "DENORT_BIN";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const CHECKSUMS_FILE = "SHA256SUMS";
const BROAD_FLAGS = ["-A", "--allow-all"];

const USAGE =
  `Usage: deno task compile [--target T]... [--only server|client] [--out DIR]

Compiles server.ts and client.ts into standalone binaries named
doorman-<program>-<target> (.exe on Windows), each with exactly the
permission flags of its deno.json task (serve, client), then writes
DIR/SHA256SUMS for the files built (check with: sha256sum -c SHA256SUMS).

deno compile needs the denort base binary of each target: it downloads
it from dl.deno.land once (then uses Deno's cache), or reads ${DENORT_ENV_VAR}
(a local denort for the host target; with it set, only the host target is
built unless --target is given).

Flags:
  --target T    build for T; repeatable (default: all of
                ${TARGETS.join(",\n                ")})
  --only P      build only the server or only the client (default: both)
  --out DIR     the output directory (default: dist/ in the repository)
  -h, --help    print this help and exit

Exit codes: 0 built, 1 a build failed, 2 bad flags.`;

/**
 * The permission flags of a `deno run` task: the arguments between
 * `deno run` and the script.
 *
 * @param task A task string, `deno run --allow-net ... server.ts`.
 * @param script The script the task must run (`server.ts`).
 * @returns The flags, in task order.
 * @throws {SyntaxError} If the task is not `deno run FLAGS... script`, or
 *   grants everything (`-A`, `--allow-all`).
 */
export function parseTaskFlags(task: string, script: string): string[] {
  const words = task.trim().split(/\s+/);
  const scriptAt = words.findIndex((word, i) =>
    i >= 2 && !word.startsWith("-")
  );
  if (words[0] !== "deno" || words[1] !== "run" || words[scriptAt] !== script) {
    throw new SyntaxError(
      `Cannot parse task ${
        JSON.stringify(task)
      }: expected "deno run FLAGS... ${script}"`,
    );
  }
  const flags = words.slice(2, scriptAt);
  const broad = flags.find((flag) => BROAD_FLAGS.includes(flag));
  if (broad !== undefined) {
    throw new SyntaxError(
      `Cannot use task ${
        JSON.stringify(task)
      }: "${broad}" grants every permission`,
    );
  }
  return flags;
}

/**
 * The permission flags baked into `program`: those of its `deno.json` task.
 *
 * @param program `server` (task `serve`) or `client` (task `client`).
 * @param tasks The `tasks` of `deno.json`; defaults to this repository's.
 * @returns The flags, e.g. `["--allow-net", "--allow-read", ...]`.
 * @throws {SyntaxError} If the task is missing or not `deno run FLAGS... script`.
 */
export function permissionFlags(
  program: Program,
  tasks: Record<string, string> = denoConfig.tasks,
): string[] {
  const { task, script } = PROGRAMS[program];
  const command = tasks[task];
  if (command === undefined) {
    throw new SyntaxError(`Cannot find task "${task}" in deno.json`);
  }
  return parseTaskFlags(command, script);
}

/**
 * The binary's file name: `doorman-server-x86_64-unknown-linux-gnu`, with
 * `.exe` for Windows targets.
 */
export function binaryName(program: Program, target: Target): string {
  const suffix = target.includes("windows") ? ".exe" : "";
  return `doorman-${program}-${target}${suffix}`;
}

/** Options of {@link compileArgs}. */
export interface CompileArgsOptions {
  /** The directory the binary is written to. */
  outDir: string;
  /** The `deno.json` tasks to take permissions from. @default this repository's */
  tasks?: Record<string, string>;
}

/**
 * The arguments of the `deno` process that compiles one binary.
 *
 * @param program `server` or `client`.
 * @param target The target to build for.
 * @param options Where the binary goes.
 * @returns `["compile", ...permissionFlags, "--target", target, "--output",
 *   path, script]`.
 * @throws {SyntaxError} If the program's task cannot be parsed.
 */
export function compileArgs(
  program: Program,
  target: Target,
  options: CompileArgsOptions,
): string[] {
  return [
    "compile",
    ...permissionFlags(program, options.tasks),
    "--target",
    target,
    "--output",
    join(options.outDir, binaryName(program, target)),
    join(REPO_ROOT, PROGRAMS[program].script),
  ];
}

/**
 * The host's target, if it is one of {@link TARGETS}.
 *
 * @returns The target name, or `undefined` (e.g. on musl Linux).
 */
export function hostTarget(): Target | undefined {
  return TARGETS.find((target) => target === Deno.build.target);
}

/**
 * The `sha256sum` line of a file: 64 hex digits, two spaces, its base name.
 *
 * @param path The file to hash.
 * @returns The line, without the newline.
 */
export async function checksumLine(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable.values({ preventCancel: true })) {
    hash.update(chunk);
  }
  return `${hash.digest("hex")}  ${basename(path)}`;
}

class UsageError extends Error {}
class BuildError extends Error {}

// `path` relative to the working directory when inside it, else absolute.
function displayPath(path: string): string {
  const local = relative(Deno.cwd(), path);
  return local.startsWith("..") ? path : local;
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split(
    "\n",
  )[0];
}

interface CompileFlags {
  targets: Target[];
  programs: Program[];
  outDir: string;
  help: boolean;
}

function parseCompileFlags(args: string[]): CompileFlags {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        target: { type: "string", multiple: true, default: [] },
        only: { type: "string" },
        out: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    throw new UsageError(`Cannot parse arguments: ${messageOf(error)}`);
  }
  for (const target of values.target) {
    if (!TARGETS.some((known) => known === target)) {
      throw new UsageError(
        `Cannot use --target "${target}": expected one of ${
          TARGETS.join(", ")
        }`,
      );
    }
  }
  const only = values.only;
  if (only !== undefined && only !== "server" && only !== "client") {
    throw new UsageError(
      `Cannot use --only "${only}": expected "server" or "client"`,
    );
  }
  if (values.out === "") {
    throw new UsageError("Cannot use --out: the path is empty");
  }
  return {
    targets: TARGETS.filter((target) => values.target.includes(target)),
    programs: only === undefined ? ["server", "client"] : [only],
    outDir: values.out === undefined
      ? join(REPO_ROOT, "dist")
      : resolve(values.out),
    help: values.help,
  };
}

// Which targets to build: those given, else the host alone with DENORT_BIN,
// else all.
function chooseTargets(
  given: Target[],
  denortBin: string | undefined,
): Target[] {
  if (given.length > 0) return given;
  if (denortBin === undefined) return [...TARGETS];
  const host = hostTarget();
  if (host === undefined) {
    throw new UsageError(
      `Cannot use ${DENORT_ENV_VAR}: this host (${Deno.build.target}) is not a release target`,
    );
  }
  console.error(
    `compile: ${DENORT_ENV_VAR} is set: building for the host target ${host} only (pass --target to choose)`,
  );
  return [host];
}

// The child's environment: no colours, and DENORT_BIN only for the host,
// since Deno would otherwise embed a host denort in another target's binary.
function childEnv(target: Target): Record<string, string> {
  const env = Deno.env.toObject();
  env.NO_COLOR = "1";
  if (target !== hostTarget()) delete env[DENORT_ENV_VAR];
  return env;
}

async function compileOne(
  program: Program,
  target: Target,
  outDir: string,
): Promise<string> {
  const path = join(outDir, binaryName(program, target));
  console.error(`compile: building ${displayPath(path)}`);
  const output = await new Deno.Command(Deno.execPath(), {
    args: compileArgs(program, target, { outDir }),
    cwd: REPO_ROOT,
    clearEnv: true,
    env: childEnv(target),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (output.success) return path;
  const text = new TextDecoder().decode(output.stderr) +
    new TextDecoder().decode(output.stdout);
  if (/Setting up base binary|denort/.test(text)) {
    throw new BuildError(
      `Cannot build: deno compile needs the denort base binary for ${target}; ` +
        `set ${DENORT_ENV_VAR} to a local denort, or run where dl.deno.land is reachable`,
    );
  }
  // Deno's own message, without its progress lines and backtrace.
  const detail = text.split(/\nStack backtrace:/)[0]
    .split("\n")
    .filter((line) =>
      line.trim() !== "" && !/^(Check|Compile|Download) /.test(line)
    )
    .join("\n");
  throw new BuildError(
    `Cannot build ${
      binaryName(program, target)
    }: deno compile exited ${output.code}` +
      (detail === "" ? "" : `:\n${detail}`),
  );
}

async function build(flags: CompileFlags): Promise<void> {
  const denortBin = Deno.env.get(DENORT_ENV_VAR) || undefined;
  const targets = chooseTargets(flags.targets, denortBin);
  const host = hostTarget();
  if (denortBin !== undefined && host !== undefined && targets.includes(host)) {
    try {
      await Deno.stat(denortBin);
    } catch (error) {
      throw new BuildError(
        `Cannot read ${DENORT_ENV_VAR} "${denortBin}": ${messageOf(error)}`,
      );
    }
  }
  await Deno.mkdir(flags.outDir, { recursive: true });
  // No checksums from an earlier build may outlive a failed one.
  const sumsPath = join(flags.outDir, CHECKSUMS_FILE);
  await Deno.remove(sumsPath).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  const built: string[] = [];
  for (const target of targets) {
    for (const program of flags.programs) {
      const path = await compileOne(program, target, flags.outDir);
      const { size } = await Deno.stat(path);
      console.error(
        `compile: wrote ${displayPath(path)} (${
          (size / 2 ** 20).toFixed(1)
        } MiB)`,
      );
      built.push(path);
    }
  }
  const lines = await Promise.all(built.map(checksumLine));
  await Deno.writeTextFile(sumsPath, lines.map((line) => `${line}\n`).join(""));
  console.error(
    `compile: wrote ${displayPath(sumsPath)} (${built.length} ${
      built.length === 1 ? "file" : "files"
    })`,
  );
}

/**
 * Runs the compile task.
 *
 * @param args The command-line arguments.
 * @returns The exit code: 0 built, 1 a build failed, 2 bad flags.
 */
export async function main(args: string[]): Promise<number> {
  try {
    const flags = parseCompileFlags(args);
    if (flags.help) {
      console.log(USAGE);
      return 0;
    }
    await build(flags);
    return 0;
  } catch (error) {
    // A bad deno.json task is a SyntaxError: one line, exit 1, as a build.
    if (
      !(error instanceof UsageError || error instanceof BuildError ||
        error instanceof SyntaxError)
    ) {
      throw error;
    }
    console.error(`compile: ${error.message}`);
    return error instanceof UsageError ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
