// The HTTP contract, framework-free: submit, status, cancel, events and list as { status, headers, body } values.
import { createHash } from 'node:crypto';
import { InputError, permanentError, QueueFullError, StoreUnavailableError } from '../core/errors.js';
import { isJobId } from '../core/ids.js';
import type { JobDefinition, Jobs } from '../core/runtime.js';
import type { ListPosition } from '../core/store.js';
import { isTerminal, type JobRecord, type RequestSnapshot } from '../core/types.js';
import { type AcceptedDocument, iso, type StatusDocument, toStatusDocument } from './document.js';
import { parseIdempotencyKey, parseLastEventId, parsePreferWait } from './headers.js';
import { ProblemError, problem } from './problem.js';
import type { HttpResponse } from './response.js';
import { jsonResponse } from './response.js';
import { EVENT_STREAM_HEADERS, jobEventStream } from './sse.js';
import { checkCallbackUrl } from './ssrf.js';
import { type RouteSchema, validateRequest } from './validation.js';
import { startWebhookDeliveries, validateWebhookOptions, type WebhookOptions } from './webhooks.js';
import { capturedAnswer, isCapturedResponse, jsonResult, type WrappedRequestSnapshot } from './wrap.js';

/** Options shared by every adapter: where the status endpoints live, who owns a job, limits. */
export interface RespondAsyncOptions<Req> {
  /**
   * Path of the status endpoints, relative to where the app mounts them: `GET {mount}{basePath}/{jobId}`, where the
   * mount is an Express router's mount path (`req.baseUrl`) or the prefix of the Fastify plugin's registration.
   * Default `/jobs`.
   */
  basePath?: string;
  /**
   * The public origin (and path, if the app is served under one) that clients reach the app at, such as
   * `https://api.example.com` or `https://example.com/service`: `Location` and `statusUrl` become absolute URLs on it.
   * Default: relative URLs (a path).
   */
  publicUrl?: string;
  /**
   * Trust the request's `Forwarded` (RFC 7239 `host`, `proto`), `X-Forwarded-Host`, `X-Forwarded-Proto` and
   * `X-Forwarded-Prefix` headers to build `Location` and `statusUrl`, as set by a reverse proxy. Only turn this on
   * when every request comes through a proxy that sets (or strips) them. Default `false`.
   */
  trustProxy?: boolean;
  /**
   * The authenticated user of a request. Each job records it; status, cancel and events answer 404 to
   * anyone else, and `GET {basePath}` lists the caller's recent jobs. Default: no owner scoping.
   */
  owner?: (req: Req) => string | null | undefined | Promise<string | null | undefined>;
  /** Largest request body accepted, in bytes; larger answers 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Upper bound for `Prefer: wait=N`, in seconds. Default 10. `0` disables waiting. */
  maxWaitSeconds?: number;
  /** `Retry-After` sent with 202 and with unfinished status documents, in seconds. Default 1. */
  retryAfterSeconds?: number;
  /** Interval of SSE comment heartbeats, in ms. Default 15 000. */
  heartbeatMs?: number;
  /** Limits per caller, so that one caller cannot starve the others. */
  limits?: LimitOptions;
  /**
   * Signed webhooks on terminal states. Without this, a body's `callbackUrl` is ordinary input.
   * With it, the callback URL is checked (SSRF guard), removed from the job input and called when the job ends.
   */
  webhooks?: WebhookOptions & {
    /** Where the callback URL comes from. Default: the JSON body's `callbackUrl` field. */
    callbackUrl?: (req: Req, body: unknown) => string | undefined | null;
  };
}

/** Limits per caller (see `RespondAsyncOptions.limits`). */
export interface LimitOptions {
  /**
   * Most jobs one owner (the `owner` option's value) may hold in the store: queued, processing and finished ones
   * still within their retention alike, since finished jobs take room too. A submit past it answers
   * `429 Too Many Requests` with `Retry-After` (problem+json, code `ERR_RESPOND_ASYNC_QUOTA_EXCEEDED`), and nothing
   * is stored; a resubmit with the Idempotency-Key of a job the owner holds still answers with that job. Jobs
   * submitted without an owner are not counted. Concurrent submits of one owner may pass it by at most their number.
   * Default 10 000; `Infinity` turns it off.
   */
  perOwner?: number;
  /** `Retry-After` of that 429, in seconds: room comes back as jobs pass their retention. Default 60. */
  retryAfterSeconds?: number;
}

/** Per-route options of a wrapped route. */
export interface RouteOptions<Req, Input> {
  /** Build the job input from the request. Default: `{ body, params, query }`. Must return JSON data. */
  input?: (req: Req, snapshot: RequestSnapshot) => Input | Promise<Input>;
  /** Sent as `estimatedSeconds` in the 202 body, and as its `Retry-After` when larger than the default. */
  estimatedSeconds?: number;
  /**
   * Standard Schemas (zod 4, valibot 1, arktype 2, …) validating the body, params and query before anything is
   * stored (400 problem+json with `errors` otherwise); the job's input holds their output. With the default input,
   * the body schema's output must be the job's `RequestSnapshot<Body>` body type.
   */
  schema?: RouteSchema<SnapshotBody<Input>>;
}

