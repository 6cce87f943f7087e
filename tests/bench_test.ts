/**
 * A tiny run of the bench itself (a few connections, short runs, no peers),
 * so that `deno task bench` cannot rot. It checks that every workload
 * produces positive figures and lands in the JSON; it asserts no target:
 * speed belongs to `deno task bench`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { main } from "../bench/main.ts";
import {
  describeMachine,
  judge,
  mainTable,
  renderText,
  toJson,
} from "../bench/report.ts";
import { runSuite, settingsFor, WORKLOADS } from "../bench/suite.ts";
import { skipWithout } from "./fixtures/external_fixture.ts";

Deno.test({
  name: "runSuite() measures every workload with positive figures",
  // The tunnel workload measures redis-benchmark against a redis-server.
  ignore: skipWithout("redis-server", "redis-benchmark"),
}, async () => {
  const progress: string[] = [];
  const suite = await runSuite({
    settings: settingsFor("tiny"),
    progress: (line) => progress.push(line),
  });
  const groups = new Set(suite.results.map((result) => result.group));
  assert.deepEqual([...groups].sort(), [...WORKLOADS].sort());
  for (const result of suite.results) {
    assert.ok(
      result.doorman.value > 0,
      `${result.id}: doorman figure ${result.doorman.value}`,
    );
    if (result.baseline) {
      assert.ok(
        result.baseline.value > 0,
        `${result.id}: baseline figure ${result.baseline.value}`,
      );
    }
    assert.ok(result.doorman.trials.every((value) => Number.isFinite(value)));
  }
  assert.ok(progress.length >= suite.results.length);

  const machine = await describeMachine();
  const json = JSON.parse(toJson(suite, machine, "tiny"));
  assert.equal(json.machine.cores, navigator.hardwareConcurrency);
  const ids = json.results.map((result: { id: string }) => result.id);
  for (
    const id of [
      "handshake_many",
      "scram_4096_2",
      "roundtrip_many",
      "pipelined_many",
      "bulk",
      "idle_memory",
      "idle_establish",
      "chat",
    ]
  ) {
    assert.ok(ids.includes(id), `JSON lacks ${id}`);
  }
  // Targets are judged, not asserted: a verdict exists where a target does.
  assert.ok(suite.results.some((result) => judge(result) !== null));
  assert.match(renderText(mainTable(suite)), /^workload +\| doorman/);
});

Deno.test("bench main() prints --help and rejects an unknown workload", async () => {
  const log = console.log;
  const error = console.error;
  const printed: string[] = [];
  console.log = (...args: unknown[]) => printed.push(args.join(" "));
  console.error = (...args: unknown[]) => printed.push(args.join(" "));
  try {
    assert.equal(await main(["--help"]), 0);
    assert.match(printed.join("\n"), /--only WORKLOAD/);
    assert.equal(await main(["--only", "nonsense"]), 2);
    assert.equal(await main(["--bogus"]), 2);
  } finally {
    console.log = log;
    console.error = error;
  }
});
