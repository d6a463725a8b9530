// Webhooks, the Standard Webhooks way: signing and verifying, and the delivery loop that POSTs terminal status
// documents to callback URLs with retries, SSRF checks at delivery time and no redirects.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { type ClientRequest, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction as NetLookupFunction } from 'node:net';
import { backoffDelay } from '../core/backoff.js';
import { RespondAsyncError } from '../core/errors.js';
import { OutageLog } from '../core/outage-log.js';
import type { Jobs } from '../core/runtime.js';
import type { DeliveryAttempt, DeliveryUpdate } from '../core/store.js';
import type { JobRecord } from '../core/types.js';
import { toStatusDocument } from './document.js';
import { checkCallbackUrl, type LookupFunction, normaliseOrigin, type ResolvedAddress } from './ssrf.js';

const SECRET_PREFIX = 'whsec_';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;
/** Bytes of a receiver's answer read (and ignored) before the connection is dropped. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/** Thrown by `verifyWebhook` when a request is not a genuine, fresh webhook. */
export class WebhookVerificationError extends RespondAsyncError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_RESPOND_ASYNC_WEBHOOK_VERIFICATION', message, options);
    this.name = 'WebhookVerificationError';
  }
}

/** The key bytes of a `whsec_<base64>` secret (the prefix is optional here, as in the `standardwebhooks` package). */
function secretKey(secret: string): Buffer {
  if (typeof secret !== 'string') throw new TypeError('respond-async: the webhook secret must be a string');
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  if (encoded.length === 0 || !BASE64.test(encoded)) {
    throw new TypeError('respond-async: the webhook secret must be "whsec_" followed by base64');
  }
  return Buffer.from(encoded, 'base64');
}

function hmac(key: Buffer, msgId: string, timestamp: number, body: string | Buffer): Buffer {
  const mac = createHmac('sha256', key);
  mac.update(`${msgId}.${timestamp}.`);
  mac.update(body);
  return mac.digest();
}

/**
 * The `webhook-signature` value for a message: `v1,<base64 HMAC-SHA256 of "msgId.timestamp.body">`, keyed with
 * the base64-decoded part of `secret` after `whsec_` (Standard Webhooks).
 */
export function signWebhook(secret: string, msgId: string, timestampSeconds: number, body: string): string {
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new TypeError('respond-async: the webhook timestamp must be whole seconds since the epoch');
  }
  return `v1,${hmac(secretKey(secret), msgId, timestampSeconds, body).toString('base64')}`;
}

export interface VerifyWebhookOptions {
  /** Largest difference between the `webhook-timestamp` and now, in seconds. Default 300. */
  toleranceSeconds?: number;
  /** The current time in epoch milliseconds. Default `Date.now`. */
  now?: () => number;
}

type HeaderSource = Headers | Record<string, string | string[] | undefined>;

/**
 * Verify a webhook as a receiver: the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers, the
 * timestamp within `toleranceSeconds` of now, and one `v1` signature matching the raw `body` (the bytes as
 * received: do not re-serialise parsed JSON). Returns the parsed JSON payload.
 * @throws WebhookVerificationError when a header is missing, the timestamp is bad or expired, or no signature matches.
 * @example
 * app.post('/hooks', express.raw({ type: 'application/json' }), (req, res) => {
 *   const doc = verifyWebhook(process.env.WEBHOOK_SECRET!, req.headers, req.body);
 *   res.sendStatus(204);
 * });
 */
