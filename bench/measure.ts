/**
 * The bench's trials: a warm-up, then measured runs of every system
 * interleaved (doorman, baseline, peers, doorman, ...), so that whatever
 * else the machine is doing weighs on all of them alike. Around each run it
 * reads the server's CPU time, this process's (the load generator's), and
 * the whole machine's, so a figure says which side was busy and how much of
 * the machine other work took. A run during which other work took more than
 * `maxOtherCores` is retried (bounded in count and time) and left out of
 * the median when enough quiet runs exist.
 *
 * @module
 */

import process from "node:process";
import { machineBusyUs, type ProcessStats } from "./processes.ts";
import type { Count, MeasureHooks } from "./workloads.ts";

/** One measured figure: the median of the runs, and where time went. */
export interface Figure {
  /** The median of the runs kept. */
  value: number;
  /** Every measured run, in order (kept or not). */
  trials: number[];
  /** Server CPU time per operation, in µs (median over the runs kept). */
  serverCpuUsPerOp: number;
  /** Server CPU time over wall time: 1 = one core busy. */
  serverCores: number;
  /** The load generator's CPU time over wall time (this process). */
  clientCores: number;
  /** CPU time of everything else on the machine over wall time. */
  otherCores: number;
  /** True if too few runs were quiet and busy ones were kept. */
  contended?: boolean;
  /** Further figures of this workload (establish time, heap, ...). */
  extra?: Record<string, number>;
}

/** A system that could not run, and why. */
export interface Skipped {
  skipped: string;
}

/** Where the server side's CPU time and memory are read. */
export type StatsSource = () => Promise<ProcessStats>;

/** One system in a comparison. */
export interface Contender {
  readonly name: string;
  /**
   * Runs the workload for about `durationMs`; it may call `hooks` around
   * its measured part, else the whole call is measured.
   */
  run(durationMs: number, hooks: MeasureHooks): Promise<Count>;
  readonly stats: StatsSource;
  /** A helper process on the client side (spiped -e), counted as client. */
  readonly clientStats?: StatsSource;
}

/** How to run and judge the trials. */
export interface TrialOptions {
  trials: number;
  trialMs: number;
  warmupMs: number;
  /** Runs with more CPU taken by other work than this are retried. */
  maxOtherCores: number;
  /** Time left for retries, shared by the whole run and spent here. */
  retryBudget: { remainingMs: number };
  /** The figure of one run. */
  value(count: Count): number;
  format(value: number): string;
  progress(line: string): void;
}

interface Sample {
  value: number;
  cpuPerOp: number;
  serverCores: number;
  clientCores: number;
  otherCores: number;
}

/**
 * Measures every contender on the same workload, runs interleaved.
 *
 * @returns A figure per contender name, or why it could not run.
 */
export async function measureInterleaved(
  step: string,
  contenders: Contender[],
  options: TrialOptions,
): Promise<Record<string, Figure | Skipped>> {
  const out: Record<string, Figure | Skipped> = {};
  const samples = new Map<string, Sample[]>();
  options.progress(
    `${step}: measuring ${
      contenders.map((contender) => contender.name).join(", ")
    } (${options.trials} runs of ${options.trialMs} ms each, interleaved)`,
  );
  const live: Contender[] = [];
  for (const contender of contenders) {
    try {
      await contender.run(options.warmupMs, NO_HOOKS);
      samples.set(contender.name, []);
      live.push(contender);
    } catch (error) {
      out[contender.name] = skip(options, step, contender.name, error);
    }
  }
  const quiet = (name: string) =>
    (samples.get(name) ?? []).filter((sample) =>
      sample.otherCores <= options.maxOtherCores
    ).length;
  for (let attempt = 0; attempt < options.trials * 2; attempt++) {
    const retry = attempt >= options.trials;
    if (retry && options.retryBudget.remainingMs <= 0) break;
    const pending = live.filter((contender) =>
      !(contender.name in out) && quiet(contender.name) < options.trials
    );
    if (pending.length === 0) break;
    const roundStart = performance.now();
    for (const contender of pending) {
      try {
        samples.get(contender.name)?.push(await runTrial(contender, options));
      } catch (error) {
        out[contender.name] = skip(options, step, contender.name, error);
      }
    }
    if (retry) {
      options.retryBudget.remainingMs -= performance.now() - roundStart;
    }
  }
  for (const contender of live) {
    if (contender.name in out) continue;
    const figure = summarize(samples.get(contender.name) ?? [], options);
    out[contender.name] = figure;
    options.progress(describe(step, contender.name, figure, options.format));
  }
  return out;
}

