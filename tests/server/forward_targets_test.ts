import assert from "node:assert/strict";
import {
  mayUseTarget,
  parseForwardTargets,
} from "../../lib/server/forward_targets.ts";

Deno.test("parseForwardTargets() reads NAME=HOST:PORT, IPv6 in brackets, rules and proxy flags", () => {
  const targets = parseForwardTargets({
    forward: ["redis=127.0.0.1:6379", "ssh=[::1]:22", "web=localhost:8080"],
    users: ["redis=alice,bob", "redis=key:laptop-alice", "ssh= carol "],
    proxyProtocol: ["web"],
  });
  const redis = targets.get("redis");
  assert.ok(redis);
  assert.equal(redis.host, "127.0.0.1");
  assert.equal(redis.port, 6379);
  assert.deepEqual([...redis.users ?? []], ["alice", "bob"]);
  assert.deepEqual([...redis.keys ?? []], ["laptop-alice"]);
  assert.equal(redis.proxyProtocol, false);
  assert.equal(targets.get("ssh")?.host, "::1");
  assert.deepEqual([...targets.get("ssh")?.users ?? []], ["carol"]);
  assert.equal(targets.get("web")?.users, null);
  assert.equal(targets.get("web")?.proxyProtocol, true);
});

Deno.test("parseForwardTargets() refuses malformed entries and rules for unknown names", () => {
  const bad: Parameters<typeof parseForwardTargets>[0][] = [
    { forward: ["redis"] },
    { forward: ["=127.0.0.1:1"] },
    { forward: ["re dis=127.0.0.1:1"] },
    { forward: ["redis=127.0.0.1"] },
    { forward: ["redis=127.0.0.1:0"] },
    { forward: ["redis=127.0.0.1:65536"] },
    { forward: ["redis=::1:22"] },
    { forward: ["a=127.0.0.1:1", "a=127.0.0.1:2"] },
    { users: ["redis=alice"] },
    { proxyProtocol: ["redis"] },
  ];
  for (const flags of bad) {
    assert.throws(() => parseForwardTargets(flags), RangeError);
  }
});

Deno.test("mayUseTarget(): no rule lets everyone in; a rule matches user names or key ids", () => {
  const targets = parseForwardTargets({
    forward: ["open=127.0.0.1:1", "db=127.0.0.1:2", "keys=127.0.0.1:3"],
    users: ["db=alice", "keys=key:laptop"],
  });
  const open = targets.get("open")!;
  const db = targets.get("db")!;
  const keys = targets.get("keys")!;
  assert.ok(mayUseTarget(open, { user: "anyone" }));
  assert.ok(mayUseTarget(open, { user: null }));
  assert.ok(mayUseTarget(db, { user: "alice" }));
  assert.ok(!mayUseTarget(db, { user: "bob" }));
  assert.ok(!mayUseTarget(db, { user: null }));
  assert.ok(!mayUseTarget(db, { user: "bob", keyId: "alice" }));
  assert.ok(mayUseTarget(keys, { user: "bob", keyId: "laptop" }));
  assert.ok(
    !mayUseTarget(keys, { user: "laptop" }),
    "a user name is not a key id",
  );
  assert.ok(!mayUseTarget(keys, { user: "bob", keyId: null }));
});
