/**
 * The bench's output: the machine's facts, the targets of issue 15 and
 * whether they are met, the terminal tables, and the JSON document of
 * every figure. Pure formatting, apart from reading the machine's facts.
 *
 * @module
 */

import type { Figure, Result, Skipped, SuiteResult } from "./suite.ts";

/** What the bench ran on. */
export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  deno: string;
  v8: string;
  openFilesLimit: string;
  /** 1, 5 and 15 minute load averages when the run started. */
  loadAverage: number[];
  /** The same when the run ended (other work on the machine skews figures). */
  loadAverageEnd?: number[];
  date: string;
}

/** Reads the machine's facts (CPU model from /proc/cpuinfo). */
export async function describeMachine(): Promise<Machine> {
  // Deno reads /proc only with --allow-all, so ask a shell.
  let cpu = "unknown";
  let openFilesLimit = "unknown";
  try {
    const output = await new Deno.Command("sh", {
      args: ["-c", "grep -m1 '^model name' /proc/cpuinfo; ulimit -n"],
      stdout: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout);
    cpu = /^model name\s*:\s*(.+)$/m.exec(text)?.[1].trim() ?? cpu;
    openFilesLimit = /^(\d+|unlimited)$/m.exec(text)?.[1] ?? openFilesLimit;
  } catch {
    // No shell.
  }
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    memoryGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    openFilesLimit,
    loadAverage: Deno.loadavg(),
    date: new Date().toISOString(),
  };
}

/** A target of issue 15, matched to a result by the result's stable id. */
export interface Target {
  /** The result it applies to (a stable id, whatever the settings). */
  id: string;
  text: string;
  /** Absolute bound on the figure: at most (memory), for lower-is-better results. */
  maxValue?: number;
  /** Least fraction of the baseline, for rates. */
  minRatio?: number;
  /** Most server CPU per operation, in µs. */
  maxCpuUs?: number;
  /** A peer doorman must beat, where it ran. */
  abovePeer?: string;
}

/** The targets of issue 15, keyed by result id. */
export const TARGETS: Target[] = [
  {
    id: "handshake_many",
    text: "≥ 35% of raw, ≤ 200 µs server CPU",
    minRatio: 0.35,
    maxCpuUs: 200,
  },
  {
    id: "roundtrip_many",
    text: "≥ 65% of raw, above Deno TLS",
    minRatio: 0.65,
    abovePeer: "denotls",
  },
  { id: "pipelined_1", text: "≥ 50% of raw", minRatio: 0.5 },
  { id: "pipelined_many", text: "≥ 50% of raw", minRatio: 0.5 },
  {
    id: "bulk",
    text: "≥ 50% of raw, above Deno TLS",
    minRatio: 0.5,
    abovePeer: "denotls",
  },
  { id: "idle_memory", text: "≤ 14 KiB", maxValue: 14 * 1024 },
  { id: "chat", text: "≤ 6 µs server CPU/delivery", maxCpuUs: 6 },
];

/** A target's verdict. */
export interface Verdict {
  target: string;
  met: boolean;
  /** Why not, with how much is missing. */
  detail: string;
}

/** Judges one result against its target, if it has one. */
export function judge(result: Result): Verdict | null {
  const target = TARGETS.find((one) => one.id === result.id);
  if (!target) return null;
  const value = result.doorman.value;
  const misses: string[] = [];
  if (target.maxValue !== undefined && value > target.maxValue) {
    misses.push(`${percent(value / target.maxValue - 1)} over`);
  }
  const ratio = ratioOf(result);
  if (target.minRatio !== undefined && ratio !== null) {
    if (ratio < target.minRatio) {
      misses.push(
        `${percent(ratio)} of raw, under ${percent(target.minRatio)}`,
      );
    }
  }
  const cpuUs = result.doorman.serverCpuUsPerOp;
  if (target.maxCpuUs !== undefined && cpuUs > target.maxCpuUs) {
    misses.push(`${formatMicros(cpuUs)} CPU/op`);
  }
  const peer = target.abovePeer ? result.peers[target.abovePeer] : undefined;
  if (peer && !("skipped" in peer) && value <= peer.value) {
    misses.push(`${percent(value / peer.value)} of ${target.abovePeer}`);
  }
  return {
    target: target.text,
    met: misses.length === 0,
    detail: misses.join("; "),
  };
}

/** doorman / baseline, or `null` without a baseline. */
export function ratioOf(result: Result): number | null {
  if (!result.baseline || result.baseline.value === 0) return null;
  return result.doorman.value / result.baseline.value;
}

