/**
 * Child processes of the bench, on the integration tests' process harness
 * (`tests/integration/server_process.ts`: `startListening`, `LineStream`):
 * the doorman, baseline or Deno TLS server
 * (`server_process.ts`), the Python peer, spiped. Each reports where it
 * listens and how much memory and CPU time it has used; each is disposable
 * and is stopped with its own pid only.
 *
 * @module
 */

import { toHex } from "../lib/wire/bytes.ts";
import {
  LineStream,
  startListening,
} from "../tests/integration/server_process.ts";
import { closeQuietly } from "./baseline.ts";

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const CLOCK_TICK_US = 10_000; // USER_HZ is 100 on Linux

/** Memory and CPU of a process (or a group of them), at one moment. */
export interface ProcessStats {
  /** Resident set size, in bytes. */
  rss: number;
  /** User plus system CPU time, in microseconds. */
  cpuUs: number;
  /** V8 heap in use, in bytes (bench servers only). */
  heapUsed?: number;
}

/** A running child. */
export interface Child extends AsyncDisposable {
  readonly pid: number;
  /** The port it listens on (0 if it prints none). */
  readonly port: number;
  /** Its stats now; `gc` asks a bench server to collect garbage first. */
  stats(options?: { gc?: boolean }): Promise<ProcessStats>;
}

/**
 * The next line of `lines` within `timeoutMs`.
 *
 * @throws {Error} If the child closed its output or stayed silent.
 */
async function lineWithin(
  lines: LineStream,
  timeoutMs: number,
): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const silent = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error("Child did not answer in time")),
      timeoutMs,
    );
  });
  try {
    const line = await Promise.race([lines.readLine(), silent]);
    if (line === null) throw new Error("Child closed its output");
    return line;
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@link startBenchServer}. */
export interface BenchServerOptions {
  mode: "doorman" | "baseline" | "denotls";
  /** Certificate and key files (denotls only). */
  tls?: { certFile: string; keyFile: string };
  service: "echo" | "sink" | "chat";
  /** The pre-shared key (doorman only). */
  psk: Uint8Array;
  /** A userinfo file: clients must log in. */
  users?: string;
  maxConnections?: number;
  maxStartups?: number;
}

/**
 * `--cpu-prof` flags when `BENCH_CPU_PROF` names a directory: each bench
 * server then writes a V8 CPU profile there when it exits.
 */
function profileFlags(): string[] {
  const dir = Deno.env.get("BENCH_CPU_PROF");
  return dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [];
}

/** Starts `server_process.ts` and waits for its `listening on` line. */
export async function startBenchServer(
  options: BenchServerOptions,
): Promise<Child> {
  const script = new URL("./server_process.ts", import.meta.url).pathname;
  const args = [
    "run",
    "--allow-net=127.0.0.1",
    "--allow-read",
    "--allow-env=BENCH_PSK",
    "--allow-sys",
    "--v8-flags=--expose-gc",
    ...profileFlags(),
    script,
    `--mode=${options.mode}`,
    `--service=${options.service}`,
    `--max-connections=${options.maxConnections ?? 12_000}`,
    `--max-startups=${options.maxStartups ?? 1024}`,
  ];
  if (options.users) args.push(`--users=${options.users}`);
  if (options.tls) {
    args.push(`--cert=${options.tls.certFile}`, `--key=${options.tls.keyFile}`);
  }
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: { BENCH_PSK: toHex(options.psk) },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = new LineStream(child.stdout);
  const stdin = child.stdin.getWriter();
  const encoder = new TextEncoder();
  const stop = async () => {
    await stdin.write(encoder.encode("quit\n")).catch(() => {});
    await stdin.close().catch(() => {});
    await waitOrKill(child);
  };
  return await readyChild(child, {
    ready: async () =>
      parseListening(await lineWithin(lines, START_TIMEOUT_MS)),
    async stats(statsOptions = {}) {
      await stdin.write(encoder.encode(statsOptions.gc ? "gc\n" : "stats\n"));
      const reply = JSON.parse(await lineWithin(lines, STOP_TIMEOUT_MS));
      return { rss: reply.rss, cpuUs: reply.cpuUs, heapUsed: reply.heapUsed };
    },
    stop,
  });
}

