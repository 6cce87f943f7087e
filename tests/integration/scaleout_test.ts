/**
 * Scale-out with real programs: server.ts processes behind a real HAProxy
 * (PROXY protocol v2), chat through a real nats-server, metrics scraped
 * over HTTP, `--workers`, and `--config` precedence. Tests needing haproxy,
 * nats-server or socat skip with a printed reason when they are missing
 * (not under CI).
 *
 * @module
 */

import assert from "node:assert/strict";
import { connect } from "../../lib/client/connect.ts";
import { readKeyFile } from "../../lib/key_file.ts";
import {
  denoRun,
  runServerTs,
  startListening,
  startServer,
  type StartServerOptions,
} from "./server_process.ts";
import {
  findBinary,
  freePort,
  skipWithout,
  startHaproxy,
  startNats,
  waitForPort,
} from "../fixtures/external_fixture.ts";
import { waitFor } from "../fixtures/server_fixture.ts";

const USERS = { alex: "alex pw", bob: "bob pw" };
const decoder = new TextDecoder();

function pskOf(keyFile: string): Promise<Uint8Array> {
  return readKeyFile(keyFile);
}

/** The value of `name=` in the first stderr line with `event`, or null. */
function logged(stderr: string, event: string, name: string): string | null {
  for (const line of stderr.split("\n")) {
    if (!line.includes(` ${event} `)) continue;
    const match = new RegExp(`${name}=(\\S+)`).exec(line);
    if (match) return match[1];
  }
  return null;
}

function startWith(
  options: StartServerOptions,
  dirOf?: { keyFile: string },
) {
  const args = options.args ?? [];
  return startServer({
    ...options,
    args: dirOf ? [...args, "--key-file", dirOf.keyFile] : args,
  });
}

