/**
 * The bench's tunnel group (issue 14): the same plain TCP echo target
 * (`tunnel_target.ts`) and a redis-server, reached four ways, measured in
 * the same run, trial by trial interleaved:
 *
 * - `baseline`: raw TCP to the target;
 * - `doorman`: `client.ts forward` → `server.ts serve --forward` → target,
 *   a SCRAM user (the forwarder keeps the salted password), one doorman
 *   connection, handshake and login per tunnelled connection;
 * - `socat`: one user-space hop, no crypto (`socat TCP-LISTEN,fork TCP`);
 * - `spiped`: `spiped -e` → `spiped -d` → target;
 * - `stunnel`: stunnel TLS-PSK client → stunnel server → target;
 * - `ssh`: `ssh -L` (aes128-gcm, one multiplexed connection) → a
 *   private `sshd` on a free port → target.
 *
 * Workloads: bulk MB/s echoed through one tunnel; connections/s (connect,
 * one 64-byte echo, close; 16 clients); 64-byte round trips/s on 64
 * tunnels; redis-benchmark SET/GET requests/s (50 clients); server memory
 * per idle tunnel at 1,000 (RSS growth of the server-side process).
 * Peers that are not installed are skipped with the reason.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { createScramVerifier } from "../lib/login/scram.ts";
import { formatUserinfo, setUser } from "../lib/users/userinfo.ts";
import { toHex } from "../lib/wire/bytes.ts";
import type { Figure, Skipped } from "./measure.ts";
import { startSpiped } from "./peers.ts";
import { freePort, type ProcessStats, procStats } from "./processes.ts";
import type { Context } from "./systems.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const PASSWORD = "bench tunnel password";
const PAYLOAD = new Uint8Array(64).fill(0x61);
const BULK_CHUNK = new Uint8Array(64 * 1024).fill(0x62);

/** One way to reach the targets. */
interface Front {
  readonly name: string;
  readonly echoPort: number;
  readonly redisPort: number | null;
  /** The server-side process(es), for idle memory; null: not measurable. */
  readonly serverStats: (() => Promise<ProcessStats>) | null;
}

interface Proc extends AsyncDisposable {
  readonly pid: number;
  readonly port: number;
}

/**
 * Runs the tunnel workloads and files their results under group `tunnel`.
 *
 * @param ctx The suite's context.
 */
