// respond-async/client against the three framework examples (examples/express.ts, fastify.ts, koa.ts), each
// started as the examples contract says (memory store): over SSE and by polling, complete, failed and canceled.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cancel,
  JobCanceledError,
  JobFailedError,
  RespondAsyncClientError,
  type StatusDocument,
  submit,
  waitFor,
} from '../src/client.js';
import { type ExampleFramework, type ExampleProcess, startExample } from './helpers/example-process.js';
import { progressOf } from './helpers/status.js';

interface ReportResult {
  value?: unknown;
  steps: number;
}

const user = { 'x-user': 'client-test' };

/** A fetch that records the paths it asked for, so a test can tell SSE from polling. */
function recordingFetch(): { fetch: typeof fetch; paths: string[] } {
  const paths: string[] = [];
  return {
    paths,
    fetch: (input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      paths.push(`${init?.method ?? 'GET'} ${new URL(url).pathname}`);
      return fetch(input, init);
    },
  };
}

describe.each(['express', 'fastify', 'koa'] as ExampleFramework[])('client against examples/%s.ts', (framework) => {
  let example: ExampleProcess;

  beforeAll(async () => {
    example = await startExample(framework, { WEBHOOK_SECRET: undefined }, { timeoutMs: 60_000 });
  }, 90_000);
  afterAll(async () => {
    await example?.kill('SIGTERM');
  }, 30_000);

  it.each([
    ['Server-Sent Events', true],
    ['polling with Retry-After', false],
  ])('waits over %s: progress climbs to 100, then the typed result', async (_, sse) => {
    const recorder = recordingFetch();
    const accepted = await submit(`${example.url}/reports`, {
      body: { steps: 4, stepMs: 150, value: framework },
      headers: user,
    });
    expect(accepted).toMatchObject({ httpStatus: 202, status: 'queued' });
    expect(accepted.statusUrl).toBe(`${example.url}/jobs/${accepted.jobId}`);
    const docs: StatusDocument[] = [];
    const result = await waitFor<ReportResult>(accepted, {
      headers: user,
      sse,
      fetch: recorder.fetch,
      onProgress: (doc) => docs.push(doc),
      timeoutMs: 20_000,
    });
    expect(result).toEqual({ value: framework, steps: 4 });
    const progress = progressOf(docs);
    for (let i = 1; i < progress.length; i++) expect(progress[i]).toBeGreaterThanOrEqual(progress[i - 1]!);
    expect(progress.at(-1)).toBe(100);
    expect(docs.at(-1)?.status).toBe('complete');
    const jobPath = new URL(accepted.statusUrl).pathname;
    if (sse) {
      expect(recorder.paths).toEqual([`GET ${jobPath}/events`]);
      expect(new Set(progress).size).toBeGreaterThanOrEqual(3); // every step seen, not only the end
    } else {
      expect(recorder.paths.every((path) => path === `GET ${jobPath}`)).toBe(true);
      // Retry-After: 1 from the example: a 600 ms job needs a poll or two, not a busy loop.
      expect(recorder.paths.length).toBeLessThanOrEqual(4);
    }
  });

  it('rejects with JobFailedError carrying the public message', async () => {
    const accepted = await submit(`${example.url}/reports`, { body: { fail: true }, headers: user });
    const error = await waitFor(accepted, { headers: user, timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobFailedError);
    expect((error as JobFailedError).message).toBe('report failed');
    expect(JSON.stringify((error as JobFailedError).doc)).not.toMatch(/\bat .*\.ts:\d+/);
  });

  it('cancel() of a running report rejects the waiter with JobCanceledError', async () => {
    const accepted = await submit(`${example.url}/reports`, { body: { steps: 50, stepMs: 100 }, headers: user });
    const docs: StatusDocument[] = [];
    const waiting = waitFor(accepted, { headers: user, onProgress: (doc) => docs.push(doc) }).catch((e: unknown) => e);
    const deadline = Date.now() + 10_000;
    while (!docs.some((doc) => (doc.progress ?? 0) > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await cancel(accepted, { headers: user });
    const error = await waiting;
    expect(error).toBeInstanceOf(JobCanceledError);
    expect((error as JobCanceledError).doc.status).toBe('canceled');
  });

  it("rejects another user's job with a 404 RespondAsyncClientError", async () => {
    const accepted = await submit(`${example.url}/reports`, { body: { steps: 1, stepMs: 0 }, headers: user });
    const error = await waitFor(accepted, { headers: { 'x-user': 'mallory' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RespondAsyncClientError);
    expect(error).toMatchObject({ status: 404, code: 'ERR_RESPOND_ASYNC_JOB_NOT_FOUND' });
  });

  it('rejects a bad submit with the problem details (400)', async () => {
    const error = await submit(`${example.url}/reports`, { body: { steps: 'many' }, headers: user }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RespondAsyncClientError);
    expect(error).toMatchObject({ status: 400 });
    // The example validates its body with a schema: the issues are in the problem's `errors`.
    expect((error as RespondAsyncClientError).problem?.errors).toEqual([
      { pointer: '/steps', message: expect.any(String) },
    ]);
  });
});
