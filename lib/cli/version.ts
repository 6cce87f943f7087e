/**
 * Top layer (CLI): `VERSION`, the doorman version both programs print for
 * `--version`. It is read from `deno.json` at build time (a JSON import), so
 * `deno run` and a compiled binary report the same version, and a release
 * only has to bump `deno.json`.
 *
 * This file does not print anything or parse flags.
 *
 * @module
 */

import denoConfig from "../../deno.json" with { type: "json" };

/** The doorman version, the `version` field of `deno.json` (e.g. `0.1.0`). */
export const VERSION: string = denoConfig.version;
