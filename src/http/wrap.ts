// Wrapping an unchanged route handler: the request snapshot a job keeps, and the handler's response kept as its result.
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import type { Backoff } from '../core/backoff.js';
import { JobError } from '../core/errors.js';
import type { DefineOptions } from '../core/jobs.js';
import type { JobContext } from '../core/types.js';
import type { HttpResponse } from './response.js';
import { jsonResponse } from './response.js';

/**
 * The input of a wrapped route's job: the request as it came, as JSON, so that any process can replay it into the
 * same handler. The body is the bytes that came (base64), whatever their content type.
 */
export interface WrappedRequestSnapshot {
  method: string;
  /** The URL the app received (path and query string), such as `/api/v1/exports?format=csv`. */
  url: string;
  /** Where the route's router is mounted (Express `req.baseUrl`), `''` for none. */
  mount: string;
  /** The route's parameters, as the app's router matched them. */
  params: Record<string, string>;
  /** The parsed query, for reading; the replay parses `url` again. */
  query: Record<string, unknown>;
  /** Request headers by lower-case name, without secrets (see `WrapOptions.headers`) nor hop-by-hop ones. */
  headers: Record<string, string>;
  /** The body bytes, base64; null when the request had none. */
  body: string | null;
  /** The owner recorded at submit (`owner(req)`), or null. */
  owner: string | null;
  /** What `capture(req)` returned at submit (JSON), or null. */
  captured: unknown;
  /**
   * What the app's proxy settings (Express `trust proxy`, Koa `app.proxy`, Fastify `trustProxy`) made of the request
   * at submit, shown to the replayed handler as they were: the replay comes from no proxy. Absent in jobs submitted
   * by versions that did not keep it.
   */
  client?: RequestClient;
}

/** The client of a request as its framework saw it behind the app's proxies (`X-Forwarded-*` trusted or not). */
export interface RequestClient {
  protocol: string;
  ip: string;
  ips: string[];
  hostname: string;
  /** The host with its port, such as `api.example.com:8443` (Express 5 `req.host`, Koa `ctx.host`, Fastify). */
  host: string;
}

/** The response a wrapped handler produced, as the job's result and as `GET {statusUrl}/result` serves it. */
export interface CapturedResponse {
  /** Marks a job result as a handler's response (the status document then names `resultUrl`). */
  type: 'http-response';
  status: number;
  /** The headers the handler set, by lower-case name (hop-by-hop, `Date`, `Content-Length`, `Set-Cookie` dropped). */
  headers: Record<string, string>;
  contentType: string | null;
  /** `text` for a textual content type in valid UTF-8, `base64` otherwise. */
  encoding: 'text' | 'base64';
  body: string;
}

/** What a wrapped handler finds on its request (`req.job`, Koa `ctx.job`, Fastify `request.job`) while it replays. */
export interface WrappedJob {
  id: string;
  /** 1 on the first attempt. */
  attempt: number;
  /** The owner recorded at submit, or null. */
  owner: string | null;
  /** Aborts on cancel, on timeout and on shutdown. */
  signal: AbortSignal;
  /** Report progress, a percentage 0..100 and an optional message: persisted and streamed to the status endpoints. */
  progress(percent: number, message?: string): Promise<void>;
}

/** Options of an adapter's `wrap(handler, options)`. `Req` is the framework's request (Koa: the context). */
export interface WrapOptions<Req> {
  /** The job name, the same in every process that serves or runs this route (a worker registers it too). */
  name: string;
  /**
   * What to carry from the app's middleware to the replay, such as `(req) => ({ user: req.user })`: called at
   * submit, its value (JSON) is stored with the job and handed to `restore`.
   */
  capture?: (req: Req) => unknown;
  /**
   * Put what `capture` returned back on the replayed request before the handler runs:
   * `(req, c) => { req.user = c.user }`.
   */
  restore?: (req: Req, captured: any) => void;
  /**
   * Secret request headers to store and replay all the same. `Authorization`, `Proxy-Authorization` and `Cookie` are
   * never stored unless named here; every other header is kept (hop-by-hop ones, `Content-Length` and `Prefer` aside).
   */
  headers?: string[];
  /**
   * Parse the body for the replayed handler, as the app's body parsers did before it (`req.body`, Koa
   * `ctx.request.body`): JSON, forms (`a=1&b=2` as an object), text, other types as a Buffer. `false` leaves the
   * body unread, for a handler that reads the request stream itself. Default `true`.
   */
  parse?: boolean;
  /** Sent as `estimatedSeconds` in the 202 body, and as its `Retry-After` when larger than the default. */
  estimatedSeconds?: number;
  /** Attempts in all, the first included (a 5xx answer, a throw or `next(err)` fails an attempt). Default 3. */
  attempts?: number;
  /** Delay between attempts. Default exponential from 1 s, capped at 5 min, with jitter. */
  backoff?: Backoff;
  /** Abort `req.job.signal` and fail the attempt after this many ms. */
  timeoutMs?: number;
  /**
   * `true` says the handler streams its answer (`res.write` in a loop, a piped file): such a route is refused at
   * wrap time, since its response would be kept whole as the job's result. A handler that streams without saying
   * so is collected up to `maxResultBytes`, and fails the job past it.
   */
  streams?: boolean;
}

