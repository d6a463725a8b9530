import { afterEach, describe, expect, test } from 'vitest';
import {
  cancel,
  JobCanceledError,
  JobFailedError,
  RespondAsyncClientError,
  type StatusDocument,
  submit,
  WaitTimeoutError,
  waitFor,
} from '../src/client.js';
import { type ContractServer, type ContractServerOptions, startContractServer } from './helpers/contract-server.js';
import { progressOf } from './helpers/status.js';
import { sleep } from './helpers/time.js';

interface Report {
  value: unknown;
  steps: number;
}

const servers: ContractServer[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function start(options: ContractServerOptions = {}): Promise<ContractServer> {
  const server = await startContractServer(options);
  servers.push(server);
  return server;
}

/** Submit, and hand on the raw Response: `waitFor` still follows one (the handle has its own tests below). */
async function post(server: ContractServer, body: Record<string, unknown>, init: RequestInit = {}): Promise<Response> {
  return (await submit(`${server.url}/reports`, { ...init, body })).response;
}

function jobPath(res: Response): string {
  return new URL(res.headers.get('location')!, res.url).pathname;
}

/** Wait until `check` holds, polling every 10 ms. */
async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

function expectIncreasingTo100(docs: StatusDocument[]): void {
  const progress = progressOf(docs);
  expect(progress.length).toBeGreaterThan(0);
  for (let i = 1; i < progress.length; i++) expect(progress[i]).toBeGreaterThanOrEqual(progress[i - 1]!);
  expect(progress.at(-1)).toBe(100);
  expect(docs.at(-1)?.status).toBe('complete');
}

/** Gaps between consecutive request times. */
function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]!);
}

