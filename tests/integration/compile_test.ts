/**
 * Integration: `deno task compile` (.ci/compile.ts). Always: its flags, its
 * one-line failures, and that the permission flags it passes to `deno
 * compile` (and that land in a binary's metadata) are exactly those of the
 * `serve` and `client` tasks of deno.json. With a real denort base binary
 * (`DENORT_BIN`, or one in Deno's cache): the host binaries run the same
 * session as permissions_test.ts; without one that test is ignored, with the
 * reason printed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  binaryName,
  compileArgs,
  hostTarget,
  parseTaskFlags,
  type Program,
  TARGETS,
} from "../../.ci/compile.ts";
import denoConfig from "../../deno.json" with { type: "json" };
import { toHex } from "../../lib/wire/bytes.ts";
import { tempDir } from "../helpers.ts";
import { type ProcessResult, runProgram } from "./server_process.ts";
import { runSession } from "./session_script.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const COMPILE_SCRIPT = ".ci/compile.ts";
const TASK_OF: Record<Program, "serve" | "client"> = {
  server: "serve",
  client: "client",
};

/** A task's flags, read plainly: the words between `deno run` and the last. */
function taskFlags(task: string): string[] {
  const words = task.split(" ");
  assert.deepEqual(words.slice(0, 2), ["deno", "run"]);
  return words.slice(2, -1);
}

/** `.ci/compile.ts` run as `deno task compile` runs it. */
const COMPILE_COMMAND = [
  Deno.execPath(),
  "run",
  "--quiet",
  ...taskFlags(denoConfig.tasks.compile),
  join(ROOT, COMPILE_SCRIPT),
];

/** Runs the compile script; it keeps our DENORT_BIN unless `env` sets one. */
function compile(
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<ProcessResult> {
  return runProgram(COMPILE_COMMAND, args, {
    ...options,
    keepEnv: ["DENORT_BIN"],
  });
}

// Where a denort for the host comes from, or why there is none: what was
// tried (DENORT_BIN, Deno's cache, a download through deno compile itself)
// and what failed.
async function findDenort(): Promise<{ source?: string; reason?: string }> {
  const denortBin = Deno.env.get("DENORT_BIN");
  if (denortBin) return { source: `DENORT_BIN "${denortBin}"` };
  const host = hostTarget();
  if (host === undefined) {
    return { reason: `the host ${Deno.build.target} is not a release target` };
  }
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  const { denoDir } = JSON.parse(new TextDecoder().decode(info.stdout));
  const zip = join(
    String(denoDir),
    "dl",
    "release",
    `v${Deno.version.deno}`,
    `denort-${host}.zip`,
  );
  if (await exists(zip)) return { source: `Deno's cache "${zip}"` };
  // Let deno compile fetch it, as a release build would; it caches it.
  const failure = await compileTiny();
  if (failure === null && await exists(zip)) {
    return { source: `Deno's cache "${zip}" (downloaded just now)` };
  }
  return {
    reason: `no denort base binary for ${host}: DENORT_BIN is unset; ` +
      `Deno's cache has no "${zip}"; downloading it with deno compile ` +
      `failed: ${failure ?? "no error, but nothing was cached"}`,
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return false;
  }
}

/** Compiles a one-line script; `null` on success, else deno's reason. */
async function compileTiny(): Promise<string | null> {
  await using dir = await tempDir();
  const script = dir.join("tiny.ts");
  await Deno.writeTextFile(script, "console.log(1);\n");
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["compile", "--quiet", "--output", dir.join("tiny"), script],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (output.success) return null;
  const lines = new TextDecoder().decode(output.stderr).split("\n")
    .map((line) => line.trim());
  const request = lines.find((line) => /error sending request/.test(line));
  const error = lines.find((line) => line.startsWith("error:"));
  return (request ?? error ?? `exit ${output.code}`).replace(/^\d+: /, "");
}

const DENORT = await findDenort();
if (DENORT.reason !== undefined) {
  console.log(`compile_test: skipped: ${DENORT.reason}`);
}

Deno.test("compileArgs() passes exactly each task's permission flags to deno compile", () => {
  for (const program of ["server", "client"] as const) {
    const flags = taskFlags(denoConfig.tasks[TASK_OF[program]]);
    for (const target of TARGETS) {
      assert.deepEqual(compileArgs(program, target, { outDir: "/out" }), [
        "compile",
        ...flags,
        "--target",
        target,
        "--output",
        join("/out", binaryName(program, target)),
        join(ROOT, `${program}.ts`),
      ]);
    }
  }
});

Deno.test("the serve and client tasks grant no run, ffi, sys or all", () => {
  for (const task of [denoConfig.tasks.serve, denoConfig.tasks.client]) {
    for (const flag of taskFlags(task)) {
      assert.doesNotMatch(flag, /^(-A|--allow-(all|run|ffi|sys))(=|$)/);
    }
    assert.ok(
      taskFlags(task).includes(
        "--allow-env=DOORMAN_KEY,DOORMAN_PASSWORD,INIT_CWD",
      ),
    );
  }
});

Deno.test("binaryName() adds .exe for Windows only", () => {
  assert.equal(
    binaryName("server", "x86_64-unknown-linux-gnu"),
    "doorman-server-x86_64-unknown-linux-gnu",
  );
  assert.equal(
    binaryName("client", "aarch64-apple-darwin"),
    "doorman-client-aarch64-apple-darwin",
  );
  assert.equal(
    binaryName("client", "x86_64-pc-windows-msvc"),
    "doorman-client-x86_64-pc-windows-msvc.exe",
  );
});

Deno.test("parseTaskFlags() rejects tasks that are not deno run, or grant all", () => {
  assert.deepEqual(
    parseTaskFlags("deno run --allow-net  --allow-read server.ts", "server.ts"),
    ["--allow-net", "--allow-read"],
  );
  assert.deepEqual(parseTaskFlags("deno run server.ts", "server.ts"), []);
  for (
    const task of [
      "deno run -A server.ts",
      "deno run --allow-net --allow-all server.ts",
      "deno test --allow-net server.ts",
      "deno run --allow-net client.ts",
      "deno run --allow-net",
      "node server.ts",
    ]
  ) {
    assert.throws(() => parseTaskFlags(task, "server.ts"), SyntaxError, task);
  }
});

Deno.test("compile.ts --help prints the usage and every target", async () => {
  await using dir = await tempDir();
  const result = await compile(["--help"], { cwd: dir.path });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^Usage: deno task compile/);
  for (const target of TARGETS) assert.ok(result.stdout.includes(target));
});