/** The body type of a job input that is a `RequestSnapshot<Body>`; `unknown` for any other input. */
export type SnapshotBody<Input> = [Input] extends [RequestSnapshot<infer Body>] ? Body : unknown;

/**
 * The options argument of an adapter's `route(job, options?)`. Without `input()`, the handler receives the default
 * `RequestSnapshot` (`{ body, params, query }`), so the options (and their `input()`) are required when the job's
 * input type is something else: `route(job)` then fails to compile instead of handing the handler the wrong shape.
 */
export type RouteOptionsArg<Req, Input> = [RequestSnapshot] extends [Input]
  ? [options?: RouteOptions<Req, Input>]
  : [Input] extends [RequestSnapshot<any>]
    ? [options?: RouteOptions<Req, Input>]
    : [options: RouteOptions<Req, Input> & { input: NonNullable<RouteOptions<Req, Input>['input']> }];

/** A request body read by an adapter: its parsed value, and its JSON text when the adapter read the bytes. */
export interface RequestBody {
  value: unknown;
  json: string | undefined;
}

/** A request as an adapter hands it to the protocol. */
export interface ProtocolRequest<Req> {
  /** The framework's own request object (passed to `owner()` and `input()`). */
  raw: Req;
  method: string;
  /**
   * The path of the request, without the query string: relative to `mount` for a status request; a submit's is only
   * part of its idempotency fingerprint.
   */
  path: string;
  /** Where the app mounted the adapter (Express `req.baseUrl`, a Fastify prefix): a path prefix, `''` for none. */
  mount?: string;
  /** A header value by lower-case name. */
  header(name: string): string | undefined;
  /** Parsed JSON body (`undefined` when there was none). */
  body?: unknown;
  /** The body's JSON text, as decoded, when the adapter read the body itself (see `readBody`). */
  bodyJson?: string;
  params?: Record<string, string>;
  query?: Record<string, unknown>;
}

const DEFAULTS = {
  basePath: '/jobs',
  maxBodyBytes: 1024 * 1024,
  maxWaitSeconds: 10,
  retryAfterSeconds: 1,
  heartbeatMs: 15_000,
  perOwner: 10_000,
  quotaRetryAfterSeconds: 60,
  listLimit: 20,
  maxListLimit: 100,
};

const NO_STORE = 'no-store';
/** Request bodies as text (invalid UTF-8 becomes U+FFFD, a BOM is dropped); decode() keeps no state between calls. */
const UTF8 = new TextDecoder('utf-8', { fatal: false });
const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The protocol engine every adapter calls. One instance per mounted set of routes.
 * @internal Use the framework adapters (`respond-async/express`, `/fastify`, `/koa`, `/fetch`).
 */
export class HttpProtocol<Req> {
  readonly jobs: Jobs;
  readonly basePath: string;
  readonly maxBodyBytes: number;
  readonly #options: RespondAsyncOptions<Req>;
  readonly #maxWait: number;
  readonly #retryAfter: string;
  readonly #heartbeatMs: number;
  readonly #statusPattern: RegExp;
  readonly #perOwner: number;
  readonly #quotaRetryAfter: string;
  readonly #publicUrl: string;
  readonly #trustProxy: boolean;