/**
 * Starts any program that prints `listening on HOST:PORT` (the Python peer)
 * with the integration tests' `startListening`; its stats come from /proc.
 */
export async function startListeningProgram(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Child> {
  const child = await startListening([command], args, { env });
  return {
    pid: child.pid,
    port: child.port,
    stats: () => procStats([child.pid]),
    async [Symbol.asyncDispose]() {
      await child.stop("SIGTERM");
    },
  };
}

/** Starts a program that prints nothing, then waits until `port` accepts. */
export async function startSilentProgram(
  command: string,
  args: string[],
  port: number,
): Promise<Child> {
  const child = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  return await readyChild(child, {
    ready: async () => {
      await waitForPort(port, START_TIMEOUT_MS);
      return port;
    },
    stats: () => procStats([child.pid]),
    stop: () => waitOrKill(child, { kill: true }),
  });
}

/**
 * `child` as a {@link Child} once `ready` gives the port it listens on;
 * stopped with `stop` on disposal, or at once if `ready` fails.
 */
async function readyChild(
  child: Deno.ChildProcess,
  how: {
    ready: () => Promise<number>;
    stats: Child["stats"];
    stop: () => Promise<void>;
  },
): Promise<Child> {
  try {
    return {
      pid: child.pid,
      port: await how.ready(),
      stats: how.stats,
      [Symbol.asyncDispose]: how.stop,
    };
  } catch (error) {
    await how.stop();
    throw error;
  }
}

/** A free port on 127.0.0.1 (free when asked; good enough for a bench). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/**
 * Sums RSS and CPU time of the given processes, from /proc (read through
 * `cat`: Deno allows /proc only with --allow-all).
 */
export async function procStats(pids: number[]): Promise<ProcessStats> {
  let rss = 0;
  let cpuUs = 0;
  for (const pid of pids) {
    const output = await new Deno.Command("cat", {
      args: [`/proc/${pid}/stat`, `/proc/${pid}/status`],
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(output.stdout);
    // stat's fields after the command name, which is in parentheses.
    const statLine = text.slice(0, text.indexOf("\n"));
    const fields = statLine.slice(statLine.lastIndexOf(")") + 2).split(" ");
    cpuUs += (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_US;
    const match = /VmRSS:\s+(\d+) kB/.exec(text);
    rss += match ? Number(match[1]) * 1024 : 0;
  }
  return { rss, cpuUs };
}

/**
 * CPU time spent by the whole machine (all processes, all cores) since
 * boot, in microseconds, from /proc/stat: to tell how much of the machine
 * other work took during a run.
 */
export async function machineBusyUs(): Promise<number> {
  const output = await new Deno.Command("cat", {
    args: ["/proc/stat"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const line = new TextDecoder().decode(output.stdout).split("\n")[0];
  // cpu user nice system idle iowait irq softirq steal ...
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] +
    (ticks[7] ?? 0);
  return busy * CLOCK_TICK_US;
}

/** Sums the stats of several children (a proxy chain). */
export async function sumStats(children: Child[]): Promise<ProcessStats> {
  const all = await Promise.all(children.map((child) => child.stats()));
  return {
    rss: all.reduce((sum, one) => sum + one.rss, 0),
    cpuUs: all.reduce((sum, one) => sum + one.cpuUs, 0),
  };
}

function parseListening(line: string): number {
  const match = /^listening on .*:(\d+)$/.exec(line.trim());
  if (!match) throw new Error(`Unexpected first line from child: ${line}`);
  return Number(match[1]);
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; attempt < 1000 && Date.now() < deadline; attempt++) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      closeQuietly(conn);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  throw new Error(`Nothing listens on port ${port}`);
}

async function waitOrKill(
  child: Deno.ChildProcess,
  options: { kill?: boolean } = {},
): Promise<void> {
  if (options.kill) {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = await Promise.race([
    child.status.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
  }
}
