/**
 * `deno task install`: puts `doorman-server` and `doorman-client` on PATH
 * with `deno install --global`, each with exactly the permission flags of
 * its deno.json task (`serve`, `client`; parsed as `deno task compile`
 * does), so they run from any directory with relative paths resolved
 * against the caller's working directory. For machines where `deno
 * compile` cannot fetch its base binary.
 *
 * Usage: deno task install [--root DIR]   (default: Deno's, ~/.deno/bin)
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { permissionFlags, type Program, PROGRAMS } from "./compile.ts";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * The `deno install` arguments for one program.
 *
 * @param program `server` or `client`.
 * @param root `--root` for `deno install`, if given.
 * @returns The arguments after `deno`.
 */
export function installArgs(program: Program, root?: string): string[] {
  return [
    "install",
    "--global",
    "--force",
    "--quiet",
    ...["--name", `doorman-${program}`],
    ...["--config", join(REPO_ROOT, "deno.json")],
    ...(root === undefined ? [] : ["--root", root]),
    ...permissionFlags(program),
    join(REPO_ROOT, PROGRAMS[program].script),
  ];
}

/**
 * Installs both programs.
 *
 * @param args `--root DIR`, optionally.
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { root: { type: "string" } },
    strict: true,
  });
  for (const program of ["server", "client"] as const) {
    const status = await new Deno.Command(Deno.execPath(), {
      args: installArgs(program, values.root),
      stdin: "null",
    }).spawn().status;
    if (!status.success) {
      console.error(`install: deno install of doorman-${program} failed`);
      return 1;
    }
  }
  const where = values.root === undefined
    ? "Deno's bin directory (usually ~/.deno/bin)"
    : join(values.root, "bin");
  console.log(
    `installed doorman-server and doorman-client into ${where}; ` +
      "add it to PATH if needed",
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