  constructor(jobs: Jobs, options: RespondAsyncOptions<Req> = {}) {
    this.jobs = jobs;
    this.#options = options;
    const basePath = (options.basePath ?? DEFAULTS.basePath).replace(/\/+$/, '');
    if (!/^(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/.test(basePath)) {
      throw new TypeError(`respond-async: basePath must be an absolute path such as "/jobs", got "${basePath}"`);
    }
    this.basePath = basePath;
    this.#publicUrl = options.publicUrl === undefined ? '' : parsePublicUrl(options.publicUrl);
    this.#trustProxy = options.trustProxy === true;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULTS.maxBodyBytes;
    this.#maxWait = options.maxWaitSeconds ?? DEFAULTS.maxWaitSeconds;
    this.#retryAfter = String(Math.max(1, Math.ceil(options.retryAfterSeconds ?? DEFAULTS.retryAfterSeconds)));
    this.#heartbeatMs = options.heartbeatMs ?? DEFAULTS.heartbeatMs;
    this.#perOwner = options.limits?.perOwner ?? DEFAULTS.perOwner;
    if (
      !(this.#perOwner === Number.POSITIVE_INFINITY || (Number.isSafeInteger(this.#perOwner) && this.#perOwner >= 1))
    ) {
      throw new TypeError(`respond-async: limits.perOwner must be a whole number of at least 1 or Infinity`);
    }
    const quotaRetryAfter = options.limits?.retryAfterSeconds ?? DEFAULTS.quotaRetryAfterSeconds;
    if (!(quotaRetryAfter >= 0)) throw new TypeError('respond-async: limits.retryAfterSeconds must be at least 0');
    this.#quotaRetryAfter = String(Math.max(1, Math.ceil(quotaRetryAfter)));
    // `B`, `B/{id}`, `B/{id}/events` and `B/{id}/result`, `{id}` one non-empty segment: every other path under `B`
    // is the app's.
    this.#statusPattern = new RegExp(`^${escapeRegExp(basePath)}(?:/([^/]+)(/events|/result)?)?$`);
    if (options.webhooks) {
      validateWebhookOptions(options.webhooks);
      startWebhookDeliveries(jobs, { webhooks: options.webhooks, statusUrl: (id: string) => this.statusUrl(id) });
    }
  }

  /**
   * The status URL of a job: `publicUrl` (or, with `trustProxy`, the forwarded origin and prefix), then the mount
   * prefix of `req`, then `basePath`. Without a request (webhooks, `ra.statusUrl()`): `publicUrl` and `basePath`.
   */
  statusUrl(id: string, req?: ProtocolRequest<Req>): string {
    return `${this.#base(req)}/${id}`;
  }

  /** `statusUrl` without the job id: where `basePath` is reached by the client that sent `req`. */
  #base(req: ProtocolRequest<Req> | undefined): string {
    const mount = req?.mount ?? '';
    if (this.#trustProxy && req) {
      const forwarded = forwardedOrigin(req);
      const prefix = forwardedPrefix(req.header('x-forwarded-prefix'));
      if (forwarded !== undefined || prefix !== '') {
        return `${forwarded ?? this.#publicUrl}${prefix}${mount}${this.basePath}`;
      }
    }
    return `${this.#publicUrl}${mount}${this.basePath}`;
  }

  /** Whether `GET {basePath}` lists the caller's jobs (with an `owner` option); otherwise that path is the app's. */
  get listsJobs(): boolean {
    return this.#options.owner !== undefined;
  }

  /** Whether `path` may be a status path (the adapter should hand it to `handle`, which may still pass it on). */
  matches(path: string): boolean {
    // Most requests are for other routes: a prefix test spares them the regex.
    return path.startsWith(this.basePath) && this.#statusPattern.test(path);
  }

  /** Submit a job for a wrapped route: 202, or the terminal document when `Prefer: wait` is met. */
  async submit<Input>(
    definition: JobDefinition<Input, unknown>,
    req: ProtocolRequest<Req>,
    route: RouteOptions<Req, Input> = {},
  ): Promise<HttpResponse> {
    const keyHeader = req.header('idempotency-key');
    const idempotencyKey = keyHeader === undefined ? null : parseIdempotencyKey(keyHeader);
    if (keyHeader !== undefined && idempotencyKey === null) return badIdempotencyKey();
    // No body (nothing sent) is the empty object, whatever the adapter: a handler reading `body.field` never throws.
    const received = req.body === undefined ? {} : req.body;
    const params = req.params ?? {};
    const query = req.query ?? {};
    // Awaited only with a schema: a route without one goes on without a promise and a microtask to wait for.
    const checked = route.schema
      ? await validateRequest(route.schema, received, params, query)
      : { ok: true as const, body: received, params, query };
    if (!checked.ok) return checked.response;
    let body = checked.body;
    let bodyJson = route.schema?.body ? undefined : req.bodyJson;
    let callbackUrl: string | null = null;
    const webhooks = this.#options.webhooks;
    if (webhooks) {
      const extracted = webhooks.callbackUrl ? webhooks.callbackUrl(req.raw, body) : defaultCallbackUrl(body);
      if (extracted !== undefined && extracted !== null) {
        if (typeof extracted !== 'string') {
          return problem(400, 'ERR_RESPOND_ASYNC_BAD_CALLBACK_URL', 'callbackUrl must be a string');
        }
        const check = await checkCallbackUrl(extracted, webhooks);
        if (!check.ok)
          return problem(400, 'ERR_RESPOND_ASYNC_BAD_CALLBACK_URL', `callbackUrl refused: ${check.reason}`);
        callbackUrl = check.url.href;
        if (!webhooks.callbackUrl) {
          body = withoutKey(body as Record<string, unknown>, 'callbackUrl');
          bodyJson = undefined;
        }
      }
    }
    const snapshot: RequestSnapshot = { body, params: checked.params, query: checked.query };
    const input = route.input ? await route.input(req.raw, snapshot) : (snapshot as Input);
    // The default input is the snapshot: its JSON is built around the body's text as received, which spares the
    // store serialising the body again (it parses to the same value). Joined rather than concatenated: a store may
    // keep this text as long as the job, and `join` makes one flat string where `+` makes a tree of pieces.
    const inputJson =
      route.input || bodyJson === undefined
        ? undefined
        : [
            '{"body":',
            bodyJson,
            ',"params":',
            JSON.stringify(snapshot.params),
            ',"query":',
            JSON.stringify(snapshot.query),
            '}',
          ].join('');
    const owner = this.#options.owner ? await this.#owner(req.raw) : null;
    const requestHash =
      idempotencyKey === null ? null : hashRequest(req.method, req.path, received, owner, snapshot.query);
    return this.#enqueue(definition, req, input, {
      owner,
      idempotencyKey,
      requestHash,
      callbackUrl,
      inputJson,
      estimatedSeconds: route.estimatedSeconds,
    });
  }

  /**
   * Submit a wrapped handler's job: its input is the request as it came (`snapshot`, the owner added here), the body
   * the bytes that came, whatever their type. 202 as every wrapped route, or the handler's own response when
   * `Prefer: wait` sees the job complete.
   */
  async submitWrapped(
    definition: JobDefinition<WrappedRequestSnapshot, unknown>,
    req: ProtocolRequest<Req>,
    snapshot: Omit<WrappedRequestSnapshot, 'owner'>,
    estimatedSeconds?: number,
  ): Promise<HttpResponse> {
    const keyHeader = req.header('idempotency-key');
    const idempotencyKey = keyHeader === undefined ? null : parseIdempotencyKey(keyHeader);
    if (keyHeader !== undefined && idempotencyKey === null) return badIdempotencyKey();
    const owner = this.#options.owner ? await this.#owner(req.raw) : null;
    const input: WrappedRequestSnapshot = { ...snapshot, owner };
    const requestHash =
      idempotencyKey === null ? null : hashRequest(req.method, req.path, snapshot.body, owner, snapshot.query);
    return this.#enqueue(definition, req, input, {
      owner,
      idempotencyKey,
      requestHash,
      callbackUrl: null,
      estimatedSeconds,
    });
  }

  /** Store a job (quota, idempotency) and answer: 202, or the terminal answer when `Prefer: wait` sees it end. */
  async #enqueue<Input>(
    definition: JobDefinition<Input, unknown>,
    req: ProtocolRequest<Req>,
    input: Input,
    submit: {
      owner: string | null;
      idempotencyKey: string | null;
      requestHash: string | null;
      callbackUrl: string | null;
      inputJson?: string;
      estimatedSeconds: number | undefined;
    },
  ): Promise<HttpResponse> {
    const { owner, idempotencyKey, requestHash, callbackUrl, inputJson } = submit;
    let result: { job: JobRecord; created: boolean };
    try {
      if (owner !== null && (await this.#overQuota(owner, idempotencyKey))) {
        return problem(
          429,
          'ERR_RESPOND_ASYNC_QUOTA_EXCEEDED',
          `At most ${this.#perOwner} jobs per caller are kept; try again when older ones have expired`,
          { 'retry-after': this.#quotaRetryAfter },
        );
      }
      const options = { owner, idempotencyKey, requestHash, callbackUrl, inputJson };
      result = await this.jobs.submit(definition, input, options);
    } catch (error) {
      if (permanentError(error)) return this.error(error);
      if (error instanceof QueueFullError || error instanceof StoreUnavailableError) {
        return problem(
          503,
          error.code,
          error instanceof QueueFullError ? 'Too many jobs queued; try again later' : 'Jobs cannot be stored now',
          { 'retry-after': this.#retryAfter },
        );
      }
      throw error;
    }
    const { job, created } = result;
    const prefer = req.header('prefer');
    const extra: Record<string, string> = { vary: 'Prefer' };
    if (!created) {
      if (job.requestHash !== requestHash) {
        return problem(
          422,
          'ERR_RESPOND_ASYNC_IDEMPOTENCY_KEY_REUSED',
          'This Idempotency-Key was used with a different request',
          extra,
        );
      }
      extra['idempotent-replayed'] = 'true';
    }
    const wait = Math.min(parsePreferWait(prefer) ?? 0, this.#maxWait);
    // What the 202 reports: a new job as accepted into the queue (even when a worker of this process took it at
    // once), a replayed one as it is, and after a wait the state the wait ended on.
    let status = created ? 'queued' : job.status;
    if (wait > 0) {
      const latest = isTerminal(job.status) ? job : await this.jobs.waitFor(job.id, wait * 1000).catch(() => job);
      if (latest && isTerminal(latest.status)) {
        // A wrapped handler's job answers with the handler's own response.
        if (latest.status === 'complete' && isCapturedResponse(latest.result)) {
          return capturedAnswer(latest.result, { ...extra, 'preference-applied': `wait=${wait}` });
        }
        return this.#statusResponse(latest, req, { ...extra, 'preference-applied': `wait=${wait}` });
      }
      status = latest?.status ?? status;
    }
    const statusUrl = this.statusUrl(job.id, req);
    const accepted: AcceptedDocument = {
      jobId: job.id,
      status,
      statusUrl,
      createdAt: iso(job.createdAt),
    };
    let retryAfter = this.#retryAfter;
    if (submit.estimatedSeconds !== undefined) {
      accepted.estimatedSeconds = submit.estimatedSeconds;
      retryAfter = String(Math.max(Number(retryAfter), Math.ceil(submit.estimatedSeconds)));
    }
    return jsonResponse(202, accepted, { location: statusUrl, 'retry-after': retryAfter, ...extra });
  }

  /**
   * Answer a request under `basePath` (status, cancel, events, list), or `undefined` when it is not ours and goes to
   * the app's next handler: a deeper path, and on `basePath` itself anything but `GET`/`HEAD` with an `owner` option
   * (DESIGN.md, "Paths under the base path").
   */
  async handle(req: ProtocolRequest<Req>): Promise<HttpResponse | undefined> {
    const match = this.#statusPattern.exec(req.path);
    if (!match) return undefined;
    const [, id, sub] = match;
    const events = sub === '/events';
    const method = req.method.toUpperCase();
    if (id === undefined) {
      return this.#options.owner && (method === 'GET' || method === 'HEAD') ? this.#list(req) : undefined;
    }
    const allowed = sub ? 'GET, HEAD' : 'GET, HEAD, DELETE';
    if (!allowed.split(', ').includes(method)) {
      return problem(405, 'ERR_RESPOND_ASYNC_METHOD_NOT_ALLOWED', undefined, { allow: allowed });
    }
    const job = await this.#visibleJob(id, req.raw);
    if (!job) return notFound();
    if (events) {
      const lastEventId = parseLastEventId(req.header('last-event-id'));
      // A client that already saw the end: 204 tells EventSource to stop reconnecting.
      if (isTerminal(job.status) && lastEventId >= job.seq)
        return { status: 204, headers: { 'cache-control': NO_STORE } };
      return {
        status: 200,
        headers: { ...EVENT_STREAM_HEADERS },
        stream: jobEventStream({
          jobs: this.jobs,
          job,
          statusUrl: this.statusUrl(job.id, req),
          lastEventId,
          heartbeatMs: this.#heartbeatMs,
          retryMs: 1000,
        }),
      };
    }
    if (sub === '/result') return this.#result(job);
    if (method === 'DELETE') return this.#cancel(job, req);
    return this.#statusResponse(job, req);
  }

  /**
   * `GET {statusUrl}/result`: a wrapped handler's response byte for byte (any other job's result as JSON, or its
   * `seeOther()` redirect); 404 problem before the job completes, 409 when it failed or was canceled.
   */
  #result(job: JobRecord): HttpResponse {
    if (!isTerminal(job.status)) {
      return problem(404, 'ERR_RESPOND_ASYNC_RESULT_NOT_READY', `The job is ${job.status}; its result is not ready`, {
        'retry-after': this.#retryAfter,
      });
    }
    if (job.status !== 'complete') {
      return problem(409, 'ERR_RESPOND_ASYNC_NO_RESULT', `The job ${job.status}: it has no result`);
    }
    if (isCapturedResponse(job.result)) return capturedAnswer(job.result);
    if (job.resultUrl !== null) return { status: 303, headers: { location: job.resultUrl, 'cache-control': NO_STORE } };
    return jsonResult(job.result);
  }

  /** Turn anything thrown while handling a request into a problem answer; never leaks a stack or internal message. */
  error(error: unknown): HttpResponse {
    if (error instanceof ProblemError) return error.response;
    if (error instanceof InputError) return problem(400, error.code, error.message);
    // A misconfiguration (a schema from a newer version, a missing driver) does not heal by retrying: 500 with its
    // code, never 503 + Retry-After, so that clients stop and the log says what to fix.
    const permanent = permanentError(error);
    if (permanent) {
      this.jobs.logger.error('respond-async: the job store cannot serve requests', permanent);
      return problem(500, permanent.code, 'The job store cannot serve requests; see the server log');
    }
    // The store is down (a database restart): status, cancel, events and list answer like submit does, 503 +
    // Retry-After, not 500.
    if (error instanceof StoreUnavailableError) {
      return problem(503, error.code, 'Jobs cannot be read now', { 'retry-after': this.#retryAfter });
    }
    const status = statusOf(error);
    if (status === 413)
      return problem(413, 'ERR_RESPOND_ASYNC_BODY_TOO_LARGE', `The body is larger than ${this.maxBodyBytes} bytes`, {
        connection: 'close',
      });
    if (status === 415)
      return problem(
        415,
        'ERR_RESPOND_ASYNC_UNSUPPORTED_MEDIA_TYPE',
        'The body must be JSON in UTF-8 (application/json or application/*+json)',
      );
    if (status === 400) return problem(400, 'ERR_RESPOND_ASYNC_BAD_BODY', 'The body is not valid JSON');
    if (status !== undefined && status >= 400 && status < 500) return problem(status, 'ERR_RESPOND_ASYNC_BAD_REQUEST');
    this.jobs.logger.error('respond-async: request failed', error);
    return problem(500, 'ERR_RESPOND_ASYNC_INTERNAL', 'The request could not be handled');
  }

  /**
   * Parse a raw body as JSON within the size limit, or throw a ProblemError (400, 413, 415). An empty body is no body
   * (`undefined`); any other needs a JSON Content-Type in UTF-8 (see `isJsonType`). A `__proto__` key is plain data.
   */
  parseBody(raw: string | Uint8Array, contentType: string | undefined): unknown {
    return this.readBody(raw, contentType).value;
  }

  /**
   * Refuse a body in a `Content-Encoding` this library does not read (gzip, br, deflate: anything but `identity`)
   * with a 415 ProblemError, before its bytes are read: decoded as JSON, it would only be a misleading 400.
   */
  checkEncoding(contentEncoding: string | string[] | undefined): void {
    if (contentEncoding === undefined) return;
    const value = (Array.isArray(contentEncoding) ? contentEncoding.join(',') : contentEncoding).trim().toLowerCase();
    if (value === '' || value === 'identity') return;
    throw new ProblemError(unsupportedEncoding());
  }

  /**
   * The problem answer for an error a framework's body parser raised before a wrapped route ran (body-parser in
   * Express, co-body in `@koa/bodyparser`), or `undefined` when `error` is not one: bad JSON 400, too large 413,
   * an unsupported charset or encoding 415.
   */
  bodyParserError(error: unknown): HttpResponse | undefined {
    const type = (error as { type?: unknown } | null)?.type;
    const status = statusOf(error);
    // co-body (`@koa/bodyparser`) marks neither its JSON errors nor inflation's encoding errors with a `type`.
    if (type === undefined && status === 400 && error instanceof SyntaxError) return this.error({ status: 400 });
    if (type === undefined && status === 415 && /^Unsupported Content-Encoding/.test(String((error as Error).message)))
      return unsupportedEncoding();
    switch (type) {
      case 'entity.parse.failed':
      case 'entity.verify.failed':
      case 'request.size.invalid':
        return this.error({ status: 400 });
      case 'entity.too.large':
        return this.error({ status: 413 });
      case 'encoding.unsupported':
        return unsupportedEncoding();
      case 'charset.unsupported':
        return this.error({ status: 415 });
      default:
        return undefined;
    }
  }

  /** `parseBody`, keeping the decoded JSON text too (for `ProtocolRequest.bodyJson`). */
  readBody(raw: string | Uint8Array, contentType: string | undefined): RequestBody {
    const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.byteLength;
    if (size > this.maxBodyBytes) throw new ProblemError(this.error({ status: 413 }));
    if (size === 0) return { value: undefined, json: undefined };
    if (!isJsonType(contentType)) throw new ProblemError(this.error({ status: 415 }));
    const text = typeof raw === 'string' ? raw : UTF8.decode(raw);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ProblemError(this.error({ status: 400 }));
    }
    if (nestedDeeperThan(parsed, MAX_BODY_DEPTH)) throw new ProblemError(tooDeep());
    return { value: parsed, json: text };
  }

  /**
   * Check a body a framework already parsed: JSON only (415 otherwise) and within the size limit (413), given the
   * request's headers, by the rules of `readBody`. Throws a ProblemError; returns the body (`undefined` when the
   * request carried none: a parser's `{}` placeholder for a body-less request is no body).
   *
   * The size is the body's `Content-Length` when it declares one and no `Content-Encoding` (the framework's parser
   * read exactly that many bytes), as for a body this library reads itself; otherwise (chunked, compressed) the
   * size of the body serialised again.
   */
  checkParsedBody(body: unknown, headers: Readonly<Record<string, string | string[] | undefined>>): unknown {
    if (body === undefined || !hasBody(headers)) return undefined;
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !isJsonType(contentType))
      throw new ProblemError(this.error({ status: 415 }));
    if (nestedDeeperThan(body, MAX_BODY_DEPTH)) throw new ProblemError(tooDeep());
    const declared =
      headers['content-encoding'] === undefined ? Number(headers['content-length'] ?? Number.NaN) : Number.NaN;
    const size = Number.isFinite(declared) ? declared : Buffer.byteLength(JSON.stringify(body) ?? '');
    if (size > this.maxBodyBytes) throw new ProblemError(this.error({ status: 413 }));
    return body;
  }

  async #list(req: ProtocolRequest<Req>): Promise<HttpResponse> {
    if (req.method.toUpperCase() !== 'GET' && req.method.toUpperCase() !== 'HEAD') {
      return problem(405, 'ERR_RESPOND_ASYNC_METHOD_NOT_ALLOWED', undefined, { allow: 'GET, HEAD' });
    }
    const owner = this.#options.owner ? await this.#owner(req.raw) : null;
    // Without an owner there is nobody to list for: listing anonymous jobs would show everyone's.
    if (owner === null) return notFound();
    const query = req.query ?? {};
    const limit = query.limit === undefined ? DEFAULTS.listLimit : parseListLimit(query.limit);
    if (limit === undefined) {
      return problem(
        400,
        'ERR_RESPOND_ASYNC_BAD_LIMIT',
        `limit must be a whole number from 1 to ${DEFAULTS.maxListLimit}`,
      );
    }
    const before = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    if (before === null) {
      return problem(400, 'ERR_RESPOND_ASYNC_BAD_CURSOR', 'cursor must be a nextCursor this endpoint returned');
    }
    // One more than a page: whether it exists says whether there is a next page.
    const found = await this.jobs.list(owner, limit + 1, before);
    const page = found.slice(0, limit);
    const body: { jobs: StatusDocument[]; nextCursor?: string } = {
      // Summaries: a listing of 100 jobs should not carry 100 results; each result is at the job's statusUrl.
      jobs: page.map((job) => {
        const { result: _result, ...summary } = toStatusDocument(job, this.statusUrl(job.id, req));
        return summary;
      }),
    };
    if (found.length <= limit) return jsonResponse(200, body);
    const last = page[page.length - 1];
    body.nextCursor = encodeCursor(last);
    return jsonResponse(200, body, {
      link: `<${this.#base(req)}?cursor=${body.nextCursor}&limit=${limit}>; rel="next"`,
    });
  }

  /** Whether `owner` is at its quota, for a submit with `idempotencyKey` (a known key is no new job). */
  async #overQuota(owner: string, idempotencyKey: string | null): Promise<boolean> {
    const max = this.#perOwner;
    if (max === Number.POSITIVE_INFINITY || (await this.jobs.countByOwner(owner, max)) < max) return false;
    return idempotencyKey === null || (await this.jobs.getByKey(owner, idempotencyKey, max)) === undefined;
  }

  async #cancel(job: JobRecord, req: ProtocolRequest<Req>): Promise<HttpResponse> {
    if (isTerminal(job.status)) {
      return problem(409, 'ERR_RESPOND_ASYNC_ALREADY_FINISHED', `The job is already ${job.status}`);
    }
    const { outcome, job: after } = await this.jobs.cancel(job.id);
    if (outcome === 'missing' || !after) return notFound();
    if (outcome === 'finished') {
      return problem(409, 'ERR_RESPOND_ASYNC_ALREADY_FINISHED', `The job is already ${after.status}`);
    }
    const doc = toStatusDocument(after, this.statusUrl(after.id, req));
    return outcome === 'canceled'
      ? jsonResponse(200, doc)
      : jsonResponse(202, doc, { 'retry-after': this.#retryAfter });
  }

  #statusResponse(job: JobRecord, req: ProtocolRequest<Req>, extra: Record<string, string> = {}): HttpResponse {
    const doc = toStatusDocument(job, this.statusUrl(job.id, req));
    if (job.status === 'complete' && job.resultUrl !== null) {
      return jsonResponse(303, doc, { location: job.resultUrl, ...extra });
    }
    return jsonResponse(200, doc, isTerminal(job.status) ? extra : { 'retry-after': this.#retryAfter, ...extra });
  }

  async #visibleJob(id: string, raw: Req): Promise<JobRecord | undefined> {
    if (!isJobId(id)) return undefined;
    const job = await this.jobs.get(id);
    if (!job) return undefined;
    const owner = await this.#owner(raw);
    return job.owner === owner ? job : undefined;
  }

  async #owner(raw: Req): Promise<string | null> {
    if (!this.#options.owner) return null;
    const owner = await this.#options.owner(raw);
    return owner === undefined || owner === null || owner === '' ? null : String(owner);
  }
}

const JSON_TYPE_PATTERN = /^application\/(?:[\w.+-]+\+)?json[ \t]*(?:;(.*))?$/i;
const CHARSET_PARAMETER = /(?:^|;)[ \t]*charset[ \t]*=[ \t]*("?)([^";]*)\1[ \t]*(?:;|$)/i;