Deno.test("compile.ts exits 2 with one line for a bad flag or target", async () => {
  await using dir = await tempDir();
  for (const args of [["--target", "riscv64"], ["--only", "both"], ["-x"]]) {
    const result = await compile(args, { cwd: dir.path });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^compile: Cannot [^\n]*\n$/);
  }
});

Deno.test({
  name: "compile.ts exits 1 with one line when DENORT_BIN is missing",
  ignore: hostTarget() === undefined,
}, async () => {
  await using dir = await tempDir();
  const result = await compile(
    ["--out", dir.join("dist")],
    { cwd: dir.path, env: { DENORT_BIN: dir.join("no-such-denort") } },
  );
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^compile: Cannot read DENORT_BIN "[^\n]*\n$/m);
  assert.doesNotMatch(result.stderr, /backtrace/i);
});

// Any executable of the host's format serves as the base binary for this
// check: the binary it yields does not run doorman, but its metadata holds
// the baked-in permissions. Deno's own executable is at hand.
Deno.test({
  name: "compile.ts bakes each task's permissions into the binaries",
  ignore: hostTarget() === undefined,
  async fn() {
    await using dir = await tempDir();
    const outDir = dir.join("dist");
    const result = await compile(
      ["--out", outDir],
      { cwd: dir.path, env: { DENORT_BIN: Deno.execPath() } },
    );
    assert.equal(result.code, 0, result.stderr);
    const sums = await Deno.readTextFile(join(outDir, "SHA256SUMS"));
    const lines = sums.trimEnd().split("\n");
    assert.equal(lines.length, 2);
    const host = hostTarget();
    assert.ok(host);
    for (const program of ["server", "client"] as const) {
      const name = binaryName(program, host);
      const bytes = await Deno.readFile(join(outDir, name));
      const digest = toHex(
        new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
      );
      assert.ok(lines.includes(`${digest}  ${name}`), sums);
      const flags = taskFlags(denoConfig.tasks[TASK_OF[program]]);
      assert.deepEqual(bakedPermissions(bytes), expectedPermissions(flags));
      assert.equal(bakedNoPrompt(bytes), flags.includes("--no-prompt"));
    }
  },
});

const PERMISSION_KINDS = ["net", "read", "write", "env", "run", "ffi", "sys"];

// The allow_* lists of the first `"permissions":{...}` object in `bytes`.
function bakedPermissions(bytes: Uint8Array): Record<string, unknown> {
  const text = new TextDecoder("latin1").decode(bytes);
  const match = /"permissions":(\{"allow_env"[^{}]*\})/.exec(text);
  assert.ok(match, "Cannot find the permissions in the binary's metadata");
  const permissions = JSON.parse(match[1]);
  return Object.fromEntries(
    PERMISSION_KINDS.map((kind) => [kind, permissions[`allow_${kind}`]]),
  );
}

// Whether the binary's metadata turns permission prompts off.
function bakedNoPrompt(bytes: Uint8Array): boolean {
  const text = new TextDecoder("latin1").decode(bytes);
  const match = /"permissions":\{"allow_env"[^{}]*"prompt":(true|false)/.exec(
    text,
  );
  assert.ok(match, "Cannot find the prompt setting in the binary's metadata");
  return match[1] === "false";
}

// What `--allow-KIND[=a,b]` flags become in Deno's metadata: [] for all,
// the list for a scoped flag, null when not granted.
function expectedPermissions(flags: string[]): Record<string, unknown> {
  const expected: Record<string, unknown> = Object.fromEntries(
    PERMISSION_KINDS.map((kind) => [kind, null]),
  );
  for (const flag of flags) {
    if (flag === "--no-prompt") continue; // checked by bakedNoPrompt()
    const match = /^--allow-([a-z]+)(?:=(.*))?$/.exec(flag);
    assert.ok(match, `Cannot read flag ${flag}`);
    expected[match[1]] = match[2] === undefined ? [] : match[2].split(",");
  }
  return expected;
}

Deno.test({
  name: "compiled binaries run a whole session on the host",
  ignore: DENORT.source === undefined,
  async fn() {
    await using dir = await tempDir();
    const outDir = dir.join("dist");
    const host = hostTarget();
    assert.ok(host);
    const build = await compile(
      ["--target", host, "--out", outDir],
      { cwd: dir.path },
    );
    assert.equal(build.code, 0, `${DENORT.source}: ${build.stderr}`);
    await runSession((program) => [join(outDir, binaryName(program, host))]);
  },
});
