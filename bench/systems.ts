/**
 * The systems under test and the plumbing every workload group shares:
 * starting doorman, the baseline and the peers (Deno TLS, Python, spiped) (each server in its own
 * process), measuring one row on them (`measure.ts` does the trials), and
 * filing the figures as a {@link Result}.
 *
 * @module
 */

import { connectRaw, type ServiceName } from "./baseline.ts";
import {
  type Contender,
  type Figure,
  measureInterleaved,
  type Skipped,
  type StatsSource,
} from "./measure.ts";
import {
  connectPython,
  type Python,
  startPythonServer,
  startSpiped,
} from "./peers.ts";
import { startBenchServer, sumStats } from "./processes.ts";
import { type Certificate, connectDenoTls } from "./tls.ts";
import type { SuiteSettings, WorkloadName } from "./settings.ts";
import {
  type Count,
  type Dial,
  doormanDial,
  type MeasureHooks,
} from "./workloads.ts";

/** Every figure of one workload, across systems. */
export interface Result {
  /** Stable key, e.g. `roundtrip_64`. */
  id: string;
  group: WorkloadName;
  /** Human label for the table. */
  label: string;
  unit: string;
  /** Lower is better (memory, time), instead of higher. */
  lowerIsBetter?: boolean;
  doorman: Figure;
  baseline: Figure | null;
  peers: Record<string, Figure | Skipped>;
  /** What the figure means, where the label cannot say it all. */
  note?: string;
}

/** What every workload group reads and adds to. */
export interface Context {
  readonly settings: SuiteSettings;
  readonly psk: Uint8Array;
  readonly authkey: Uint8Array;
  readonly dir: string;
  readonly progress: (line: string) => void;
  readonly results: Result[];
  readonly peersInfo: Record<string, string>;
  readonly retryBudget: { remainingMs: number };
  python: Python | Skipped | null;
  /** The Deno TLS peer's certificate, or why it is skipped. */
  certificate: Certificate | Skipped | null;
}

/** One system under test: how to connect, where its server's stats are. */
export interface System {
  readonly name: string;
  readonly dial: Dial;
  readonly stats: StatsSource;
  /** A helper process on the client side (spiped -e). */
  readonly clientStats?: StatsSource;
}

/**
 * Starts doorman and the baseline with `service`, and the asked peers
 * (spiped in front of a baseline server of its own, Python's echo server),
 * runs `body`, and stops them all.
 */
