// A tiny node:http server speaking the respond-async HTTP contract (../shared/DESIGN.md), for the client's tests.
// It owes nothing to the library's server code, so the client is tested against the contract, not the implementation.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Status = 'queued' | 'processing' | 'complete' | 'failed' | 'canceled';

export interface ContractServerOptions {
  /** Serve `GET /jobs/:id/events`; false: 404, so clients poll. Default true. */
  sse?: boolean;
  /** Destroy the socket of the first event stream right after its first `progress` event. */
  breakStreamOnce?: boolean;
  /**
   * Azure style: POST → 202 + Location; the status URL answers 202 `{ status: 'Running' }` while running, then
   * `redirect` (or true): 303 to /results/:id (JSON); `inline`: 200 with the result itself. No event stream.
   */
  azure?: boolean | 'redirect' | 'inline';
  /** `Retry-After` as an HTTP date (2 s ahead, with a matching `Date` header) instead of delta seconds. */
  retryAfterDate?: boolean;
  /** `Retry-After` in seconds. Default 1. */
  retryAfterSeconds?: number;
  /** `retry:` advertised on the first event of a stream. Default 200. */
  sseRetryMs?: number;
  /** Interval of `: keep-alive` comments. Default 15 000. */
  heartbeatMs?: number;
  /** Pretty-print event data over several `data:` lines, with CRLF line ends. */
  multilineData?: boolean;
  /** Answer the first N status GETs with a 503 problem (Retry-After: 1). */
  unavailablePolls?: number;
  /** Delay before a queued job starts. Default 10 ms. */
  startDelayMs?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  at: number;
}

interface Job {
  id: string;
  status: Status;
  progress?: number;
  result?: unknown;
  error?: { message: string; code?: string };
  seq: number;
  createdAt: number;
  updatedAt: number;
  startedAt?: number;
  finishedAt?: number;
  steps: number;
  stepMs: number;
  fail: boolean;
  value: unknown;
  step: number;
  cancelRequested: boolean;
  timer?: NodeJS.Timeout;
  watchers: Set<() => void>;
}

export interface ContractServer {
  /** Origin, such as `http://127.0.0.1:1234`. */
  url: string;
  /** Every request, in arrival order. */
  requests: RecordedRequest[];
  /** Requests whose path (without query) is `path`, optionally only one method. */
  requestsTo(path: string, method?: string): RecordedRequest[];
  /** Event streams currently open. */
  openStreams(): number;
  /** The id of the last event written before the stream was broken (breakStreamOnce). */
  brokenAfterId(): string | undefined;
  /** The current document of a job. */
  job(id: string): Record<string, unknown> | undefined;
  close(): Promise<void>;
}

const TERMINAL: ReadonlySet<Status> = new Set(['complete', 'failed', 'canceled']);

