/**
 * Top layer (CLI): `server.ts serve --workers N`. The parent starts N copies
 * of itself, each a full server listening on the same port with
 * `SO_REUSEPORT` (Linux spreads new connections across them), forwards
 * SIGINT, SIGTERM and SIGHUP to every worker, and prints one
 * `listening on HOST:PORT` line once all are ready.
 *
 * Each worker has its own caps and penalties: `--max-connections`,
 * `--max-total-queue-bytes` and `--max-startups` (both START and FULL of
 * `START:RATE:FULL`; RATE is a percentage and stays) are totals, divided
 * evenly (rounded up) among the workers; per-source and per-user caps and
 * penalties are per worker, so a guesser spread over N workers
 * gets up to N times the attempts before each refuses it. `--metrics
 * HOST:PORT` gives worker i the port PORT+i. If a worker dies, the others
 * are stopped and the exit code is the dead worker's (systemd restarts).
 *
 * Workers run with the parent's permissions except `--allow-run`, plus
 * `--unstable-net` (reusePort). Elsewhere than Linux, `--workers` above 1 is
 * a usage error (exit 2).
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { UsageError } from "../errors.ts";
import { type CommandIo, listenToSignals } from "./command_io.ts";
import { parseHostPort } from "../server/address.ts";
import { type MaxStartups, parseMaxStartups } from "../server/startups.ts";
import { positiveInteger } from "./flags.ts";
import { findKey } from "./key_source.ts";
import { configPath } from "./serve_config.ts";

/** What the parent needs from the parsed flags. */
export interface WorkerSettings {
  /** How many workers. */
  readonly workers: number;
  /** Total connection cap, divided among workers. */
  readonly maxConnections: number;
  /** Total startup caps (`START:RATE:FULL`), divided among workers. */
  readonly maxStartups: MaxStartups;
  /** Total bytes queued across all sessions, divided among workers. */
  readonly maxTotalQueueBytes?: number;
  /** `HOST:PORT` of the metrics endpoint, or undefined. */
  readonly metrics?: string;
  /**
   * Files the workers read (key, users, config), for a parent whose
   * `--allow-read`/`--allow-write` name paths: the workers get those of
   * them (and their folders) the parent may use.
   */
  readonly files?: readonly string[];
}

const LISTENING_REGEXP = /^listening on (.+):(\d+)$/;

/**
 * Runs the workers when `--workers` is above 1 and this process is not a
 * worker itself: creates the key file first if it is missing (so the
 * workers do not race to create it), then {@link runWorkers}.
 *
 * @param values The parsed `serve` flags.
 * @param context The command line as given (each worker reads any config
 *   file itself) and the console.
 * @returns The exit code, or `null` when this process should serve itself.
 * @throws {UsageError} On a bad `--workers`, `--max-connections` or
 *   `--max-startups`, off Linux, or without `--allow-run`.
 */
export async function runWorkersIfAsked(
  values: Record<string, string | boolean | string[] | undefined>,
  context: { args: string[]; io: CommandIo },
): Promise<number | null> {
  const count = (name: string) =>
    positiveInteger(String(values[name]), `--${name}`, { min: 1 });
  const workers = count("workers");
  if (workers === 1 || values["worker-index"] !== undefined) return null;
  const keyFile = values["key-file"];
  const files = [
    keyFile ?? "doorman.key",
    values.users,
    configPath(context.args),
  ]
    .filter((file): file is string => typeof file === "string")
    .map((file) => resolve(file));
  const settings = {
    workers,
    maxConnections: count("max-connections"),
    maxStartups: maxStartupsFlag(String(values["max-startups"])),
    maxTotalQueueBytes: count("max-total-queue-bytes"),
    metrics: values.metrics === undefined ? undefined : String(values.metrics),
    files,
  };
  // The same key check as serve's, once, before any worker starts.
  const key = await findKey(context.io, {
    keyFile: typeof keyFile === "string" ? keyFile : undefined,
    createIfMissing: true,
    strictMode: true,
  });
  if (key.created) {
    context.io.stderr(
      `server: created a new key file "${key.created}" (mode 0600); copy it to your clients`,
    );
  }
  return await runWorkers(context.args, settings, context.io);
}