/** Request headers never stored unless the app names them: they carry credentials. */
const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);
/** Hop-by-hop headers: they belong to one connection, neither to the request nor to the response kept. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'];
/** Request headers that belong to the connection or to this library, not to the handler's request. */
const DROPPED_REQUEST_HEADERS = new Set([...HOP_BY_HOP, 'expect', 'content-length', 'prefer']);
/** Response headers not kept: hop-by-hop ones, those the serving framework computes again, and cookies. */
const DROPPED_RESPONSE_HEADERS = new Set([
  ...HOP_BY_HOP,
  'date',
  'content-length',
  // A result is served to whoever polls it, maybe much later: a session cookie is not kept in the store.
  'set-cookie',
]);

/** Check a wrap's options once, when the route is built. @internal */
export function checkWrapOptions(options: WrapOptions<never>): void {
  if (options.streams === true) {
    throw Object.assign(
      new TypeError(
        `respond-async: route "${options.name}" streams its answer (streams: true) and cannot be wrapped: a wrapped ` +
          "handler's response is kept whole as the job result, up to maxResultBytes",
      ),
      { code: 'ERR_RESPOND_ASYNC_STREAMING_ROUTE' },
    );
  }
}

/** The job options of a wrap (`attempts`, `backoff`, `timeoutMs`). @internal */
export function defineOptionsOf(options: WrapOptions<never>): DefineOptions {
  const out: DefineOptions = {};
  if (options.attempts !== undefined) out.attempts = options.attempts;
  if (options.backoff !== undefined) out.backoff = options.backoff;
  if (options.timeoutMs !== undefined) out.timeoutMs = options.timeoutMs;
  return out;
}

/**
 * The request headers to store: all but the secret (unless named in `keep`) and connection ones; without
 * `Content-Encoding` when the body is `decoded` (an app's parser inflated it before the wrapped route). @internal
 */
export function selectHeaders(
  headers: Readonly<Record<string, string | string[] | number | undefined>>,
  keep: readonly string[] = [],
  decoded = false,
): Record<string, string> {
  const named = new Set(keep.map((name) => name.toLowerCase()));
  const out: Record<string, string> = {};
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    const value = headers[name];
    if (value === undefined || DROPPED_REQUEST_HEADERS.has(lower)) continue;
    if (SECRET_HEADERS.has(lower) && !named.has(lower)) continue;
    if (decoded && lower === 'content-encoding') continue;
    out[lower] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return out;
}

/**
 * A body an app's parser already read (a global `express.json()`, `@koa/bodyparser`), as bytes again: a Buffer or a
 * string as it is, a parsed JSON value serialised (for a JSON content type), a flat form as `a=1&b=2`. A parsed body
 * of another kind cannot be told back into its bytes: mount the parser after the wrapped route, or use a raw one.
 * @internal
 */
export function bytesOfParsedBody(body: unknown, contentType: string | undefined): Buffer {
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body);
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (/^application\/(?:[\w.+-]+\+)?json$/.test(type)) return Buffer.from(JSON.stringify(body) ?? '');
  if (type === 'application/x-www-form-urlencoded' && typeof body === 'object' && body !== null) {
    const form = new URLSearchParams();
    for (const [key, value] of Object.entries(body)) {
      for (const item of Array.isArray(value) ? value : [value]) {
        // A nested field (`user[name]=ann`, as `express.urlencoded({ extended: true })` reads it) has no flat form
        // to go back to: written as `[object Object]`, the replayed handler would get another body.
        if (typeof item === 'object' && item !== null) throw alreadyParsed(`${type} body with nested fields`);
        form.append(key, String(item));
      }
    }
    return Buffer.from(form.toString());
  }
  throw alreadyParsed(`${type || 'untyped'} body`);
}

