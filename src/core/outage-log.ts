// Log a failing background task once per outage (not once per retry), and once more when it works again.

/** Where an OutageLog writes: `console` fits, as does the `logger` option of `createJobs()`. */
export interface OutageLogger {
  error(message: string, details?: unknown): void;
  warn?(message: string, details?: unknown): void;
}

/**
 * Tracks failures by kind (`'claim'`, `'renew'`, `'purge'`...). The first failure of a kind logs an error with its
 * cause; further failures of that kind are counted, not logged, until a success of that kind logs one warning
 * saying it works again. So a database that is down for an hour gives two lines per kind, not one stack a second.
 * @example
 * const outages = new OutageLog(logger);
 * try { await store.renew(...); outages.recovered('renew'); }
 * catch (error) { outages.failed('renew', 'respond-async: renewing leases failed; will retry', error); }
 */
export class OutageLog {
  readonly #logger: OutageLogger;
  /** Kinds failing now, with how many failures went unlogged since the first. */
  readonly #down = new Map<string, number>();

  constructor(logger: OutageLogger) {
    this.#logger = logger;
  }

  /** Record a failure of `kind`: logged (as `message`, with `error`) only if `kind` was working until now. */
  failed(kind: string, message: string, error: unknown): void {
    const suppressed = this.#down.get(kind);
    if (suppressed !== undefined) {
      this.#down.set(kind, suppressed + 1);
      return;
    }
    this.#down.set(kind, 0);
    this.#logger.error(message, error);
  }

  /** Record a success of `kind`: logs one line if `kind` was failing. Cheap when it was not. */
  recovered(kind: string, message = `respond-async: ${kind} works again; the store is reachable again`): void {
    if (this.#down.size === 0) return;
    const suppressed = this.#down.get(kind);
    if (suppressed === undefined) return;
    this.#down.delete(kind);
    (this.#logger.warn ?? this.#logger.error).call(this.#logger, message, { repeatedFailures: suppressed });
  }

  /** Whether `kind` is failing now. */
  isDown(kind: string): boolean {
    return this.#down.has(kind);
  }
}