/**
 * Runs N workers until a signal stops them, or one dies.
 *
 * @param args The command line the workers get (after `serve`), without
 *   the config expansion: each worker reads the config file itself.
 * @param settings The worker count, the caps to divide, the metrics address.
 * @param io Console.
 * @returns The exit code: 0 after a requested stop, else a dead worker's.
 * @throws {UsageError} Off Linux, or without permission to start processes.
 */
export async function runWorkers(
  args: string[],
  settings: WorkerSettings,
  io: CommandIo,
): Promise<number> {
  if (Deno.build.os !== "linux") {
    throw new UsageError(
      `Cannot use --workers ${settings.workers}: sharing a port (SO_REUSEPORT) is unsupported on ${Deno.build.os}`,
    );
  }
  if (Deno.permissions.querySync({ name: "run" }).state !== "granted") {
    throw new UsageError(
      "Cannot use --workers: the server needs --allow-run to start its workers",
    );
  }
  const perWorker = (total: number) => Math.ceil(total / settings.workers);
  const { start, rate, full } = settings.maxStartups;
  const common = [
    "--workers=1",
    `--max-connections=${perWorker(settings.maxConnections)}`,
    `--max-startups=${perWorker(start)}:${rate}:${perWorker(full)}`,
  ];
  if (settings.maxTotalQueueBytes !== undefined) {
    common.push(
      `--max-total-queue-bytes=${perWorker(settings.maxTotalQueueBytes)}`,
    );
  }
  const children: Deno.ChildProcess[] = [];
  const signals = forwardSignals(children);
  let listening: { host: string; port: string } | null = null;
  try {
    for (let index = 0; index < settings.workers; index++) {
      const extra = [...common, `--worker-index=${index}`];
      if (listening) extra.push(`--port=${listening.port}`);
      const metrics = metricsFor(settings.metrics, index);
      if (metrics) extra.push(`--metrics=${metrics}`);
      const child = spawnWorker([...args, ...extra], settings.files ?? []);
      children.push(child);
      const line = await readListeningLine(child);
      if (line === null) {
        const status = await child.status;
        await stopAll(children, "SIGTERM");
        if (signals.stopping) return 0; // Stopped while starting.
        return status.code === 0 ? 1 : status.code;
      }
      listening ??= line;
    }
    io.stdout(`listening on ${listening!.host}:${listening!.port}`);
    const first = await Promise.race(
      children.map((child, index) => child.status.then((s) => ({ s, index }))),
    );
    if (!signals.stopping) {
      io.stderr(
        `server: worker ${first.index} exited with code ${first.s.code}; stopping the others`,
      );
    }
    await stopAll(children, "SIGTERM");
    const codes = await Promise.all(children.map((c) => c.status));
    if (!signals.stopping) return first.s.code === 0 ? 1 : first.s.code;
    return codes.find((s) => s.code !== 0)?.code ?? 0;
  } finally {
    signals.remove();
    await stopAll(children, "SIGTERM");
  }
}

/**
 * Parses `--max-startups` (`N` or `START:RATE:FULL`).
 *
 * @param text The flag's value.
 * @returns The three numbers.
 * @throws {UsageError} Naming the flag, if the value is not valid.
 */
export function maxStartupsFlag(text: string): MaxStartups {
  try {
    return parseMaxStartups(text);
  } catch (error) {
    throw new UsageError(
      `Cannot use --max-startups: ${(error as Error).message}`,
    );
  }
}

/** The metrics address of worker `index`: the port plus the index. */
function metricsFor(metrics: string | undefined, index: number) {
  if (metrics === undefined) return undefined;
  const address = parseHostPort(metrics);
  // A malformed one is the worker's usage error; port 0 picks a free one.
  if (address === null || address.port === 0) return metrics;
  const colon = metrics.lastIndexOf(":");
  return `${metrics.slice(0, colon)}:${address.port + index}`;
}

