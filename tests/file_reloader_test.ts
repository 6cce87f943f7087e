import assert from "node:assert/strict";
import { FileReloader, type ReloadEvent } from "../lib/file_reloader.ts";
import { tempDir } from "./helpers.ts";

/** Lines `a`, `b`, …: one entry per non-empty line. */
function parseLines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

function linesReloader(
  path: string,
  initial: string[],
  settleMs: number,
) {
  const applied: string[][] = [];
  const events: ReloadEvent[] = [];
  const reloader = new FileReloader(path, initial, {
    read: async (file) => parseLines(await Deno.readTextFile(file)),
    index: (lines) => new Map(lines.map((line) => [line.split("=")[0], line])),
    apply: (lines) => applied.push(lines),
    onEvent: (event) => events.push(event),
    settleMs,
  });
  return { reloader, applied, events };
}

/** Waits (bounded: 10 s) until `done()` holds. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !done(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.ok(done(), "condition not met within 10 s");
}

Deno.test("FileReloader never applies a file an in-place writer left half written while it paused", async () => {
  await using dir = await tempDir();
  const path = dir.join("list");
  const full = "a\nb\nc\nd\n";
  await Deno.writeTextFile(path, full);
  const { reloader, applied, events } = linesReloader(
    path,
    parseLines(full),
    300,
  );
  await using _ = reloader;
  reloader.watch();
  // Like shell `>`: truncate, write half, pause, write the rest.
  {
    using file = await Deno.open(path, { write: true, truncate: true });
    await file.write(new TextEncoder().encode("a\nb\n"));
    await new Promise((resolve) => setTimeout(resolve, 150));
    await file.write(new TextEncoder().encode("c\nd\ne\n"));
  }
  await until(() => applied.length > 0);
  assert.deepEqual(applied, [["a", "b", "c", "d", "e"]]);
  assert.deepEqual(events, [{
    kind: "applied",
    count: 5,
    added: 1,
    removed: 0,
    changed: 0,
  }]);
});

Deno.test("FileReloader skips a watched change that removes every entry; a forced reload applies it", async () => {
  await using dir = await tempDir();
  const path = dir.join("list");
  await Deno.writeTextFile(path, "a\nb\n");
  const { reloader, applied, events } = linesReloader(path, ["a", "b"], 50);
  await using _ = reloader;
  reloader.watch();
  await Deno.writeTextFile(path, "");
  await until(() => events.length > 0);
  assert.equal(events[0].kind, "skipped");
  assert.deepEqual(applied, []);
  await reloader.reload({ forced: true });
  assert.deepEqual(applied, [[]]);
  assert.deepEqual(events.at(-1), {
    kind: "applied",
    count: 0,
    added: 0,
    removed: 2,
    changed: 0,
  });
});

Deno.test("FileReloader reports counts of added, removed and changed entries, never their content", async () => {
  await using dir = await tempDir();
  const path = dir.join("list");
  await Deno.writeTextFile(path, "a=1\nb=secret-2\nc=3\n");
  const { reloader, events } = linesReloader(
    path,
    ["a=1", "b=secret-1", "x=9"],
    50,
  );
  await using _ = reloader;
  await reloader.reload();
  assert.deepEqual(events, [{
    kind: "applied",
    count: 3,
    added: 1,
    removed: 1,
    changed: 1,
  }]);
  assert.ok(!JSON.stringify(events).includes("secret"));
});

Deno.test("FileReloader keeps the last good copy when the file does not parse", async () => {
  await using dir = await tempDir();
  const path = dir.join("missing");
  const { reloader, applied, events } = linesReloader(path, ["a"], 50);
  await using _ = reloader;
  await reloader.reload({ forced: true });
  assert.deepEqual(applied, []);
  assert.equal(events[0].kind, "failed");
});
