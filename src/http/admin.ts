// The operator's admin API and dashboard, framework-free: every admin request as a { status, headers, body } value.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RespondAsyncError, StoreUnavailableError } from '../core/errors.js';
import { isJobId } from '../core/ids.js';
import type { Jobs } from '../core/runtime.js';
import type { AdminListOptions, JobHistory, JobStore, ListPosition } from '../core/store.js';
import type { JobRecord, JobStatus } from '../core/types.js';
import { problem } from './problem.js';
import { type EventStream, type HttpResponse, jsonResponse } from './response.js';
import { EVENT_STREAM_HEADERS, sseEvent } from './sse.js';

/** What `authorize(req)` answers: allowed, not authenticated (401), or authenticated but not allowed (403). */
export type AdminDecision = true | 401 | 403;

/** Options of an adapter's `admin()`: who may use the dashboard and its API. */
export interface AdminOptions<Req> {
  /**
   * Required: decides every request of the dashboard and its API (page, API, live feed). Return `true` to allow,
   * `401` when the caller is not authenticated (the answer carries `wwwAuthenticate`), `403` when they are but may
   * not. Anything else, or a throw, refuses with 403.
   */
  authorize: (req: Req) => AdminDecision | boolean | Promise<AdminDecision | boolean>;
  /** The `WWW-Authenticate` challenge sent with a 401, such as `Basic realm="ops"`. */
  wwwAuthenticate?: string;
  /** Who is acting, for the audit log line of each action (cancel, retry, redeliver, delete). */
  actor?: (req: Req) => string | null | undefined | Promise<string | null | undefined>;
  /** The window of the throughput and timing figures, in ms. Default one hour. */
  windowMs?: number;
  /** How many time buckets the throughput figures have over the window. Default 30. */
  buckets?: number;
  /** Interval of the live feed's heartbeats, in ms. Default 15 000. */
  heartbeatMs?: number;
}

/** An admin request as an adapter hands it over: `path` is relative to where the app mounted the dashboard. */
export interface AdminRequest<Req> {
  raw: Req;
  method: string;
  /** `''` for the mount itself, `/` for the page, `/api/jobs`, … */
  path: string;
  /** The mount as the client sees it (`/admin`), for the redirect from the mount to its page. */
  mount: string;
  query: URLSearchParams;
  header(name: string): string | undefined;
}

/**
 * The `path` option of the Koa and Fetch adapters, checked at mount: `/admin` or deeper, so that the dashboard never
 * takes over every path of the app. Returned without a trailing slash. @internal
 */