describe('waitFor over Server-Sent Events', () => {
  test('resolves the typed result; onProgress sees increasing progress up to 100', async () => {
    const server = await start({ heartbeatMs: 15 });
    const res = await post(server, { steps: 4, stepMs: 40, value: 'hello' });
    expect(res.status).toBe(202);
    const docs: StatusDocument[] = [];
    const result = await waitFor<Report>(res, { onProgress: (doc) => docs.push(doc) });
    expect(result).toEqual({ value: 'hello', steps: 4 });
    expectIncreasingTo100(docs);
    expect(new Set(progressOf(docs)).size).toBeGreaterThanOrEqual(3);
    const path = jobPath(res);
    expect(server.requestsTo(`${path}/events`, 'GET')).toHaveLength(1);
    expect(server.requestsTo(`${path}/events`)[0]!.headers.accept).toBe('text/event-stream');
    expect(server.requestsTo(path, 'GET')).toHaveLength(0);
    await until(() => server.openStreams() === 0);
  });

  test('parses multi-line data and CRLF line ends', async () => {
    const server = await start({ multilineData: true });
    const res = await post(server, { steps: 3, stepMs: 30, value: { nested: [1, 2] } });
    const docs: StatusDocument[] = [];
    const result = await waitFor<Report>(res, { onProgress: (doc) => docs.push(doc) });
    expect(result).toEqual({ value: { nested: [1, 2] }, steps: 3 });
    expectIncreasingTo100(docs);
    expect(server.requestsTo(jobPath(res), 'GET')).toHaveLength(0);
  });

  test('accepts the status URL as a string', async () => {
    const server = await start();
    const res = await post(server, { steps: 2, stepMs: 20, value: 7 });
    await expect(waitFor<Report>(new URL(jobPath(res), server.url).href)).resolves.toEqual({ value: 7, steps: 2 });
  });

  test('resumes a broken stream once with Last-Event-ID', async () => {
    const server = await start({ breakStreamOnce: true, sseRetryMs: 50 });
    const res = await post(server, { steps: 5, stepMs: 60, value: 'again' });
    const docs: StatusDocument[] = [];
    const result = await waitFor<Report>(res, { onProgress: (doc) => docs.push(doc) });
    expect(result).toEqual({ value: 'again', steps: 5 });
    expectIncreasingTo100(docs);
    const path = jobPath(res);
    const streams = server.requestsTo(`${path}/events`, 'GET');
    expect(streams).toHaveLength(2);
    expect(streams[0]!.headers['last-event-id']).toBeUndefined();
    expect(server.brokenAfterId()).toBeDefined();
    expect(streams[1]!.headers['last-event-id']).toBe(server.brokenAfterId());
    // Resumed, not fallen back to polling.
    expect(server.requestsTo(path, 'GET')).toHaveLength(0);
  });

  test('parses the wire format byte by byte: BOM, CR/LF/CRLF, comments, retry, ids, unnamed events', async () => {
    const doc = (status: string, progress: number, extra: Record<string, unknown> = {}) =>
      JSON.stringify({ jobId: 'j', status, statusUrl: '/jobs/j', progress, ...extra }, null, 1).split('\n');
    const lines = [
      '\uFEFF: hello',
      'retry: 10',
      'event: status',
      'id: 1',
      ...doc('queued', 0).map((line) => `data:${line}`),
      '',
      ': heartbeat',
      'data: not json',
      '',
      'id: 2',
      '',
      'event: progress',
      'data: {"jobId":"j","status":"processing",',
      'data: "statusUrl":"/jobs/j","progress":50}',
      'unknown: field',
      '',
      'event: complete',
      'id: 3',
      `data: ${doc('complete', 100, { result: { ok: 'yes\u00e9' } }).join('')}`,
      '',
    ];
    // Mixed line ends, one byte per chunk (splitting CRLF pairs and multi-byte characters).
    // (A blank line after a CR-ended line must not end with LF: CR + LF would be a single line end.)
    const ends = ['\n', '\r\n', '\r'];
    let previous = '';
    const text = lines
      .map((line, i) => {
        const end = line === '' && previous === '\r' ? '\r' : ends[i % 3]!;
        previous = end;
        return line + end;
      })
      .join('');
    const bytes = new TextEncoder().encode(text);
    const seen: string[] = [];
    const fakeFetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
      const url = String(input);
      seen.push(`${new Headers(init?.headers).get('accept')} ${url}`);
      if (!url.endsWith('/events')) return new Response('{}', { status: 500 });
      let i = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (i < bytes.length) controller.enqueue(bytes.slice(i, ++i));
          else controller.close();
        },
      });
      return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
    };
    const docs: StatusDocument[] = [];
    const result = await waitFor('http://127.0.0.1:9/jobs/j', {
      fetch: fakeFetch as typeof fetch,
      onProgress: (d) => docs.push(d),
    });
    expect(result).toEqual({ ok: 'yes\u00e9' });
    expect(docs.map((d) => [d.status, d.progress])).toEqual([
      ['queued', 0],
      ['processing', 50],
      ['complete', 100],
    ]);
    expect(seen).toEqual(['text/event-stream http://127.0.0.1:9/jobs/j/events']);
  });
});

