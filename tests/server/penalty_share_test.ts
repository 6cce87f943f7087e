import assert from "node:assert/strict";
import type { LogEvent } from "../../lib/server/log.ts";
import { connectPenaltyShare } from "../../lib/server/penalty_share.ts";
import { PenaltyBox } from "../../lib/server/limits.ts";
import { waitFor } from "../fixtures/server_fixture.ts";
import {
  freePort,
  skipWithout,
  startNats,
} from "../fixtures/external_fixture.ts";

Deno.test({
  name:
    "connectPenaltyShare() records another server's failures in this server's box, and ignores junk",
  ignore: skipWithout("nats-server"),
  async fn() {
    const port = freePort();
    await using _nats = await startNats(port);
    const events: LogEvent[] = [];
    const logger = { log: (event: LogEvent) => void events.push(event) };
    const server = `127.0.0.1:${port}`;
    await using here = connectPenaltyShare({ server, logger });
    await using there = connectPenaltyShare({ server, logger });
    const hereBox = new PenaltyBox({ baseMs: 60_000 });
    const thereBox = new PenaltyBox({ baseMs: 60_000 });
    here.attach(hereBox);
    there.attach(thereBox);
    await Promise.all([here.ready(), there.ready()]);
    for (let i = 0; i < 3; i++) there.publish("::ffff:192.0.2.7");
    there.publish("not an address");
    assert.ok(
      await waitFor(() => hereBox.verdict("192.0.2.7").action === "refuse"),
    );
    assert.equal(hereBox.size, 1);
    // Its own publications do not come back to it (no echo).
    assert.equal(thereBox.size, 0);
    assert.deepEqual(events.map((e) => e.reason), [
      "penalty sharing connected",
      "penalty sharing connected",
    ]);
  },
});
