import assert from "node:assert/strict";
import { join } from "node:path";
import { runUserCommand } from "../../lib/cli/user_command.ts";
import type { CommandIo } from "../../lib/cli/command_io.ts";
import { toBase64 } from "../../lib/wire/bytes.ts";
import { constantTimeEqual } from "../../lib/wire/crypto.ts";
import { describeError, UsageError } from "../../lib/errors.ts";
import { createScramVerifier } from "../../lib/login/scram.ts";
import { readUserinfoFile } from "../../lib/users/user_store.ts";
import { findUser } from "../../lib/users/userinfo.ts";

const FAST = ["--iterations", "4096"];
const ALEX_MD5 = "94e4ccf5e2749b0bfe0428603738c0f9";

interface FakeIo extends CommandIo {
  readonly out: string[];
  readonly err: string[];
}

function fakeIo(
  options: { stdin?: string; env?: Record<string, string> } = {},
): FakeIo {
  const out: string[] = [];
  const err: string[] = [];
  const env = options.env ?? {};
  return {
    out,
    err,
    stdout: (line) => out.push(line),
    stderr: (line) => err.push(line),
    stdin: ReadableStream.from([new TextEncoder().encode(options.stdin ?? "")]),
    stdinIsTerminal: false,
    env: (name) => env[name],
  };
}