/** Starts one worker: this program again, with the parent's permissions. */
function spawnWorker(
  args: string[],
  files: readonly string[],
): Deno.ChildProcess {
  const execPath = Deno.execPath();
  const isDeno = /(^|\/)deno(\.exe)?$/.test(execPath);
  const commandArgs = isDeno
    ? [
      "run",
      "--no-prompt",
      "--unstable-net",
      ...inheritedPermissions(files),
      Deno.mainModule,
      "serve",
      ...args,
    ]
    : ["serve", ...args];
  return new Deno.Command(execPath, {
    args: commandArgs,
    // Kept open and never written: a worker stops when it reads EOF, that
    // is when this process is gone, even by SIGKILL.
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

/**
 * Permission flags for a worker: what this process holds, minus run. Where
 * read or write is granted for some paths only, the worker gets those of
 * `files` and their folders that this process may use (the API cannot list
 * the granted paths themselves).
 */
function inheritedPermissions(files: readonly string[]): string[] {
  const granted = (descriptor: Deno.PermissionDescriptor) =>
    Deno.permissions.querySync(descriptor).state === "granted";
  const flags: string[] = [];
  for (const name of ["net", "sys", "ffi"] as const) {
    if (granted({ name })) flags.push(`--allow-${name}`);
  }
  const paths = [...new Set(files.flatMap((file) => [file, dirname(file)]))];
  for (const name of ["read", "write"] as const) {
    if (granted({ name })) {
      flags.push(`--allow-${name}`);
      continue;
    }
    const allowed = paths.filter((path) => granted({ name, path }));
    if (allowed.length) flags.push(`--allow-${name}=${allowed.join(",")}`);
  }
  if (granted({ name: "env" })) flags.push("--allow-env");
  else {
    const names = ["DOORMAN_KEY", "DOORMAN_PASSWORD"].filter((variable) =>
      granted({ name: "env", variable })
    );
    if (names.length) flags.push(`--allow-env=${names.join(",")}`);
  }
  return flags;
}

/** Reads the worker's stdout up to `listening on`; drains the rest. */
async function readListeningLine(
  child: Deno.ChildProcess,
): Promise<{ host: string; port: string } | null> {
  const lines = child.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  let buffered = "";
  while (true) {
    const { value, done } = await lines.read();
    if (done) return null;
    buffered += value;
    const newline = buffered.indexOf("\n");
    if (newline === -1) continue;
    const match = LISTENING_REGEXP.exec(buffered.slice(0, newline).trim());
    if (match === null) return null;
    // Keep draining so the worker never blocks on a full pipe.
    (async () => {
      while (!(await lines.read()).done) { /* discard */ }
    })().catch(() => {});
    return { host: match[1], port: match[2] };
  }
}

function forwardSignals(children: Deno.ChildProcess[]) {
  const state = { stopping: false, remove: () => {} };
  const listeners: [Deno.Signal, () => void][] = [
    ["SIGINT", () => {
      state.stopping = true;
      void stopAll(children, "SIGINT");
    }],
    ["SIGTERM", () => {
      state.stopping = true;
      void stopAll(children, "SIGTERM");
    }],
    ["SIGHUP", () => void stopAll(children, "SIGHUP", { wait: false })],
  ];
  state.remove = listenToSignals(listeners);
  return state;
}

async function stopAll(
  children: Deno.ChildProcess[],
  signal: Deno.Signal,
  options: { wait?: boolean } = {},
): Promise<void> {
  for (const child of children) {
    try {
      child.kill(signal);
    } catch {
      // Already exited.
    }
  }
  if (options.wait !== false) await Promise.all(children.map((c) => c.status));
}

/**
 * In a worker: resolves once the parent is gone (stdin, a pipe from the
 * parent, reaches its end), so a worker never outlives a killed parent.
 *
 * @returns A promise that resolves at EOF on stdin.
 */
export async function parentGone(): Promise<void> {
  const reader = Deno.stdin.readable.getReader();
  try {
    while (!(await reader.read()).done) { /* the parent never writes */ }
  } catch {
    // A read error means the pipe is gone too.
  } finally {
    reader.releaseLock();
  }
}