/**
 * Whether a body with this Content-Type is read: JSON (`application/json` or `application/*+json`, any case) in
 * UTF-8 (no charset, `utf-8`, or its subset `us-ascii`). A body without a Content-Type, or in another charset
 * (`utf-16`, `latin1`, which would decode to other text), is refused (415) rather than guessed.
 */
function isJsonType(contentType: string | undefined): boolean {
  // The two usual spellings without the regex (it runs on every accept).
  if (contentType === 'application/json' || contentType === JSON_TYPE) return true;
  const match = contentType === undefined ? null : JSON_TYPE_PATTERN.exec(contentType);
  if (!match) return false;
  const charset = match[1] === undefined ? undefined : CHARSET_PARAMETER.exec(match[1])?.[2]?.toLowerCase();
  return charset === undefined || charset === 'utf-8' || charset === 'utf8' || charset === 'us-ascii';
}

/** Whether a request carries a body, by its headers (a framework's parser may leave `{}` when it carries none). */
function hasBody(headers: Readonly<Record<string, string | string[] | undefined>>): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function unsupportedEncoding(): HttpResponse {
  return problem(
    415,
    'ERR_RESPOND_ASYNC_UNSUPPORTED_ENCODING',
    'The body must not be compressed: send it without Content-Encoding',
    { 'accept-encoding': 'identity' },
  );
}

