/**
 * The end-to-end session that permissions_test.ts runs through `deno run`
 * with the task flags and compile_test.ts runs with the compiled binaries:
 * `keygen` and `user add` with the default paths, relative to the working
 * directory; `serve --port 0 --service upper`; `client send hello` with a
 * key file and a password file, then with `DOORMAN_KEY` and
 * `DOORMAN_PASSWORD`; `--version` of both programs; SIGTERM exits 0 with no
 * secret and no permission error in the log.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Program } from "../../.ci/compile.ts";
import { VERSION } from "../../lib/cli/version.ts";
import { tempDir } from "../helpers.ts";
import {
  type CommandLine,
  runProgram,
  startListening,
} from "./server_process.ts";

/**
 * Runs the whole session in a new temp dir; `commandFor` gives the command
 * that starts each program (`deno run ... server.ts`, or a binary).
 */
export async function runSession(
  commandFor: (program: Program) => CommandLine,
): Promise<void> {
  const server = commandFor("server");
  const client = commandFor("client");
  await using dir = await tempDir();
  const cwd = dir.path;

  const keygen = await runProgram(server, ["keygen"], { cwd });
  assert.equal(keygen.code, 0, keygen.stderr);
  const key = await Deno.readTextFile(dir.join("doorman.key"));

  const add = await runProgram(
    server,
    ["user", "add", "alice", "--password-stdin", "--iterations", "4096"],
    { cwd, stdin: "pencil\n" },
  );
  assert.equal(add.code, 0, add.stderr);
  assert.match(await Deno.readTextFile(dir.join("userinfo")), /^alice\|/m);
  await Deno.writeTextFile(dir.join("password"), "pencil\n");

  await using running = await startListening(
    server,
    ["serve", "--port", "0", "--service", "upper"],
    { cwd },
  );
  const port = String(running.port);

  const withFiles = await runProgram(client, [
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
  const withEnv = await runProgram(
    client,
    ["send", "hello", "--port", port, "--user", "alice"],
    { cwd: elsewhere, env: { DOORMAN_KEY: key, DOORMAN_PASSWORD: "pencil" } },
  );
  assert.equal(withEnv.code, 0, withEnv.stderr);
  assert.match(withEnv.stdout, /^HELLO$/m);

  for (const program of ["server", "client"] as const) {
    const version = await runProgram(commandFor(program), ["--version"], {
      cwd,
    });
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
