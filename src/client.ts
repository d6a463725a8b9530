// respond-async/client: submit work to a 202 Accepted API and wait for the outcome, in browsers and Node.
// One self-contained module on purpose: it imports nothing and uses only fetch, so a browser can load the built file as-is.

/** The status values of the HTTP contract. `complete`, `failed` and `canceled` are terminal. */
export type JobStatus = 'queued' | 'processing' | 'complete' | 'failed' | 'canceled';

/**
 * The status document of the HTTP contract, as served by the status endpoint and its event stream.
 * (A local copy of the server's type: the client does not depend on the server code.)
 * Servers outside the contract (Azure-style status monitors) may send other fields and status names;
 * such documents are passed to `onProgress` as received.
 */
export interface StatusDocument<Result = unknown> {
  jobId: string;
  status: JobStatus;
  statusUrl: string;
  progress?: number;
  message?: string;
  /** The handler's return value, when `complete`. */
  result?: Result;
  /** Where the result lives, when the handler answered with a result URL. */
  resultUrl?: string;
  /** When `failed`, or `queued` for a retry: the (last) attempt's error. */
  error?: { message: string; code?: string; status?: number };
  /** When `queued` for a retry: when the next attempt may start. */
  retryAt?: string;
  createdAt: string;
  updatedAt: string;
  startedAt?: string;
  finishedAt?: string;
  attempt?: number;
}

/** What `waitFor` resolves with when the result is not JSON: where to fetch it. */
export interface ResultLocation {
  location: string;
}

/**
 * What `submit` resolves with: the accepted job, with its status URL made absolute (resolved against the answer's
 * URL), ready for `waitFor`, `cancel` and `statusOf`.
 */
export interface AcceptedJob<Result = unknown> {
  /** The job id: the answer's `jobId`, else the last segment of the status URL. */
  jobId: string;
  /** The job status the answer reported: `queued` on a 202, the terminal one when `Prefer: wait` was met. */
  status: JobStatus;
  /** The absolute status URL: `GET` it, `DELETE` it, or follow `{statusUrl}/events`. */
  statusUrl: string;
  /** The `Location` header as the server sent it (often relative), when it sent one. */
  location: string | undefined;
  /** The HTTP status of the answer: 202, or 200 when `Prefer: wait` was met. */
  httpStatus: number;
  /** The answer's headers (`Retry-After`, `Location`, ...). */
  headers: Headers;
  /** The status document of the answer, when it sent one. */
  document: StatusDocument<Result> | undefined;
  /** The answer itself; its body is still unread. */
  response: Response;
}

/** Options of `submit`: a `RequestInit` whose `body` may also be a plain object or array (sent as JSON). */
export interface SubmitInit extends Omit<RequestInit, 'body'> {
  body?: BodyInit | null | Record<string, unknown> | unknown[] | number | boolean;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/** Options of `cancel`. */
export interface CancelInit extends RequestInit {
  fetch?: typeof fetch;
}

export interface WaitOptions {
  /** Stop waiting: the promise rejects with the signal's reason. The job itself is not canceled (see `cancel`). */
  signal?: AbortSignal;
  /** Called with every status document received (progress, status changes, the terminal one). */
  onProgress?: (doc: StatusDocument) => void;
  /** Give up after this long: the promise rejects with a `WaitTimeoutError`. */
  timeoutMs?: number;
  /** The fetch to use (default: the global one). Wrap it to add credentials or instrumentation. */
  fetch?: typeof fetch;
  /** Headers sent with every request (status, events, result), e.g. `Authorization`. */
  headers?: HeadersInit;
  /** Try the Server-Sent Events stream `{statusUrl}/events` before polling. Default true. */
  sse?: boolean;
  /** Upper bound of any wait between two polls, `Retry-After` included. Default 30 000. */
  maxDelayMs?: number;
}

/** Options of an error of this module. */
export interface ClientErrorOptions {
  code?: string;
  status?: number;
  title?: string;
  detail?: string;
  type?: string;
  problem?: Record<string, unknown>;
  url?: string;
  cause?: unknown;
}

/** The base class of every error of `respond-async/client`. HTTP errors carry the RFC 9457 problem details. */
export class RespondAsyncClientError extends Error {
  /** A stable machine-readable code: the problem's `code` for HTTP errors, else one of `ERR_RESPOND_ASYNC_*`. */
  readonly code: string;
  /** The HTTP status, for HTTP errors. */
  readonly status: number | undefined;
  readonly title: string | undefined;
  readonly detail: string | undefined;
  readonly type: string | undefined;
  /** The whole problem document, when the server sent JSON. */
  readonly problem: Record<string, unknown> | undefined;
  /** The URL that answered. */
  readonly url: string | undefined;