function badIdempotencyKey(): HttpResponse {
  return problem(
    400,
    'ERR_RESPOND_ASYNC_BAD_IDEMPOTENCY_KEY',
    'Idempotency-Key must be a quoted string (or a token) of 1 to 255 printable ASCII characters',
  );
}

function notFound(): HttpResponse {
  return problem(404, 'ERR_RESPOND_ASYNC_JOB_NOT_FOUND', 'No such job');
}

function defaultCallbackUrl(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  return Object.hasOwn(body, 'callbackUrl') ? (body as Record<string, unknown>).callbackUrl : undefined;
}

function withoutKey(body: Record<string, unknown>, key: string): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const name of Object.keys(body)) {
    if (name !== key)
      Object.defineProperty(copy, name, { value: body[name], enumerable: true, writable: true, configurable: true });
  }
  return copy;
}

/**
 * Deepest nesting of arrays/objects accepted in a body. Deeper bodies overflowed the stack in recursive
 * JSON.stringify (the memory store clone) and answered 503 STORE_UNAVAILABLE; canonical() (request hash) recurses too.
 */
const MAX_BODY_DEPTH = 256;

function tooDeep(): HttpResponse {
  return problem(400, 'ERR_RESPOND_ASYNC_BAD_BODY', `The body is nested deeper than ${MAX_BODY_DEPTH} levels`);
}

