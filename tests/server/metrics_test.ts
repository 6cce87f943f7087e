import assert from "node:assert/strict";
import {
  createServerMetrics,
  MetricsRegistry,
} from "../../lib/server/metrics.ts";
import { serveMetrics } from "../../lib/server/metrics_http.ts";

Deno.test("MetricsRegistry.render() writes the Prometheus text format", () => {
  const registry = new MetricsRegistry();
  const counter = registry.counter("things_total", "Things.\nSeen.", "kind");
  counter.inc(2, 'a"b');
  counter.inc(1, "plain");
  const gauge = registry.gauge("level", "Level.");
  gauge.inc(5);
  gauge.dec(2);
  registry.gaugeFrom("read_at_render", "Read.", () => 7);
  assert.equal(
    registry.render(),
    [
      "# HELP things_total Things.\\nSeen.",
      "# TYPE things_total counter",
      'things_total{kind="a\\"b"} 2',
      'things_total{kind="plain"} 1',
      "# HELP level Level.",
      "# TYPE level gauge",
      "level 3",
      "# HELP read_at_render Read.",
      "# TYPE read_at_render gauge",
      "read_at_render 7",
      "",
    ].join("\n"),
  );
  assert.throws(() => registry.counter("bad name", "x"), RangeError);
});

Deno.test("ServerMetrics.observe() counts events with bounded labels", () => {
  let time = 1000;
  const metrics = createServerMetrics({ now: () => time });
  metrics.observe({ event: "accepted" });
  metrics.observe({ event: "refused", reason: "penalty: 4 s left" });
  metrics.observe({ event: "refused", reason: "max connections (10)" });
  metrics.observe({ event: "handshake_failed", reason: "Handshake timed out" });
  metrics.observe({ event: "login_succeeded", user: "alice" });
  metrics.observe({ event: "login_failed", user: "bob" });
  metrics.observe({ event: "penalty", address: "192.0.2.1", ms: 500 });
  const text = metrics.registry.render();
  for (
    const line of [
      "doorman_connections_accepted_total 1",
      'doorman_connections_refused_total{reason="penalty"} 1',
      'doorman_connections_refused_total{reason="max_connections"} 1',
      'doorman_handshakes_failed_total{reason="timeout"} 1',
      'doorman_logins_total{result="ok"} 1',
      'doorman_logins_total{result="failed"} 1',
      "doorman_penalties_active 1",
    ]
  ) {
    assert.ok(text.includes(line + "\n"), line);
  }
  time = 1000 + 600_001;
  assert.ok(metrics.registry.render().includes("doorman_penalties_active 0\n"));
});

Deno.test("serveMetrics() serves /metrics and 404 elsewhere", async () => {
  const metrics = createServerMetrics();
  metrics.bytesIn.inc(42);
  await using endpoint = serveMetrics(metrics.registry, {
    hostname: "127.0.0.1",
    port: 0,
  });
  const base = `http://127.0.0.1:${endpoint.addr.port}`;
  const response = await fetch(`${base}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /version=0\.0\.4/);
  assert.ok((await response.text()).includes("doorman_bytes_in_total 42\n"));
  const missing = await fetch(`${base}/other`);
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});