/** Formats a figure in its result's unit. */
export function formatValue(result: Result, value: number): string {
  if (result.unit === "bytes/conn") return `${(value / 1024).toFixed(1)} KiB`;
  if (result.unit === "s") return `${value.toFixed(2)} s`;
  if (result.unit === "MB/s") return `${value.toFixed(0)} MB/s`;
  return Math.round(value).toLocaleString("en-US");
}

/** The main table: workload | doorman | baseline | ratio | target | met?. */
export function mainTable(suite: SuiteResult): string[][] {
  const rows = [["workload", "doorman", "baseline", "ratio", "target", "met?"]];
  for (const result of suite.results) {
    const verdict = judge(result);
    const ratio = ratioOf(result);
    rows.push([
      result.label,
      formatFigure(result, result.doorman),
      result.baseline ? formatFigure(result, result.baseline) : "–",
      ratio === null ? "–" : `${ratio.toFixed(2)}×`,
      verdict?.target ?? "",
      verdict ? (verdict.met ? "yes" : `NO (${verdict.detail})`) : "",
    ]);
  }
  return rows;
}

/** Where time goes: server CPU per operation and each side's cores. */
export function cpuTable(suite: SuiteResult): string[][] {
  const rows = [[
    "workload",
    "server CPU/op doorman",
    "baseline",
    "server cores doorman",
    "client cores doorman",
    "others' cores",
  ]];
  for (const result of suite.results) {
    if (result.unit === "s") continue;
    rows.push([
      result.label,
      formatMicros(result.doorman.serverCpuUsPerOp),
      result.baseline ? formatMicros(result.baseline.serverCpuUsPerOp) : "–",
      result.doorman.serverCores ? result.doorman.serverCores.toFixed(2) : "–",
      result.doorman.clientCores ? result.doorman.clientCores.toFixed(2) : "–",
      result.doorman.serverCores ? result.doorman.otherCores.toFixed(2) : "–",
    ]);
  }
  return rows;
}

/** doorman beside the peers, for the workloads the peers ran. */
export function peersTable(suite: SuiteResult): string[][] | null {
  const names = [
    ...new Set(suite.results.flatMap((result) => Object.keys(result.peers))),
  ];
  if (names.length === 0) return null;
  const rows = [["workload", "doorman", ...names.map(peerHeading(suite))]];
  for (const result of suite.results) {
    if (Object.keys(result.peers).length === 0) continue;
    rows.push([
      result.label,
      formatValue(result, result.doorman.value),
      ...names.map((name) => formatPeer(result, result.peers[name])),
    ]);
  }
  return rows;
}

/** A figure in its unit, starred if other work contended for the CPU. */
function formatFigure(result: Result, figure: Figure): string {
  return formatValue(result, figure.value) + (figure.contended ? " *" : "");
}

function peerHeading(suite: SuiteResult): (name: string) => string {
  return (name) => {
    const info = suite.peersInfo[name];
    return info && !info.startsWith("skipped") ? `${name} (${info})` : name;
  };
}

function formatPeer(result: Result, figure?: Figure | Skipped): string {
  if (!figure) return "–";
  if ("skipped" in figure) return `skipped: ${figure.skipped}`;
  return formatFigure(result, figure);
}

/** Renders rows as an aligned text table. */
export function renderText(rows: string[][]): string {
  const widths = rows[0].map((_, column) =>
    Math.max(...rows.map((row) => [...(row[column] ?? "")].length))
  );
  return rows.map((row, index) => {
    const line = row.map((cell, column) =>
      cell + " ".repeat(widths[column] - [...cell].length)
    ).join(" | ").trimEnd();
    return index === 0
      ? `${line}\n${widths.map((width) => "-".repeat(width)).join("-|-")}`
      : line;
  }).join("\n");
}

/** One line about the machine. */
export function describeMachineLine(machine: Machine): string {
  return `${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, Deno ${machine.deno} (V8 ${machine.v8}), ulimit -n ${machine.openFilesLimit}, load ${
    machine.loadAverage.map((load) => load.toFixed(2)).join(" ")
  } at start, ${machine.date}`;
}

/** The JSON document of the run. */
export function toJson(
  suite: SuiteResult,
  machine: Machine,
  mode: string,
): string {
  return JSON.stringify(
    {
      mode,
      machine,
      peers: suite.peersInfo,
      settings: suite.settings,
      results: suite.results.map((result) => ({
        ...result,
        ratio: ratioOf(result),
        verdict: judge(result),
      })),
    },
    null,
    2,
  ) + "\n";
}

function percent(fraction: number): string {
  return `${Math.round(fraction * 100)}%`;
}

function formatMicros(us: number): string {
  if (us === 0) return "–";
  if (us >= 1000) return `${(us / 1000).toFixed(2)} ms`;
  return `${us.toFixed(1)} µs`;
}