/**
 * Whether `value` nests arrays/objects deeper than `max` levels. Recursive, but it stops descending at `max`, so it
 * never goes deeper than `max` + 1 frames whatever the body; it allocates nothing (the accept path runs it).
 */
function nestedDeeperThan(value: unknown, max: number): boolean {
  return typeof value === 'object' && value !== null && deeperThan(value, 1, max);
}

function deeperThan(value: object, level: number, max: number): boolean {
  if (level > max) return true;
  if (Array.isArray(value)) {
    for (const child of value) {
      if (typeof child === 'object' && child !== null && deeperThan(child, level + 1, max)) return true;
    }
    return false;
  }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const child = (value as Record<string, unknown>)[key];
    if (typeof child === 'object' && child !== null && deeperThan(child, level + 1, max)) return true;
  }
  return false;
}

/**
 * Fingerprint of a request for idempotency: method, path, query, body (keys sorted) and owner. Without a query the
 * fingerprint is the one earlier versions stored, so a retry across an upgrade still replays. @internal
 */
export function hashRequest(
  method: string,
  path: string,
  body: unknown,
  owner: string | null,
  query: Record<string, unknown> = {},
): string {
  const parts = [method.toUpperCase(), path, canonical(body), owner];
  if (Object.keys(query).length > 0) parts.push(canonical(query));
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url');
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === 'object' && value !== null) {
    return Object.keys(value)
      .sort()
      .map((key) => [key, canonical((value as Record<string, unknown>)[key])]);
  }
  return value;
}