Deno.test("server.ts serve --print-config: the file's values, command-line flags win", async () => {
  const dir = await Deno.makeTempDir({ prefix: "doorman_config_test_" });
  try {
    const toml = `${dir}/doorman.toml`;
    await Deno.writeTextFile(
      toml,
      [
        "max-connections = 50",
        "max_startups = 9",
        'allow = ["127.0.0.0/8", "10.0.0.0/8"]',
        'service = "upper"',
      ].join("\n"),
    );
    const result = await runServerTs([
      "serve",
      ...["--config", toml, "--max-startups", "7", "--print-config"],
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^max-connections = 50$/m);
    assert.match(result.stdout, /^max-startups = 7$/m);
    assert.match(result.stdout, /^allow = \["127.0.0.0\/8", "10.0.0.0\/8"\]$/m);
    assert.match(result.stdout, /^service = "upper"$/m);
    const json = `${dir}/doorman.json`;
    await Deno.writeTextFile(json, JSON.stringify({ "idle-timeout": 30 }));
    const fromJson = await runServerTs([
      "serve",
      ...["--config", json, "--print-config"],
    ]);
    assert.match(fromJson.stdout, /^idle-timeout = 30$/m);
    await Deno.writeTextFile(toml, "max-connections = true\n");
    const bad = await runServerTs(["serve", "--config", toml]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /^server: Cannot use config file .*max-connections/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server.ts serve --workers 2: one listening line, both serve, SIGTERM stops all", async () => {
  const dir = await Deno.makeTempDir({ prefix: "doorman_workers_test_" });
  try {
    const keyFile = `${dir}/doorman.key`;
    await Deno.writeTextFile(keyFile, "ab".repeat(32) + "\n", { mode: 0o600 });
    const command = denoRun("server");
    command.splice(command.length - 1, 0, "--allow-run");
    const server = await startListening(command, [
      "serve",
      ...["--port", "0", "--key-file", keyFile, "--anonymous"],
      ...["--service", "echo", "--workers", "2", "--max-connections", "10"],
    ], { cwd: dir });
    const psk = await pskOf(keyFile);
    for (let i = 0; i < 6; i++) {
      const client = await connect({ port: server.port, psk });
      assert.equal(decoder.decode(await client.request(`hi ${i}`)), `hi ${i}`);
      await client.close();
    }
    const result = await server.stop("SIGTERM");
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.match(/listening on/g)?.length, 1);
    assert.equal(result.stderr.match(/ listening address=/g)?.length, 2);
    assert.equal(result.stderr.match(/ shutdown /g)?.length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server.ts serve --metrics: counters move during a run", async () => {
  await using server = await startWith({
    service: "echo",
    users: USERS,
    args: ["--metrics", "127.0.0.1:0", "--penalty-cap", "1"],
  });
  assert.ok(await waitFor(() => server.stderr().includes("reason=metrics")));
  const address = logged(
    server.stderr(),
    "listening reason=metrics",
    "address",
  );
  const scrape = async () => {
    const response = await fetch(`http://${address}/metrics`);
    assert.equal(response.status, 200);
    return await response.text();
  };
  const value = (text: string, series: string) => {
    const line = text.split("\n").find((l) => l.startsWith(series + " "));
    return line === undefined ? 0 : Number(line.slice(series.length + 1));
  };
  const before = await scrape();
  assert.equal(value(before, "doorman_connections_open"), 0);
  const psk = await pskOf(server.keyFile);
  const client = await connect({
    port: server.port,
    psk,
    user: "alex",
    password: "alex pw",
  });
  for (let i = 0; i < 3; i++) await client.request(`message ${i}`);
  const during = await scrape();
  assert.equal(value(during, "doorman_connections_open"), 1);
  assert.equal(value(during, 'doorman_sessions{service="echo"}'), 1);
  assert.equal(value(during, 'doorman_logins_total{result="ok"}'), 1);
  assert.equal(value(during, "doorman_connections_accepted_total"), 1);
  assert.ok(value(during, "doorman_bytes_in_total") > 0);
  assert.ok(value(during, "doorman_frames_out_total") >= 5);
  await client.close();
  await assert.rejects(() =>
    connect({ port: server.port, psk, user: "alex", password: "wrong" })
  );
  assert.ok(
    await waitFor(async () =>
      value(await scrape(), 'doorman_logins_total{result="failed"}') === 1
    ),
  );
  const after = await scrape();
  assert.equal(value(after, 'doorman_sessions{service="echo"}'), 0);
  assert.equal(value(after, "doorman_penalties_active"), 1);
  assert.ok(
    value(after, "doorman_bytes_in_total") >
      value(during, "doorman_bytes_in_total"),
  );
});

Deno.test({
  name:
    "HAProxy (send-proxy-v2) before two servers: they log the client's address, and penalties hit the client, not HAProxy",
  ignore: skipWithout("haproxy", "socat"),
  async fn() {
    const args = ["--proxy-protocol-from", "127.0.0.1", "--penalty-cap", "1"];
    await using first = await startWith({
      service: "echo",
      users: USERS,
      args,
    });
    await using second = await startWith(
      { service: "echo", users: USERS, args },
      first,
    );
    const haproxyPort = freePort();
    const config = `${first.dir}/haproxy.cfg`;
    await Deno.writeTextFile(
      config,
      await haproxyConfig(haproxyPort, [first.port, second.port]),
    );
    await using _haproxy = await startHaproxy(config, haproxyPort);
    // socat relays from a second source address, 127.0.0.2.
    const relayPort = freePort();
    const socat = new Deno.Command(findBinary("socat")!, {
      args: [
        `TCP-LISTEN:${relayPort},bind=127.0.0.1,reuseaddr,fork`,
        `TCP:127.0.0.1:${haproxyPort},bind=127.0.0.2`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await waitForPort(relayPort);
      const psk = await pskOf(first.keyFile);
      for (let i = 0; i < 4; i++) {
        await assert.rejects(() =>
          connect({ port: relayPort, psk, user: "alex", password: "wrong" })
        );
      }
      for (let i = 0; i < 2; i++) {
        const client = await connect({
          port: haproxyPort,
          psk,
          user: "bob",
          password: "bob pw",
        });
        assert.equal(decoder.decode(await client.request("hi")), "hi");
        await client.close();
      }
      const stderr = first.stderr() + second.stderr();
      assert.equal(
        stderr.match(/ login_failed conn=\d+ peer=127\.0\.0\.2:\d+/g)?.length,
        4,
      );
      assert.match(
        stderr,
        / penalty conn=\d+ peer=127\.0\.0\.2:\d+ .*address=127\.0\.0\.2\n/,
      );
      assert.doesNotMatch(stderr, / penalty .*address=127\.0\.0\.1\n/);
      assert.equal(
        stderr.match(
          / login_succeeded conn=\d+ peer=127\.0\.0\.1:\d+ user=bob/g,
        )
          ?.length,
        2,
      );
    } finally {
      socat.kill("SIGTERM");
      await socat.status;
    }
  },
});

/** deploy/haproxy.cfg, on loopback and the given ports. */
async function haproxyConfig(port: number, servers: number[]) {
  const url = new URL("../../deploy/haproxy.cfg", import.meta.url);
  const text = await Deno.readTextFile(url);
  return text
    .replace("bind 0.0.0.0:9000", `bind 127.0.0.1:${port}`)
    .replace("127.0.0.1:9001", `127.0.0.1:${servers[0]}`)
    .replace("127.0.0.1:9002", `127.0.0.1:${servers[1]}`);
}

Deno.test({
  name:
    "server.ts serve --broker: chat between clients of two server processes through nats-server",
  ignore: skipWithout("nats-server"),
  async fn() {
    const natsPort = freePort();
    await using _nats = await startNats(natsPort);
    const args = ["--broker", `nats://127.0.0.1:${natsPort}`];
    await using first = await startWith({
      service: "chat",
      users: USERS,
      args,
    });
    await using second = await startWith(
      { service: "chat", users: USERS, args },
      first,
    );
    for (const server of [first, second]) {
      assert.ok(
        await waitFor(() =>
          server.stderr().includes(" broker reason=connected")
        ),
        server.stderr(),
      );
    }
    const psk = await pskOf(first.keyFile);
    const alex = await connect({
      port: first.port,
      psk,
      user: "alex",
      password: "alex pw",
    });
    const bob = await connect({
      port: second.port,
      psk,
      user: "bob",
      password: "bob pw",
    });
    const heard: string[] = [];
    const reading = (async () => {
      for await (const push of bob) heard.push(decoder.decode(push));
    })().catch(() => {});
    for (let i = 0; i < 5; i++) await alex.send(`hello ${i}`);
    assert.ok(await waitFor(() => heard.length >= 5), heard.join("|"));
    assert.deepEqual(heard, [0, 1, 2, 3, 4].map((i) => `alex: hello ${i}`));
    await alex.close();
    assert.ok(await waitFor(() => heard.includes("* alex left")));
    await bob.close();
    await reading;
  },
});

Deno.test({
  name:
    "server.ts serve --broker-penalties: failed logins on one server get the client refused by the other",
  ignore: skipWithout("nats-server"),
  async fn() {
    const natsPort = freePort();
    await using _nats = await startNats(natsPort);
    const args = [
      ...["--broker", `nats://127.0.0.1:${natsPort}`, "--broker-penalties"],
      ...["--service", "echo"],
    ];
    await using first = await startWith({
      service: "echo",
      users: USERS,
      args,
    });
    await using second = await startWith(
      { service: "echo", users: USERS, args },
      first,
    );
    const psk = await pskOf(first.keyFile);
    for (const server of [first, second]) {
      assert.ok(
        await waitFor(() =>
          server.stderr().includes('reason="penalty sharing connected"')
        ),
      );
    }
    for (let i = 0; i < 3; i++) {
      await assert.rejects(() =>
        connect({ port: first.port, psk, user: "alex", password: "wrong" })
      );
    }
    assert.ok(
      await waitFor(async () => {
        try {
          const client = await connect({
            port: second.port,
            psk,
            user: "bob",
            password: "bob pw",
          });
          await client.close();
          return false;
        } catch {
          return true;
        }
      }, { tries: 20, everyMs: 100 }),
    );
    assert.match(
      second.stderr(),
      / refused conn=\d+ peer=127\.0\.0\.1:\d+ reason="penalty/,
    );
    assert.doesNotMatch(second.stderr(), / login_failed /);
  },
});

Deno.test("server.ts serve --workers 2 --config: SIGHUP reloads the deny list in every worker", async () => {
  const dir = await Deno.makeTempDir({ prefix: "doorman_reload_test_" });
  try {
    const keyFile = `${dir}/doorman.key`;
    await Deno.writeTextFile(keyFile, "cd".repeat(32) + "\n", { mode: 0o600 });
    const config = `${dir}/doorman.toml`;
    await Deno.writeTextFile(config, "deny = []\n");
    const [command, ...prefix] = denoRun("server");
    prefix.splice(prefix.length - 1, 0, "--allow-run");
    const child = new Deno.Command(command, {
      args: [
        ...prefix,
        "serve",
        ...["--config", config, "--port", "0", "--key-file", keyFile],
        ...["--anonymous", "--service", "echo", "--workers", "2"],
      ],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    const stderrDone = child.stderr.pipeThrough(new TextDecoderStream())
      .pipeTo(new WritableStream({ write: (chunk) => void (stderr += chunk) }));
    const stdout = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    try {
      let first = "";
      while (!first.includes("\n")) {
        const { value, done } = await stdout.read();
        if (done) break;
        first += value;
      }
      const port = Number(/^listening on .+:(\d+)$/m.exec(first)?.[1]);
      assert.ok(port > 0, first + stderr);
      const psk = await pskOf(keyFile);
      const client = await connect({ port, psk });
      assert.equal(decoder.decode(await client.request("in")), "in");
      await client.close();
      await Deno.writeTextFile(config, 'deny = ["127.0.0.0/8"]\n');
      child.kill("SIGHUP");
      const reloaded = () =>
        stderr.match(/ config_reloaded reason="allow\/deny lists"/g)?.length ??
          0;
      assert.ok(await waitFor(() => reloaded() === 2), stderr);
      for (let i = 0; i < 4; i++) {
        await assert.rejects(() => connect({ port, psk }));
      }
    } finally {
      child.kill("SIGTERM");
      const status = await child.status;
      await stdout.cancel();
      await stderrDone;
      assert.equal(status.code, 0, stderr);
    }
    assert.ok(
      (stderr.match(
        / refused conn=\d+ peer=127\.0\.0\.1:\d+ reason="address denied"/g,
      )?.length ?? 0) >= 4,
      stderr,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server.ts serve --workers 2: workers stop when the parent is killed with SIGKILL", async () => {
  const dir = await Deno.makeTempDir({ prefix: "doorman_orphan_test_" });
  try {
    const keyFile = `${dir}/doorman.key`;
    await Deno.writeTextFile(keyFile, "ef".repeat(32) + "\n", { mode: 0o600 });
    const command = denoRun("server");
    command.splice(command.length - 1, 0, "--allow-run");
    const server = await startListening(command, [
      "serve",
      ...["--port", "0", "--key-file", keyFile, "--anonymous"],
      ...["--service", "echo", "--workers", "2"],
    ], { cwd: dir });
    // stderr ends only once every holder of the pipe, workers included,
    // has exited.
    const result = await server.stop("SIGKILL");
    assert.equal(
      result.stderr.match(/ shutdown reason="parent process gone"/g)?.length,
      2,
      result.stderr,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