  constructor(message: string, options: ClientErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RespondAsyncClientError';
    this.code = options.code ?? 'ERR_RESPOND_ASYNC_CLIENT';
    this.status = options.status;
    this.title = options.title;
    this.detail = options.detail;
    this.type = options.type;
    this.problem = options.problem;
    this.url = options.url;
  }
}

/** The job ended `failed`. `message` and `code` come from the document's `error`. */
export class JobFailedError extends RespondAsyncClientError {
  readonly doc: StatusDocument;
  readonly jobId: string | undefined;

  constructor(doc: StatusDocument) {
    const error = isObject(doc.error) ? doc.error : undefined;
    super(str(error?.message) ?? 'The job failed', { code: str(error?.code) ?? 'ERR_RESPOND_ASYNC_JOB_FAILED' });
    this.name = 'JobFailedError';
    this.doc = doc;
    this.jobId = str(doc.jobId);
  }
}

/** The job ended `canceled`. */
export class JobCanceledError extends RespondAsyncClientError {
  readonly doc: StatusDocument;
  readonly jobId: string | undefined;

  constructor(doc: StatusDocument) {
    super('The job was canceled', { code: 'ERR_RESPOND_ASYNC_JOB_CANCELED' });
    this.name = 'JobCanceledError';
    this.doc = doc;
    this.jobId = str(doc.jobId);
  }
}

/** `timeoutMs` passed before the job ended. The job itself goes on. */
export class WaitTimeoutError extends RespondAsyncClientError {
  readonly timeoutMs: number;
  /** The last status document received, if any. */
  readonly lastDocument: StatusDocument | undefined;