export async function withSystems<T>(
  ctx: Context,
  group: {
    service: ServiceName;
    python?: boolean;
    spiped?: boolean;
    denotls?: boolean;
  },
  body: (systems: System[], skipped: Record<string, Skipped>) => Promise<T>,
): Promise<T> {
  const stops: AsyncDisposable[] = [];
  const systems: System[] = [];
  const skipped: Record<string, Skipped> = {};
  const pushes = group.service === "chat";
  try {
    const doorman = await startBenchServer({
      mode: "doorman",
      service: group.service,
      psk: ctx.psk,
    });
    stops.push(doorman);
    systems.push({
      name: "doorman",
      dial: doormanDial({ port: doorman.port, psk: ctx.psk }),
      stats: () => doorman.stats(),
    });
    const baseline = await startBenchServer({
      mode: "baseline",
      service: group.service,
      psk: ctx.psk,
    });
    stops.push(baseline);
    systems.push({
      name: "baseline",
      dial: () => connectRaw(baseline.port, { pushes }),
      stats: () => baseline.stats(),
    });
    if (ctx.settings.peers && group.spiped) {
      const target = await startBenchServer({
        mode: "baseline",
        service: group.service,
        psk: ctx.psk,
      });
      stops.push(target);
      const spiped = await startSpiped(target.port, ctx.dir).catch((error) => ({
        skip: `spiped failed to start: ${error}`,
      }));
      if ("skip" in spiped) {
        skipped.spiped = { skipped: spiped.skip };
        ctx.peersInfo.spiped = `skipped: ${spiped.skip}`;
        ctx.progress(`spiped: skipped: ${spiped.skip}`);
      } else {
        stops.push(spiped);
        ctx.peersInfo.spiped = spiped.version;
        systems.push({
          name: "spiped",
          dial: () => connectRaw(spiped.port, { pushes }),
          // The server side: spiped -d and the plain server behind it.
          stats: () => sumStats([spiped.decrypt, target]),
          clientStats: () => spiped.encrypt.stats(),
        });
      }
    }
    if (ctx.settings.peers && group.denotls && ctx.certificate) {
      const certificate = ctx.certificate;
      if ("skipped" in certificate) {
        skipped.denotls = certificate;
      } else {
        const server = await startBenchServer({
          mode: "denotls",
          service: group.service,
          psk: ctx.psk,
          tls: certificate,
        });
        stops.push(server);
        systems.push({
          name: "denotls",
          dial: () => connectDenoTls(server.port, certificate, { pushes }),
          stats: () => server.stats(),
        });
      }
    }
    if (ctx.settings.peers && group.python && ctx.python) {
      const python = ctx.python;
      if ("skipped" in python) {
        skipped.python = python;
      } else {
        const server = await startPythonServer(python, ctx.authkey);
        stops.push(server);
        systems.push({
          name: "python",
          dial: () => connectPython(server.port, ctx.authkey),
          stats: () => server.stats(),
        });
      }
    }
    return await body(systems, skipped);
  } finally {
    for (const stop of stops.reverse()) await stop[Symbol.asyncDispose]();
  }
}

/** Measures `run` on the named systems (all if `names` is omitted). */
export function compare(
  ctx: Context,
  step: string,
  systems: System[],
  run: (dial: Dial, durationMs: number, hooks: MeasureHooks) => Promise<Count>,
  options: {
    names?: string[];
    value?: (count: Count) => number;
    format?: (value: number) => string;
  } = {},
): Promise<Record<string, Figure | Skipped>> {
  const contenders: Contender[] = systems
    .filter((system) => !options.names || options.names.includes(system.name))
    .map((system) => ({
      name: system.name,
      stats: system.stats,
      clientStats: system.clientStats,
      run: (durationMs, hooks) => run(system.dial, durationMs, hooks),
    }));
  return measureInterleaved(step, contenders, {
    trials: ctx.settings.trials,
    trialMs: ctx.settings.trialMs,
    warmupMs: ctx.settings.warmupMs,
    maxOtherCores: ctx.settings.maxOtherCores,
    retryBudget: ctx.retryBudget,
    value: options.value ?? perSecond,
    format: options.format ?? formatRate,
    progress: ctx.progress,
  });
}

/** Files one row's figures as a {@link Result}. */
export function record(
  ctx: Context,
  row: Omit<Result, "doorman" | "baseline" | "peers">,
  figures: Record<string, Figure | Skipped>,
  peers: { names: string[]; skipped: Record<string, Skipped> },
): void {
  const doorman = figures.doorman;
  if (!doorman || "skipped" in doorman) {
    throw new Error(
      `Cannot measure ${row.id}: doorman failed: ${doorman?.skipped}`,
    );
  }
  const baseline = figures.baseline;
  const peerFigures: Record<string, Figure | Skipped> = {};
  if (ctx.settings.peers) {
    for (const name of peers.names) {
      peerFigures[name] = figures[name] ?? peers.skipped[name] ??
        { skipped: "not run" };
    }
  }
  ctx.results.push({
    ...row,
    doorman,
    baseline: baseline && !("skipped" in baseline) ? baseline : null,
    peers: peerFigures,
  });
}

export function perSecond(count: Count): number {
  return count.ops / (count.elapsedMs / 1000);
}

export function formatRate(value: number): string {
  return `${Math.round(value).toLocaleString("en-US")}/s`;
}