export async function runTunnels(ctx: Context): Promise<void> {
  const stack = new AsyncDisposableStack();
  try {
    const echo = stack.use(
      await spawnListening(Deno.execPath(), [
        "run",
        "--allow-net",
        `${ROOT}bench/tunnel_target.ts`,
      ]),
    );
    const redis = await startRedis(stack);
    const fronts: Front[] = [{
      name: "baseline",
      echoPort: echo.port,
      redisPort: redis,
      serverStats: () => procStats([echo.pid]),
    }];
    fronts.push(await startDoorman(ctx, stack, echo.port, redis));
    const skipped: Record<string, Skipped> = {};
    if (ctx.settings.peers) {
      await addSocat(fronts, skipped, stack, echo.port, redis);
      await addSpiped(ctx, fronts, skipped, stack, echo.port, redis);
      await addStunnel(ctx, fronts, skipped, stack, echo.port, redis);
      await addSsh(ctx, fronts, skipped, stack, echo.port, redis);
    }
    const trials = ctx.settings.trials;
    const ms = Math.max(ctx.settings.trialMs, 150);
    const rows: {
      id: string;
      label: string;
      unit: string;
      run: (front: Front) => Promise<number | null>;
      lowerIsBetter?: boolean;
      once?: boolean;
    }[] = [
      {
        id: "tunnel_bulk",
        label: "tunnel bulk MB/s, one tunnel (echoed)",
        unit: "MB/s",
        run: (front) => bulk(front.echoPort, ms),
      },
      {
        id: "tunnel_connect_16",
        label: "tunnel connections/s, 16 clients",
        unit: "connections/s",
        run: (front) => connections(front.echoPort, { clients: 16, ms }),
      },
      {
        id: "tunnel_roundtrip_64",
        label: "tunnel 64-byte round trips/s, 64 tunnels",
        unit: "round trips/s",
        run: (front) => roundTrips(front.echoPort, { tunnels: 64, ms }),
      },
      {
        id: "tunnel_redis",
        label: "redis-benchmark SET/GET requests/s, 50 clients",
        unit: "requests/s",
        run: (front) =>
          front.redisPort === null
            ? Promise.resolve(null)
            : redisBenchmark(front.redisPort, ms < 500 ? 1000 : 10_000),
      },
      {
        id: "tunnel_idle_memory",
        label: "server memory per idle tunnel, 1,000 tunnels",
        unit: "KiB",
        lowerIsBetter: true,
        once: true,
        run: (front) =>
          idleMemory(front, Math.min(1000, ctx.settings.idleCount)),
      },
    ];
    for (const row of rows) {
      const values: Record<string, number[]> = {};
      const failed: Record<string, string> = {};
      for (let trial = 0; trial < (row.once ? 1 : trials); trial++) {
        for (const front of fronts) {
          if (failed[front.name]) continue;
          try {
            const value = await row.run(front);
            if (value === null) failed[front.name] = "not measurable";
            else (values[front.name] ??= []).push(value);
          } catch (error) {
            failed[front.name] = `failed: ${(error as Error).message}`;
          }
        }
      }
      const figures: Record<string, Figure | Skipped> = { ...skipped };
      for (const front of fronts) {
        figures[front.name] = values[front.name]
          ? figure(values[front.name])
          : { skipped: failed[front.name] ?? "not run" };
      }
      const doorman = figures.doorman;
      if (!doorman || "skipped" in doorman) {
        throw new Error(`Cannot measure ${row.id}: ${JSON.stringify(doorman)}`);
      }
      const baseline = figures.baseline;
      const peers: Record<string, Figure | Skipped> = {};
      for (const name of ["socat", "spiped", "stunnel", "ssh"]) {
        if (ctx.settings.peers) peers[name] = figures[name] ?? skipped[name];
      }
      ctx.results.push({
        id: row.id,
        group: "tunnel",
        label: row.label,
        unit: row.unit,
        lowerIsBetter: row.lowerIsBetter,
        doorman,
        baseline: baseline && !("skipped" in baseline) ? baseline : null,
        peers,
      });
      ctx.progress(
        `${row.label}: ${
          Object.entries(figures).map(([name, one]) =>
            `${name} ${"skipped" in one ? one.skipped : one.value.toFixed(1)}`
          ).join(", ")
        }`,
      );
    }
  } finally {
    await stack.disposeAsync();
  }
}

function figure(trials: number[]): Figure {
  const sorted = [...trials].sort((a, b) => a - b);
  return {
    value: sorted[Math.floor(sorted.length / 2)],
    trials,
    serverCpuUsPerOp: 0,
    serverCores: 0,
    clientCores: 0,
    otherCores: 0,
  };
}

// --- The systems ----------------------------------------------------------

async function startDoorman(
  ctx: Context,
  stack: AsyncDisposableStack,
  echoPort: number,
  redisPort: number | null,
): Promise<Front> {
  const keyFile = `${ctx.dir}/tunnel.key`;
  const usersFile = `${ctx.dir}/tunnel_userinfo`;
  await Deno.writeTextFile(keyFile, `${toHex(ctx.psk)}\n`, { mode: 0o600 });
  const scram = await createScramVerifier(PASSWORD, { iterations: 4096 });
  await Deno.writeTextFile(
    usersFile,
    formatUserinfo(
      setUser({ lines: [] }, "bench", { kind: "scram-sha-256", scram }),
    ),
  );
  const forwards = ["--forward", `echo=127.0.0.1:${echoPort}`];
  if (redisPort !== null) {
    forwards.push("--forward", `redis=127.0.0.1:${redisPort}`);
  }
  const server = stack.use(
    await spawnListening(Deno.execPath(), [
      ...["run", "-A", `${ROOT}server.ts`, "serve", "--port", "0"],
      ...["--key-file", keyFile, "--users", usersFile, "--service", "echo"],
      ...["--max-startups", "1024", "--idle-timeout", "0", ...forwards],
      // Every tunnelled connection is a doorman connection of user "bench"
      // from 127.0.0.1: exempt the source from the per-source caps (as
      // server_process.ts does) and let one user hold the 1,000 idle
      // tunnels; the per-user login slot (one at a time) still applies.
      ...["--penalty-exempt", "127.0.0.1", "--max-sessions-per-user", "4096"],
    ]),
  );
  const forwarder = async (target: string) =>
    stack.use(
      await spawnListening(Deno.execPath(), [
        ...["run", "-A", `${ROOT}client.ts`, "forward", "--listen", "0"],
        ...["--target", target, "--port", String(server.port)],
        ...["--key-file", keyFile, "--user", "bench"],
      ], { DOORMAN_PASSWORD: PASSWORD }),
    );
  const echo = await forwarder("echo");
  const redis = redisPort === null ? null : await forwarder("redis");
  return {
    name: "doorman",
    echoPort: echo.port,
    redisPort: redis?.port ?? null,
    serverStats: () => procStats([server.pid]),
  };
}

