/**
 * `deno task bench`: measures doorman on loopback beside a raw baseline
 * (plain TCP, same framing, no crypto) and, with `--peers` (the default
 * of a full run), Deno's own TLS, Python's `multiprocessing.connection`
 * and spiped where installed. Prints one progress line per
 * step on stderr, the tables on stdout, and writes every figure as JSON.
 *
 * @module
 */

import { dirname } from "node:path";
import { parseArgs } from "node:util";
import {
  cpuTable,
  describeMachine,
  describeMachineLine,
  mainTable,
  peersTable,
  renderText,
  toJson,
} from "./report.ts";
import {
  runSuite,
  settingsFor,
  type WorkloadName,
  WORKLOADS,
} from "./suite.ts";

// Untracked (.gitignore): a run never dirties the working tree.
const DEFAULT_OUT = new URL("./results/latest.json", import.meta.url).pathname;

const USAGE = `Usage: deno task bench [options]

Measures doorman on 127.0.0.1 beside a raw TCP baseline (same 4-byte framing,
no handshake or encryption) and the peers: Deno's own TLS (Deno.listenTls,
self-signed certificate made with openssl), Python's
multiprocessing.connection (authkey) and spiped, each where installed. The
server runs in its own process; figures are medians of 3 runs.

Options:
  --quick            about 30 seconds: 150 ms runs, 1,000 idle connections,
                     peers on the one-client rows only (figures indicative)
  --only WORKLOAD    run only these (comma-separated): ${WORKLOADS.join(", ")}
  --out FILE         where the JSON goes (default bench/results/latest.json,
                     untracked)
  --peers            run the peers too (default in a full run)
  --no-peers         skip the peers (default with --quick)
  -h, --help         show this help

Targets (issue 15, ratios to raw in the same run): handshakes at 16 clients
≥ 0.35× and ≤ 200 µs server CPU each; 64-byte round trips on 64 connections
≥ 0.65× and above Deno TLS; pipelined ≥ 0.50×; bulk ≥ 0.50× and above Deno
TLS; ≤ 14 KiB server memory per idle connection at 10,000; chat ≤ 6 µs
server CPU per delivery.`;

/**
 * Runs the bench.
 *
 * @param args Command-line arguments.
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        quick: { type: "boolean", default: false },
        only: { type: "string" },
        out: { type: "string", default: DEFAULT_OUT },
        peers: { type: "boolean" },
        "no-peers": { type: "boolean" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    console.error(`bench: ${error instanceof Error ? error.message : error}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const settings = settingsFor(values.quick ? "quick" : "full");
  if (values.peers && values["no-peers"]) {
    console.error("bench: --peers and --no-peers exclude each other");
    return 2;
  }
  settings.peers = values["no-peers"] ? false : values.peers ?? !values.quick;
  if (values.only !== undefined) {
    const only = values.only.split(",").map((name) => name.trim());
    const unknown = only.filter((name) =>
      !(WORKLOADS as readonly string[]).includes(name)
    );
    if (unknown.length > 0) {
      console.error(
        `bench: unknown workload "${unknown[0]}": use ${WORKLOADS.join(", ")}`,
      );
      return 2;
    }
    settings.only = only as WorkloadName[];
  }
  const machine = await describeMachine();
  console.error(`bench: ${describeMachineLine(machine)}`);
  const started = performance.now();
  let step = 0;
  const suite = await runSuite({
    settings,
    progress: (line) => {
      const seconds = ((performance.now() - started) / 1000).toFixed(0);
      console.error(`[${++step} ${seconds}s] ${line}`);
    },
  });
  const mode = values.quick ? "quick" : "full";
  machine.loadAverageEnd = Deno.loadavg();
  console.log(`\ndoorman bench (${mode}) on ${describeMachineLine(machine)}`);
  console.log(`\n${renderText(mainTable(suite))}`);
  console.log(
    "* other work on the machine took more than " +
      `${settings.maxOtherCores} cores during most runs of this figure`,
  );
  console.log(`\nWhere time goes (server CPU per operation; cores busy):`);
  console.log(renderText(cpuTable(suite)));
  const peers = peersTable(suite);
  if (peers) console.log(`\nPeers:\n${renderText(peers)}`);
  await Deno.mkdir(dirname(values.out), { recursive: true });
  await Deno.writeTextFile(values.out, toJson(suite, machine, mode));
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  console.log(`\nWrote ${values.out} (${seconds} s)`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