interface Snapshot {
  wallMs: number;
  machineUs: number;
  serverUs: number;
  clientUs: number;
}

async function snapshot(contender: Contender): Promise<Snapshot> {
  const machineUs = await machineBusyUs();
  const server = await contender.stats();
  const helper = await contender.clientStats?.();
  const client = process.cpuUsage();
  return {
    wallMs: performance.now(),
    machineUs,
    serverUs: server.cpuUs,
    clientUs: client.user + client.system + (helper?.cpuUs ?? 0),
  };
}

async function runTrial(
  contender: Contender,
  options: TrialOptions,
): Promise<Sample> {
  let begin: Snapshot | null = null;
  let finish: Snapshot | null = null;
  const outerBegin = await snapshot(contender);
  const count = await contender.run(options.trialMs, {
    start: async () => {
      begin = await snapshot(contender);
    },
    end: async () => {
      finish = await snapshot(contender);
    },
  });
  const from = begin ?? outerBegin;
  const to = finish ?? await snapshot(contender);
  const wallUs = (to.wallMs - from.wallMs) * 1000;
  const serverUs = to.serverUs - from.serverUs;
  const clientUs = to.clientUs - from.clientUs;
  const machineUs = to.machineUs - from.machineUs;
  return {
    value: options.value(count),
    cpuPerOp: count.ops > 0 ? serverUs / count.ops : 0,
    serverCores: serverUs / wallUs,
    clientCores: clientUs / wallUs,
    otherCores: Math.max(0, machineUs - serverUs - clientUs) / wallUs,
  };
}

const NO_HOOKS: MeasureHooks = {
  start: () => Promise.resolve(),
  end: () => Promise.resolve(),
};

function summarize(all: Sample[], options: TrialOptions): Figure {
  const quiet = all.filter((sample) =>
    sample.otherCores <= options.maxOtherCores
  );
  const kept = quiet.length >= options.trials ? quiet : all;
  const figure: Figure = {
    value: median(kept.map((sample) => sample.value)),
    trials: all.map((sample) => sample.value),
    serverCpuUsPerOp: median(kept.map((sample) => sample.cpuPerOp)),
    serverCores: median(kept.map((sample) => sample.serverCores)),
    clientCores: median(kept.map((sample) => sample.clientCores)),
    otherCores: median(kept.map((sample) => sample.otherCores)),
  };
  if (kept !== quiet) figure.contended = true;
  return figure;
}

function describe(
  step: string,
  name: string,
  figure: Figure,
  format: (value: number) => string,
): string {
  return `${step} · ${name}: ${format(figure.value)} (runs ${
    figure.trials.map(format).join(", ")
  }; cores: server ${figure.serverCores.toFixed(2)}, client ${
    figure.clientCores.toFixed(2)
  }, others ${figure.otherCores.toFixed(2)}${
    figure.contended ? "; CONTENDED" : ""
  })`;
}

function skip(
  options: TrialOptions,
  step: string,
  name: string,
  error: unknown,
): Skipped {
  const reason = error instanceof Error ? error.message : String(error);
  options.progress(`${step} · ${name}: skipped: ${reason}`);
  return { skipped: reason };
}

/** The median (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((left, right) => left - right);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}
