import assert from "node:assert/strict";
import { connect } from "../../lib/client/connect.ts";
import { serve } from "../../lib/server/serve.ts";
import type { LogEvent } from "../../lib/server/log.ts";
import { echoService } from "../../lib/services/echo.ts";
import { waitFor } from "../fixtures/server_fixture.ts";

Deno.test("serve() logs a connection's failure with that connection's own id, not the latest one", async () => {
  const psk = crypto.getRandomValues(new Uint8Array(32));
  const events: LogEvent[] = [];
  const logger = {
    log(event: LogEvent) {
      events.push(event);
      // A failure after the session: the connection's task rejects.
      if (event.event === "closed" && event.conn === 1) {
        throw new Error("log sink failed");
      }
    },
  };
  const server = serve({ port: 0, psk, logger }, echoService);
  try {
    const first = await connect({ port: server.addr.port, psk });
    const second = await connect({ port: server.addr.port, psk });
    await first.request("hello");
    await second.request("hello");
    await first.close();
    await waitFor(() => events.some((event) => event.event === "error"));
    const error = events.find((event) => event.event === "error");
    assert.equal(error?.conn, 1);
    await second.close();
  } finally {
    await server.shutdown();
  }
});