  constructor(timeoutMs: number, lastDocument?: StatusDocument) {
    super(`Gave up waiting for the job after ${timeoutMs} ms`, { code: 'ERR_RESPOND_ASYNC_WAIT_TIMEOUT' });
    this.name = 'WaitTimeoutError';
    this.timeoutMs = timeoutMs;
    this.lastDocument = lastDocument;
  }
}

/**
 * POST to a 202 Accepted route. A plain object or array `body` is sent as JSON (with `content-type: application/json`
 * unless set). Resolves with the accepted job (`jobId`, absolute `statusUrl`, the `response`: 202, or 200 when
 * `Prefer: wait` applied); a 4xx/5xx answer rejects with a `RespondAsyncClientError` carrying the problem details, a
 * URL that cannot be resolved (relative, in Node) with one coded `ERR_RESPOND_ASYNC_BAD_URL`.
 */
export async function submit<Result = unknown>(url: string | URL, init: SubmitInit = {}): Promise<AcceptedJob<Result>> {
  const { fetch: customFetch, body, ...rest } = init;
  const headers = new Headers(rest.headers);
  let payload = body as BodyInit | null | undefined;
  if (isJsonBody(body)) {
    payload = JSON.stringify(body);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  }
  if (!headers.has('accept')) headers.set('accept', 'application/json');
  const target = requestUrl(url, customFetch);
  const res = await fetcher(customFetch)(target, { ...rest, method: rest.method ?? 'POST', headers, body: payload });
  if (res.status >= 400) throw await httpError(res);
  return accepted<Result>(res, res.url || (target instanceof URL ? target.href : pageHref()));
}

/** Read the accepted job from a submit's answer, leaving `response`'s body unread. */
async function accepted<Result>(res: Response, base: string | undefined): Promise<AcceptedJob<Result>> {
  let document: StatusDocument<Result> | undefined;
  try {
    const body = await readBody(res.clone());
    if (body.kind === 'json' && isDocument(body.value, false)) document = body.value as StatusDocument<Result>;
  } catch {
    // no readable document: the headers tell the rest
  }
  const location = res.headers.get('location') ?? undefined;
  const where = location ?? res.headers.get('content-location') ?? str(document?.statusUrl);
  if (where === undefined && res.status === 202) {
    throw new RespondAsyncClientError('The 202 answer has no Location header and no statusUrl', {
      code: 'ERR_RESPOND_ASYNC_BAD_RESPONSE',
      status: res.status,
      url: res.url || undefined,
    });
  }
  const statusUrl = where === undefined ? (base ?? '') : toUrl(where, base).href;
  const status = document ? normalizeStatus(document.status) : res.status === 202 ? 'queued' : 'complete';
  return {
    jobId: str(document?.jobId) ?? lastSegment(statusUrl),
    status: status === 'running' ? (document?.status ?? 'processing') : status,
    statusUrl,
    location,
    httpStatus: res.status,
    headers: res.headers,
    document,
    response: res,
  };
}

/**
 * Cancel a job: `DELETE statusUrl`. Resolves with the status document (`canceled` when the job was queued,
 * still `processing` when a running job was asked to stop); rejects with a `RespondAsyncClientError`
 * (409 when the job had already finished, 404 when unknown).
 */
export async function cancel<Result = unknown>(
  job: AcceptedJob | string | URL,
  init: CancelInit = {},
): Promise<StatusDocument<Result>> {
  const { fetch: customFetch, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (!headers.has('accept')) headers.set('accept', 'application/json');
  const target = requestUrl(isAccepted(job) ? job.statusUrl : job, customFetch);
  const res = await fetcher(customFetch)(target, { ...rest, method: 'DELETE', headers });
  if (res.status >= 400) throw await httpError(res);
  const body = await readBody(res);
  if (body.kind !== 'json') {
    throw new RespondAsyncClientError('The cancel answer has no JSON status document', {
      code: 'ERR_RESPOND_ASYNC_BAD_RESPONSE',
      status: res.status,
      url: res.url || undefined,
    });
  }
  return body.value as StatusDocument<Result>;
}

/**
 * Wait for the outcome of an asynchronous operation.
 *
 * `target` is what `submit` resolved with, the Response of a submit (its `Location` is followed; a 200 terminal document, e.g. after
 * `Prefer: wait`, settles at once) or the status URL. Server-Sent Events (`{statusUrl}/events`) are preferred; when
 * not offered, or when the stream breaks and one resume with `Last-Event-ID` does not help, the status URL is polled,
 * honouring `Retry-After` (else a capped exponential backoff with jitter).
 *
 * Resolves with the job's `result`. A `303 See Other` (or a followed redirect) from the status URL, or a 200 without
 * a `status` field (Azure style), means complete: the result is that body when JSON, else `{ location }`.
 * Rejects with `JobFailedError`, `JobCanceledError`, `WaitTimeoutError`, the signal's reason, or a
 * `RespondAsyncClientError` for HTTP and protocol errors.
 */
export function waitFor<Result = unknown>(
  responseOrStatusUrl: AcceptedJob | Response | string | URL,
  options: WaitOptions = {},
): Promise<Result> {
  return new Waiter(options).run(responseOrStatusUrl) as Promise<Result>;
}

// ---------------------------------------------------------------------------------------------------------------

const FIRST_BACKOFF_MS = 500;
const MIN_POLL_DELAY_MS = 100;
const MAX_TIMER_MS = 2_147_483_647;
/** Consecutive network failures or 429/5xx answers tolerated while polling. */
const MAX_TRANSIENT_FAILURES = 5;
/** Delay before resuming a broken event stream when the server did not advertise `retry:`. */
const DEFAULT_SSE_RETRY_MS = 500;
/** An event stream silent this long is considered dead (the contract sends a heartbeat at least every 15 s). */
const SSE_IDLE_MS = 45_000;
const TRANSIENT_STATUSES = new Set([408, 425, 429, 500, 502, 503, 504]);

type Step = { done: true; value: unknown } | { done: false; retryAfterMs?: number; statusUrl?: URL };

type Body = { kind: 'json'; value: unknown } | { kind: 'empty' } | { kind: 'other' };

/** A failure worth another try (network, truncated body). @internal */
class TransientError extends Error {}

class Waiter {
  readonly #options: WaitOptions;
  readonly #fetch: typeof fetch;
  readonly #controller = new AbortController();
  readonly #maxDelayMs: number;
  #lastDocument: StatusDocument | undefined;
  #settled = false;

  constructor(options: WaitOptions) {
    this.#options = options;
    this.#fetch = fetcher(options.fetch);
    const max = options.maxDelayMs ?? 30_000;
    this.#maxDelayMs = Number.isFinite(max) && max >= 0 ? Math.min(max, MAX_TIMER_MS) : 30_000;
  }

  get #signal(): AbortSignal {
    return this.#controller.signal;
  }

  async run(target: AcceptedJob | Response | string | URL): Promise<unknown> {
    const { signal, timeoutMs } = this.#options;
    if (signal?.aborted) throw abortReason(signal);
    const onAbort = (): void => this.#controller.abort(abortReason(signal!));
    signal?.addEventListener('abort', onAbort, { once: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (timeoutMs !== undefined && Number.isFinite(timeoutMs) && timeoutMs <= MAX_TIMER_MS) {
      timer = setTimeout(
        () => this.#controller.abort(new WaitTimeoutError(timeoutMs, this.#lastDocument)),
        Math.max(0, timeoutMs),
      );
    }
    // Settle as soon as the signal aborts or the time is up, even if a custom fetch ignores the signal.
    const aborted = new Promise<never>((_, reject) => {
      this.#signal.addEventListener('abort', () => reject(this.#signal.reason), { once: true });
    });
    const work = this.#follow(target);
    aborted.catch(() => {});
    work.catch(() => {});
    try {
      return await Promise.race([work, aborted]);
    } finally {
      this.#settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      // Stop whatever is still in flight: a stream reader, a sleep, a request.
      if (!this.#signal.aborted) this.#controller.abort(abortError('waitFor settled'));
    }
  }

  async #follow(target: AcceptedJob | Response | string | URL): Promise<unknown> {
    let statusUrl: URL;
    let firstDelayMs = 0;
    if (isAccepted(target) && target.statusUrl !== '' && (target.document || target.httpStatus === 202)) {
      // A terminal document (`Prefer: wait` met) settles at once; otherwise follow the absolute status URL.
      if (target.document && normalizeStatus(target.document.status) !== 'running') {
        const step = await this.#document(target.document, target.statusUrl);
        if (step.done) return step.value;
      }
      statusUrl = toUrl(target.statusUrl);
      firstDelayMs = this.#retryAfter(target.response) ?? 0;
    } else if (isAccepted(target)) {
      return this.#follow(target.response);
    } else if (isResponse(target)) {
      const res = target;
      const base = res.url || pageHref();
      if (res.status === 202) {
        const location =
          res.headers.get('location') ?? res.headers.get('content-location') ?? (await statusUrlFromBody(res));
        if (!location) {
          await discard(res);
          throw new RespondAsyncClientError('The 202 answer has no Location header and no statusUrl', {
            code: 'ERR_RESPOND_ASYNC_BAD_RESPONSE',
            status: res.status,
            url: res.url || undefined,
          });
        }
        statusUrl = toUrl(location, base);
        firstDelayMs = this.#retryAfter(res) ?? 0;
      } else {
        const step = await this.#interpret(res, base ? toUrl(base) : undefined).catch((error: unknown) => {
          throw error instanceof TransientError ? networkError(error.cause) : error;
        });
        if (step.done) return step.value;
        if (!step.statusUrl) {
          throw new RespondAsyncClientError('Cannot tell the status URL of this response', {
            code: 'ERR_RESPOND_ASYNC_BAD_RESPONSE',
            status: res.status,
          });
        }
        statusUrl = step.statusUrl;
        firstDelayMs = step.retryAfterMs ?? 0;
      }
    } else {
      statusUrl = toUrl(String(target), pageHref());
    }
    const firstPollAt = Date.now() + firstDelayMs;
    if (this.#options.sse !== false) {
      const outcome = await this.#events(statusUrl);
      if (outcome.done) return outcome.value;
      // The stream told us things, then broke: look at once. Otherwise keep to the submit's Retry-After.
      if (outcome.received > 0) return this.#poll(statusUrl, 0);
    }
    return this.#poll(statusUrl, Math.max(0, firstPollAt - Date.now()));
  }

  // -- polling --------------------------------------------------------------------------------------------------

  async #poll(statusUrl: URL, firstDelayMs: number): Promise<unknown> {
    let delay = firstDelayMs;
    let attempt = 0;
    let failures = 0;
    for (;;) {
      if (delay > 0) await this.#sleep(delay);
      this.#throwIfAborted();
      let res: Response;
      try {
        res = await this.#get(statusUrl, 'application/json');
      } catch (error) {
        this.#throwIfAborted();
        if (++failures > MAX_TRANSIENT_FAILURES) throw networkError(error);
        delay = this.#backoff(attempt++);
        continue;
      }
      if (TRANSIENT_STATUSES.has(res.status)) {
        if (++failures > MAX_TRANSIENT_FAILURES) throw await httpError(res);
        const retryAfter = this.#retryAfter(res);
        await discard(res);
        delay = retryAfter ?? this.#backoff(attempt++);
        continue;
      }
      let step: Step;
      try {
        step = await this.#interpret(res, statusUrl);
      } catch (error) {
        if (!(error instanceof TransientError)) throw error;
        this.#throwIfAborted();
        if (++failures > MAX_TRANSIENT_FAILURES) throw networkError(error.cause);
        delay = this.#backoff(attempt++);
        continue;
      }
      failures = 0;
      if (step.done) return step.value;
      delay = step.retryAfterMs ?? this.#backoff(attempt++);
    }
  }

