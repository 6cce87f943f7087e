/**
 * The scale-out workloads: the real `server.ts serve` with `--workers 1`
 * and `--workers 2` (handshakes/s and round trips/s), and chat deliveries/s
 * between clients spread over two servers bridged by a real nats-server
 * (skipped with a note when nats-server is missing). CPU is the whole
 * process tree (parent and workers), from /proc.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { toHex } from "../lib/wire/bytes.ts";
import { freePort, procStats } from "./processes.ts";
import { compare, type Context, record, type System } from "./systems.ts";
import {
  chat,
  type Dial,
  doormanDial,
  handshakes,
  payloadOf,
  roundTrips,
} from "./workloads.ts";

const SERVER_TS = fileURLToPath(new URL("../server.ts", import.meta.url));
const PAYLOAD = payloadOf(64);
const START_TIMEOUT_MS = 30_000;

/** Runs the scale-out rows. */
export async function runScaleout(ctx: Context): Promise<void> {
  const keyFile = `${ctx.dir}/scaleout.key`;
  // A key file holds the key's bytes as written: here, 64 hex characters.
  const keyText = toHex(ctx.psk);
  await Deno.writeTextFile(keyFile, `${keyText}\n`, { mode: 0o600 });
  const psk = new TextEncoder().encode(keyText);
  const clients = Math.max(...ctx.settings.handshakeClients);
  for (const workers of [1, 2]) {
    const who = `${workers} worker${workers === 1 ? "" : "s"}`;
    await using server = await startServerTs(keyFile, [
      ...["--service", "echo", "--anonymous", "--workers", String(workers)],
    ]);
    const system: System = {
      name: "doorman",
      dial: doormanDial({ port: server.port, psk }),
      stats: () => server.stats(),
    };
    const shakes = await compare(
      ctx,
      `server.ts, ${who}: handshakes, ${clients} clients`,
      [system],
      (dial, durationMs) =>
        handshakes(dial, { clients, durationMs, payload: PAYLOAD }),
    );
    record(
      ctx,
      {
        id: `scaleout_handshake_w${workers}`,
        group: "scaleout",
        label: `handshakes/s, server.ts ${who}, ${clients} clients`,
        unit: "handshakes/s",
        note: "server.ts --workers (SO_REUSEPORT), logging to /dev/null",
      },
      shakes,
      { names: [], skipped: {} },
    );
    const connections = ctx.settings.connections;
    const trips = await compare(
      ctx,
      `server.ts, ${who}: round trips, ${connections} connections`,
      [system],
      (dial, durationMs, hooks) =>
        roundTrips(dial, {
          connections,
          window: 1,
          durationMs,
          payload: PAYLOAD,
          hooks,
        }),
    );
    record(
      ctx,
      {
        id: `scaleout_roundtrip_w${workers}`,
        group: "scaleout",
        label: `64-byte round trips/s, server.ts ${who}, ${connections} conns`,
        unit: "round trips/s",
      },
      trips,
      { names: [], skipped: {} },
    );
  }
  await runBridgedChat(ctx, { keyFile, psk });
}

async function runBridgedChat(
  ctx: Context,
  { keyFile, psk }: { keyFile: string; psk: Uint8Array },
): Promise<void> {
  const natsPort = freePort();
  let nats: Deno.ChildProcess;
  try {
    nats = new Deno.Command("nats-server", {
      args: ["-a", "127.0.0.1", "-p", String(natsPort)],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch (error) {
    ctx.progress(`chat through NATS: skipped: nats-server: ${error}`);
    return;
  }
  try {
    await waitForPort(natsPort);
    const args = [
      ...["--service", "chat", "--anonymous"],
      ...["--broker", `nats://127.0.0.1:${natsPort}`],
    ];
    await using first = await startServerTs(keyFile, args);
    await using second = await startServerTs(keyFile, args);
    const dials = [first, second].map((server) =>
      doormanDial({ port: server.port, psk })
    );
    let next = 0;
    const dial: Dial = () => dials[next++ % 2]();
    const clients = ctx.settings.chatClients;
    const system: System = {
      name: "doorman",
      dial,
      stats: async () => {
        const [a, b] = await Promise.all([first.stats(), second.stats()]);
        return { rss: a.rss + b.rss, cpuUs: a.cpuUs + b.cpuUs };
      },
    };
    const figures = await compare(
      ctx,
      `chat through NATS, ${clients} clients on two servers`,
      [system],
      (dialOne, durationMs, hooks) =>
        chat(dialOne, {
          clients,
          durationMs,
          warmupMs: Math.min(200, ctx.settings.warmupMs),
          payload: PAYLOAD,
          maxInFlight: 20_000,
          hooks,
        }),
    );
    record(
      ctx,
      {
        id: "scaleout_chat_nats",
        group: "scaleout",
        label: `chat deliveries/s, ${clients} clients over 2 servers + NATS`,
        unit: "deliveries/s",
        note:
          "half the members on each server; each message reaches the others, half of them through nats-server",
      },
      figures,
      { names: [], skipped: {} },
    );
  } finally {
    try {
      nats.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await nats.status;
  }
}

interface RunningServer extends AsyncDisposable {
  readonly port: number;
  stats(): Promise<{ rss: number; cpuUs: number }>;
}

/** Starts `server.ts serve` (logs to /dev/null) and reads its port. */
async function startServerTs(
  keyFile: string,
  args: string[],
): Promise<RunningServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...["--allow-net", "--allow-read", "--allow-write", "--allow-env"],
      ...["--allow-run", "--allow-sys", SERVER_TS, "serve"],
      ...["--port", "0", "--key-file", keyFile, ...args],
      ...["--max-startups", "2048", "--max-connections", "20000"],
      // The load comes from 127.0.0.1 alone: exempt it from the per-source caps.
      ...["--penalty-exempt", "127.0.0.1"],
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await child.status;
  };
  try {
    const port = await readPort(child);
    return {
      port,
      stats: async () => procStats(await processTree(child.pid)),
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function readPort(child: Deno.ChildProcess): Promise<number> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  let text = "";
  const timer = setTimeout(() => reader.cancel(), START_TIMEOUT_MS);
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("server.ts exited before listening");
      text += value;
    }
  } finally {
    clearTimeout(timer);
  }
  const match = /^listening on .+:(\d+)$/m.exec(text);
  if (!match) throw new Error(`server.ts did not listen: ${text.trim()}`);
  (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })().catch(() => {});
  return Number(match[1]);
}

/** `pid` and its descendants (workers), from /proc through `cat`. */
async function processTree(pid: number): Promise<number[]> {
  const pids = [pid];
  for (let i = 0; i < pids.length && i < 64; i++) {
    const output = await new Deno.Command("cat", {
      args: [`/proc/${pids[i]}/task/${pids[i]}/children`],
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(output.stdout).trim();
    if (text) pids.push(...text.split(/\s+/).map(Number));
  }
  return pids;
}

async function waitForPort(port: number): Promise<void> {
  const until = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < until) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`nats-server did not listen on ${port}`);
}
