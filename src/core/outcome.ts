// How an attempt ends (complete, retry, fail, cancel, release, lost), decided from what the handler did: a pure function.
import { CanceledError, JobError, RespondAsyncError, ShutdownError, TimeoutError } from './errors.js';
import type { JobErrorInfo } from './types.js';

/** What `handler` may return to make the status URL answer `303 See Other` to `url` when complete. */
export interface SeeOther<Result = unknown> {
  readonly [SEE_OTHER]: true;
  readonly url: string;
  readonly result: Result | undefined;
}
const SEE_OTHER = Symbol.for('respond-async.seeOther');

/**
 * Return `seeOther(url)` from a handler to make the status URL of the complete job redirect there
 * (`303 See Other`), the Azure Async Request-Reply way. `result` is still stored and served in the document.
 *
 * `url` is checked when the handler returns it, as a `Location` header must be writable: non-ASCII characters and
 * spaces are percent-encoded as UTF-8 (`/files/报告.pdf` → `/files/%E6%8A%A5%E5%91%8A.pdf`; an absolute URL is
 * serialised the WHATWG URL way, its host in punycode), `%XX` escapes already there are kept. An empty URL, or
 * one with a control character (CR, LF, NUL...), fails the job at once with code
 * `ERR_RESPOND_ASYNC_INVALID_REDIRECT` (not retried), rather than storing an answer no status poll could write.
 * @example
 * jobs.define('export', async () => { const file = await render(); return seeOther(`/files/${file.id}`) });
 */
export function seeOther<Result = undefined>(url: string, result?: Result): SeeOther<Result> {
  return { [SEE_OTHER]: true, url, result };
}

function isSeeOther(value: unknown): value is SeeOther {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[SEE_OTHER] === true;
}

/** Reason a handler's signal aborts when its lease lapsed and another worker may run the job. @internal */
export class LeaseLostError extends RespondAsyncError {
  constructor() {
    super('ERR_RESPOND_ASYNC_LEASE_LOST', 'The job lease was lost');
    this.name = 'LeaseLostError';
  }
}

/** What the handler did: returned a value or threw. */
export type HandlerResult = { ok: true; value: unknown } | { ok: false; error: unknown };

export interface AttemptFacts {
  result: HandlerResult;
  /** The reason the handler's signal aborted with, or undefined when it did not abort. */
  abortReason: unknown;
  /** This attempt's number, from 1. */
  attempt: number;
  /** Attempts allowed in all. */
  attempts: number;
  /** Largest result allowed, in bytes of JSON. */
  maxResultBytes: number;
}

/**
 * The write that ends the attempt. `retry` and `fail` carry the error as clients may see it (`error`) and the
 * error itself (`cause`); `unexpected` is true when it is not one the library or the handler raised on purpose,
 * so the server should log it.
 */
export type Outcome =
  | { kind: 'complete'; result: unknown; resultUrl: string | null }
  | { kind: 'retry' | 'fail'; error: JobErrorInfo; cause: unknown; unexpected: boolean }
  | { kind: 'cancel' }
  /** Shutdown: give the lease back so another process runs the job. */
  | { kind: 'release' }
  /** The lease went to another worker: write nothing. */
  | { kind: 'lost' };

/** How the attempt ends, from the handler's value or error, the abort reason, the attempts left and the size limit. */
export function attemptOutcome(facts: AttemptFacts): Outcome {
  const { result, abortReason: reason } = facts;
  if (reason instanceof ShutdownError) return { kind: 'release' };
  if (reason instanceof LeaseLostError) return { kind: 'lost' };
  if (reason instanceof CanceledError) return { kind: 'cancel' };
  if (reason instanceof TimeoutError) return failure(reason, facts);
  if (!result.ok) return failure(result.error, facts);
  const value = isSeeOther(result.value) ? result.value.result : result.value;
  const resultUrl = isSeeOther(result.value) ? redirectUrl(result.value.url) : null;
  if (resultUrl === undefined) {
    const error = new JobError('The handler returned seeOther() with a URL that cannot be sent as a Location', {
      code: 'ERR_RESPOND_ASYNC_INVALID_REDIRECT',
      retry: false,
    });
    return failure(error, facts);
  }
  const size = jsonSize(value);
  if (Number.isNaN(size)) {
    const error = new JobError('The result is not JSON data (a BigInt, a Map, a Set or a cycle)', {
      code: 'ERR_RESPOND_ASYNC_RESULT_NOT_JSON',
      retry: false,
    });
    return failure(error, facts);
  }
  if (size > facts.maxResultBytes) {
    const error = new JobError(`The result is larger than ${facts.maxResultBytes} bytes`, {
      code: 'ERR_RESPOND_ASYNC_RESULT_TOO_LARGE',
      retry: false,
    });
    return failure(error, facts);
  }
  return { kind: 'complete', result: value, resultUrl };
}

/** A failed attempt: retried unless the error says `retry: false` or it was the last attempt. */
function failure(error: unknown, facts: AttemptFacts): Outcome {
  const retry = (error as { retry?: unknown } | null)?.retry !== false && facts.attempt < facts.attempts;
  return {
    kind: retry ? 'retry' : 'fail',
    error: publicError(error),
    cause: error,
    unexpected: !(error instanceof RespondAsyncError || error instanceof JobError),
  };
}

/** The error as clients may see it: the message only when the error is marked public. @internal */
export function publicError(error: unknown): JobErrorInfo {
  if (error instanceof TimeoutError) return { message: 'The job timed out', code: error.code };
  const candidate = error as {
    message?: unknown;
    code?: unknown;
    expose?: unknown;
    publicStatus?: unknown;
  } | null;
  if (candidate && candidate.expose === true && typeof candidate.message === 'string') {
    const info: JobErrorInfo =
      typeof candidate.code === 'string'
        ? { message: candidate.message, code: candidate.code }
        : { message: candidate.message };
    // The HTTP status a wrapped handler answered with (HandlerAnswerError) is part of the public error.
    if (typeof candidate.publicStatus === 'number') info.status = candidate.publicStatus;
    return info;
  }
  return { message: 'The job failed' };
}

/**
 * The `Location` a `seeOther()` URL is sent as: non-ASCII characters and spaces percent-encoded as UTF-8 (an
 * absolute URL serialised by WHATWG URL), or undefined when it cannot be one (empty, a control character, a lone
 * surrogate, an absolute URL that does not parse).
 */
function redirectUrl(url: unknown): string | undefined {
  if (typeof url !== 'string' || url.length === 0 || hasControlCharacter(url)) return undefined;
  try {
    if (/^[a-z][a-z0-9+.-]*:/i.test(url)) return new URL(url).href;
    return url.replace(/[^\u0021-\u007e]+/g, (chars) => encodeURIComponent(chars));
  } catch {
    return undefined;
  }
}

/** Whether `text` holds a C0 control character or DEL, which no header value may carry. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/**
 * Bytes of JSON, or NaN when `value` is not JSON data: a cycle or a BigInt (which JSON.stringify refuses), or a Map
 * or Set (which it would silently store as `{}`, losing the handler's result).
 */
function jsonSize(value: unknown): number {
  if (value === undefined) return 0;
  try {
    return Buffer.byteLength(JSON.stringify(value, refuseCollections) ?? '');
  } catch {
    return Number.NaN;
  }
}

function refuseCollections(_key: string, value: unknown): unknown {
  if (value instanceof Map || value instanceof Set) throw new TypeError('a Map or Set is not JSON data');
  return value;
}
