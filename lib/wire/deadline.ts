/**
 * Timers and cancellation, in one place, with `AbortSignal`: a deadline for
 * a piece of async work (`raceSignal`, failing with a `TimeoutError`),
 * "did it finish before this signal / within this time" (`settlesBefore`,
 * `settlesWithin`), a sleep that a signal cuts short (`sleep`), and a
 * timer-backed signal that is cleared when its scope ends
 * (`timeoutSignal`). Each layer (handshake, login, connect, close, server
 * shutdown) uses these instead of its own timers; none of them cancels I/O
 * itself: the caller closes the connection under the work. No I/O of its
 * own, and no timer outlives the call that made it.
 *
 * @module
 */

import { TimeoutError } from "../errors.ts";

/**
 * Resolves with `work`, or rejects with a `TimeoutError` once `signal`
 * aborts. `work` is left running; the caller closes the connection under it.
 *
 * @param work The work to wait for.
 * @param signal Its deadline; `undefined` waits for `work` alone.
 * @param message The `TimeoutError`'s message.
 * @returns What `work` resolves with.
 * @throws {TimeoutError} If `signal` aborts first.
 * @example Usage
 * ```ts
 * await raceSignal(Promise.resolve(1), AbortSignal.timeout(1000), "Too slow"); // 1
 * ```
 */
export function raceSignal<T>(
  work: Promise<T>,
  signal: AbortSignal | undefined,
  message: string,
): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(new TimeoutError(message));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => {});
      reject(new TimeoutError(message));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  });
}

/**
 * Whether `work` resolves before `signal` aborts.
 *
 * @param work The work to wait for; it is left running either way.
 * @param signal When to stop waiting.
 * @returns `true` if `work` resolved first, `false` once `signal` aborted.
 * @throws {unknown} What `work` rejects with, if it does so first.
 * @example Usage
 * ```ts
 * await settlesBefore(Promise.resolve(), AbortSignal.timeout(1000)); // true
 * ```
 */
export function settlesBefore(
  work: Promise<unknown>,
  signal: AbortSignal,
): Promise<boolean> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.resolve(false);
  }
  return new Promise<boolean>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => {});
      resolve(false);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(() => resolve(true), reject).finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  });
}

/**
 * Whether `work` resolves within `ms`; the timer never outlives the wait.
 *
 * @param work The work to wait for; it is left running either way.
 * @param ms How long to wait, in ms.
 * @returns `true` if `work` resolved in time.
 * @throws {unknown} What `work` rejects with, if it does so in time.
 * @example Usage
 * ```ts
 * await settlesWithin(Promise.resolve(), 1000); // true
 * ```
 */
export async function settlesWithin(
  work: Promise<unknown>,
  ms: number,
): Promise<boolean> {
  using deadline = timeoutSignal(ms);
  return await settlesBefore(work, deadline.signal);
}

/**
 * Waits `ms`, ending early (without an error) once `signal` aborts.
 *
 * @param ms How long to wait, in ms; 0 or less returns at once.
 * @param signal Cuts the wait short, such as the server's shutdown.
 * @returns A promise that resolves when the time is up or `signal` aborted.
 * @example Usage
 * ```ts
 * await sleep(10);
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** A signal that aborts after a time, and whose timer `using` clears. */
export interface TimeoutSignal extends Disposable {
  /** Aborts `ms` after {@link timeoutSignal} was called. */
  readonly signal: AbortSignal;
}

/**
 * A signal that aborts after `ms`, like `AbortSignal.timeout`, but whose
 * timer is cleared when the scope that holds it ends (`using`), so a
 * deadline that was met leaves no timer behind.
 *
 * @param ms The deadline, in ms from now.
 * @returns The signal, disposable.
 * @example Usage
 * ```ts
 * using deadline = timeoutSignal(10_000);
 * deadline.signal.aborted; // false
 * ```
 */
export function timeoutSignal(ms: number): TimeoutSignal {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  return {
    signal: controller.signal,
    [Symbol.dispose]: () => clearTimeout(timer),
  };
}