function alreadyParsed(what: string): TypeError {
  return Object.assign(
    new TypeError(
      `respond-async: a body parser of the app read this ${what} before the wrapped route; mount it after the route`,
    ),
    { code: 'ERR_RESPOND_ASYNC_BODY_ALREADY_PARSED' },
  );
}

/** The `req.job` of a replay, from the runtime's context. @internal */
export function wrappedJob(ctx: JobContext): WrappedJob {
  return {
    id: ctx.jobId,
    attempt: ctx.attempt,
    owner: ctx.owner,
    signal: ctx.signal,
    progress: (percent, message) => ctx.progress(percent, message),
  };
}

const TEXT_TYPE =
  /^(?:text\/|application\/(?:[\w.+-]+\+)?(?:json|xml)\b|application\/(?:javascript|x-www-form-urlencoded)\b)/i;
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Keep a handler's response: its status, the headers it set (see `DROPPED_RESPONSE_HEADERS`), its body. @internal */
export function captureResponse(
  status: number,
  headers: Readonly<Record<string, string | string[] | number | undefined>>,
  body: Uint8Array,
): CapturedResponse {
  const kept: Record<string, string> = {};
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    const value = headers[name];
    if (value === undefined || DROPPED_RESPONSE_HEADERS.has(lower)) continue;
    kept[lower] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  const contentType = kept['content-type'] ?? null;
  let text: string | undefined;
  if (contentType === null ? body.byteLength === 0 : TEXT_TYPE.test(contentType)) {
    try {
      text = STRICT_UTF8.decode(body);
    } catch {
      // Not UTF-8 after all: kept as bytes.
    }
  }
  return text === undefined
    ? { type: 'http-response', status, headers: kept, contentType, encoding: 'base64', body: base64(body) }
    : { type: 'http-response', status, headers: kept, contentType, encoding: 'text', body: text };
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** Whether a job result is a wrapped handler's response. */
export function isCapturedResponse(value: unknown): value is CapturedResponse {
  const candidate = value as Partial<CapturedResponse> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    candidate.type === 'http-response' &&
    typeof candidate.status === 'number' &&
    typeof candidate.body === 'string' &&
    typeof candidate.headers === 'object' &&
    candidate.headers !== null
  );
}

/** The answer that serves a captured response byte for byte, with `extra` headers added. @internal */
export function capturedAnswer(response: CapturedResponse, extra: Record<string, string> = {}): HttpResponse {
  const body = Buffer.from(response.body, response.encoding === 'text' ? 'utf8' : 'base64');
  const headers: Record<string, string> = { ...response.headers, 'content-length': String(body.byteLength) };
  for (const name of Object.keys(extra)) {
    headers[name] = name === 'vary' && headers.vary ? `${headers.vary}, ${extra[name]}` : extra[name];
  }
  return { status: response.status, headers, bytes: body };
}

/** A 4xx or 5xx answer of a wrapped handler, as the job's error: its status is public. */
export class HandlerAnswerError extends JobError {
  readonly status: number;
  /** Served as `error.status` (see `publicError`). */
  readonly publicStatus: number;
  constructor(status: number) {
    const refused = status < 500;
    super(`The handler answered ${status}`, {
      code: refused ? 'ERR_RESPOND_ASYNC_HANDLER_REFUSED' : 'ERR_RESPOND_ASYNC_HANDLER_FAILED',
      // A 4xx says the request itself is wrong: another attempt would get the same answer.
      retry: !refused,
    });
    this.name = 'HandlerAnswerError';
    this.status = status;
    this.publicStatus = status;
  }
}

/** The response over `maxBytes`: fails the job at once. */
export class ResultTooLargeError extends JobError {
  constructor(maxBytes: number) {
    super(`The handler's response is larger than ${maxBytes} bytes`, {
      code: 'ERR_RESPOND_ASYNC_RESULT_TOO_LARGE',
      retry: false,
    });
    this.name = 'ResultTooLargeError';
  }
}

