/**
 * Integration: a whole session through `deno run` with exactly the permission
 * flags that `deno task compile` bakes into the binaries (parsed from the
 * `serve` and `client` tasks of deno.json by the same function), so a
 * permission the programs need but the tasks lack fails here, without denort.
 *
 * The session: `keygen` and `user add` with the default paths, relative to
 * the working directory; `serve --port 0 --service upper`; `client.ts send
 * hello` with a key file and a password file, then with `DOORMAN_KEY` and
 * `DOORMAN_PASSWORD`; `--version` of both programs; SIGTERM exits 0.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { permissionFlags, type Program } from "../../.ci/compile.ts";
import { VERSION } from "../../lib/cli/version.ts";
import { tempDir } from "../helpers.ts";

const SCRIPTS: Record<Program, string> = {
  server: fileURLToPath(new URL("../../server.ts", import.meta.url)),
  client: fileURLToPath(new URL("../../client.ts", import.meta.url)),
};
const LISTEN_TIMEOUT_MS = 60_000;
const LISTENING_REGEXP = /^listening on (\S+):(\d+)$/m;

/** Variables the children keep; the rest (a DOORMAN_KEY of the caller's) go. */
const PASSED_ENV = ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"];

function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of PASSED_ENV) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `deno run` with only the task's permission flags, then the script. */
function denoRun(program: Program): string[] {
  return [
    Deno.execPath(),
    "run",
    "--quiet",
    "--no-prompt",
    ...permissionFlags(program),
    SCRIPTS[program],
  ];
}

async function run(
  [command, ...prefix]: string[],
  args: string[],
  options: { cwd: string; stdin?: string; env?: Record<string, string> },
): Promise<Result> {
  const child = new Deno.Command(command, {
    args: [...prefix, ...args],
    cwd: options.cwd,
    clearEnv: true,
    env: childEnv(options.env),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** A running server; disposal sends SIGTERM and awaits its exit. */
interface RunningServer extends AsyncDisposable {
  readonly port: number;
  /** Stops the server (SIGTERM) and returns its exit code and output. */
  stop(): Promise<Result>;
}

async function startServer(
  [command, ...prefix]: string[],
  args: string[],
  cwd: string,
): Promise<RunningServer> {
  const child = new Deno.Command(command, {
    args: [...prefix, ...args],
    cwd,
    clearEnv: true,
    env: childEnv(),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stdout = "";
  let stopped: Promise<Result> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch (error) {
        if (!(error instanceof TypeError)) throw error; // already exited
      }
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        stdout += r.value;
      }
      const [status, text] = await Promise.all([child.status, stderr]);
      return { code: status.code, stdout, stderr: text };
    })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no listening line in ${LISTEN_TIMEOUT_MS} ms`)),
      LISTEN_TIMEOUT_MS,
    );
  });
  try {
    while (true) {
      const match = LISTENING_REGEXP.exec(stdout);
      if (match) {
        return {
          port: Number(match[2]),
          stop,
          [Symbol.asyncDispose]: async () => void await stop(),
        };
      }
      const read = await Promise.race([reader.read(), timeout]);
      if (read.done) throw new Error("exited before listening");
      stdout += read.value;
    }
  } catch (error) {
    const result = await stop();
    throw new Error(
      `Cannot start server (exit ${result.code}): ${result.stderr}`,
      { cause: error },
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs the whole session in a new temp dir; `commandFor` gives the command
 * that starts each program (`deno run ... server.ts`, or a binary).
 */
async function runSession(
  commandFor: (program: Program) => string[],
): Promise<void> {
  const server = commandFor("server");
  const client = commandFor("client");
  await using dir = await tempDir();
  const cwd = dir.path;

  const keygen = await run(server, ["keygen"], { cwd });
  assert.equal(keygen.code, 0, keygen.stderr);
  const key = await Deno.readTextFile(dir.join("doorman.key"));

  const add = await run(
    server,
    ["user", "add", "alice", "--password-stdin", "--iterations", "4096"],
    { cwd, stdin: "pencil\n" },
  );
  assert.equal(add.code, 0, add.stderr);
  assert.match(await Deno.readTextFile(dir.join("userinfo")), /^alice\|/m);
  await Deno.writeTextFile(dir.join("password"), "pencil\n");

  await using running = await startServer(
    server,
    ["serve", "--port", "0", "--service", "upper"],
    cwd,
  );
  const port = String(running.port);

  const withFiles = await run(client, [
    "send",
    "hello",
    "--port",
    port,
    "--key-file",
    dir.join("doorman.key"),
    "--user",
    "alice",
    "--password-file",
    dir.join("password"),
  ], { cwd });
  assert.equal(withFiles.code, 0, withFiles.stderr);
  assert.match(withFiles.stdout, /^HELLO$/m);

  // Elsewhere, so that no doorman.key in the working directory stands in.
  const elsewhere = dir.join("elsewhere");
  await Deno.mkdir(elsewhere);
  const withEnv = await run(
    client,
    ["send", "hello", "--port", port, "--user", "alice"],
    { cwd: elsewhere, env: { DOORMAN_KEY: key, DOORMAN_PASSWORD: "pencil" } },
  );
  assert.equal(withEnv.code, 0, withEnv.stderr);
  assert.match(withEnv.stdout, /^HELLO$/m);

  for (const program of ["server", "client"] as const) {
    const version = await run(commandFor(program), ["--version"], { cwd });
    assert.equal(version.code, 0, version.stderr);
    assert.ok(
      version.stdout.trim().endsWith(` ${VERSION}`),
      `${program} --version printed ${JSON.stringify(version.stdout)}`,
    );
  }

  const stopped = await running.stop();
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.doesNotMatch(stopped.stderr, /pencil|NotCapable|PermissionDenied/);
  assert.ok(!stopped.stderr.includes(key.trim()), "the key is in the log");
}

Deno.test("server.ts and client.ts work with only their deno.json permission flags", async () => {
  await runSession(denoRun);
});