describe('waitFor by polling', () => {
  test('falls back to polling when there is no event stream', async () => {
    const server = await start({ sse: false });
    const res = await post(server, { steps: 3, stepMs: 250, value: 'polled' });
    const docs: StatusDocument[] = [];
    const result = await waitFor<Report>(res, { onProgress: (doc) => docs.push(doc) });
    expect(result).toEqual({ value: 'polled', steps: 3 });
    expectIncreasingTo100(docs);
    const path = jobPath(res);
    expect(server.requestsTo(`${path}/events`)).toHaveLength(1);
    expect(server.requestsTo(path, 'GET').length).toBeGreaterThanOrEqual(1);
    expect(server.requestsTo(path, 'GET')[0]!.headers.accept).toBe('application/json');
  });

  test('honours Retry-After (delta seconds), from the 202 on', async () => {
    const server = await start({ sse: false });
    const res = await post(server, { steps: 5, stepMs: 500, value: 1 });
    const submittedAt = Date.now();
    await expect(waitFor<Report>(res)).resolves.toEqual({ value: 1, steps: 5 });
    const finishedAt = Date.now();
    const polls = server.requestsTo(jobPath(res), 'GET').map((r) => r.at);
    expect(polls.length).toBeGreaterThanOrEqual(2);
    expect(polls[0]! - submittedAt).toBeGreaterThanOrEqual(900);
    for (const gap of gaps(polls)) expect(gap).toBeGreaterThanOrEqual(900);
    // No more polls than one a second allows.
    expect(polls.length).toBeLessThanOrEqual(Math.floor((finishedAt - submittedAt) / 900));
  });

  test('honours Retry-After given as an HTTP date', async () => {
    const server = await start({ sse: false, retryAfterDate: true });
    const res = await post(server, { steps: 3, stepMs: 600, value: 2 });
    const submittedAt = Date.now();
    await expect(waitFor<Report>(res)).resolves.toEqual({ value: 2, steps: 3 });
    const finishedAt = Date.now();
    const polls = server.requestsTo(jobPath(res), 'GET').map((r) => r.at);
    expect(polls.length).toBeGreaterThanOrEqual(1);
    expect(polls[0]! - submittedAt).toBeGreaterThanOrEqual(900);
    for (const gap of gaps(polls)) expect(gap).toBeGreaterThanOrEqual(900);
    expect(polls.length).toBeLessThanOrEqual(Math.floor((finishedAt - submittedAt) / 900));
  });

  test('retries a 503 from the status URL after its Retry-After', async () => {
    const server = await start({ sse: false, unavailablePolls: 1 });
    const res = await post(server, { steps: 1, stepMs: 10, value: 3 });
    await expect(waitFor<Report>(res)).resolves.toEqual({ value: 3, steps: 1 });
    const polls = server.requestsTo(jobPath(res), 'GET').map((r) => r.at);
    expect(polls).toHaveLength(2);
    expect(polls[1]! - polls[0]!).toBeGreaterThanOrEqual(900);
  });

  test('a 404 problem from the status URL rejects with its details', async () => {
    const server = await start();
    const error = await waitFor(`${server.url}/jobs/nope`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RespondAsyncClientError);
    expect(error).toMatchObject({ status: 404, code: 'ERR_RESPOND_ASYNC_JOB_NOT_FOUND', detail: 'No such job' });
  });
});

