/**
 * The import rules of the layout (STYLE.md section 2, README "Layout"),
 * read from the source: each file's imports of our own modules must go the
 * way the arrows say. A wrong arrow fails here rather than in a review.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const LIB = join(ROOT, "lib");

/** Files at the top of lib/, shared by everyone. */
const SHARED = [
  "errors.ts",
  "key_file.ts",
  "key_entries.ts",
  "atomic_file.ts",
  "file_reloader.ts",
];

/**
 * What each part of lib/ may import, besides its own folder. A part is a
 * folder (`wire`) or a top-level file (`errors.ts`).
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  "errors.ts": [],
  "atomic_file.ts": [],
  // The key is checked against the wire's minimum length and generated
  // with its random source: key_file.ts reads those from wire/.
  "key_file.ts": ["wire", "errors.ts", "atomic_file.ts", "key_entries.ts"],
  // A key file line becomes a handshake key: the wire's sizes and types.
  "key_entries.ts": ["wire", "errors.ts"],
  "file_reloader.ts": ["errors.ts"],
  wire: ["errors.ts"],
  login: ["wire", "errors.ts"],
  users: ["login", "wire", ...SHARED],
  server: ["login", "wire", ...SHARED],
  client: ["login", "wire", ...SHARED],
  services: ["server", "wire", "errors.ts"],
  cli: [
    "wire",
    "login",
    "users",
    "server",
    "client",
    "services",
    ...SHARED,
  ],
};

/** Files outside lib/ a part may import: `--version` reads deno.json. */
const OUTSIDE: Record<string, readonly string[]> = {
  cli: ["deno.json"],
};

/** Parts whose imports of another part must be `import type` only. */
const TYPES_ONLY: Record<string, readonly string[]> = {
  services: ["server"],
};

const IMPORT_REGEXP =
  /^\s*(import|export)\s+(type\s+)?(?:[^;'"]*?\s+from\s+)?["']([^"']+)["']/gm;
const DYNAMIC_IMPORT_REGEXP = /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g;

interface Import {
  readonly file: string;
  readonly target: string;
  readonly typeOnly: boolean;
}

async function* sourceFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* sourceFiles(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

/** Every import of our own files (relative paths) in `file`. */
async function importsOf(file: string): Promise<Import[]> {
  const text = await Deno.readTextFile(file);
  const found: Import[] = [];
  for (const match of text.matchAll(IMPORT_REGEXP)) {
    const specifier = match[3];
    if (!specifier.startsWith(".")) continue;
    const typeOnly = match[2] !== undefined;
    found.push({
      file,
      target: resolve(dirname(file), specifier),
      typeOnly,
    });
  }
  for (const match of text.matchAll(DYNAMIC_IMPORT_REGEXP)) {
    if (!match[1].startsWith(".")) continue;
    found.push({
      file,
      target: resolve(dirname(file), match[1]),
      typeOnly: false,
    });
  }
  return found;
}

/** The part of lib/ a path is in, or `null` outside lib/. */
function partOf(path: string): string | null {
  const inLib = relative(LIB, path);
  if (inLib.startsWith("..")) return null;
  return inLib.split("/")[0];
}

async function libImports(): Promise<Import[]> {
  const all: Import[] = [];
  for await (const file of sourceFiles(LIB)) all.push(...await importsOf(file));
  return all;
}

Deno.test("every part of lib/ has an import rule", async () => {
  const parts = new Set<string>();
  for await (const entry of Deno.readDir(LIB)) parts.add(entry.name);
  assert.deepEqual([...parts].sort(), Object.keys(MAY_IMPORT).sort());
});

Deno.test("lib/ imports only go the way the layout's arrows say", async () => {
  const wrong: string[] = [];
  for (const { file, target, typeOnly } of await libImports()) {
    const from = partOf(file)!;
    const to = partOf(target);
    const where = `${relative(ROOT, file)} imports ${relative(ROOT, target)}`;
    if (to === null) {
      if (OUTSIDE[from]?.includes(relative(ROOT, target))) continue;
      wrong.push(`${where}: outside lib/`);
      continue;
    }
    if (to === from) continue;
    if (!MAY_IMPORT[from]?.includes(to)) {
      wrong.push(`${where}: ${from} may not import ${to}`);
    } else if (TYPES_ONLY[from]?.includes(to) && !typeOnly) {
      wrong.push(`${where}: ${from} may import only types from ${to}`);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("nothing but the command-line programs imports lib/cli/", async () => {
  const files = [join(ROOT, "mod.ts")];
  for await (const file of sourceFiles(LIB)) files.push(file);
  const wrong: string[] = [];
  for (const file of files) {
    if (partOf(file) === "cli") continue;
    for (const { target } of await importsOf(file)) {
      if (partOf(target) === "cli") {
        wrong.push(`${relative(ROOT, file)} imports ${relative(ROOT, target)}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("the client never imports server/ or users/, even through wire/ or login/", async () => {
  const imports = await libImports();
  const graph = new Map<string, string[]>();
  for (const { file, target } of imports) {
    graph.set(file, [...graph.get(file) ?? [], target]);
  }
  const wrong: string[] = [];
  for await (const file of sourceFiles(join(LIB, "client"))) {
    const seen = new Set<string>();
    const stack = [file];
    while (stack.length > 0) {
      const next = stack.pop()!;
      if (seen.has(next)) continue;
      seen.add(next);
      const part = partOf(next);
      if (part === "server" || part === "users" || part === "cli") {
        wrong.push(`${relative(ROOT, file)} reaches ${relative(ROOT, next)}`);
      }
      stack.push(...graph.get(next) ?? []);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("tests/ mirrors lib/: a test of a file in a folder lives in that folder", async () => {
  // A name may be in more than one folder (client/forward.ts and
  // server/forward.ts are the two ends of a tunnel): its test may live in
  // any of them.
  const libFolders = new Map<string, string[]>();
  for await (const file of sourceFiles(LIB)) {
    const inLib = relative(LIB, file);
    const name = inLib.split("/").pop()!.replace(/\.ts$/, "");
    const folder = dirname(inLib);
    libFolders.set(name, [
      ...libFolders.get(name) ?? [],
      folder === "." ? "" : `${folder}/`,
    ]);
  }
  const wrong: string[] = [];
  for await (const file of sourceFiles(join(ROOT, "tests"))) {
    const inTests = relative(join(ROOT, "tests"), file);
    const match = /^(.*?)([^/]+)_test\.ts$/.exec(inTests);
    if (!match) continue;
    const folders = libFolders.get(match[2]);
    if (folders === undefined) continue;
    if (!folders.includes(match[1])) {
      const expected = folders.map((folder) =>
        `tests/${folder}${match[2]}_test.ts`
      ).join(" or ");
      wrong.push(`${inTests} should be ${expected}`);
    }
  }
  assert.deepEqual(wrong, []);
});
