import assert from "node:assert/strict";
import { connect } from "../../lib/client/connect.ts";
import { serve } from "../../lib/server/serve.ts";
import type { Session } from "../../lib/server/session.ts";
import type { LogEvent } from "../../lib/server/log.ts";
import { waitFor } from "../fixtures/server_fixture.ts";

// The logger is guarded (issue 11, item 4: it never throws into serve()),
// so the failure that must carry its own connection's id is the handler's:
// connection 1 fails only once connection 2 is open, when a shared counter
// would say 2.
Deno.test("serve() logs a connection's failure with that connection's own id, not the latest one", async () => {
  const psk = crypto.getRandomValues(new Uint8Array(32));
  const events: LogEvent[] = [];
  const logger = {
    log(event: LogEvent) {
      events.push(event);
      // A throwing sink changes nothing: the logger is guarded.
      if (event.event === "closed") throw new Error("log sink failed");
    },
  };
  const secondOpen = Promise.withResolvers<void>();
  const handler = async (session: Session) => {
    if (session.id === 2) secondOpen.resolve();
    for await (const message of session) {
      if (session.id === 1) {
        await secondOpen.promise;
        throw new Error("handler failed");
      }
      message.reply(message.data);
    }
  };
  const server = serve({ port: 0, psk, logger }, handler);
  try {
    const first = await connect({ port: server.addr.port, psk });
    const second = await connect({ port: server.addr.port, psk });
    await second.request("hello");
    await first.request("hello").catch(() => {});
    await waitFor(() => events.some((event) => event.event === "error"));
    const errors = events.filter((event) => event.event === "error");
    assert.equal(errors.length, 1);
    assert.equal(errors[0].conn, 1);
    assert.match(String(errors[0].detail), /handler failed/);
    // The server serves on, and the other connection too.
    assert.equal(
      new TextDecoder().decode(await second.request("again")),
      "again",
    );
    await first.close().catch(() => {});
    await second.close();
  } finally {
    await server.shutdown();
  }
});
