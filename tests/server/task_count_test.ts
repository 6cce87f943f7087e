import assert from "node:assert/strict";
import { TaskCount } from "../../lib/server/task_count.ts";

Deno.test("TaskCount.none() resolves at once when no task runs", async () => {
  await new TaskCount().none();
});

Deno.test("TaskCount.none() resolves once the last running task is done", async () => {
  const tasks = new TaskCount();
  tasks.add();
  tasks.add();
  let resolved = false;
  const none = tasks.none().then(() => resolved = true);
  tasks.done();
  await Promise.resolve();
  assert.equal(resolved, false);
  assert.equal(tasks.count, 1);
  tasks.done();
  await none;
  assert.equal(resolved, true);
  assert.equal(tasks.count, 0);
});

Deno.test("TaskCount.done() throws when no task runs", () => {
  assert.throws(() => new TaskCount().done(), RangeError);
});