  /** Make sense of an answer of the status URL (or of the submit). Throws on failed/canceled and HTTP errors. */
  async #interpret(res: Response, url: URL | undefined): Promise<Step> {
    if (res.type === 'opaqueredirect') {
      throw new RespondAsyncClientError('Cannot follow an opaque redirect (use the default redirect: "follow")', {
        code: 'ERR_RESPOND_ASYNC_BAD_RESPONSE',
      });
    }
    const base = res.url || url?.href || pageHref();
    if (res.status >= 300 && res.status < 400) {
      // Seen with a fetch that does not follow redirects: a 303 (or any redirect) from the status URL means done.
      const location = res.headers.get('location');
      await discard(res);
      if (!location) {
        throw new RespondAsyncClientError(`A ${res.status} answer without Location`, {
          code: 'ERR_RESPOND_ASYNC_BAD_RESPONSE',
          status: res.status,
          url: res.url || undefined,
        });
      }
      return { done: true, value: await this.#fetchResult(toUrl(location, base)) };
    }
    if (res.status >= 400) throw await httpError(res);
    if (res.status === 204 || res.status === 205) return { done: true, value: undefined };
    const body = await readBody(res).catch((error: unknown) => {
      throw error instanceof RespondAsyncClientError ? error : new TransientError('body', { cause: error });
    });
    if (body.kind === 'json' && isDocument(body.value, res.redirected)) {
      const doc = body.value as StatusDocument;
      const step = await this.#document(doc, base);
      if (step.done) return step;
      const where = res.headers.get('content-location') ?? str(doc.statusUrl) ?? (res.url || undefined);
      return {
        done: false,
        retryAfterMs: this.#retryAfter(res),
        statusUrl: where === undefined ? url : toUrl(where, base),
      };
    }
    // Azure style: 202 while running, with or without a body of its own.
    if (res.status === 202) return { done: false, retryAfterMs: this.#retryAfter(res), statusUrl: url };
    // A 2xx without a status document (a followed 303, or the result served in place): done, this is the result.
    if (body.kind === 'json') return { done: true, value: body.value };
    if (body.kind === 'empty') return { done: true, value: undefined };
    return { done: true, value: { location: res.url || url?.href || '' } satisfies ResultLocation };
  }

  /** Report a document and settle on a terminal one. */
  async #document(doc: StatusDocument, base: string | undefined): Promise<Step> {
    this.#lastDocument = doc;
    if (!this.#settled && !this.#signal.aborted) this.#options.onProgress?.(doc);
    switch (normalizeStatus(doc.status)) {
      case 'complete':
        return { done: true, value: await this.#resultOf(doc, base) };
      case 'failed':
        throw new JobFailedError(doc);
      case 'canceled':
        throw new JobCanceledError(doc);
      default:
        return { done: false };
    }
  }

  async #resultOf(doc: StatusDocument, base: string | undefined): Promise<unknown> {
    if (doc.result !== undefined) return doc.result;
    const link = str(doc.resultUrl) ?? str((doc as unknown as Record<string, unknown>).resourceLocation);
    return link === undefined ? undefined : this.#fetchResult(toUrl(link, base));
  }

  async #fetchResult(url: URL): Promise<unknown> {
    let res: Response;
    try {
      res = await this.#get(url, 'application/json, */*;q=0.5');
    } catch (error) {
      this.#throwIfAborted();
      throw networkError(error);
    }
    if (res.status >= 400) throw await httpError(res);
    const body = await readBody(res).catch((error: unknown) => {
      this.#throwIfAborted();
      throw error instanceof RespondAsyncClientError ? error : networkError(error);
    });
    if (body.kind === 'json') return body.value;
    if (body.kind === 'empty') return undefined;
    return { location: res.url || url.href } satisfies ResultLocation;
  }