export function verifyWebhook(
  secret: string,
  headers: HeaderSource,
  body: string | Buffer,
  options: VerifyWebhookOptions = {},
): unknown {
  const key = secretKey(secret);
  const msgId = header(headers, 'webhook-id');
  const timestampText = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!msgId || !timestampText || !signatures) throw new WebhookVerificationError('Missing required headers');
  if (!/^\d{1,15}$/.test(timestampText.trim())) throw new WebhookVerificationError('Invalid webhook-timestamp');
  const timestamp = Number(timestampText.trim());
  const tolerance = options.toleranceSeconds ?? 300;
  const now = Math.floor((options.now ?? Date.now)() / 1000);
  if (now - timestamp > tolerance) throw new WebhookVerificationError('Message timestamp too old');
  if (timestamp - now > tolerance) throw new WebhookVerificationError('Message timestamp too new');
  const payload = typeof body === 'string' ? body : Buffer.isBuffer(body) ? body : null;
  if (payload === null) throw new TypeError('respond-async: the webhook body must be a string or a Buffer');
  const expected = hmac(key, msgId, timestamp, payload);
  let matched = false;
  for (const token of signatures.split(/\s+/)) {
    const comma = token.indexOf(',');
    if (comma === -1 || token.slice(0, comma) !== 'v1') continue;
    const candidate = Buffer.from(token.slice(comma + 1).replace(/,+$/, ''), 'base64');
    if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) matched = true;
  }
  if (!matched) throw new WebhookVerificationError('No matching signature found');
  const text = typeof payload === 'string' ? payload : payload.toString('utf8');
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new WebhookVerificationError('The webhook payload is not JSON', { cause: error });
  }
}

function header(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function' && typeof (headers as Headers).has === 'function') {
    return (headers as Headers).get(name) ?? undefined;
  }
  for (const [key, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (key.toLowerCase() !== name) continue;
    if (Array.isArray(value)) return value.join(' ');
    return value;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Options

export interface WebhookOptions {
  /** The signing secret: `whsec_` followed by base64 (24 to 64 random bytes are recommended). */
  secret: string;
  /** Origins allowed as callback targets even though they are loopback or private (`http://127.0.0.1:4000`). */
  allowOrigins?: readonly string[];
  /** Deadline of one delivery attempt (address check, connect, answer), in ms. Default 10 000. */
  timeoutMs?: number;
  /** Delivery attempts in all, the first included. Default 8. */
  maxAttempts?: number;
  /** Exponential backoff with jitter between attempts. */
  backoff?: {
    /** Delay after the first failed attempt, in ms. Default 5000. */
    delayMs?: number;
    /** Upper bound of any delay, a receiver's `Retry-After` included, in ms. Default 3 600 000 (1 h). */
    maxDelayMs?: number;
  };
  /** Deliveries in flight at once from this process. Default 10. */
  concurrency?: number;
  /** Host name resolver for the address checks (tests inject one). Default `dns.promises.lookup`. */
  lookup?: LookupFunction;
}

/** `WebhookOptions` with defaults applied. */
export interface ResolvedWebhookOptions {
  secret: string;
  allowOrigins: readonly string[];
  timeoutMs: number;
  maxAttempts: number;
  backoff: { delayMs: number; maxDelayMs: number };
  concurrency: number;
  lookup: LookupFunction | undefined;
}

/**
 * Check webhook options and apply defaults.
 * @throws TypeError on a secret that is not `whsec_` + base64, an allowed origin that is not an http(s) URL, or a
 * bad number.
 */
export function validateWebhookOptions(options: WebhookOptions): ResolvedWebhookOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('respond-async: webhook options must be an object');
  }
  const { secret } = options;
  if (typeof secret !== 'string' || !secret.startsWith(SECRET_PREFIX)) {
    throw new TypeError('respond-async: the webhook secret must start with "whsec_"');
  }
  if (secretKey(secret).length === 0) throw new TypeError('respond-async: the webhook secret is empty');
  const allowOrigins = options.allowOrigins ?? [];
  if (!Array.isArray(allowOrigins)) throw new TypeError('respond-async: `allowOrigins` must be an array of origins');
  for (const origin of allowOrigins) {
    if (normaliseOrigin(origin) === null) {
      throw new TypeError(`respond-async: allowed origin ${JSON.stringify(origin)} is not an http(s) URL`);
    }
  }
  if (options.lookup !== undefined && typeof options.lookup !== 'function') {
    throw new TypeError('respond-async: `lookup` must be a function');
  }
  const delayMs = positive('backoff.delayMs', options.backoff?.delayMs ?? 5000);
  return {
    secret,
    allowOrigins: [...allowOrigins],
    timeoutMs: positive('timeoutMs', options.timeoutMs ?? 10_000),
    maxAttempts: positiveInteger('maxAttempts', options.maxAttempts ?? 8),
    backoff: { delayMs, maxDelayMs: positive('backoff.maxDelayMs', options.backoff?.maxDelayMs ?? 3_600_000) },
    concurrency: positiveInteger('concurrency', options.concurrency ?? 10),
    lookup: options.lookup,
  };
}