export function adminPath(path: unknown): string {
  const trimmed = typeof path === 'string' ? path.replace(/\/+$/, '') : '';
  if (!/^\/[^?#\s]+$/.test(trimmed)) {
    throw new RespondAsyncError(
      'ERR_RESPOND_ASYNC_ADMIN_PATH_REQUIRED',
      `respond-async: admin() needs a \`path\` such as '/admin' (where the dashboard answers), got ${JSON.stringify(path)}`,
      { permanent: true },
    );
  }
  return trimmed;
}

/** The header every action must carry: a cross-site form or `fetch` without CORS cannot send it. */
export const ADMIN_HEADER = 'x-respond-async-admin';

const STATUSES: readonly JobStatus[] = ['queued', 'processing', 'complete', 'failed', 'canceled'];
const OPERATIONS = ['adminList', 'countJobs', 'throughput', 'timings', 'retry', 'remove', 'redeliver', 'history'];
const DEFAULT_PAGE = 50;
const MAX_PAGE = 200;

/**
 * The page's own files, served by the mount. `default-src 'none'`: the page runs its one script and style sheet
 * from this mount, talks to this mount only, and nothing inline runs.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
};

/** The operator's admin API and page over one runtime. Adapters translate requests in and answers out. @internal */
export class AdminProtocol<Req> {
  readonly #jobs: Jobs;
  readonly #options: AdminOptions<Req>;
  readonly #error: (error: unknown) => HttpResponse;
  readonly #windowMs: number;
  readonly #buckets: number;
  readonly #heartbeatMs: number;

  /** @throws RespondAsyncError `ERR_RESPOND_ASYNC_ADMIN_AUTHORIZE_REQUIRED` without `authorize`, `…_ADMIN_STORE_UNSUPPORTED` when the store lacks an operator's operation. */
  constructor(jobs: Jobs, options: AdminOptions<Req>, error: (error: unknown) => HttpResponse) {
    if (typeof options?.authorize !== 'function') {
      throw new RespondAsyncError(
        'ERR_RESPOND_ASYNC_ADMIN_AUTHORIZE_REQUIRED',
        'respond-async: admin() needs an `authorize(req)` option: the dashboard is never open by default',
        { permanent: true },
      );
    }
    const missing = OPERATIONS.filter((name) => typeof jobs.store[name as keyof JobStore] !== 'function');
    if (missing.length > 0) {
      throw new RespondAsyncError(
        'ERR_RESPOND_ASYNC_ADMIN_STORE_UNSUPPORTED',
        `respond-async: the ${jobs.store.kind} store lacks what the dashboard needs: ${missing.join(', ')}`,
        { permanent: true },
      );
    }
    this.#jobs = jobs;
    this.#options = options;
    this.#error = error;
    this.#windowMs = positive('windowMs', options.windowMs ?? 60 * 60 * 1000);
    this.#buckets = Math.floor(positive('buckets', options.buckets ?? 30));
    this.#heartbeatMs = positive('heartbeatMs', options.heartbeatMs ?? 15_000);
  }

  /** The answer to any request under the mount (never rejects). */
  async handle(req: AdminRequest<Req>): Promise<HttpResponse> {
    try {
      const refused = await this.#authorize(req);
      if (refused) return refused;
      return await this.#route(req);
    } catch (error) {
      return this.#error(error);
    }
  }

  async #authorize(req: AdminRequest<Req>): Promise<HttpResponse | undefined> {
    let decision: unknown;
    try {
      decision = await this.#options.authorize(req.raw);
    } catch (error) {
      this.#jobs.logger.error('respond-async: the admin authorize() threw; refusing', error);
      decision = 403;
    }
    if (decision === true) return undefined;
    if (decision === 401) {
      const challenge = this.#options.wwwAuthenticate;
      return problem(
        401,
        'ERR_RESPOND_ASYNC_ADMIN_UNAUTHENTICATED',
        'Authentication is required',
        challenge ? { 'www-authenticate': challenge } : {},
      );
    }
    return problem(403, 'ERR_RESPOND_ASYNC_ADMIN_FORBIDDEN', 'Not allowed');
  }

  async #route(req: AdminRequest<Req>): Promise<HttpResponse> {
    const { path, method } = req;
    // The page loads its files by relative URLs: it must be served at the mount with its trailing slash.
    if (path === '') {
      if (method !== 'GET' && method !== 'HEAD') return notAllowed('GET, HEAD');
      // An empty body, not none: Koa turns an answer without a body into 204.
      return { status: 308, headers: { location: `${req.mount}/`, 'cache-control': 'no-store' }, body: '' };
    }
    const asset = ASSETS[path];
    if (asset) {
      if (method !== 'GET' && method !== 'HEAD') return notAllowed('GET, HEAD');
      return {
        status: 200,
        headers: {
          'content-type': asset.type,
          'cache-control': 'no-cache',
          'content-security-policy': CSP,
          'x-content-type-options': 'nosniff',
          'referrer-policy': 'no-referrer',
          'x-frame-options': 'DENY',
        },
        body: readAsset(asset.file),
      };
    }
    if (path === '/api/jobs') return method === 'GET' ? this.#list(req) : notAllowed('GET');
    if (path === '/api/stats') return method === 'GET' ? this.#stats() : notAllowed('GET');
    if (path === '/api/events') return method === 'GET' ? this.#events() : notAllowed('GET');
    const match = /^\/api\/jobs\/([^/]+)(?:\/(cancel|retry|redeliver))?$/.exec(path);
    if (!match) return problem(404, 'ERR_RESPOND_ASYNC_NOT_FOUND', 'No such admin resource');
    const [, id, action] = match;
    if (action !== undefined) {
      if (method !== 'POST') return notAllowed('POST');
      return this.#action(req, action as 'cancel' | 'retry' | 'redeliver', id);
    }
    if (method === 'GET') return this.#job(id);
    if (method === 'DELETE') return this.#action(req, 'delete', id);
    return notAllowed('GET, DELETE');
  }

  async #list(req: AdminRequest<Req>): Promise<HttpResponse> {
    const q = req.query;
    const options: AdminListOptions = { limit: DEFAULT_PAGE };
    const status = q.get('status');
    if (status) {
      const statuses = status.split(',');
      if (!statuses.every((s) => STATUSES.includes(s as JobStatus))) {
        return badQuery('`status` must be a comma-separated list of job statuses');
      }
      options.statuses = statuses as JobStatus[];
    }
    const name = q.get('name');
    if (name) options.name = name;
    // `owner=` (empty) lists the jobs submitted without an owner; no `owner` lists every owner's.
    const owner = q.get('owner');
    if (owner !== null) options.owner = owner === '' ? null : owner;
    for (const key of ['from', 'to'] as const) {
      const value = q.get(key);
      if (!value) continue;
      const time = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
      if (!Number.isFinite(time)) return badQuery(`\`${key}\` must be a date (ISO 8601) or epoch milliseconds`);
      options[key] = time;
    }
    const limit = q.get('limit');
    if (limit !== null) {
      const n = Number(limit);
      if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) return badQuery(`\`limit\` must be an integer 1–${MAX_PAGE}`);
      options.limit = n;
    }
    const cursor = q.get('cursor');
    if (cursor) {
      const position = parseCursor(cursor);
      if (!position) return badQuery('`cursor` is not one this API gave');
      options.before = position;
    }
    await this.#jobs.ready();
    const jobs = await this.#read(() => this.#jobs.store.adminList!(options));
    const last = jobs.at(-1);
    const nextCursor = jobs.length === options.limit && last ? toCursor(last) : null;
    return jsonResponse(200, { jobs: jobs.map(summary), nextCursor });
  }

  async #stats(): Promise<HttpResponse> {
    const { store } = this.#jobs;
    const windowMs = this.#windowMs;
    const bucketMs = Math.max(1000, Math.ceil(windowMs / this.#buckets / 1000) * 1000);
    await this.#jobs.ready();
    const [counts, throughput, timings] = await this.#read(() =>
      Promise.all([store.countJobs!(), store.throughput!({ windowMs, bucketMs }), store.timings!({ windowMs })]),
    );
    return jsonResponse(200, { now: Date.now(), windowMs, bucketMs, counts, throughput, timings });
  }

  async #job(id: string): Promise<HttpResponse> {
    const job = isJobId(id) ? await this.#jobs.get(id) : undefined;
    if (!job) return notFound();
    const history = await this.#read(() => this.#jobs.store.history!(id));
    return jsonResponse(200, detail(job, history));
  }

  async #action(
    req: AdminRequest<Req>,
    action: 'cancel' | 'retry' | 'redeliver' | 'delete',
    id: string,
  ): Promise<HttpResponse> {
    const forged = crossSite(req);
    if (forged) return forged;
    if (!isJobId(id)) return notFound();
    const jobs = this.#jobs;
    let outcome: string;
    let job: JobRecord | undefined;
    let response: HttpResponse;
    if (action === 'delete') {
      const removed = await jobs.remove(id);
      outcome = removed ? 'deleted' : 'missing';
      response = removed ? { status: 204, headers: { 'cache-control': 'no-store' } } : notFound();
    } else {
      const result =
        action === 'cancel'
          ? await jobs.cancel(id)
          : action === 'retry'
            ? await jobs.retry(id)
            : await jobs.redeliver(id);
      ({ outcome, job } = result);
      if (outcome === 'missing') response = notFound();
      else if (outcome === 'refused' || outcome === 'finished') {
        response = problem(
          409,
          'ERR_RESPOND_ASYNC_ADMIN_CONFLICT',
          refusal(action, job),
          {},
          job ? { job: summary(job) } : {},
        );
      } else response = jsonResponse(200, { outcome, job: job && summary(job) });
    }
    if (outcome !== 'missing') await this.#audit(req, action, id, outcome, job);
    return response;
  }

  /** A read of the store: a failure other than a permanent one is an outage (503 with Retry-After), as elsewhere. */
  async #read<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (error) {
      if (error instanceof RespondAsyncError) throw error;
      throw new StoreUnavailableError(this.#jobs.store.kind, error);
    }
  }

  /** One audit line per action that found its job, through the runtime's logger. */
  async #audit(req: AdminRequest<Req>, action: string, id: string, outcome: string, job?: JobRecord): Promise<void> {
    let actor: string | null | undefined;
    try {
      actor = await this.#options.actor?.(req.raw);
    } catch {
      actor = undefined;
    }
    const { logger } = this.#jobs;
    const log = logger.warn ?? logger.error;
    log.call(
      logger,
      `respond-async admin: ${action} job ${id}: ${outcome}`,
      { action, outcome, actor: actor ?? null },
      { jobId: id, ...(job ? { jobName: job.name } : {}) },
    );
  }

  /** The live feed: `event: change` with `{ id, status, seq }` for every job change this process hears. */
  #events(): HttpResponse {
    const jobs = this.#jobs;
    const heartbeatMs = this.#heartbeatMs;
    const stream: EventStream = {
      open(sink) {
        let n = 0;
        let closed = false;
        const stopWatching = jobs.watchAll((change) => {
          n += 1;
          sink.write(sseEvent('change', n, change));
        });
        const heartbeat = setInterval(() => sink.write(': keep-alive\n\n'), heartbeatMs);
        heartbeat.unref();
        const stop = (end: boolean) => {
          if (closed) return;
          closed = true;
          stopWatching();
          clearInterval(heartbeat);
          jobs.closing.removeEventListener('abort', onClosing);
          if (end) sink.end();
        };
        const onClosing = () => stop(true);
        if (jobs.closing.aborted) {
          stop(true);
          return () => {};
        }
        jobs.closing.addEventListener('abort', onClosing, { once: true });
        sink.write(': connected\n\n');
        return () => stop(false);
      },
    };
    return {
      status: 200,
      headers: { ...EVENT_STREAM_HEADERS },
      stream,
    };
  }
}