async function addSocat(
  fronts: Front[],
  skipped: Record<string, Skipped>,
  stack: AsyncDisposableStack,
  echoPort: number,
  redisPort: number | null,
): Promise<void> {
  const relay = async (target: number) => {
    const port = freePort();
    const child = stack.use(spawnSilent("socat", [
      `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,backlog=1024`,
      `TCP:127.0.0.1:${target},nodelay`,
    ]));
    await waitForPort(port);
    return { port, child };
  };
  try {
    const echo = await relay(echoPort);
    const redis = redisPort === null ? null : await relay(redisPort);
    fronts.push({
      name: "socat",
      echoPort: echo.port,
      redisPort: redis?.port ?? null,
      serverStats: null, // It forks a process per connection.
    });
  } catch (error) {
    skipped.socat = { skipped: `socat: ${(error as Error).message}` };
  }
}

async function addSpiped(
  ctx: Context,
  fronts: Front[],
  skipped: Record<string, Skipped>,
  stack: AsyncDisposableStack,
  echoPort: number,
  redisPort: number | null,
): Promise<void> {
  try {
    const echo = await startSpiped(echoPort, ctx.dir);
    if ("skip" in echo) {
      skipped.spiped = { skipped: echo.skip };
      return;
    }
    stack.use(echo);
    const redis = redisPort === null
      ? null
      : await startSpiped(redisPort, ctx.dir);
    if (redis && !("skip" in redis)) stack.use(redis);
    fronts.push({
      name: "spiped",
      echoPort: echo.port,
      redisPort: redis && !("skip" in redis) ? redis.port : null,
      serverStats: () => echo.decrypt.stats(),
    });
  } catch (error) {
    skipped.spiped = { skipped: `spiped: ${(error as Error).message}` };
  }
}

/** stunnel TLS-PSK: a client instance → a server instance → the target. */
async function addStunnel(
  ctx: Context,
  fronts: Front[],
  skipped: Record<string, Skipped>,
  stack: AsyncDisposableStack,
  echoPort: number,
  redisPort: number | null,
): Promise<void> {
  const pskFile = `${ctx.dir}/stunnel.psk`;
  await Deno.writeTextFile(pskFile, `bench:${toHex(ctx.psk)}\n`, {
    mode: 0o600,
  });
  const instance = async (name: string, lines: string[]) => {
    const file = `${ctx.dir}/stunnel_${name}.conf`;
    await Deno.writeTextFile(
      file,
      [
        "foreground = yes",
        "pid =",
        "debug = 0",
        `[${name}]`,
        ...lines,
        "ciphers = PSK",
        `PSKsecrets = ${pskFile}`,
        "",
      ]
        .join("\n"),
    );
    return stack.use(spawnSilent("stunnel", [file]));
  };
  const pair = async (name: string, target: number) => {
    const serverPort = freePort();
    const server = await instance(`${name}_server`, [
      `accept = 127.0.0.1:${serverPort}`,
      `connect = 127.0.0.1:${target}`,
    ]);
    const clientPort = freePort();
    await instance(`${name}_client`, [
      "client = yes",
      `accept = 127.0.0.1:${clientPort}`,
      `connect = 127.0.0.1:${serverPort}`,
    ]);
    await waitForPort(serverPort);
    await waitForPort(clientPort);
    return { port: clientPort, server };
  };
  try {
    const echo = await pair("echo", echoPort);
    const redis = redisPort === null ? null : await pair("redis", redisPort);
    fronts.push({
      name: "stunnel",
      echoPort: echo.port,
      redisPort: redis?.port ?? null,
      serverStats: () => procStats([echo.server.pid]),
    });
  } catch (error) {
    skipped.stunnel = { skipped: `stunnel: ${(error as Error).message}` };
  }
}

