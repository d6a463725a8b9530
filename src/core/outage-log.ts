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
 * A kind that has not been tried for `quietMs` (default 60 s) since its last failure starts a new outage when it
 * fails again (so a task that only runs now and then, and never saw its recovery, is not silenced for good).
 * @example
 * const outages = new OutageLog(logger);
 * try { await store.renew(...); outages.recovered('renew'); }
 * catch (error) { outages.failed('renew', 'respond-async: renewing leases failed; will retry', error); }
 */
export class OutageLog {
  readonly #logger: OutageLogger;
  readonly #quietMs: number;
  /** Kinds failing now: failures not logged since the first, and when the last one happened. */
  readonly #down = new Map<string, { suppressed: number; lastAt: number }>();

  constructor(logger: OutageLogger, options: { quietMs?: number } = {}) {
    this.#logger = logger;
    this.#quietMs = options.quietMs ?? 60_000;
  }

  /** Record a failure of `kind`: logged (as `message`, with `error`) only if `kind` was working until now. */
  failed(kind: string, message: string, error: unknown): void {
    const now = Date.now();
    const outage = this.#down.get(kind);
    if (outage !== undefined && now - outage.lastAt < this.#quietMs) {
      outage.suppressed += 1;
      outage.lastAt = now;
      return;
    }
    this.#down.set(kind, { suppressed: 0, lastAt: now });
    this.#logger.error(message, error);
  }

  /** Record a success of `kind`: logs one line if `kind` was failing. Cheap when it was not. */
  recovered(kind: string, message = `respond-async: ${kind} works again; the store is reachable again`): void {
    if (this.#down.size === 0) return;
    const outage = this.#down.get(kind);
    if (outage === undefined) return;
    this.#down.delete(kind);
    (this.#logger.warn ?? this.#logger.error).call(this.#logger, message, { repeatedFailures: outage.suppressed });
  }

  /** Whether `kind` is failing now. */
  isDown(kind: string): boolean {
    return this.#down.has(kind);
  }
}
