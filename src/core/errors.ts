// Error classes with stable codes: handler-facing (JobError, UnrecoverableError) and library-raised ones.

/** Base of every error the library raises; `code` is stable across versions. */
export class RespondAsyncError extends Error {
  readonly code: string;
  /**
   * `true` when trying again cannot help (a missing driver, a schema from a newer version): HTTP answers 500 with
   * this code instead of 503 "retry later", so that clients stop retrying and an operator sees it.
   */
  readonly permanent: boolean;
  constructor(code: string, message: string, options: { cause?: unknown; permanent?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RespondAsyncError';
    this.code = code;
    this.permanent = options.permanent ?? false;
  }
}

/**
 * The permanent RespondAsyncError behind `error`: the error itself, or the cause a StoreUnavailableError wraps.
 * @internal
 */
export function permanentError(error: unknown): RespondAsyncError | undefined {
  if (error instanceof RespondAsyncError && error.permanent) return error;
  if (error instanceof StoreUnavailableError) return permanentError(error.cause);
  return undefined;
}

export interface JobErrorOptions {
  /** A stable machine-readable code, served as `error.code`. */
  code?: string;
  /** `false` fails the job at once, without further attempts. Default `true`. */
  retry?: boolean;
  /** Serve the message to clients. Default `true` for a JobError. */
  expose?: boolean;
  cause?: unknown;
}

/**
 * Throw from a handler to fail with a message clients may see.
 * @example throw new JobError('report failed', { code: 'REPORT_FAILED', retry: false })
 */
export class JobError extends Error {
  readonly code: string | undefined;
  readonly retry: boolean;
  readonly expose: boolean;
  constructor(message: string, options: JobErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'JobError';
    this.code = options.code;
    this.retry = options.retry ?? true;
    this.expose = options.expose ?? true;
  }
}

/** Throw from a handler to fail at once, whatever attempts are left. Its message stays private unless `expose`. */
export class UnrecoverableError extends Error {
  readonly retry = false;
  readonly expose: boolean;
  readonly code: string | undefined;
  constructor(message: string, options: { code?: string; expose?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UnrecoverableError';
    this.expose = options.expose ?? false;
    this.code = options.code;
  }
}

/**
 * Throw from a route's `input(req)` to refuse a request: the client gets 400 problem+json with this message
 * and nothing is queued.
 * @example input: (req) => { if (!req.body.email) throw new InputError('email is required'); return req.body }
 */
export class InputError extends RespondAsyncError {
  readonly status = 400;
  constructor(message: string) {
    super('ERR_RESPOND_ASYNC_BAD_INPUT', message);
    this.name = 'InputError';
  }
}

/** The store cannot be reached or failed: submit answers 503 with Retry-After. */
export class StoreUnavailableError extends RespondAsyncError {
  readonly store: string;
  constructor(store: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super('ERR_RESPOND_ASYNC_STORE_UNAVAILABLE', `${store} store unavailable: ${detail}`, { cause });
    this.name = 'StoreUnavailableError';
    this.store = store;
  }
}

/** The store holds as many jobs as it may: submit answers 503 with Retry-After. */
export class QueueFullError extends RespondAsyncError {
  constructor(store: string, limit: number, unit: 'jobs' | 'bytes' = 'jobs') {
    super('ERR_RESPOND_ASYNC_QUEUE_FULL', `${store} store is full (${limit} ${unit})`);
    this.name = 'QueueFullError';
  }
}

/** Reason a handler's signal aborts when the job is canceled. */
export class CanceledError extends RespondAsyncError {
  constructor() {
    super('ERR_RESPOND_ASYNC_CANCELED', 'The job was canceled');
    this.name = 'CanceledError';
  }
}

/** Reason a handler's signal aborts when an attempt runs past `timeoutMs`. */
export class TimeoutError extends RespondAsyncError {
  constructor(ms: number) {
    super('ERR_RESPOND_ASYNC_TIMEOUT', `The job timed out after ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/** Reason a handler's signal aborts when `jobs.close()` passes its deadline. */
export class ShutdownError extends RespondAsyncError {
  constructor() {
    super('ERR_RESPOND_ASYNC_SHUTDOWN', 'The worker is shutting down');
    this.name = 'ShutdownError';
  }
}

/** A store was used after its `close()`. Not permanent: during a shutdown a 503 sends clients to another process. */
export class StoreClosedError extends RespondAsyncError {
  constructor(store: string) {
    super('ERR_RESPOND_ASYNC_STORE_CLOSED', `respond-async: the ${store} store is closed`);
    this.name = 'StoreClosedError';
  }
}

/** A store's database driver (`better-sqlite3`, `pg`) is not installed. */
export class DriverMissingError extends RespondAsyncError {
  readonly driver: string;
  constructor(driver: string, detail: string, cause: unknown) {
    super('ERR_RESPOND_ASYNC_DRIVER_MISSING', `respond-async: cannot import \`${driver}\`: ${detail}`, {
      cause,
      permanent: true,
    });
    this.name = 'DriverMissingError';
    this.driver = driver;
  }
}

/** The database's schema was written by a newer version of respond-async: this one cannot read it safely. */
export class SchemaTooNewError extends RespondAsyncError {
  readonly found: number;
  readonly known: number;
  constructor(store: string, found: number, known: number) {
    super(
      'ERR_RESPOND_ASYNC_SCHEMA_TOO_NEW',
      `respond-async: the ${store} schema is version ${found}, newer than this version of respond-async knows (${known}); upgrade respond-async`,
      { permanent: true },
    );
    this.name = 'SchemaTooNewError';
    this.found = found;
    this.known = known;
  }
}

/** A value the store cannot hold as JSON (a BigInt, a cycle), or JSON text the database refuses. */
export class JsonRefusedError extends RespondAsyncError {
  constructor(what: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super('ERR_RESPOND_ASYNC_JSON_REFUSED', `respond-async: the ${what} cannot be stored as JSON: ${detail}`, {
      cause,
      permanent: true,
    });
    this.name = 'JsonRefusedError';
  }
}
