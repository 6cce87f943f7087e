/**
 * Deadlines: races a piece of async work against an `AbortSignal`, so each
 * layer (handshake, login, connect) can fail with a `TimeoutError` without
 * cancelling I/O itself; the caller closes the connection under the work.
 * No I/O of its own.
 *
 * @module
 */

import { TimeoutError } from "../errors.ts";

/**
 * Resolves with `work`, or rejects with a `TimeoutError` once `signal`
 * aborts. `work` is left running; the caller closes the connection under it.
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