  // -- Server-Sent Events ---------------------------------------------------------------------------------------

  /** Follow `{statusUrl}/events` until a terminal event; `done: false` means: poll instead. */
  async #events(statusUrl: URL): Promise<{ done: true; value: unknown } | { done: false; received: number }> {
    const url = eventsUrl(statusUrl);
    const state: SseState = { lastEventId: '', retryMs: undefined };
    let received = 0;
    let resumes = 1;
    for (;;) {
      const headers = this.#headers('text/event-stream', true);
      const resumeFrom = state.lastEventId;
      if (resumeFrom !== '') headers.set('last-event-id', resumeFrom);
      let res: Response;
      try {
        res = await this.#fetch(url, { method: 'GET', headers, signal: this.#signal, cache: 'no-store' });
      } catch {
        this.#throwIfAborted();
        return { done: false, received };
      }
      const type = (res.headers.get('content-type') ?? '').toLowerCase();
      if (!res.ok || !type.startsWith('text/event-stream') || !res.body) {
        await discard(res);
        return { done: false, received };
      }
      let fresh = 0;
      const events = readEvents(res.body, state, this.#signal);
      try {
        for (;;) {
          let next: IteratorResult<SseEvent>;
          try {
            next = await events.next();
          } catch {
            break; // the stream broke
          }
          if (next.done) break; // the stream ended before a terminal event
          const doc = eventDocument(next.value);
          if (!doc) continue;
          fresh++;
          received++;
          const step = await this.#document(doc, statusUrl.href);
          if (step.done) return step;
        }
      } finally {
        await events.return(undefined);
      }
      this.#throwIfAborted();
      // Resume once with Last-Event-ID. A stream that moved the event id forward earns another resume when it
      // breaks (a proxy cutting long streams); one that brought nothing new (or has no ids) does not.
      if (fresh > 0 && state.lastEventId !== '' && state.lastEventId !== resumeFrom) resumes = 1;
      if (resumes-- <= 0) return { done: false, received };
      await this.#sleep(Math.min(state.retryMs ?? DEFAULT_SSE_RETRY_MS, this.#maxDelayMs));
    }
  }

