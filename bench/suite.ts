/**
 * The bench's plan: for each workload group, the servers it needs (doorman,
 * the raw baseline, the peers), the rows it measures, and the results it
 * files. Trials and CPU accounting live in `measure.ts`, the load itself in
 * `workloads.ts`, the idle-connections group in `idle.ts`.
 *
 * It prints nothing itself: progress goes to the callback in the options.
 *
 * @module
 */

import { randomBytes } from "../lib/wire/crypto.ts";
import { createScramVerifier } from "../lib/login/scram.ts";
import {
  formatUserinfo,
  parseUserinfo,
  setUser,
} from "../lib/users/userinfo.ts";
import { runIdle } from "./idle.ts";
import { runScaleout } from "./scaleout.ts";
import { runTunnels } from "./tunnels.ts";
import { findPython } from "./peers.ts";
import { startBenchServer } from "./processes.ts";
import { makeCertificate } from "./tls.ts";
import {
  type SuiteSettings,
  type WorkloadName,
  WORKLOADS,
} from "./settings.ts";
import {
  compare,
  type Context,
  record,
  type Result,
  type System,
  withSystems,
} from "./systems.ts";
import {
  bulk,
  chat,
  doormanDial,
  handshakes,
  payloadOf,
  roundTrips,
} from "./workloads.ts";

export type { Figure, Skipped } from "./measure.ts";
export {
  settingsFor,
  type SuiteSettings,
  type WorkloadName,
  WORKLOADS,
} from "./settings.ts";
export type { Result } from "./systems.ts";

/** The whole run. */
export interface SuiteResult {
  settings: SuiteSettings;
  peersInfo: Record<string, string>;
  results: Result[];
}

/** Options of {@link runSuite}. */
export interface SuiteOptions {
  settings: SuiteSettings;
  /** Called with one line per step. */
  progress?: (line: string) => void;
}

const PAYLOAD = payloadOf(64);
const BULK_PAYLOAD = payloadOf(64 * 1024);
const SCRAM_PASSWORD = "bench password";
const CHAT_MAX_IN_FLIGHT = 20_000;

/**
 * Runs the selected workloads against doorman, the baseline and the peers.
 *
 * @param options Settings and the progress callback.
 * @returns Every figure.
 */