describe('terminal outcomes', () => {
  test.each([
    ['SSE', true],
    ['polling', false],
  ])('failed → JobFailedError with the message (%s)', async (_, sse) => {
    const server = await start({ sse });
    const res = await post(server, { steps: 2, stepMs: 20, fail: true });
    const error = await waitFor(res).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobFailedError);
    expect(error).toBeInstanceOf(RespondAsyncClientError);
    const failed = error as JobFailedError;
    expect(failed.message).toBe('report failed');
    expect(failed.code).toBe('REPORT_FAILED');
    expect(failed.doc.status).toBe('failed');
    expect(failed.jobId).toBe(jobPath(res).split('/').pop());
  });

  test('cancel() mid-run → JobCanceledError; cancel() again → 409', async () => {
    const server = await start();
    const res = await post(server, { steps: 20, stepMs: 100 });
    const statusUrl = new URL(jobPath(res), server.url).href;
    const docs: StatusDocument[] = [];
    const waiting = waitFor(res, { onProgress: (doc) => docs.push(doc) }).catch((e: unknown) => e);
    await until(() => docs.some((doc) => (doc.progress ?? 0) > 0));
    const doc = await cancel(statusUrl);
    expect(doc.jobId).toBe(jobPath(res).split('/').pop());
    expect(['processing', 'canceled']).toContain(doc.status);
    const error = await waiting;
    expect(error).toBeInstanceOf(JobCanceledError);
    expect((error as JobCanceledError).code).toBe('ERR_RESPOND_ASYNC_JOB_CANCELED');
    expect((error as JobCanceledError).doc.status).toBe('canceled');
    const again = await cancel(statusUrl).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(RespondAsyncClientError);
    expect(again).toMatchObject({ status: 409, code: 'ERR_RESPOND_ASYNC_ALREADY_FINISHED' });
  });

  test('Prefer: wait answered with the terminal document settles at once', async () => {
    const server = await start();
    const res = await post(server, { steps: 2, stepMs: 10, value: 'now' }, { headers: { prefer: 'wait=5' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('preference-applied')).toBe('wait=5');
    const before = server.requests.length;
    const docs: StatusDocument[] = [];
    await expect(waitFor<Report>(res, { onProgress: (doc) => docs.push(doc) })).resolves.toEqual({
      value: 'now',
      steps: 2,
    });
    expect(docs.map((doc) => doc.status)).toEqual(['complete']);
    expect(server.requests.length).toBe(before);
  });
});

describe('giving up', () => {
  test('timeoutMs → WaitTimeoutError; nothing more is asked', async () => {
    const server = await start();
    const res = await post(server, { steps: 50, stepMs: 100 });
    const startedAt = Date.now();
    const error = await waitFor(res, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(Date.now() - startedAt).toBeLessThan(2000);
    expect(error).toBeInstanceOf(WaitTimeoutError);
    expect(error).toMatchObject({ code: 'ERR_RESPOND_ASYNC_WAIT_TIMEOUT', timeoutMs: 300 });
    expect((error as WaitTimeoutError).lastDocument?.jobId).toBe(jobPath(res).split('/').pop());
    await until(() => server.openStreams() === 0);
    const count = server.requests.length;
    await sleep(1200);
    expect(server.requests.length).toBe(count);
  });

  test('AbortSignal while polling: rejects promptly with the reason and stops polling', async () => {
    const server = await start({ sse: false });
    const res = await post(server, { steps: 50, stepMs: 100 });
    const path = jobPath(res);
    const controller = new AbortController();
    const waiting = waitFor(res, { signal: controller.signal }).catch((e: unknown) => e);
    await until(() => server.requestsTo(path, 'GET').length === 1);
    await sleep(50);
    const abortedAt = Date.now();
    controller.abort();
    const error = await waiting;
    expect(Date.now() - abortedAt).toBeLessThan(500);
    expect(error).toBeInstanceOf(DOMException);
    expect((error as DOMException).name).toBe('AbortError');
    const count = server.requests.length;
    await sleep(2500);
    expect(server.requests.length).toBe(count);
  });

  test('AbortSignal while streaming: rejects promptly with the reason and closes the stream', async () => {
    const server = await start();
    const res = await post(server, { steps: 50, stepMs: 100 });
    const controller = new AbortController();
    const docs: StatusDocument[] = [];
    const waiting = waitFor(res, { signal: controller.signal, onProgress: (doc) => docs.push(doc) }).catch(
      (e: unknown) => e,
    );
    await until(() => docs.length > 0);
    const reason = new Error('user left');
    const abortedAt = Date.now();
    controller.abort(reason);
    expect(await waiting).toBe(reason);
    expect(Date.now() - abortedAt).toBeLessThan(500);
    const seen = docs.length;
    await until(() => server.openStreams() === 0);
    const count = server.requests.length;
    await sleep(500);
    expect(server.requests.length).toBe(count);
    expect(docs.length).toBe(seen);
  });

  test('an already aborted signal rejects without a request', async () => {
    const server = await start();
    const res = await post(server, { steps: 2, stepMs: 10 });
    const count = server.requests.length;
    const error = await waitFor(res, { signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect((error as DOMException).name).toBe('AbortError');
    expect(server.requests.length).toBe(count);
  });
});

describe('Azure-style servers', () => {
  test('202 while running, then 303 to a JSON result', async () => {
    const server = await start({ azure: 'redirect' });
    const res = await post(server, { steps: 2, stepMs: 200, value: 'azure' });
    expect(res.status).toBe(202);
    const docs: StatusDocument[] = [];
    await expect(waitFor<Report>(res, { onProgress: (doc) => docs.push(doc) })).resolves.toEqual({
      value: 'azure',
      steps: 2,
    });
    const id = jobPath(res).split('/').pop();
    expect(server.requestsTo(`/results/${id}`, 'GET')).toHaveLength(1);
    expect(docs.every((doc) => (doc.status as string) === 'Running')).toBe(true);
  });

  test('a 200 without a status field is the result', async () => {
    const server = await start({ azure: 'inline' });
    const res = await post(server, { steps: 1, stepMs: 10, value: 'inline' });
    await expect(waitFor<Report>(res)).resolves.toEqual({ value: 'inline', steps: 1 });
  });

  test('status Failed → JobFailedError', async () => {
    const server = await start({ azure: true });
    const res = await post(server, { steps: 1, stepMs: 10, fail: true });
    const error = await waitFor(res).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobFailedError);
    expect(error).toMatchObject({ message: 'report failed', code: 'ReportFailed' });
  });
});

describe('submit', () => {
  test('sends a plain object as JSON, through a custom fetch', async () => {
    const server = await start();
    const calls: string[] = [];
    const countingFetch: typeof fetch = (input, init) => {
      calls.push(`${init?.method ?? 'GET'} ${new URL(String(input)).pathname}`);
      return fetch(input, init);
    };
    const res = await submit(`${server.url}/reports`, {
      body: { steps: 1, stepMs: 10, value: 'f' },
      fetch: countingFetch,
    });
    expect(server.requestsTo('/reports')[0]!.headers['content-type']).toBe('application/json');
    await expect(waitFor<Report>(res, { fetch: countingFetch })).resolves.toEqual({ value: 'f', steps: 1 });
    expect(calls[0]).toBe('POST /reports');
    expect(calls.length).toBeGreaterThanOrEqual(2);
  });

  test('resolves to the accepted job: id, queued, absolute statusUrl, the Location as sent', async () => {
    const server = await start();
    const job = await submit(`${server.url}/reports`, { body: { steps: 1, stepMs: 10, value: 'h' } });
    expect(job.location).toMatch(/^\/jobs\/[^/]+$/); // the contract server answers a relative Location
    expect(job).toMatchObject({
      jobId: job.location!.slice('/jobs/'.length),
      status: 'queued',
      statusUrl: `${server.url}${job.location}`,
      httpStatus: 202,
    });
    expect(job.document).toMatchObject({ jobId: job.jobId, status: 'queued' });
    expect(job.response.status).toBe(202);
    expect(job.headers.get('location')).toBe(job.location);
    await expect(waitFor<Report>(job)).resolves.toEqual({ value: 'h', steps: 1 });
  });

  test('cancel() and waitFor() take the accepted job (a relative Location never reaches fetch)', async () => {
    const server = await start();
    const job = await submit(`${server.url}/reports`, { body: { steps: 50, stepMs: 50 } });
    const waiting = waitFor(job, { sse: false }).catch((e: unknown) => e);
    const doc = await cancel(job);
    expect(['canceled', 'processing']).toContain(doc.status);
    expect(server.requestsTo(new URL(job.statusUrl).pathname, 'DELETE')).toHaveLength(1);
    expect(await waiting).toBeInstanceOf(JobCanceledError);
  });

  test('Prefer: wait met: the accepted job is terminal and waitFor settles without another request', async () => {
    const server = await start();
    const job = await submit(`${server.url}/reports`, {
      body: { steps: 1, stepMs: 10, value: 'w' },
      headers: { prefer: 'wait=5' },
    });
    expect(job).toMatchObject({ status: 'complete', httpStatus: 200 });
    expect(job.statusUrl.startsWith(`${server.url}/jobs/`)).toBe(true);
    const before = server.requests.length;
    await expect(waitFor<Report>(job)).resolves.toEqual({ value: 'w', steps: 1 });
    expect(server.requests.length).toBe(before);
  });

  test('a relative URL in Node rejects with ERR_RESPOND_ASYNC_BAD_URL, not a bare TypeError', async () => {
    for (const attempt of [
      () => submit('/reports', { body: {} }),
      () => cancel('/jobs/abc'),
      () => waitFor('/jobs/abc'),
    ]) {
      const error = await attempt().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RespondAsyncClientError);
      expect(error).toMatchObject({ code: 'ERR_RESPOND_ASYNC_BAD_URL' });
    }
  });

  test('a problem+json 400 rejects with status, title, detail and code', async () => {
    const server = await start();
    const error = await post(server, { steps: 'many' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RespondAsyncClientError);
    expect(error).toMatchObject({
      status: 400,
      title: 'Bad Request',
      detail: 'steps must be an integer from 1 to 1000',
      code: 'ERR_RESPOND_ASYNC_BAD_INPUT',
      message: 'steps must be an integer from 1 to 1000',
    });
    expect((error as RespondAsyncClientError).problem?.type).toBe('about:blank');
  });
});