  // -- plumbing -------------------------------------------------------------------------------------------------

  #headers(accept: string, force = false): Headers {
    const headers = new Headers(this.#options.headers);
    if (force || !headers.has('accept')) headers.set('accept', accept);
    return headers;
  }

  #get(url: URL, accept: string): Promise<Response> {
    return this.#fetch(url, { method: 'GET', headers: this.#headers(accept), signal: this.#signal, cache: 'no-store' });
  }

  /** `Retry-After` of `res` in ms (delta seconds or HTTP date), bounded by maxDelayMs; undefined when absent. */
  #retryAfter(res: Response): number | undefined {
    const value = res.headers.get('retry-after')?.trim();
    if (!value) return undefined;
    let ms: number;
    if (/^\d+$/.test(value)) {
      ms = Number(value) * 1000;
    } else {
      const at = Date.parse(value);
      if (Number.isNaN(at)) return undefined;
      // Measure against the server's own clock when it tells it, so that clock skew does not matter.
      const date = Date.parse(res.headers.get('date') ?? '');
      ms = at - (Number.isNaN(date) ? Date.now() : date);
    }
    return Math.min(this.#maxDelayMs, Math.max(MIN_POLL_DELAY_MS, ms));
  }

  /** Capped exponential backoff with jitter: 500 ms, 1 s, 2 s… up to maxDelayMs, each shortened by up to 25 %. */
  #backoff(attempt: number): number {
    const ms = Math.min(this.#maxDelayMs, FIRST_BACKOFF_MS * 2 ** Math.min(attempt, 30));
    return Math.max(Math.min(MIN_POLL_DELAY_MS, this.#maxDelayMs), ms - Math.random() * ms * 0.25);
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#signal;
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal.reason);
      };
      const timer = setTimeout(
        () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        Math.min(ms, MAX_TIMER_MS),
      );
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  #throwIfAborted(): void {
    if (this.#signal.aborted) throw this.#signal.reason;
  }
}

// -- Server-Sent Events wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html) -------------

interface SseEvent {
  event: string;
  data: string;
  id: string;
}

/** What outlives one connection: the last event id (sent back as Last-Event-ID) and the advertised `retry:`. */
interface SseState {
  lastEventId: string;
  retryMs: number | undefined;
}

const LINE_END = /\r\n|\r|\n/g;

/** An incremental parser of the event stream format: feed it text, get the dispatched events. */
class SseParser {
  readonly #state: SseState;
  #buffer = '';
  #data = '';
  #event = '';
  #idBuffer: string;

  constructor(state: SseState) {
    this.#state = state;
    this.#idBuffer = state.lastEventId;
  }

