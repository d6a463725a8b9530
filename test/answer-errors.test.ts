// An answer that cannot be written is a 500 problem+json on every adapter, never a crash; seeOther() URLs are
// percent-encoded, or fail the job with a clear code, when the handler returns them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newJobId } from '../src/core/ids.js';
import { createJobs, type Jobs, seeOther } from '../src/core/runtime.js';
import { MemoryStore } from '../src/stores/memory.js';
import { FRAMEWORKS, type Framework, type RunningApp, startApp } from './helpers/apps.js';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});

describe.each(FRAMEWORKS)('answers that cannot be written, on %s', (framework: Framework) => {
  let jobs: Jobs;
  let store: MemoryStore;
  let app: RunningApp;

  beforeAll(async () => {
    store = new MemoryStore();
    jobs = createJobs({ store, pollIntervalMs: 20, logger: { error() {} } });
    const unicode = jobs.define('unicode', async () => seeOther('/files/报告 final.pdf?lang=中文', { id: 1 }));
    const absolute = jobs.define('absolute', async () => seeOther('https://bücher.example/報告.pdf'));
    const injected = jobs.define('injected', async () => seeOther('/files/a\r\nSet-Cookie: session=stolen'), {
      attempts: 3,
    });
    app = await startApp(framework, {
      jobs,
      anonymous: true,
      routes: [
        { path: '/unicode', job: unicode },
        { path: '/absolute', job: absolute },
        { path: '/injected', job: injected },
      ],
      options: { basePath: '/jobs' },
    });
  });
  afterAll(async () => {
    await app.close();
    await jobs.close({ timeoutMs: 100 });
  });

  const post = (path: string) =>
    fetch(`${app.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });

  async function finished(statusUrl: string): Promise<Response> {
    for (let i = 0; i < 200; i++) {
      const res = await fetch(`${app.url}${statusUrl}`, { redirect: 'manual' });
      if (res.status !== 200) return res;
      const doc = await res.clone().json();
      if (['complete', 'failed', 'canceled'].includes(doc.status)) return res;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error('job did not finish');
  }

  it('percent-encodes a non-ASCII seeOther() URL into the 303 Location', async () => {
    const { statusUrl } = await (await post('/unicode')).json();
    const res = await finished(statusUrl);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/files/%E6%8A%A5%E5%91%8A%20final.pdf?lang=%E4%B8%AD%E6%96%87');
    expect((await res.json()).result).toEqual({ id: 1 });
  });

  it('serialises an absolute seeOther() URL the WHATWG way', async () => {
    const { statusUrl } = await (await post('/absolute')).json();
    const res = await finished(statusUrl);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('https://xn--bcher-kva.example/%E5%A0%B1%E5%91%8A.pdf');
  });

  it('fails the job at once with ERR_RESPOND_ASYNC_INVALID_REDIRECT for a URL with CR/LF', async () => {
    const { statusUrl } = await (await post('/injected')).json();
    const res = await finished(statusUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toBeNull();
    const doc = await res.json();
    expect(doc.status).toBe('failed');
    expect(doc.attempt).toBe(1);
    expect(doc.error.code).toBe('ERR_RESPOND_ASYNC_INVALID_REDIRECT');
  });

  it('answers 500 problem+json, and keeps serving, when a stored answer cannot be written', async () => {
    // A job completed with a Location no HTTP message may carry (as one stored before URLs were checked).
    const id = newJobId();
    await store.create({
      id,
      name: 'stored-elsewhere',
      input: {},
      owner: null,
      idempotencyKey: null,
      requestHash: null,
      maxAttempts: 1,
      callbackUrl: null,
    });
    const [claimed] = await store.claim({ names: ['stored-elsewhere'], workerId: 'w', limit: 1, leaseMs: 10_000 });
    expect(claimed.id).toBe(id);
    await store.complete(id, 'w', { result: 1, resultUrl: '/files/报告.pdf', retentionMs: 60_000 });
    const before = unhandled.length;

    for (let poll = 0; poll < 3; poll++) {
      const res = await fetch(`${app.url}/jobs/${id}`, { redirect: 'manual' });
      expect(res.status).toBe(500);
      expect(res.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
      expect(res.headers.get('location')).toBeNull();
      const body = await res.json();
      expect(body).toMatchObject({ status: 500, code: 'ERR_RESPOND_ASYNC_UNWRITABLE_ANSWER' });
    }
    const { statusUrl } = await (await post('/unicode')).json();
    expect((await finished(statusUrl)).status).toBe(303);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(unhandled.length - before).toBe(0);
  });
});
