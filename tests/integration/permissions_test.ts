/**
 * Integration: a whole session through `deno run` with exactly the permission
 * flags that `deno task compile` bakes into the binaries (parsed from the
 * `serve` and `client` tasks of deno.json by the same function), so a
 * permission the programs need but the tasks lack fails here, without denort.
 *
 * The session (session_script.ts, which compile_test.ts runs with the
 * binaries): `keygen` and `user add` with the default paths, relative to the
 * working directory; `serve --port 0 --service upper`; `client.ts send hello`
 * with a key file and a password file, then with `DOORMAN_KEY` and
 * `DOORMAN_PASSWORD`; `--version` of both programs; SIGTERM exits 0.
 *
 * @module
 */

import { denoRun } from "./server_process.ts";
import { runSession } from "./session_script.ts";

Deno.test("server.ts and client.ts work with only their deno.json permission flags", async () => {
  await runSession(denoRun);
});