  feed(text: string, final = false): SseEvent[] {
    this.#buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    LINE_END.lastIndex = 0;
    for (let match = LINE_END.exec(this.#buffer); match !== null; match = LINE_END.exec(this.#buffer)) {
      // A CR at the very end may be the first half of a CRLF split across chunks: wait for the next chunk.
      if (match[0] === '\r' && match.index === this.#buffer.length - 1 && !final) break;
      this.#line(this.#buffer.slice(start, match.index), events);
      start = match.index + match[0].length;
    }
    this.#buffer = this.#buffer.slice(start);
    // At the end of the stream an incomplete event is dropped, as the spec says.
    if (final) this.#buffer = '';
    return events;
  }

  #line(line: string, events: SseEvent[]): void {
    if (line === '') {
      this.#dispatch(events);
      return;
    }
    if (line.startsWith(':')) return; // a comment (heartbeat)
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.#event = value;
        break;
      case 'data':
        this.#data += value + '\n';
        break;
      case 'id':
        if (!value.includes('\0')) this.#idBuffer = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.#state.retryMs = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  #dispatch(events: SseEvent[]): void {
    this.#state.lastEventId = this.#idBuffer;
    if (this.#data === '') {
      this.#event = '';
      return;
    }
    const data = this.#data.endsWith('\n') ? this.#data.slice(0, -1) : this.#data;
    events.push({ event: this.#event || 'message', data, id: this.#idBuffer });
    this.#data = '';
    this.#event = '';
  }
}

/** The events of one connection. Ends (done) when the stream ends, goes silent too long, or `signal` aborts. */
async function* readEvents(
  body: ReadableStream<Uint8Array>,
  state: SseState,
  signal: AbortSignal,
): AsyncGenerator<SseEvent, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder(); // utf-8; drops a leading BOM
  const parser = new SseParser(state);
  const stop = (): void => {
    reader.cancel().catch(() => {});
  };
  let idle: ReturnType<typeof setTimeout> | undefined;
  const arm = (): void => {
    clearTimeout(idle);
    idle = setTimeout(stop, SSE_IDLE_MS);
  };
  signal.addEventListener('abort', stop, { once: true });
  try {
    arm();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        yield* parser.feed(decoder.decode(), true);
        return;
      }
      arm();
      yield* parser.feed(decoder.decode(value, { stream: true }));
    }
  } finally {
    clearTimeout(idle);
    signal.removeEventListener('abort', stop);
    stop();
  }
}

const TERMINAL_EVENTS = new Set(['complete', 'failed', 'canceled']);

/** The status document an event carries, or undefined (not JSON, not a document). */
function eventDocument(event: SseEvent): StatusDocument | undefined {
  let value: unknown;
  try {
    value = JSON.parse(event.data);
  } catch {
    return undefined;
  }
  if (!isObject(value)) return undefined;
  if (typeof value.status === 'string') return value as unknown as StatusDocument;
  // A terminal event whose data lacks a status: the event name says it.
  if (TERMINAL_EVENTS.has(event.event)) return { ...value, status: event.event } as unknown as StatusDocument;
  return undefined;
}

function eventsUrl(statusUrl: URL): URL {
  const url = new URL(statusUrl.href);
  url.pathname = url.pathname.replace(/\/+$/, '') + '/events';
  url.hash = '';
  return url;
}

// -- helpers ------------------------------------------------------------------------------------------------------

function fetcher(custom: typeof fetch | undefined): typeof fetch {
  if (custom) return custom;
  if (typeof globalThis.fetch !== 'function') {
    throw new RespondAsyncClientError('No fetch: pass options.fetch', { code: 'ERR_RESPOND_ASYNC_NO_FETCH' });
  }
  // Called through globalThis: some browsers refuse a detached fetch ("Illegal invocation").
  return (input, init) => globalThis.fetch(input, init);
}

/** Map status names to the contract's; Azure-style names included. Anything else counts as still running. */
function normalizeStatus(status: unknown): JobStatus | 'running' {
  switch (String(status).toLowerCase()) {
    case 'complete':
    case 'completed':
    case 'succeeded':
      return 'complete';
    case 'failed':
      return 'failed';
    case 'canceled':
    case 'cancelled':
      return 'canceled';
    default:
      return 'running';
  }
}

/** A status document has a `status` string; behind a followed redirect it must also look like ours. */
function isDocument(value: unknown, redirected: boolean): boolean {
  if (!isObject(value) || typeof value.status !== 'string') return false;
  return !redirected || 'jobId' in value || 'statusUrl' in value;
}