function statusOf(error: unknown): number | undefined {
  const candidate = error as { status?: unknown; statusCode?: unknown } | null;
  const status = candidate?.statusCode ?? candidate?.status;
  return typeof status === 'number' && Number.isInteger(status) ? status : undefined;
}

/** A `limit` query parameter: a whole number from 1 to the maximum, or undefined when it is anything else. */
function parseListLimit(value: unknown): number | undefined {
  if (typeof value !== 'string' || !/^[1-9][0-9]{0,2}$/.test(value)) return undefined;
  const limit = Number(value);
  return limit <= DEFAULTS.maxListLimit ? limit : undefined;
}

/**
 * The cursor of the page after `job`: its place in the list (`JobStore.list` order), `<createdAt>.<id>` in
 * base64url, so that it is opaque to clients and safe in a URL as it is.
 */
function encodeCursor(job: ListPosition): string {
  return Buffer.from(`${job.createdAt}.${job.id}`).toString('base64url');
}

/** The position a cursor holds, or null when it is not one `encodeCursor` made. */
function decodeCursor(value: unknown): ListPosition | null {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{1,100}$/.test(value)) return null;
  const match = /^(0|[1-9][0-9]{0,15})\.(.+)$/.exec(Buffer.from(value, 'base64url').toString('latin1'));
  if (!match) return null;
  const position = { createdAt: Number(match[1]), id: match[2] };
  // Only the canonical text of a cursor of ours: one string per position.
  if (!Number.isSafeInteger(position.createdAt) || !isJobId(position.id) || encodeCursor(position) !== value) {
    return null;
  }
  return position;
}