/**
 * The job result of a replay: the captured response when it succeeded (1xx-3xx); a 4xx fails the job at once and
 * a 5xx fails the attempt, each with its status in the job's public error. @internal
 */
export function settleReplay(response: CapturedResponse): CapturedResponse {
  if (response.status >= 400) throw new HandlerAnswerError(response.status);
  return response;
}

/** The 4xx status an error a handler threw would answer with in its framework (`status`, `statusCode`). @internal */
export function clientErrorStatus(error: unknown): number | undefined {
  const candidate = error as { status?: unknown; statusCode?: unknown } | null;
  const status = candidate?.statusCode ?? candidate?.status;
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status < 500 ? status : undefined;
}

/** The JSON answer of `GET {statusUrl}/result` for a job that is not a wrapped handler's: its result. @internal */
export function jsonResult(result: unknown): HttpResponse {
  return jsonResponse(200, result ?? null);
}

/**
 * The body a replayed handler finds already parsed (`req.body`, Koa `ctx.request.body`), as the usual body parsers
 * of its framework would leave it: JSON parsed, a form as an object (a repeated field as an array), text as a
 * string, anything else as a Buffer; `undefined` without a body. A gzip, deflate or br body is inflated first (as
 * `express.json()` and `@koa/bodyparser` do), up to MAX_INFLATED_BYTES. Bad JSON, or a body that does not inflate,
 * throws an error with a 4xx status, which fails the job as the app's parser would have refused the request.
 * @internal
 */
export function parseReplayBody(
  raw: Buffer | undefined,
  contentType: string | undefined,
  contentEncoding?: string,
): unknown {
  if (raw === undefined || raw.byteLength === 0) return undefined;
  const bytes = inflate(raw, contentEncoding);
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (/^application\/(?:[\w.+-]+\+)?json$/.test(type)) {
    try {
      return JSON.parse(bytes.toString('utf8'));
    } catch (cause) {
      throw Object.assign(new SyntaxError('The body is not valid JSON', { cause }), { status: 400, expose: true });
    }
  }
  if (type === 'application/x-www-form-urlencoded') {
    const form: Record<string, string | string[]> = {};
    for (const [key, value] of new URLSearchParams(bytes.toString('utf8'))) {
      const seen = form[key];
      form[key] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
    }
    return form;
  }
  if (type.startsWith('text/')) return bytes.toString('utf8');
  return bytes;
}

/** Largest body a replay inflates a compressed request body to. */
const MAX_INFLATED_BYTES = 16 * 1024 * 1024;

function inflate(bytes: Buffer, contentEncoding: string | undefined): Buffer {
  const encoding = (contentEncoding ?? '').trim().toLowerCase();
  const options = { maxOutputLength: MAX_INFLATED_BYTES };
  try {
    if (encoding === 'gzip' || encoding === 'x-gzip') return gunzipSync(bytes, options);
    if (encoding === 'deflate') return inflateSync(bytes, options);
    if (encoding === 'br') return brotliDecompressSync(bytes, options);
  } catch (cause) {
    throw Object.assign(new Error(`The ${encoding} body cannot be inflated`, { cause }), { status: 400, expose: true });
  }
  if (encoding === '' || encoding === 'identity') return bytes;
  throw Object.assign(new Error(`Unsupported Content-Encoding ${encoding}`), { status: 415, expose: true });
}

/** The body bytes of a snapshot, `undefined` when it had none. @internal */
export function snapshotBytes(snapshot: WrappedRequestSnapshot): Buffer | undefined {
  return snapshot.body === null ? undefined : Buffer.from(snapshot.body, 'base64');
}

/**
 * Show a replayed request (Express `req`, Koa `ctx.request`, Fastify `request`) the client it had at submit:
 * `protocol`, `ip`, `ips`, `hostname` and `host` as own values over the framework's getters, which would read the replay's
 * own connection (no proxy, no TLS). What derives from them (`secure`, Koa `origin`) follows. @internal
 */
export function pinClient(target: object, client: RequestClient | undefined): void {
  if (client === undefined) return;
  for (const name of ['protocol', 'ip', 'ips', 'hostname', 'host'] as const) {
    Object.defineProperty(target, name, { value: client[name], writable: true, configurable: true });
  }
}
