/**
 * Server parts: how many tasks (connections, from accept to their last log
 * line) are running, and a promise of the moment none is, for shutdown. A
 * count, not a set of the tasks' promises: an idle connection then costs
 * no set entry and no promise kept for shutdown alone (bench: idle
 * memory).
 *
 * @module
 */

/**
 * Counts running tasks; {@link none} resolves once the count is back to 0.
 * The count and its waiters span calls, hence a class.
 *
 * @example Usage
 * ```ts
 * const tasks = new TaskCount();
 * tasks.add();
 * const allDone = tasks.none();
 * tasks.done();
 * await allDone;
 * ```
 */
export class TaskCount {
  #count = 0;
  #none: PromiseWithResolvers<void> | null = null;

  /** Tasks running now. */
  get count(): number {
    return this.#count;
  }

  /** Counts one more running task. */
  add(): void {
    this.#count++;
  }

  /**
   * Counts one task as done.
   *
   * @throws {RangeError} If no task is running.
   */
  done(): void {
    if (this.#count === 0) {
      throw new RangeError("Cannot count a task done: none is running");
    }
    if (--this.#count > 0) return;
    this.#none?.resolve();
    this.#none = null;
  }

  /**
   * Resolves once no task is running (at once if none is now).
   *
   * @returns A promise that never rejects.
   */
  none(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    this.#none ??= Promise.withResolvers<void>();
    return this.#none.promise;
  }
}
