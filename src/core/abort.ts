// Racing a piece of work against an abort: an AbortSignal (the replay of wrapped handlers) or an attempt's own abort
// state (the worker's handlers, whose AbortSignal is made only when the handler asks for it).

/**
 * Settle with `work`, or reject with the signal's reason as soon as it aborts: a handler that ignores its signal
 * (or never answers a canceled job) is abandoned rather than waited for.
 */
export function raceAbort<T>(work: Promise<T> | T, signal: AbortSignal): Promise<T> {
  if (!isThenable(work)) return Promise.resolve(work);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    Promise.resolve(work).then(
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

/**
 * The abort state of one attempt. Its AbortSignal is made only when someone asks for it (a handler that reads
 * `ctx.signal`), and race() settles early on abort without listening on a signal: a no-op handler then costs no
 * AbortController, and no listener added and removed.
 */
export class AttemptAbort {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;
  #onAbort: ((reason: unknown) => void) | undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Abort with `reason`; later calls do nothing, as with AbortController. */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
    const onAbort = this.#onAbort;
    this.#onAbort = undefined;
    onAbort?.(reason);
  }

  /** raceAbort() against this attempt's abort (one race at a time). */
  race<T>(work: Promise<T> | T): Promise<T> {
    if (!isThenable(work)) return Promise.resolve(work);
    if (this.#aborted) return Promise.reject(this.#reason);
    return new Promise<T>((resolve, reject) => {
      this.#onAbort = reject;
      Promise.resolve(work).then(resolve, reject);
    });
  }
}

/** Any thenable, not only this realm's Promise: a handler may return another promise library's. */
function isThenable<T>(work: Promise<T> | T): work is Promise<T> {
  return typeof (work as { then?: unknown } | null)?.then === 'function';
}