export async function startContractServer(options: ContractServerOptions = {}): Promise<ContractServer> {
  const sse = options.sse ?? !options.azure;
  const azure = options.azure === true ? 'redirect' : options.azure || undefined;
  const retryAfterSeconds = options.retryAfterSeconds ?? 1;
  const sseRetryMs = options.sseRetryMs ?? 200;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const startDelayMs = options.startDelayMs ?? 10;
  let unavailable = options.unavailablePolls ?? 0;
  const jobs = new Map<string, Job>();
  const requests: RecordedRequest[] = [];
  const streams = new Set<ServerResponse>();
  let broke = false;
  let brokenAfterId: string | undefined;

  const statusUrl = (job: Job): string => `/jobs/${job.id}`;

  const documentOf = (job: Job): Record<string, unknown> => {
    const doc: Record<string, unknown> = { jobId: job.id, status: job.status, statusUrl: statusUrl(job) };
    if (job.progress !== undefined) doc.progress = job.progress;
    if (job.status === 'complete') doc.result = job.result;
    if (job.status === 'failed') doc.error = job.error;
    doc.createdAt = new Date(job.createdAt).toISOString();
    doc.updatedAt = new Date(job.updatedAt).toISOString();
    if (job.startedAt !== undefined) doc.startedAt = new Date(job.startedAt).toISOString();
    if (job.finishedAt !== undefined) doc.finishedAt = new Date(job.finishedAt).toISOString();
    if (job.startedAt !== undefined) doc.attempt = 1;
    return doc;
  };

  const change = (job: Job, patch: Partial<Job>): void => {
    Object.assign(job, patch);
    job.seq++;
    job.updatedAt = Date.now();
    if (TERMINAL.has(job.status)) {
      job.finishedAt = job.updatedAt;
      clearTimeout(job.timer);
    }
    for (const watcher of [...job.watchers]) watcher();
  };

  const runStep = (job: Job): void => {
    if (TERMINAL.has(job.status)) return;
    if (job.cancelRequested) {
      change(job, { status: 'canceled' });
      return;
    }
    job.step++;
    change(job, { progress: Math.round((100 * job.step) / job.steps) });
    if (job.step < job.steps) {
      job.timer = setTimeout(() => runStep(job), job.stepMs);
      return;
    }
    // The handler returns (or throws) right after its last progress report.
    job.timer = setTimeout(() => {
      if (job.cancelRequested) change(job, { status: 'canceled' });
      else if (job.fail) change(job, { status: 'failed', error: { message: 'report failed', code: 'REPORT_FAILED' } });
      else change(job, { status: 'complete', result: { value: job.value, steps: job.steps } });
    }, 5);
  };

  const startJob = (job: Job): void => {
    job.timer = setTimeout(() => {
      if (job.status !== 'queued') return;
      change(job, { status: 'processing', progress: 0, startedAt: Date.now() });
      job.timer = setTimeout(() => runStep(job), job.stepMs);
    }, startDelayMs);
  };

  const retryAfter = (): Record<string, string> => {
    if (!options.retryAfterDate) return { 'retry-after': String(retryAfterSeconds) };
    const now = Date.now();
    return { date: new Date(now).toUTCString(), 'retry-after': new Date(now + 2000).toUTCString() };
  };

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): true => {
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, {
      'cache-control': 'no-store',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    });
    res.end(text);
    return true;
  };

  const problem = (
    res: ServerResponse,
    status: number,
    code: string,
    detail?: string,
    headers: Record<string, string> = {},
  ): true => {
    const titles: Record<number, string> = {
      400: 'Bad Request',
      404: 'Not Found',
      409: 'Conflict',
      415: 'Unsupported Media Type',
      503: 'Service Unavailable',
    };
    const doc: Record<string, unknown> = { type: 'about:blank', title: titles[status] ?? 'Error', status, code };
    if (detail !== undefined) doc.detail = detail;
    return send(res, status, doc, { ...headers, 'content-type': 'application/problem+json' });
  };

  const readBody = (req: IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => {
        text += chunk;
      });
      req.on('end', () => resolve(text));
      req.on('error', reject);
    });

  const waitTerminal = (job: Job, ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (TERMINAL.has(job.status)) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        job.watchers.delete(watcher);
        resolve();
      };
      const watcher = (): void => {
        if (TERMINAL.has(job.status)) done();
      };
      const timer = setTimeout(done, ms);
      job.watchers.add(watcher);
    });

  const submit = async (req: IncomingMessage, res: ServerResponse): Promise<true> => {
    const raw = await readBody(req);
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      return problem(res, 415, 'ERR_RESPOND_ASYNC_UNSUPPORTED_MEDIA_TYPE', 'The body must be JSON (application/json)');
    }
    let body: Record<string, unknown>;
    try {
      body = raw === '' ? {} : JSON.parse(raw);
    } catch {
      return problem(res, 400, 'ERR_RESPOND_ASYNC_BAD_BODY', 'The body is not valid JSON');
    }
    const steps = body.steps ?? 3;
    const stepMs = body.stepMs ?? 100;
    if (!Number.isInteger(steps) || (steps as number) < 1 || (steps as number) > 1000) {
      return problem(res, 400, 'ERR_RESPOND_ASYNC_BAD_INPUT', 'steps must be an integer from 1 to 1000');
    }
    if (!Number.isInteger(stepMs) || (stepMs as number) < 0 || (stepMs as number) > 60_000) {
      return problem(res, 400, 'ERR_RESPOND_ASYNC_BAD_INPUT', 'stepMs must be an integer from 0 to 60000');
    }
    const now = Date.now();
    const job: Job = {
      id: randomUUID(),
      status: 'queued',
      seq: 1,
      createdAt: now,
      updatedAt: now,
      steps: steps as number,
      stepMs: stepMs as number,
      fail: body.fail === true,
      value: body.value,
      step: 0,
      cancelRequested: false,
      watchers: new Set(),
    };
    jobs.set(job.id, job);
    startJob(job);
    if (azure) return send(res, 202, undefined, { location: statusUrl(job), ...retryAfter() });
    const wait = /(?:^|[\s,;])wait=(\d+)/i.exec(String(req.headers.prefer ?? ''));
    if (wait) {
      const seconds = Math.min(Number(wait[1]), 10);
      await waitTerminal(job, seconds * 1000);
      if (TERMINAL.has(job.status)) {
        return send(res, 200, documentOf(job), { 'preference-applied': `wait=${seconds}`, vary: 'Prefer' });
      }
    }
    return send(
      res,
      202,
      { jobId: job.id, status: job.status, statusUrl: statusUrl(job), createdAt: new Date(now).toISOString() },
      { location: statusUrl(job), ...retryAfter() },
    );
  };

  const status = (job: Job, res: ServerResponse): true => {
    if (unavailable > 0) {
      unavailable--;
      return problem(res, 503, 'ERR_RESPOND_ASYNC_STORE_UNAVAILABLE', 'Jobs cannot be read now', {
        'retry-after': '1',
      });
    }
    if (azure) {
      if (!TERMINAL.has(job.status)) {
        return send(res, 202, { id: job.id, status: 'Running', percentComplete: job.progress ?? 0 }, retryAfter());
      }
      if (job.status === 'failed') {
        return send(res, 200, {
          id: job.id,
          status: 'Failed',
          error: { code: 'ReportFailed', message: 'report failed' },
        });
      }
      if (job.status === 'canceled') return send(res, 200, { id: job.id, status: 'Canceled' });
      if (azure === 'inline') return send(res, 200, job.result);
      res.writeHead(303, { location: `/results/${job.id}`, 'cache-control': 'no-store', 'content-length': '0' });
      res.end();
      return true;
    }
    return send(res, 200, documentOf(job), TERMINAL.has(job.status) ? {} : retryAfter());
  };

  const cancel = (job: Job, res: ServerResponse): true => {
    if (TERMINAL.has(job.status)) {
      return problem(res, 409, 'ERR_RESPOND_ASYNC_ALREADY_FINISHED', `The job is already ${job.status}`);
    }
    if (job.status === 'queued') {
      change(job, { status: 'canceled' });
      return send(res, 200, documentOf(job));
    }
    // Running: its signal is aborted; the handler notices shortly and the job ends canceled.
    job.cancelRequested = true;
    clearTimeout(job.timer);
    job.timer = setTimeout(() => change(job, { status: 'canceled' }), 20);
    return send(res, 202, documentOf(job), retryAfter());
  };

  const events = (job: Job, req: IncomingMessage, res: ServerResponse): true => {
    const eol = options.multilineData ? '\r\n' : '\n';
    const header = req.headers['last-event-id'];
    let sent = Number(header ?? 0) || 0;
    let first = true;
    let lastStatus: Status | undefined;
    let closed = false;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store, no-transform',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    streams.add(res);

    const stop = (): void => {
      if (closed) return;
      closed = true;
      job.watchers.delete(emit);
      clearInterval(heartbeat);
      streams.delete(res);
    };
    const end = (): void => {
      stop();
      res.end();
    };

    function emit(): void {
      if (closed) return;
      const terminal = TERMINAL.has(job.status);
      if (job.seq <= sent) {
        if (terminal) end();
        return;
      }
      const event = terminal ? job.status : first || job.status !== lastStatus ? 'status' : 'progress';
      const json = options.multilineData ? JSON.stringify(documentOf(job), null, 2) : JSON.stringify(documentOf(job));
      const data = json
        .split('\n')
        .map((line) => `data: ${line}`)
        .join(eol);
      const chunk = `${first ? `retry: ${sseRetryMs}${eol}` : ''}event: ${event}${eol}id: ${job.seq}${eol}${data}${eol}${eol}`;
      first = false;
      sent = job.seq;
      lastStatus = job.status;
      if (options.breakStreamOnce && !broke && event === 'progress') {
        broke = true;
        brokenAfterId = String(job.seq);
        stop();
        // Flush this event, then drop the connection without ending the chunked body: a broken stream.
        res.write(chunk, () => req.socket.destroy());
        return;
      }
      res.write(chunk);
      if (terminal) end();
    }

    const heartbeat = setInterval(() => res.write(`: keep-alive${eol}${eol}`), heartbeatMs);
    job.watchers.add(emit);
    res.on('close', stop);
    emit();
    return true;
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = (req.method ?? 'GET').toUpperCase();
    requests.push({ method, path: url.pathname, headers: req.headers, at: Date.now() });
    const route = async (): Promise<true> => {
      if (url.pathname === '/reports') {
        if (method !== 'POST') return problem(res, 405, 'ERR_RESPOND_ASYNC_METHOD_NOT_ALLOWED');
        return submit(req, res);
      }
      const result = /^\/results\/([^/]+)$/.exec(url.pathname);
      if (result && method === 'GET') {
        const job = jobs.get(result[1]!);
        if (job?.status !== 'complete') return problem(res, 404, 'ERR_RESPOND_ASYNC_JOB_NOT_FOUND', 'No such job');
        return send(res, 200, job.result);
      }
      const match = /^\/jobs\/([^/]+)(\/events)?$/.exec(url.pathname);
      const job = match ? jobs.get(match[1]!) : undefined;
      if (!match || !job) return problem(res, 404, 'ERR_RESPOND_ASYNC_JOB_NOT_FOUND', 'No such job');
      if (match[2]) {
        if (!sse || method !== 'GET') return problem(res, 404, 'ERR_RESPOND_ASYNC_NOT_FOUND', 'No event stream here');
        return events(job, req, res);
      }
      if (method === 'GET') return status(job, res);
      if (method === 'DELETE') return cancel(job, res);
      return problem(res, 405, 'ERR_RESPOND_ASYNC_METHOD_NOT_ALLOWED', undefined, { allow: 'GET, DELETE' });
    };
    route().catch((error: unknown) => {
      if (!res.headersSent) problem(res, 500, 'ERR_RESPOND_ASYNC_INTERNAL', String(error));
      else res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    requestsTo: (path, method) =>
      requests.filter((r) => r.path === path && (method === undefined || r.method === method)),
    openStreams: () => streams.size,
    brokenAfterId: () => brokenAfterId,
    job: (id) => {
      const job = jobs.get(id);
      return job ? documentOf(job) : undefined;
    },
    close: async () => {
      for (const job of jobs.values()) clearTimeout(job.timer);
      for (const res of streams) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
