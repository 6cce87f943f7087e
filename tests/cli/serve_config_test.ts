import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import {
  configPath,
  expandConfigArgs,
  formatConfig,
  readConfigFile,
} from "../../lib/cli/serve_config.ts";
import { runServeCommand } from "../../lib/cli/serve_command.ts";
import { tempDir } from "../helpers.ts";

const SPECS = {
  port: { type: "string" },
  anonymous: { type: "boolean" },
  allow: { type: "string", multiple: true },
  "max-connections": { type: "string" },
  config: { type: "string" },
  help: { type: "boolean" },
} as const;

Deno.test("configPath() finds --config FILE and --config=FILE, the last one", () => {
  assert.equal(configPath(["--port", "1"]), null);
  assert.equal(configPath(["--config", "a.toml"]), "a.toml");
  assert.equal(configPath(["--config=a.toml", "--config", "b.json"]), "b.json");
  assert.equal(configPath(["--", "--config", "x"]), null);
});

Deno.test("expandConfigArgs() puts the file's keys before the command line, which wins", async () => {
  await using dir = await tempDir();
  const path = dir.join("d.toml");
  await Deno.writeTextFile(
    path,
    'port = 9100\nanonymous = true\nallow = ["10.0.0.0/8", "::1"]\nmax_connections = "7"\n',
  );
  const args = await expandConfigArgs(
    ["--config", path, "--allow", "127.0.0.1"],
    SPECS,
  );
  assert.deepEqual(args, [
    "--port=9100",
    "--anonymous",
    "--max-connections=7",
    "--config",
    path,
    "--allow",
    "127.0.0.1",
  ]);
});

Deno.test("readConfigFile() rejects unknown keys, wrong types, bad syntax, missing files", async () => {
  await using dir = await tempDir();
  const cases: [string, string, RegExp][] = [
    ["a.toml", "nope = 1\n", /key "nope": not a serve flag/],
    ["b.toml", "help = true\n", /key "help": not a serve flag/],
    ["c.toml", "anonymous = 1\n", /expected true or false/],
    ["d.toml", "port = [1]\n", /expected a string or number/],
    ["e.toml", "port = \n", /Cannot parse config file/],
    ["f.json", "[1]", /expected a table/],
  ];
  for (const [name, text, message] of cases) {
    await Deno.writeTextFile(dir.join(name), text);
    await assert.rejects(
      () => readConfigFile(dir.join(name), SPECS),
      (error: Error) =>
        error instanceof UsageError && message.test(error.message),
      name,
    );
  }
  await assert.rejects(
    () => readConfigFile(dir.join("missing.toml"), SPECS),
    UsageError,
  );
});

Deno.test("formatConfig() prints TOML that readConfigFile() reads back", async () => {
  const text = formatConfig(
    { port: "9000", anonymous: true, allow: ["10.0.0.0/8,::1"], config: "x" },
    SPECS,
  );
  assert.equal(
    text,
    [
      "# doorman serve: effective configuration",
      "port = 9000",
      "anonymous = true",
      'allow = ["10.0.0.0/8", "::1"]',
      "# max-connections not set",
    ].join("\n"),
  );
  await using dir = await tempDir();
  await Deno.writeTextFile(dir.join("back.toml"), text);
  const values = await readConfigFile(dir.join("back.toml"), SPECS);
  assert.deepEqual(values.get("allow"), ["10.0.0.0/8", "::1"]);
  assert.equal(values.get("port"), "9000");
});

Deno.test("deploy/doorman.toml is a valid serve configuration", async () => {
  const out: string[] = [];
  const code = await runServeCommand(
    [
      "--config",
      new URL("../../deploy/doorman.toml", import.meta.url).pathname,
      "--print-config",
    ],
    {
      stdout: (line) => out.push(line),
      stderr: () => {},
      env: () => undefined,
      stdin: new ReadableStream(),
      stdinIsTerminal: false,
    },
  );
  assert.equal(code, 0);
  assert.match(out.join("\n"), /^proxy-protocol-from = \["127.0.0.1"\]$/m);
  assert.match(out.join("\n"), /^broker = "nats:\/\/127.0.0.1:4222"$/m);
});
