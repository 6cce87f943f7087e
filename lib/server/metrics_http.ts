/**
 * Server parts: the `/metrics` HTTP endpoint (`--metrics HOST:PORT`) that a
 * Prometheus scraper reads. Any other path is 404; any method but GET and
 * HEAD is 405. It serves the registry's text and nothing else: no
 * doorman secret or user data is in a metric.
 *
 * @module
 */

import type { MetricsRegistry } from "./metrics.ts";

/** Content type of the Prometheus text format 0.0.4. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A running metrics endpoint. */
export interface MetricsServer extends AsyncDisposable {
  /** The address actually bound. */
  readonly addr: Deno.NetAddr;
  /** Stops serving. */
  shutdown(): Promise<void>;
}

/**
 * Serves `registry` at `http://HOST:PORT/metrics`.
 *
 * @param registry What to serve.
 * @param options Where to listen.
 * @returns The running endpoint.
 * @throws {Deno.errors.AddrInUse} If the port is taken.
 * @example Usage
 * ```ts ignore
 * await using endpoint = serveMetrics(metrics.registry, { hostname: "127.0.0.1", port: 9100 });
 * ```
 */
export function serveMetrics(
  registry: MetricsRegistry,
  options: { hostname: string; port: number },
): MetricsServer {
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    onListen: () => {},
  }, (request) => {
    if (new URL(request.url).pathname !== "/metrics") {
      return new Response("not found\n", { status: 404 });
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405 });
    }
    return new Response(registry.render(), {
      headers: { "content-type": METRICS_CONTENT_TYPE },
    });
  });
  return {
    addr: server.addr,
    shutdown: () => server.shutdown(),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}