async function readBody(res: Response): Promise<Body> {
  const type = (res.headers.get('content-type') ?? '').toLowerCase();
  if (res.body === null) return { kind: 'empty' };
  if (type !== '' && !type.includes('json')) {
    await discard(res);
    return { kind: 'other' };
  }
  const text = await res.text();
  if (text.trim() === '') return { kind: 'empty' };
  try {
    return { kind: 'json', value: JSON.parse(text) };
  } catch (error) {
    if (type === '') return { kind: 'other' };
    throw new RespondAsyncClientError('The answer is not valid JSON', {
      code: 'ERR_RESPOND_ASYNC_BAD_RESPONSE',
      status: res.status,
      url: res.url || undefined,
      cause: error,
    });
  }
}

async function statusUrlFromBody(res: Response): Promise<string | undefined> {
  if (res.bodyUsed) return undefined;
  try {
    const body = await readBody(res.clone());
    return body.kind === 'json' && isObject(body.value) ? str(body.value.statusUrl) : undefined;
  } catch {
    return undefined;
  }
}

/** Build the error of a 4xx/5xx answer from its problem details (RFC 9457), when it has some. */
async function httpError(res: Response): Promise<RespondAsyncClientError> {
  let problem: Record<string, unknown> | undefined;
  try {
    const text = await res.text();
    const value: unknown = text ? JSON.parse(text) : undefined;
    if (isObject(value)) problem = value;
  } catch {
    // no readable problem document: the status says it all
  }
  const title = str(problem?.title);
  const detail = str(problem?.detail);
  return new RespondAsyncClientError(
    detail ?? title ?? `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`,
    {
      code: str(problem?.code) ?? 'ERR_RESPOND_ASYNC_HTTP',
      status: res.status,
      title,
      detail,
      type: str(problem?.type),
      problem,
      url: res.url || undefined,
    },
  );
}

function networkError(cause: unknown): RespondAsyncClientError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new RespondAsyncClientError(`Network error: ${reason}`, { code: 'ERR_RESPOND_ASYNC_NETWORK', cause });
}

async function discard(res: Response): Promise<void> {
  try {
    if (res.body && !res.bodyUsed) await res.body.cancel();
  } catch {
    // nothing to release
  }
}

function toUrl(value: string, base?: string): URL {
  try {
    return new URL(value, base);
  } catch (error) {
    throw new RespondAsyncClientError(`Cannot resolve the URL ${JSON.stringify(value)}`, {
      code: 'ERR_RESPOND_ASYNC_BAD_URL',
      cause: error,
    });
  }
}

function pageHref(): string | undefined {
  const location = (globalThis as { location?: { href?: unknown } }).location;
  return typeof location?.href === 'string' ? location.href : undefined;
}

/** The URL to fetch: resolved against the page, else a `RespondAsyncClientError` instead of fetch's bare TypeError. */
function requestUrl(url: string | URL, customFetch: typeof fetch | undefined): string | URL {
  if (url instanceof URL) return url;
  try {
    return new URL(String(url), pageHref());
  } catch (error) {
    // A custom fetch may know how to reach a relative URL (a test app, a framework's own request helper).
    if (customFetch) return url;
    throw new RespondAsyncClientError(
      `Cannot resolve the URL ${JSON.stringify(url)}: pass an absolute URL (or the job submit resolved with)`,
      { code: 'ERR_RESPOND_ASYNC_BAD_URL', cause: error },
    );
  }
}

function lastSegment(url: string): string {
  const path = url.split(/[?#]/)[0] ?? '';
  const segment = path.replace(/\/+$/, '').split('/').pop() ?? '';
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function isAccepted(value: unknown): value is AcceptedJob {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as AcceptedJob).statusUrl === 'string' &&
    isResponse((value as AcceptedJob).response)
  );
}

function isResponse(value: unknown): value is Response {
  return (
    typeof value === 'object' &&
    value !== null &&
    !(value instanceof URL) &&
    typeof (value as Response).status === 'number' &&
    typeof (value as Response).headers?.get === 'function'
  );
}

function isJsonBody(body: unknown): boolean {
  if (typeof body === 'number' || typeof body === 'boolean') return true;
  if (typeof body !== 'object' || body === null) return false;
  if (Array.isArray(body)) return true;
  const proto = Object.getPrototypeOf(body);
  return proto === Object.prototype || proto === null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function abortError(message: string): Error {
  return new DOMException(message, 'AbortError');
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? abortError('This operation was aborted');
}