/** A job in the list: what a row shows, without its input and result (which may be large). */
function summary(job: JobRecord) {
  return {
    id: job.id,
    name: job.name,
    status: job.status,
    owner: job.owner,
    attempt: job.attempt,
    maxAttempts: job.maxAttempts,
    progress: job.progress,
    message: job.message,
    error: job.error,
    cancelRequested: job.cancelRequested,
    deliveryStatus: job.deliveryStatus,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    seq: job.seq,
  };
}

/** A job in full: its input and result, its failed attempts and its webhook delivery with each attempt. */
function detail(job: JobRecord, history: JobHistory) {
  return {
    ...summary(job),
    input: job.input,
    result: job.result,
    resultUrl: job.resultUrl,
    idempotencyKey: job.idempotencyKey,
    runAt: job.runAt,
    leaseOwner: job.leaseOwner,
    leaseUntil: job.leaseUntil,
    expiresAt: job.expiresAt,
    attempts: history.attempts,
    delivery:
      job.callbackUrl === null
        ? null
        : {
            callbackUrl: job.callbackUrl,
            status: job.deliveryStatus,
            attempts: job.deliveryAttempts,
            nextAt: job.deliveryNextAt,
            history: history.deliveries,
          },
  };
}

function refusal(action: string, job: JobRecord | undefined): string {
  const status = job?.status ?? 'unknown';
  if (action === 'cancel') return `The job is ${status}: only a queued or processing job can be canceled`;
  if (action === 'retry') return `The job is ${status}: only a failed or canceled job can be retried`;
  return job?.callbackUrl === null
    ? 'The job has no callback URL'
    : `The job is ${status}: only a finished job's webhook can be delivered again`;
}