function positive(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new TypeError(`respond-async: webhook \`${name}\` must be a positive number, got ${String(value)}`);
  }
  return value;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`respond-async: webhook \`${name}\` must be a positive integer, got ${String(value)}`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------------
// Delivery

export interface WebhookDeliveryOptions {
  webhooks: WebhookOptions;
  /** The status URL of a job, as served in its document. */
  statusUrl: (jobId: string) => string;
  /** How often to look for due deliveries, in ms. Default 500. */
  pollIntervalMs?: number;
}

/**
 * Start delivering webhooks for finished jobs that have a callback URL: a background loop of `jobs` that starts
 * with its worker and stops (waiting for deliveries in flight) on `jobs.close()`. Each due job's status document is
 * POSTed, signed, to its callback URL; the URL is checked again and the connection made to the checked address;
 * redirects are not followed. 2xx: delivered. 410 Gone: failed at once. Anything else: retried with exponential
 * backoff (or the receiver's `Retry-After`) until `maxAttempts`.
 */
export function startWebhookDeliveries(jobs: Jobs, options: WebhookDeliveryOptions): void {
  const config = validateWebhookOptions(options.webhooks);
  if (typeof options.statusUrl !== 'function') throw new TypeError('respond-async: `statusUrl` must be a function');
  const pollIntervalMs = positive('pollIntervalMs', options.pollIntervalMs ?? 500);
  // Deliveries are claimed from the store, not from an adapter: one loop per runtime, whatever the number of adapters
  // mounted on it with `webhooks`. A second loop would only contend for the same deliveries, signed with whichever
  // secret claimed them first. The first adapter's options (secret, status URLs) are the ones used.
  const existing = loops.get(jobs);
  if (existing) {
    if (existing.config.secret !== config.secret) {
      jobs.logger.warn?.(
        'respond-async: webhooks are already delivered for these jobs with another secret; the first one is used',
      );
    }
    return;
  }
  const loop = new DeliveryLoop(jobs, config, options.statusUrl, pollIntervalMs);
  loops.set(jobs, loop);
  jobs.addBackground({ start: () => loop.start(), stop: () => loop.stop() });
}

/** The delivery loop of each runtime. */
const loops = new WeakMap<Jobs, DeliveryLoop>();

class DeliveryLoop {
  readonly #inFlight = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #started = false;
  #stopped = false;
  /** Store failures of the loop, logged once per outage rather than once per poll. */
  readonly #outages: OutageLog;

