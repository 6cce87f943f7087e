/**
 * The bench's settings: the workload groups `--only` can pick, and how big
 * and how long each workload runs in a full run, `--quick`, and the test's
 * tiny run.
 *
 * @module
 */

/** The workload groups `--only` can pick. */
export const WORKLOADS = [
  "handshake",
  "scram",
  "roundtrip",
  "bulk",
  "idle",
  "chat",
  "scaleout",
  "tunnel",
] as const;
/** One of {@link WORKLOADS}. */
export type WorkloadName = typeof WORKLOADS[number];

/** How big and how long each workload runs. */
export interface SuiteSettings {
  /** Measured runs per figure (the median is kept). */
  trials: number;
  /** Length of each measured run, in ms. */
  trialMs: number;
  /** Unmeasured run before the trials, in ms. */
  warmupMs: number;
  /** A run during which other work took more cores than this is retried. */
  maxOtherCores: number;
  /** Total time the whole run may spend on such retries, in ms. */
  retryBudgetMs: number;
  /** Concurrent clients of the handshake workload. */
  handshakeClients: number[];
  /** PBKDF2 iterations of the SCRAM login runs. */
  scramIterations: number[];
  /** Clients of the SCRAM runs, per iteration count (same order). */
  scramClients: number[];
  /** Connections of the "many connections" round trips. */
  connections: number;
  /** Outstanding requests per connection when pipelining 1 / many. */
  pipelineWindows: [number, number];
  /** Outstanding 64 KiB messages of the bulk stream. */
  bulkWindow: number;
  /** Idle connections held open. */
  idleCount: number;
  /** Connections being opened at once while establishing them. */
  idleConcurrency: number;
  /** Chat room members. */
  chatClients: number;
  /** Whether to run the peers too (Deno TLS, Python, spiped). */
  peers: boolean;
  /** Whether peers also run the many-client rows (slow to set up). */
  peersOnManyClients: boolean;
  /** Only these groups, or all. */
  only: WorkloadName[] | null;
}

/** Settings of a full run, `--quick`, and the test's tiny run. */
export function settingsFor(size: "full" | "quick" | "tiny"): SuiteSettings {
  const common = {
    trials: 3,
    maxOtherCores: 0.25,
    handshakeClients: [1, 16],
    connections: 64,
    pipelineWindows: [64, 16] as [number, number],
    bulkWindow: 32,
    idleConcurrency: 64,
    chatClients: 100,
    peers: true,
    peersOnManyClients: true,
    only: null,
  };
  if (size === "full") {
    return {
      ...common,
      trialMs: 1200,
      warmupMs: 300,
      retryBudgetMs: 50_000,
      scramIterations: [600_000, 600_000, 4096],
      scramClients: [1, 16, 16],
      idleCount: 10_000,
    };
  }
  if (size === "quick") {
    return {
      ...common,
      trialMs: 150,
      warmupMs: 60,
      retryBudgetMs: 0,
      peersOnManyClients: false,
      scramIterations: [600_000, 4096],
      scramClients: [16, 16],
      idleCount: 1000,
    };
  }
  return {
    ...common,
    trials: 1,
    trialMs: 150,
    warmupMs: 50,
    retryBudgetMs: 0,
    handshakeClients: [2],
    scramIterations: [4096],
    scramClients: [2],
    connections: 4,
    pipelineWindows: [4, 4],
    bulkWindow: 2,
    idleCount: 20,
    idleConcurrency: 8,
    chatClients: 5,
    peers: false,
  };
}
