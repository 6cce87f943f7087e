/**
 * The bench's server program, run as its own process so that its memory
 * and CPU time can be measured apart from the load generator. It starts
 * doorman's `serve()`, the raw baseline, or the baseline over Deno's TLS
 * (`--mode=denotls --cert=FILE --key=FILE`), prints one `listening on
 * HOST:PORT` line, then answers control lines on stdin:
 *
 * - `stats` → one JSON line: `rss`, `heapUsed` (bytes), `cpuUs` (user +
 *   system, all threads), `connections`;
 * - `gc` → the same after a full garbage collection (needs
 *   `--v8-flags=--expose-gc`);
 * - `quit` or end of stdin → shuts down and exits.
 *
 * The pre-shared key comes from the `BENCH_PSK` environment variable (hex).
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { fromHex } from "../lib/wire/bytes.ts";
import { serve, type SessionHandler } from "../lib/server/serve.ts";
import { createChatService } from "../lib/services/chat.ts";
import { echoService } from "../lib/services/echo.ts";
import type { Session } from "../lib/server/session.ts";
import { UserStore } from "../lib/users/user_store.ts";
import { serveBaseline, type ServiceName } from "./baseline.ts";

/** Replies to nothing: every message is confirmed by an ack. */
async function sinkService(session: Session): Promise<void> {
  for await (const _message of session) {
    // The session acks each message once the loop moves on.
  }
}

const HANDLERS: Record<ServiceName, () => SessionHandler> = {
  echo: () => echoService,
  sink: () => sinkService,
  chat: createChatService,
};

/** One JSON line of figures about this process. */
export interface ServerStats {
  rss: number;
  heapUsed: number;
  cpuUs: number;
  connections: number;
}

/**
 * Runs the server until `quit` or the end of stdin.
 *
 * @param args Command-line arguments.
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      mode: { type: "string", default: "doorman" },
      service: { type: "string", default: "echo" },
      users: { type: "string" },
      cert: { type: "string" },
      key: { type: "string" },
      port: { type: "string", default: "0" },
      "max-connections": { type: "string", default: "12000" },
      "max-startups": { type: "string", default: "1024" },
    },
  });
  const service = values.service as ServiceName;
  if (!(service in HANDLERS)) {
    console.error(`server_process: unknown service "${values.service}"`);
    return 2;
  }
  const port = Number(values.port);
  let server: { readonly connections: number; shutdown(): Promise<void> };
  let addr: Deno.NetAddr;
  let users: UserStore | null = null;
  if (values.mode === "baseline") {
    const baseline = serveBaseline({ port, service });
    server = baseline;
    addr = baseline.addr;
  } else if (values.mode === "denotls") {
    const tls = {
      cert: await Deno.readTextFile(values.cert ?? ""),
      key: await Deno.readTextFile(values.key ?? ""),
    };
    const peer = serveBaseline({ port, service, tls });
    server = peer;
    addr = peer.addr;
  } else if (values.mode === "doorman") {
    const psk = fromHex(Deno.env.get("BENCH_PSK") ?? "");
    if (values.users !== undefined) users = await UserStore.open(values.users);
    const doorman = serve({
      port,
      psk,
      users,
      maxConnections: Number(values["max-connections"]),
      maxStartups: Number(values["max-startups"]),
      idleTimeoutMs: 0,
      penaltyExempt: ["127.0.0.1"],
      shutdownTimeoutMs: 1000,
    }, HANDLERS[service]());
    server = doorman;
    addr = doorman.addr;
  } else {
    console.error(`server_process: unknown mode "${values.mode}"`);
    return 2;
  }
  console.log(`listening on ${addr.hostname}:${addr.port}`);
  await answerControl(server);
  await server.shutdown();
  users?.close();
  return 0;
}

async function answerControl(
  server: { readonly connections: number },
): Promise<void> {
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let buffered = "";
  for await (const chunk of lines) {
    buffered += chunk;
    let newline = buffered.indexOf("\n");
    while (newline !== -1) {
      const command = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (command === "quit") return;
      if (command === "gc" || command === "stats") {
        if (command === "gc") collectGarbage();
        console.log(JSON.stringify(statsNow(server.connections)));
      }
      newline = buffered.indexOf("\n");
    }
  }
}

function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
}

function statsNow(connections: number): ServerStats {
  const memory = Deno.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    cpuUs: cpu.user + cpu.system,
    connections,
  };
}

if (import.meta.main) Deno.exit(await main(Deno.args));
