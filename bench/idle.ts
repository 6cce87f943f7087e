/**
 * The idle-connections workload: how much server memory each established,
 * idle connection costs, and how long establishing them all takes. Each
 * run starts a fresh server; doorman and the baseline alternate.
 *
 * @module
 */

import { connectRaw } from "./baseline.ts";
import { type Figure, median } from "./measure.ts";
import { startBenchServer } from "./processes.ts";
import { type Context, record } from "./systems.ts";
import {
  closeLinks,
  type Dial,
  doormanDial,
  establish,
  payloadOf,
} from "./workloads.ts";

const PAYLOAD = payloadOf(64);

/** Memory per idle connection: a fresh server per run, systems alternating. */
export async function runIdle(ctx: Context): Promise<void> {
  const { idleCount, idleConcurrency, trials } = ctx.settings;
  const runs = { doorman: [] as IdleRun[], baseline: [] as IdleRun[] };
  for (let trial = 0; trial < trials; trial++) {
    for (const mode of ["doorman", "baseline"] as const) {
      const run = await idleRun(ctx, mode);
      runs[mode].push(run);
      ctx.progress(
        `${idleCount} idle connections · ${mode}, run ${trial + 1}: ${
          (run.rssPerConnection / 1024).toFixed(1)
        } KiB each, established in ${(run.establishMs / 1000).toFixed(2)} s`,
      );
    }
  }
  const figures = {
    doorman: idleFigure(ctx, "doorman", runs.doorman),
    baseline: idleFigure(ctx, "baseline", runs.baseline),
  };
  record(
    ctx,
    {
      id: "idle_memory",
      group: "idle",
      label: `server memory per idle connection, ${idleCount} conns`,
      unit: "bytes/conn",
      lowerIsBetter: true,
      note:
        "server RSS delta / N, each after a full GC; every connection did its key handshake (none for baseline) and one 64-byte round trip",
    },
    figures,
    { names: [], skipped: {} },
  );
  const seconds = (figure: Figure): Figure => {
    const value = figure.extra?.establishSeconds ?? 0;
    return { ...figure, value, trials: [value], extra: undefined };
  };
  record(ctx, {
    id: "idle_establish",
    group: "idle",
    label:
      `time to establish ${idleCount} conns (${idleConcurrency} at a time)`,
    unit: "s",
    lowerIsBetter: true,
  }, {
    doorman: seconds(figures.doorman),
    baseline: seconds(figures.baseline),
  }, { names: [], skipped: {} });
}

interface IdleRun {
  rssPerConnection: number;
  heapPerConnection: number;
  establishMs: number;
  cpuUsPerConnection: number;
}

async function idleRun(
  ctx: Context,
  mode: "doorman" | "baseline",
): Promise<IdleRun> {
  const { idleCount, idleConcurrency } = ctx.settings;
  // A fresh server each time: memory freed by closed connections stays
  // with the allocator and would hide the next run's growth.
  await using server = await startBenchServer({
    mode,
    service: "echo",
    psk: ctx.psk,
    maxConnections: Math.max(12_000, idleCount + 100),
    maxStartups: Math.max(1024, idleConcurrency * 2),
  });
  const dial: Dial = mode === "doorman"
    ? doormanDial({ port: server.port, psk: ctx.psk })
    : () => connectRaw(server.port);
  const warm = await establish(dial, {
    count: idleConcurrency,
    concurrency: idleConcurrency,
    payload: PAYLOAD,
  });
  await closeLinks(warm.links);
  const before = await server.stats({ gc: true });
  const established = await establish(dial, {
    count: idleCount,
    concurrency: idleConcurrency,
    payload: PAYLOAD,
  });
  try {
    const after = await server.stats({ gc: true });
    return {
      rssPerConnection: (after.rss - before.rss) / idleCount,
      heapPerConnection: ((after.heapUsed ?? 0) - (before.heapUsed ?? 0)) /
        idleCount,
      establishMs: established.elapsedMs,
      cpuUsPerConnection: (after.cpuUs - before.cpuUs) / idleCount,
    };
  } finally {
    await closeLinks(established.links);
  }
}

function idleFigure(ctx: Context, name: string, runs: IdleRun[]): Figure {
  const establishSeconds = median(runs.map((run) => run.establishMs)) / 1000;
  const figure: Figure = {
    value: median(runs.map((run) => run.rssPerConnection)),
    trials: runs.map((run) => run.rssPerConnection),
    serverCpuUsPerOp: median(runs.map((run) => run.cpuUsPerConnection)),
    serverCores: 0,
    clientCores: 0,
    otherCores: 0,
    extra: {
      heapBytesPerConnection: median(runs.map((run) => run.heapPerConnection)),
      establishSeconds,
      connectionsPerSecond: ctx.settings.idleCount / establishSeconds,
    },
  };
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
  ctx.progress(
    `${ctx.settings.idleCount} idle connections · ${name}: ${
      kib(figure.value)
    } RSS each (runs ${figure.trials.map(kib).join(", ")}), heap ${
      kib(figure.extra?.heapBytesPerConnection ?? 0)
    } each, established in ${establishSeconds.toFixed(2)} s`,
  );
  return figure;
}