export async function runSuite(options: SuiteOptions): Promise<SuiteResult> {
  const settings = options.settings;
  const dir = await Deno.makeTempDir({ prefix: "doorman_bench_" });
  const ctx: Context = {
    settings,
    psk: randomBytes(32),
    authkey: randomBytes(32),
    dir,
    progress: options.progress ?? (() => {}),
    results: [],
    peersInfo: {},
    retryBudget: { remainingMs: settings.retryBudgetMs },
    python: null,
    certificate: null,
  };
  const groups: Record<WorkloadName, (ctx: Context) => Promise<void>> = {
    handshake: runHandshakes,
    scram: runScram,
    roundtrip: runRoundTrips,
    bulk: runBulk,
    idle: runIdle,
    chat: runChat,
    scaleout: runScaleout,
    tunnel: runTunnels,
  };
  try {
    if (settings.peers) {
      const python = await findPython();
      ctx.python = "skip" in python ? { skipped: python.skip } : python;
      ctx.peersInfo.python = "skip" in python
        ? `skipped: ${python.skip}`
        : python.version;
      const certificate = await makeCertificate(dir);
      ctx.certificate = "skip" in certificate
        ? { skipped: certificate.skip }
        : certificate;
      ctx.peersInfo.denotls = "skip" in certificate
        ? `skipped: ${certificate.skip}`
        : `Deno ${Deno.version.deno} rustls, self-signed P-256`;
    }
    for (const name of WORKLOADS) {
      if (!settings.only || settings.only.includes(name)) {
        await groups[name](ctx);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return { settings, peersInfo: ctx.peersInfo, results: ctx.results };
}

async function runHandshakes(ctx: Context): Promise<void> {
  await withSystems(
    ctx,
    { service: "echo", python: true, spiped: true, denotls: true },
    async (systems, skipped) => {
      for (const clients of ctx.settings.handshakeClients) {
        const who = `${clients} client${clients === 1 ? "" : "s"}`;
        const figures = await compare(
          ctx,
          `handshake, ${who}`,
          systems,
          (dial, durationMs) =>
            handshakes(dial, { clients, durationMs, payload: PAYLOAD }),
          { names: namesFor(ctx, clients) },
        );
        record(
          ctx,
          {
            id: clients === 1 ? "handshake_1" : "handshake_many",
            group: "handshake",
            label: `handshakes/s, ${who}`,
            unit: "handshakes/s",
            note:
              "connect, key handshake (none for baseline), one 64-byte round trip, close",
          },
          figures,
          { names: ["denotls", "python", "spiped"], skipped },
        );
      }
    },
  );
}

/** Who runs a row with `clients` clients: peers only where settings say. */
function namesFor(ctx: Context, clients: number): string[] | undefined {
  return clients > 1 && !ctx.settings.peersOnManyClients
    ? ["doorman", "baseline"]
    : undefined;
}

async function runScram(ctx: Context): Promise<void> {
  const usersFile = `${ctx.dir}/userinfo`;
  let userinfo = parseUserinfo("");
  for (const iterations of new Set(ctx.settings.scramIterations)) {
    const scram = await createScramVerifier(SCRAM_PASSWORD, { iterations });
    userinfo = setUser(userinfo, `bench${iterations}`, {
      kind: "scram-sha-256",
      scram,
    });
  }
  await Deno.writeTextFile(usersFile, formatUserinfo(userinfo));
  await using server = await startBenchServer({
    mode: "doorman",
    service: "echo",
    psk: ctx.psk,
    users: usersFile,
  });
  for (const [index, iterations] of ctx.settings.scramIterations.entries()) {
    const clients = ctx.settings.scramClients[index];
    const who = `${clients} client${clients === 1 ? "" : "s"}`;
    const system: System = {
      name: "doorman",
      stats: () => server.stats(),
      dial: doormanDial({
        port: server.port,
        psk: ctx.psk,
        user: `bench${iterations}`,
        password: SCRAM_PASSWORD,
      }),
    };
    const figures = await compare(
      ctx,
      `handshake + SCRAM login (${iterations} iterations), ${who}`,
      [system],
      (dial, durationMs) =>
        handshakes(dial, { clients, durationMs, payload: PAYLOAD }),
    );
    record(
      ctx,
      {
        id: `scram_${iterations}_${clients}`,
        group: "scram",
        label: `logins/s, SCRAM ${iterations} iterations, ${who}`,
        unit: "logins/s",
        note:
          "handshake + SCRAM-SHA-256 login + one 64-byte round trip; the client computes PBKDF2, the server does not",
      },
      figures,
      { names: [], skipped: {} },
    );
  }
}

async function runRoundTrips(ctx: Context): Promise<void> {
  const { connections, pipelineWindows } = ctx.settings;
  const rows = [
    { id: "roundtrip_1", connections: 1, window: 1 },
    { id: "roundtrip_many", connections, window: 1 },
    { id: "pipelined_1", connections: 1, window: pipelineWindows[0] },
    {
      id: "pipelined_many",
      connections,
      window: pipelineWindows[1],
    },
  ];
  await withSystems(
    ctx,
    { service: "echo", python: true, spiped: true, denotls: true },
    async (systems, skipped) => {
      for (const row of rows) {
        const conns = `${row.connections} conn${
          row.connections === 1 ? "" : "s"
        }`;
        const label = row.window === 1
          ? `64-byte round trips/s, ${conns}`
          : `64-byte pipelined msgs/s, ${conns} × ${row.window}`;
        // Deno TLS runs every row; the other peers the strict
        // request/response rows only.
        const names = row.window === 1
          ? namesFor(ctx, row.connections)
          : ["doorman", "baseline", "denotls"];
        const figures = await compare(
          ctx,
          label,
          systems,
          (dial, durationMs, hooks) =>
            roundTrips(dial, {
              connections: row.connections,
              window: row.window,
              durationMs,
              payload: PAYLOAD,
              hooks,
            }),
          { names },
        );
        record(
          ctx,
          {
            id: row.id,
            group: "roundtrip",
            label,
            unit: "round trips/s",
          },
          figures,
          {
            names: row.window === 1
              ? ["denotls", "python", "spiped"]
              : ["denotls"],
            skipped,
          },
        );
      }
    },
  );
}

async function runBulk(ctx: Context): Promise<void> {
  const window = ctx.settings.bulkWindow;
  await withSystems(
    ctx,
    { service: "sink", spiped: true, denotls: true },
    async (systems, skipped) => {
      const figures = await compare(
        ctx,
        `bulk, one stream of 64 KiB messages × ${window} outstanding`,
        systems,
        (dial, durationMs, hooks) =>
          bulk(dial, { window, durationMs, payload: BULK_PAYLOAD, hooks }),
        {
          value: (count) => count.bytes / 1e6 / (count.elapsedMs / 1000),
          format: (value) => `${value.toFixed(0)} MB/s`,
        },
      );
      record(
        ctx,
        {
          id: "bulk",
          group: "bulk",
          label: "bulk MB/s, one stream (64 KiB messages)",
          unit: "MB/s",
          note:
            `client sends with ${window} messages outstanding, server acks each; MB = 10^6 bytes of payload`,
        },
        figures,
        { names: ["denotls", "spiped"], skipped },
      );
    },
  );
}

async function runChat(ctx: Context): Promise<void> {
  const clients = ctx.settings.chatClients;
  await withSystems(ctx, { service: "chat" }, async (systems) => {
    const figures = await compare(
      ctx,
      `chat fan-out, ${clients} clients (anonymous)`,
      systems,
      (dial, durationMs, hooks) =>
        chat(dial, {
          clients,
          durationMs,
          warmupMs: Math.min(200, ctx.settings.warmupMs),
          payload: PAYLOAD,
          maxInFlight: CHAT_MAX_IN_FLIGHT,
          hooks,
        }),
    );
    record(
      ctx,
      {
        id: "chat",
        group: "chat",
        label: `chat deliveries/s, ${clients} clients`,
        unit: "deliveries/s",
        note:
          `anonymous members (key handshake, no login); each 64-byte message reaches the ${
            clients - 1
          } others; at most ${CHAT_MAX_IN_FLIGHT} deliveries owed at once`,
      },
      figures,
      { names: [], skipped: {} },
    );
  });
}