/** `publicUrl` as an origin and optional path, without a trailing slash; a TypeError when it is not one. */
function parsePublicUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`respond-async: publicUrl must be an absolute http(s) URL, got "${value}"`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '') {
    throw new TypeError(`respond-async: publicUrl must be an http(s) URL without query or fragment, got "${value}"`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

const FORWARDED_HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;
const FORWARDED_PREFIX = /^(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/;

/**
 * The origin a proxy says the client used: RFC 7239 `Forwarded` (its first element, set by the proxy nearest the
 * client), else `X-Forwarded-Proto` / `X-Forwarded-Host`. `undefined` when no host is given or a value is malformed.
 */
function forwardedOrigin(req: ProtocolRequest<unknown>): string | undefined {
  let host: string | undefined;
  let proto: string | undefined;
  const forwarded = req.header('forwarded');
  if (forwarded !== undefined) {
    const first = forwarded.split(',')[0];
    for (const pair of first.split(';')) {
      const eq = pair.indexOf('=');
      if (eq === -1) continue;
      const name = pair.slice(0, eq).trim().toLowerCase();
      const value = pair
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/, '$1');
      if (name === 'host') host = value;
      else if (name === 'proto') proto = value.toLowerCase();
    }
  } else {
    host = req.header('x-forwarded-host')?.split(',')[0].trim();
    proto = req.header('x-forwarded-proto')?.split(',')[0].trim().toLowerCase();
  }
  if (host === undefined || !FORWARDED_HOST.test(host)) return undefined;
  const scheme = proto ?? 'http';
  if (scheme !== 'http' && scheme !== 'https') return undefined;
  return `${scheme}://${host}`;
}

/** `X-Forwarded-Prefix` as a path prefix without a trailing slash, or `''` when absent or malformed. */
function forwardedPrefix(value: string | undefined): string {
  const prefix = value?.split(',')[0].trim().replace(/\/+$/, '');
  return prefix !== undefined && FORWARDED_PREFIX.test(prefix) ? prefix : '';
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