/**
 * An action must carry `X-Respond-Async-Admin: 1`, which a page of another site cannot send without a CORS
 * preflight (never answered here), and must not come from another site by `Sec-Fetch-Site` where the browser sends it.
 */
function crossSite(req: AdminRequest<unknown>): HttpResponse | undefined {
  const site = req.header('sec-fetch-site');
  const sameSite = site === undefined || site === 'same-origin' || site === 'none';
  if (req.header(ADMIN_HEADER) === '1' && sameSite) return undefined;
  return problem(
    403,
    'ERR_RESPOND_ASYNC_ADMIN_CROSS_SITE',
    'Admin actions need the X-Respond-Async-Admin: 1 header, from the same origin',
  );
}

function toCursor(job: JobRecord): string {
  return Buffer.from(JSON.stringify([job.createdAt, job.id])).toString('base64url');
}

function parseCursor(cursor: string): ListPosition | undefined {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (!Array.isArray(value) || value.length !== 2) return undefined;
    const [createdAt, id] = value as [unknown, unknown];
    if (!Number.isSafeInteger(createdAt) || typeof id !== 'string' || id.length > 200) return undefined;
    return { createdAt: createdAt as number, id };
  } catch {
    return undefined;
  }
}

function badQuery(detail: string): HttpResponse {
  return problem(400, 'ERR_RESPOND_ASYNC_ADMIN_BAD_QUERY', detail);
}

function notFound(): HttpResponse {
  return problem(404, 'ERR_RESPOND_ASYNC_NOT_FOUND', 'No such job');
}

function notAllowed(allow: string): HttpResponse {
  return problem(405, 'ERR_RESPOND_ASYNC_METHOD_NOT_ALLOWED', `Allowed: ${allow}`, { allow });
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new TypeError(`respond-async: admin \`${name}\` must be a positive number, got ${String(value)}`);
  }
  return value;
}

const assets = new Map<string, string>();

/**
 * A file of the page, from the package's `dashboard/` folder: next to `dist/` in the published package, two levels
 * up from this file in the repository. Read once.
 */
function readAsset(file: string): string {
  let text = assets.get(file);
  if (text === undefined) {
    // ESM: this module's URL. The CommonJS build empties `import.meta`: `__dirname` there.
    const here = import.meta.url ? dirname(fileURLToPath(import.meta.url)) : __dirname;
    const candidates = [join(here, '..', 'dashboard', file), join(here, '..', '..', 'dashboard', file)];
    for (const candidate of candidates) {
      try {
        text = readFileSync(candidate, 'utf8');
        break;
      } catch {
        // Not in this layout: try the next.
      }
    }
    if (text === undefined) {
      throw new RespondAsyncError(
        'ERR_RESPOND_ASYNC_ADMIN_ASSET_MISSING',
        `respond-async: dashboard/${file} is missing`,
        {
          permanent: true,
        },
      );
    }
    assets.set(file, text);
  }
  return text;
}