  constructor(
    readonly jobs: Jobs,
    readonly config: ResolvedWebhookOptions,
    readonly statusUrl: (jobId: string) => string,
    readonly pollIntervalMs: number,
  ) {
    this.#outages = new OutageLog(jobs.logger);
  }

  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#tick;
    await Promise.allSettled([...this.#inFlight]);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#tick = this.#claim().finally(() => {
        this.#tick = undefined;
      });
    }, delayMs);
    this.#timer.unref();
  }

  async #claim(): Promise<void> {
    let again = false;
    try {
      const free = this.config.concurrency - this.#inFlight.size;
      if (free > 0) {
        await this.jobs.ready();
        const claimed = await this.jobs.store.claimDeliveries({ limit: free, leaseMs: this.config.timeoutMs * 2 });
        this.#outages.recovered('webhook claim');
        for (const job of claimed) {
          if (this.#stopped) {
            // Claimed while stopping: hand it back for the next process.
            await this.#record(job.id, { status: 'pending', attempts: job.deliveryAttempts, nextAt: Date.now() });
            continue;
          }
          const delivery = this.#deliver(job).finally(() => {
            this.#inFlight.delete(delivery);
          });
          this.#inFlight.add(delivery);
        }
        again = claimed.length === free;
      }
    } catch (error) {
      this.#outages.failed('webhook claim', 'respond-async: claiming webhook deliveries failed; will retry', error);
    }
    this.#schedule(again ? 0 : this.pollIntervalMs);
  }

  async #deliver(job: JobRecord): Promise<void> {
    const attempts = job.deliveryAttempts + 1;
    try {
      const outcome = await this.#attempt(job);
      const next = this.#next(job, attempts, outcome);
      this.jobs.telemetry.delivery(next.status === 'pending' ? 'retrying' : next.status);
      await this.#record(job.id, { ...next, attempt: historyEntry(attempts, next, outcome) });
    } catch (error) {
      this.jobs.logger.error(`respond-async: webhook delivery of job ${job.id} failed`, error, {
        jobId: job.id,
        jobName: job.name,
      });
      this.jobs.telemetry.delivery('retrying');
      const outcome: AttemptOutcome = { kind: 'retry', reason: 'internal error' };
      const next = this.#next(job, attempts, outcome);
      await this.#record(job.id, { ...next, attempt: historyEntry(attempts, next, outcome) });
    }
  }

  #next(job: JobRecord, attempts: number, outcome: AttemptOutcome): DeliveryUpdate {
    if (outcome.kind === 'delivered') return { status: 'delivered', attempts, nextAt: null };
    if (outcome.kind === 'failed' || attempts >= this.config.maxAttempts) {
      this.jobs.logger.warn?.(
        `respond-async: webhook of job ${job.id} not delivered after ${attempts} attempt(s): ${outcome.reason}`,
      );
      return { status: 'failed', attempts, nextAt: null };
    }
    const { delayMs, maxDelayMs } = this.config.backoff;
    const delay =
      outcome.retryAfterMs !== undefined
        ? Math.min(maxDelayMs, outcome.retryAfterMs)
        : backoffDelay({ delayMs, maxDelayMs }, attempts);
    return { status: 'pending', attempts, nextAt: Date.now() + delay };
  }

  async #record(id: string, update: DeliveryUpdate): Promise<void> {
    try {
      await this.jobs.store.recordDelivery(id, update);
      this.#outages.recovered('webhook record');
    } catch (error) {
      // The claim lease lapses and the delivery is attempted again.
      this.#outages.failed(
        'webhook record',
        `respond-async: recording the webhook delivery of job ${id} failed`,
        error,
      );
    }
  }

  async #attempt(job: JobRecord): Promise<AttemptOutcome> {
    if (!job.callbackUrl) return { kind: 'failed', reason: 'no callback URL' };
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error('webhook delivery timed out')), this.config.timeoutMs);
    try {
      const aborted = new Promise<never>((_, reject) => {
        controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
      });
      aborted.catch(() => {});
      let check: Awaited<ReturnType<typeof checkCallbackUrl>>;
      try {
        check = await Promise.race([
          checkCallbackUrl(job.callbackUrl, { allowOrigins: this.config.allowOrigins, lookup: this.config.lookup }),
          aborted,
        ]);
      } catch {
        return { kind: 'retry', reason: 'the callback host could not be resolved in time' };
      }
      if (!check.ok) return { kind: check.temporary ? 'retry' : 'failed', reason: check.reason };
      const body = JSON.stringify(toStatusDocument(job, this.statusUrl(job.id)));
      const msgId = `msg_${job.id}`;
      const timestamp = Math.floor(Date.now() / 1000);
      // The CLIENT span, under the job's trace; its context goes to the receiver as `traceparent`.
      const span = this.jobs.telemetry.webhook(job, check.url);
      const headers = {
        ...span.headers,
        host: check.url.host,
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'user-agent': 'respond-async',
        'webhook-id': msgId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signWebhook(this.config.secret, msgId, timestamp, body),
      };
      const answer = await post(check.url, check.addresses, headers, body, controller.signal);
      span.end('error' in answer ? undefined : answer.status, 'error' in answer ? answer.error : undefined);
      if ('error' in answer) return { kind: 'retry', reason: answer.error };
      const httpStatus = answer.status;
      if (httpStatus >= 200 && httpStatus < 300) return { kind: 'delivered', httpStatus };
      if (httpStatus === 410) return { kind: 'failed', reason: 'the receiver answered 410 Gone', httpStatus };
      return {
        kind: 'retry',
        reason: `the receiver answered ${httpStatus}`,
        retryAfterMs: answer.retryAfterMs,
        httpStatus,
      };
    } finally {
      clearTimeout(timer);
    }
  }
}

