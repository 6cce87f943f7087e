/**
 * Integration: the README followed as a new user would. The blocks marked
 * `<!-- runnable -->` (shell) run in order with `sh -e`, and the blocks
 * marked `<!-- runnable: FILE -->` are first saved as FILE, in a fresh copy
 * of the repository's tracked files with an empty HOME. Each block must
 * exit 0 within a bounded time; background jobs it started are stopped
 * when it ends. Skipped, with the reason printed, without git or sh.
 *
 * Deno's cache (`DENO_DIR`) is kept so the pinned npm packages need no
 * network; everything else starts empty.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "../helpers.ts";
import { skipWithout } from "../fixtures/external_fixture.ts";
import { childEnv } from "./server_process.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const BLOCK_TIMEOUT_MS = 180_000; // a safety net on a slow machine
const MARKER_REGEXP = /^<!-- runnable(?::\s*(\S+))? -->$/;
const FENCE_REGEXP = /^```(\w*)$/;

/** One marked block of the README. */
export interface RunnableBlock {
  /** The file to save it as, or `undefined` for a shell block to run. */
  readonly file?: string;
  /** The fence's language, e.g. `sh`. */
  readonly language: string;
  readonly code: string;
  /** The README line of the opening fence. */
  readonly line: number;
}

/**
 * The blocks marked runnable in `markdown`, in order: a marker line, blank
 * lines, then a fenced block.
 *
 * @param markdown The README's text.
 * @returns The blocks.
 */
export function runnableBlocks(markdown: string): RunnableBlock[] {
  const lines = markdown.split("\n");
  const blocks: RunnableBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const marker = MARKER_REGEXP.exec(lines[i].trim());
    if (!marker) continue;
    let start = i + 1;
    while (start < lines.length && lines[start].trim() === "") start++;
    const fence = FENCE_REGEXP.exec(lines[start] ?? "");
    if (!fence) {
      throw new SyntaxError(`README line ${i + 1}: marker without a block`);
    }
    let end = start + 1;
    while (end < lines.length && lines[end] !== "```") end++;
    blocks.push({
      file: marker[1],
      language: fence[1],
      code: lines.slice(start + 1, end).join("\n") + "\n",
      line: start + 1,
    });
    i = end;
  }
  return blocks;
}

const ignore = skipWithout("git", "sh");

/** The tracked (and new, not ignored) files of the repository. */
async function repositoryFiles(): Promise<string[]> {
  const output = await new Deno.Command("git", {
    args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(
      `git ls-files failed: ${new TextDecoder().decode(output.stderr)}`,
    );
  }
  return new TextDecoder().decode(output.stdout).split("\0").filter((f) => f);
}

async function denoDir(): Promise<string> {
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return String(JSON.parse(new TextDecoder().decode(info.stdout)).denoDir);
}

Deno.test("runnableBlocks() finds marked blocks only, with their files", () => {
  const markdown = [
    "<!-- runnable -->",
    "",
    "```sh",
    "echo one",
    "```",
    "```sh",
    "echo not marked",
    "```",
    "<!-- runnable: a.ts -->",
    "```ts",
    "console.log(1);",
    "```",
  ].join("\n");
  assert.deepEqual(runnableBlocks(markdown), [
    { file: undefined, language: "sh", code: "echo one\n", line: 3 },
    { file: "a.ts", language: "ts", code: "console.log(1);\n", line: 10 },
  ]);
});

Deno.test({
  name: "README: every runnable block works in a fresh copy with an empty HOME",
  ignore,
  async fn() {
    const blocks = runnableBlocks(
      await Deno.readTextFile(join(REPO, "README.md")),
    );
    assert.ok(
      blocks.some((block) => block.file === undefined),
      "no runnable block",
    );
    await using copy = await tempDir();
    await using home = await tempDir();
    for (const file of await repositoryFiles()) {
      await Deno.mkdir(dirname(copy.join(file)), { recursive: true });
      await Deno.copyFile(join(REPO, file), copy.join(file));
    }
    const env = childEnv({
      HOME: home.path,
      PATH: `${dirname(Deno.execPath())}:/usr/local/bin:/usr/bin:/bin`,
      DENO_DIR: await denoDir(),
      NO_COLOR: "1",
    });
    let stdout = "";
    for (const block of blocks) {
      if (block.file !== undefined) {
        await Deno.writeTextFile(copy.join(block.file), block.code);
        continue;
      }
      assert.equal(block.language, "sh", `README line ${block.line}`);
      const script =
        `trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n${block.code}`;
      const child = new Deno.Command("sh", {
        args: ["-e", "-c", script],
        cwd: copy.path,
        clearEnv: true,
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const timer = setTimeout(() => child.kill("SIGKILL"), BLOCK_TIMEOUT_MS);
      const output = await child.output().finally(() => clearTimeout(timer));
      const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
      stdout += text(output.stdout);
      assert.equal(
        output.code,
        0,
        `README block at line ${block.line} failed:\n${block.code}\n` +
          `stdout:\n${text(output.stdout)}\nstderr:\n${text(output.stderr)}`,
      );
    }
    // What the README's comments promise.
    assert.match(stdout, /^HELLO\nWORLD$/m);
    assert.match(stdout, /^guest said hi!$/m);
    assert.match(stdout, /^bob scram-sha-256$/m);
  },
});