/** `ssh -N -L` through a private sshd (public key, loopback only). */
async function addSsh(
  ctx: Context,
  fronts: Front[],
  skipped: Record<string, Skipped>,
  stack: AsyncDisposableStack,
  echoPort: number,
  redisPort: number | null,
): Promise<void> {
  try {
    const dir = `${ctx.dir}/ssh`;
    await Deno.mkdir(dir, { recursive: true });
    for (const key of ["host_key", "user_key"]) {
      const made = await new Deno.Command("ssh-keygen", {
        args: ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/${key}`],
        stdout: "null",
        stderr: "null",
      }).output();
      if (!made.success) throw new Error("ssh-keygen failed");
    }
    await Deno.copyFile(`${dir}/user_key.pub`, `${dir}/authorized_keys`);
    const sshdPort = freePort();
    await Deno.writeTextFile(
      `${dir}/sshd_config`,
      [
        `Port ${sshdPort}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${dir}/host_key`,
        `AuthorizedKeysFile ${dir}/authorized_keys`,
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "AllowTcpForwarding yes",
        "PidFile none",
        "",
      ].join("\n"),
    );
    await Deno.mkdir("/run/sshd", { recursive: true }).catch(() => {});
    const sshd = await Deno.stat("/usr/sbin/sshd").then(
      () => "/usr/sbin/sshd",
      () => "sshd",
    );
    stack.use(spawnSilent(sshd, ["-D", "-e", "-f", `${dir}/sshd_config`]));
    await waitForPort(sshdPort);
    const echoFront = freePort();
    const redisFront = redisPort === null ? null : freePort();
    const forwards = ["-L", `127.0.0.1:${echoFront}:127.0.0.1:${echoPort}`];
    if (redisFront !== null) {
      forwards.push("-L", `127.0.0.1:${redisFront}:127.0.0.1:${redisPort}`);
    }
    stack.use(spawnSilent("ssh", [
      ...["-N", "-o", "StrictHostKeyChecking=no"],
      ...["-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"],
      ...["-o", "ExitOnForwardFailure=yes", "-c", "aes128-gcm@openssh.com"],
      ...["-i", `${dir}/user_key`, "-p", String(sshdPort), ...forwards],
      `${Deno.env.get("USER") ?? "root"}@127.0.0.1`,
    ]));
    await waitForPort(echoFront);
    fronts.push({
      name: "ssh",
      echoPort: echoFront,
      redisPort: redisFront,
      serverStats: null, // The session runs in a forked sshd child.
    });
  } catch (error) {
    skipped.ssh = { skipped: `ssh: ${(error as Error).message}` };
  }
}

async function startRedis(stack: AsyncDisposableStack): Promise<number | null> {
  const port = freePort();
  try {
    stack.use(spawnSilent("redis-server", [
      ...["--port", String(port), "--bind", "127.0.0.1", "--save", ""],
      ...["--appendonly", "no", "--maxclients", "2000"],
    ]));
    await waitForPort(port);
    return port;
  } catch {
    return null; // Not installed: the redis row is skipped.
  }
}

/** A child that prints `listening on HOST:PORT`; stopped on disposal. */
async function spawnListening(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Proc> {
  const child = new Deno.Command(command, {
    args,
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await child.stdin.close().catch(() => {});
    await child.status;
  };
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    for (let reads = 0; reads < 100 && !text.includes("\n"); reads++) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const match = /^listening on .*:(\d+)$/m.exec(text);
    if (!match) throw new Error(`${command} did not start: ${text}`);
    // Keep draining stdout so the child never blocks on it.
    (async () => {
      while (!(await reader.read().catch(() => ({ done: true }))).done) {
        // discard
      }
    })();
    return {
      pid: child.pid,
      port: Number(match[1]),
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

function spawnSilent(
  command: string,
  args: string[],
): AsyncDisposable & { pid: number } {
  const child = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    pid: child.pid,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
    },
  };
}

async function waitForPort(port: number): Promise<void> {
  for (let attempt = 0; attempt < 250; attempt++) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  throw new Error(`nothing listens on port ${port}`);
}

// --- The workloads --------------------------------------------------------

async function connectTo(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  return conn;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

async function echoOnce(conn: Deno.Conn, buffer: Uint8Array): Promise<void> {
  await writeAll(conn, PAYLOAD);
  let got = 0;
  while (got < PAYLOAD.length) {
    const count = await conn.read(buffer);
    if (count === null) throw new Error("echo ended early");
    got += count;
  }
}

/**
 * MB/s echoed back through one connection: bytes received in `ms` after a
 * warm-up of the same length (buffers grown, code compiled).
 */
async function bulk(port: number, ms: number): Promise<number> {
  const conn = await connectTo(port);
  await echoOnce(conn, new Uint8Array(1024)); // established before timing
  const window = Math.max(ms, 500);
  let stop = false;
  const writing = (async () => {
    while (!stop) await writeAll(conn, BULK_CHUNK);
  })().catch(() => {});
  let received = 0;
  const buffer = new Uint8Array(256 * 1024);
  const warm = performance.now() + window;
  while (performance.now() < warm) {
    const count = await conn.read(buffer);
    if (count === null) break;
  }
  const start = performance.now();
  const deadline = start + window;
  while (performance.now() < deadline) {
    const count = await conn.read(buffer);
    if (count === null) break;
    received += count;
  }
  const elapsed = performance.now() - start;
  stop = true;
  conn.close();
  await writing;
  return received / 1e6 / (elapsed / 1000);
}

/** Connections/s: connect, one 64-byte echo, close; `clients` at once. */
async function connections(
  port: number,
  options: { clients: number; ms: number },
): Promise<number> {
  let ops = 0;
  const start = performance.now();
  const deadline = start + options.ms;
  await Promise.all(
    Array.from({ length: options.clients }, async () => {
      const buffer = new Uint8Array(1024);
      while (performance.now() < deadline) {
        const conn = await connectTo(port);
        try {
          await echoOnce(conn, buffer);
          ops++;
        } finally {
          conn.close();
        }
      }
    }),
  );
  return ops / ((performance.now() - start) / 1000);
}

/** 64-byte round trips/s over `tunnels` open connections. */
async function roundTrips(
  port: number,
  options: { tunnels: number; ms: number },
): Promise<number> {
  const conns = await Promise.all(
    Array.from({ length: options.tunnels }, () => connectTo(port)),
  );
  try {
    const buffer = new Uint8Array(1024);
    for (const conn of conns) await echoOnce(conn, buffer); // established
    let ops = 0;
    const start = performance.now();
    const deadline = start + options.ms;
    await Promise.all(conns.map(async (conn) => {
      const own = new Uint8Array(1024);
      while (performance.now() < deadline) {
        await echoOnce(conn, own);
        ops++;
      }
    }));
    return ops / ((performance.now() - start) / 1000);
  } finally {
    for (const conn of conns) conn.close();
  }
}

/** redis-benchmark's SET and GET requests/s, averaged. */
async function redisBenchmark(port: number, requests: number): Promise<number> {
  const output = await new Deno.Command("redis-benchmark", {
    args: [
      ...["-h", "127.0.0.1", "-p", String(port), "-c", "50"],
      ...["-n", String(requests), "-t", "set,get", "-q"],
    ],
    stdout: "piped",
    stderr: "null",
    signal: AbortSignal.timeout(120_000), // a dead front must not hang the run
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const rates = [...text.matchAll(/(SET|GET): ([0-9.]+) requests per second/g)]
    .map((match) => Number(match[2]));
  if (rates.length !== 2) throw new Error(`redis-benchmark said: ${text}`);
  return (rates[0] + rates[1]) / 2;
}

/** KiB of server RSS per idle tunnel, `count` tunnels open. */
async function idleMemory(front: Front, count: number): Promise<number | null> {
  if (!front.serverStats) return null;
  const before = (await front.serverStats()).rss;
  const conns: Deno.TcpConn[] = [];
  try {
    const buffer = new Uint8Array(1024);
    for (let i = 0; i < count; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, count - i) }, async () => {
          const conn = await connectTo(front.echoPort);
          await echoOnce(conn, buffer);
          return conn;
        }),
      );
      conns.push(...batch);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = (await front.serverStats()).rss;
    return Math.max(after - before, 1) / count / 1024;
  } finally {
    for (const conn of conns) conn.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}
