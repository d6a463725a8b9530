// Racing a piece of work against an AbortSignal: the worker's handlers and the replay of wrapped handlers share it.

/**
 * Settle with `work`, or reject with the signal's reason as soon as it aborts: a handler that ignores its signal
 * (or never answers a canceled job) is abandoned rather than waited for.
 */
export function raceAbort<T>(work: Promise<T> | T, signal: AbortSignal): Promise<T> {
  if (!(work instanceof Promise)) return Promise.resolve(work);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