async function makeDir(): Promise<{ users: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "doorman_user_cmd_" });
  return {
    users: join(dir, "userinfo"),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

async function addUser(users: string, name: string, password: string) {
  const io = fakeIo({ stdin: `${password}\n` });
  const args = ["add", name, "--users", users, ...FAST, "--password-stdin"];
  assert.equal(await runUserCommand(args, io), 0);
  return io;
}

async function assertPassword(users: string, name: string, password: string) {
  const verifier = findUser(await readUserinfoFile(users), name);
  assert.ok(verifier?.kind === "scram-sha-256", "expected a SCRAM verifier");
  const expected = await createScramVerifier(password, {
    iterations: verifier.scram.iterations,
    salt: verifier.scram.salt,
  });
  assert.ok(constantTimeEqual(expected.storedKey, verifier.scram.storedKey));
}

Deno.test("runUserCommand() add reads --password-stdin and creates the file", async () => {
  await using dir = await makeDir();
  const io = await addUser(dir.users, "bob", "s3cret word");
  assert.deepEqual(io.out, [
    'added user "bob" (scram-sha-256, 4096 iterations)',
  ]);
  await assertPassword(dir.users, "bob", "s3cret word");
  assert.equal(((await Deno.stat(dir.users)).mode ?? 0) & 0o777, 0o600);
});

Deno.test("runUserCommand() add strips a trailing CR from --password-stdin", async () => {
  await using dir = await makeDir();
  await addUser(dir.users, "bob", "pencil\r");
  await assertPassword(dir.users, "bob", "pencil");
});

Deno.test("runUserCommand() add reads DOORMAN_PASSWORD", async () => {
  await using dir = await makeDir();
  const io = fakeIo({ env: { DOORMAN_PASSWORD: "from env" } });
  const args = ["add", "carol", "--users", dir.users, ...FAST];
  assert.equal(await runUserCommand(args, io), 0);
  await assertPassword(dir.users, "carol", "from env");
});

Deno.test("runUserCommand() add rejects an existing name", async () => {
  await using dir = await makeDir();
  await addUser(dir.users, "bob", "one");
  const before = await Deno.readTextFile(dir.users);
  await assert.rejects(
    runUserCommand(
      ["add", "bob", "--users", dir.users, ...FAST, "--password-stdin"],
      fakeIo({ stdin: "two\n" }),
    ),
    (error: Error) => {
      assert.ok(!(error instanceof UsageError));
      assert.equal(error.message, 'Cannot add user "bob": already exists');
      return true;
    },
  );
  assert.equal(await Deno.readTextFile(dir.users), before);
});

Deno.test("runUserCommand() add rejects a bad name with the reason", async () => {
  await using dir = await makeDir();
  await assert.rejects(
    runUserCommand(
      ["add", "a|b", "--users", dir.users, "--password-stdin"],
      fakeIo({ stdin: "pw\n" }),
    ),
    (error: Error) =>
      error instanceof UsageError &&
      describeError(error) === 'Cannot use user name "a|b": name contains "|"',
  );
});

Deno.test("runUserCommand() passwd changes the password and upgrades md5", async () => {
  await using dir = await makeDir();
  await Deno.writeTextFile(dir.users, `# staff\nalex|${ALEX_MD5}\n`);
  const io = fakeIo({ stdin: "new password\n" });
  const args = ["passwd", "alex", "--users", dir.users, ...FAST];
  assert.equal(await runUserCommand([...args, "--password-stdin"], io), 0);
  assert.deepEqual(io.out, [
    'changed password of user "alex" (scram-sha-256, 4096 iterations)',
  ]);
  await assertPassword(dir.users, "alex", "new password");
  assert.match(await Deno.readTextFile(dir.users), /^# staff\nalex\|SCRAM/);
});

Deno.test("runUserCommand() passwd rejects a missing user", async () => {
  await using dir = await makeDir();
  await addUser(dir.users, "bob", "pw");
  await assert.rejects(
    runUserCommand(
      ["passwd", "nobody", "--users", dir.users, "--password-stdin"],
      fakeIo({ stdin: "pw\n" }),
    ),
    (error: Error) =>
      !(error instanceof UsageError) &&
      error.message === 'Cannot change password of user "nobody": no such user',
  );
});

Deno.test("runUserCommand() del removes a user and rejects a missing one", async () => {
  await using dir = await makeDir();
  await addUser(dir.users, "bob", "pw");
  await addUser(dir.users, "carol", "pw");
  const io = fakeIo();
  assert.equal(
    await runUserCommand(["del", "bob", "--users", dir.users], io),
    0,
  );
  assert.deepEqual(io.out, ['deleted user "bob"']);
  const userinfo = await readUserinfoFile(dir.users);
  assert.equal(findUser(userinfo, "bob"), null);
  assert.notEqual(findUser(userinfo, "carol"), null);
  await assert.rejects(
    runUserCommand(["del", "bob", "--users", dir.users], fakeIo()),
    (error: Error) =>
      !(error instanceof UsageError) &&
      error.message === 'Cannot delete user "bob": no such user',
  );
});

Deno.test("runUserCommand() list prints names and kinds, never verifiers", async () => {
  await using dir = await makeDir();
  await Deno.writeTextFile(dir.users, `alex|${ALEX_MD5}\n`);
  await addUser(dir.users, "bob", "pw");
  const io = fakeIo();
  assert.equal(await runUserCommand(["list", "--users", dir.users], io), 0);
  assert.deepEqual(io.out, ["alex md5 (legacy)", "bob scram-sha-256"]);
  const verifier = findUser(await readUserinfoFile(dir.users), "bob");
  assert.ok(verifier?.kind === "scram-sha-256");
  const printed = [...io.out, ...io.err].join("\n");
  assert.ok(!printed.includes(ALEX_MD5));
  assert.ok(!printed.includes(toBase64(verifier.scram.salt)));
  assert.ok(!printed.includes(toBase64(verifier.scram.storedKey)));
  assert.ok(!printed.includes("SCRAM-SHA-256$"));
});

Deno.test("runUserCommand() list reports a missing file", async () => {
  await using dir = await makeDir();
  await assert.rejects(
    runUserCommand(["list", "--users", dir.users], fakeIo()),
    (error: Error) =>
      /^Cannot read users file ".*userinfo": not found$/.test(error.message),
  );
});

Deno.test("runUserCommand() rejects bad --iterations", async () => {
  await using dir = await makeDir();
  for (const value of ["4095", "0", "abc", "4096.5", "-5000", "1e6", ""]) {
    await assert.rejects(
      runUserCommand(
        ["add", "bob", "--users", dir.users, `--iterations=${value}`],
        fakeIo({ env: { DOORMAN_PASSWORD: "pw" } }),
      ),
      UsageError,
      `--iterations ${value}`,
    );
  }
});

Deno.test("runUserCommand() rejects usage mistakes with a one-line UsageError", async () => {
  const cases: [string[], RegExp][] = [
    [[], /missing command/],
    [["frobnicate"], /"frobnicate": unknown command/],
    [["ad", "bob"], /unknown command \(did you mean "add"\?\)/],
    [["add"], /missing NAME/],
    [["add", "bob", "carol"], /unexpected argument "carol"/],
    [["add", "bob", "--bogus"], /unknown flag "--bogus"/],
    [["del", "bob", "--iterations", "5000"], /unknown flag "--iterations"/],
    [["list", "--users"], /flag "--users" needs a value/],
    [["list", "extra"], /unexpected argument "extra"/],
  ];
  for (const [args, pattern] of cases) {
    await assert.rejects(
      runUserCommand(args, fakeIo()),
      (error: Error) => {
        assert.ok(error instanceof UsageError, `${args}: ${error}`);
        assert.match(error.message, pattern);
        assert.equal(describeError(error), error.message);
        assert.ok(!error.message.includes("\n"), error.message);
        return true;
      },
    );
  }
});

Deno.test("runUserCommand() add without any password source is a UsageError", async () => {
  await using dir = await makeDir();
  await assert.rejects(
    runUserCommand(["add", "bob", "--users", dir.users], fakeIo()),
    UsageError,
    "Cannot read password: stdin is not a terminal; " +
      "use --password-stdin or DOORMAN_PASSWORD",
  );
  await assert.rejects(Deno.stat(dir.users), Deno.errors.NotFound);
});

Deno.test("runUserCommand() --help prints every flag with its default", async () => {
  const top = fakeIo();
  assert.equal(await runUserCommand(["--help"], top), 0);
  for (const command of ["add", "passwd", "del", "list"]) {
    assert.match(top.out.join("\n"), new RegExp(`^  ${command}\\b`, "m"));
  }
  for (const command of ["add", "passwd"]) {
    const io = fakeIo();
    assert.equal(await runUserCommand([command, "--help"], io), 0);
    const text = io.out.join("\n");
    assert.match(text, /--users FILE .*\(default: userinfo\)/);
    assert.match(text, /--iterations N .*\(default: 600000\)/);
    assert.match(text, /--password-stdin/);
  }
  for (const command of ["del", "list"]) {
    const io = fakeIo();
    assert.equal(await runUserCommand([command, "-h"], io), 0);
    assert.match(io.out.join("\n"), /--users FILE .*\(default: userinfo\)/);
    assert.doesNotMatch(io.out.join("\n"), /--iterations/);
  }
});