type AttemptOutcome =
  | { kind: 'delivered'; httpStatus?: number }
  | { kind: 'failed'; reason: string; httpStatus?: number }
  | { kind: 'retry'; reason: string; retryAfterMs?: number; httpStatus?: number };

/** A delivery attempt for the job's history (the operator's view). */
function historyEntry(attempt: number, next: DeliveryUpdate, outcome: AttemptOutcome): DeliveryAttempt {
  return {
    attempt,
    at: Date.now(),
    outcome: next.status === 'pending' ? 'retrying' : next.status,
    httpStatus: outcome.httpStatus ?? null,
    reason: outcome.kind === 'delivered' ? null : outcome.reason,
  };
}

type PostAnswer = { status: number; retryAfterMs?: number } | { error: string };

/** POST `body` to `url`, connecting only to `addresses`; never follows redirects; settles by `signal` at the latest. */
function post(
  url: URL,
  addresses: ResolvedAddress[],
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal,
): Promise<PostAnswer> {
  return new Promise<PostAnswer>((resolve) => {
    let settled = false;
    let answer: PostAnswer | undefined;
    const finish = (value: PostAnswer) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const pinned: NetLookupFunction = (_hostname, lookupOptions, callback) => {
      const family = (lookupOptions as { family?: number }).family;
      const candidates = addresses.filter((a) => !family || a.family === family);
      const usable = candidates.length > 0 ? candidates : addresses;
      if ((lookupOptions as { all?: boolean }).all) {
        (callback as unknown as (error: null, list: ResolvedAddress[]) => void)(null, usable);
      } else {
        callback(null, usable[0].address, usable[0].family);
      }
    };
    const requestOptions: RequestOptions & { servername?: string } = {
      method: 'POST',
      host,
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      headers,
      agent: false,
      lookup: isIP(host) === 0 ? pinned : undefined,
    };
    if (url.protocol === 'https:' && isIP(host) === 0) requestOptions.servername = host;
    let req: ClientRequest;
    try {
      req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(requestOptions);
    } catch (error) {
      finish({ error: error instanceof Error ? error.message : String(error) });
      return;
    }
    const onAbort = () => {
      // An answer already received counts; only its body is cut short.
      finish(answer ?? { error: 'timed out' });
      req.destroy();
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('error', (error) => finish(answer ?? { error: error.message }));
    req.on('response', (res: IncomingMessage) => {
      answer = { status: res.statusCode ?? 0, retryAfterMs: parseRetryAfter(res.headers['retry-after']) };
      let read = 0;
      const done = () => {
        finish(answer as PostAnswer);
        if (!res.complete) req.destroy();
      };
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read > MAX_RESPONSE_BYTES) done();
      });
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
    req.end(body);
  });
}

/** `Retry-After` as delay-seconds or an HTTP-date, in ms from now; undefined when absent or malformed. @internal */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}
