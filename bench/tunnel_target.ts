/**
 * The bench's tunnel target: a plain TCP echo server (no framing, no
 * crypto) on a free 127.0.0.1 port, run as its own process so that raw TCP,
 * socat, spiped and doorman tunnels all reach the same thing. Prints
 * `listening on HOST:PORT`; stops when stdin closes.
 *
 * @module
 */

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(`listening on 127.0.0.1:${listener.addr.port}`);

async function echo(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const buffer = new Uint8Array(65536);
  try {
    while (true) {
      const count = await conn.read(buffer);
      if (count === null) break;
      for (let offset = 0; offset < count;) {
        offset += await conn.write(buffer.subarray(offset, count));
      }
    }
    await conn.closeWrite();
  } catch {
    // The client went away.
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

(async () => {
  for await (const conn of listener) echo(conn);
})();
// Stop once the bench closes our stdin.
for await (const _ of Deno.stdin.readable) { /* drain */ }
Deno.exit(0);
