// The HTTP contract, checked over real sockets with the same scenarios on Express, Fastify, Koa and Fetch (Hono).
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobError } from '../src/core/errors.js';
import { createJobs, type Jobs, seeOther } from '../src/core/runtime.js';
import type { RequestSnapshot } from '../src/core/types.js';
import { MemoryStore } from '../src/stores/memory.js';
import {
  FRAMEWORK_VERSIONS,
  FRAMEWORKS,
  type Framework,
  type RunningApp,
  readEvents,
  startApp,
} from './helpers/apps.js';

const JOB_ID = /^[0-9a-v]{10}[A-Za-z0-9_-]{22}$/;

function abortable(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

function buildJobs(store = new MemoryStore()) {
  const jobs = createJobs({ store, pollIntervalMs: 50, concurrency: 20, logger: { error() {} } });
  const defs = {
    echo: jobs.define('echo', async (req: RequestSnapshot<{ value?: unknown }>) => ({ echo: req.body?.value ?? null })),
    steps: jobs.define('steps', async (_req: RequestSnapshot, ctx) => {
      for (let i = 1; i <= 4; i++) {
        await abortable(40, ctx.signal);
        await ctx.progress(i * 25, `step ${i}`);
      }
      return { done: true };
    }),
    slow: jobs.define('slow', async (_req: RequestSnapshot, ctx) => {
      await ctx.progress(10);
      await abortable(20_000, ctx.signal);
      return 'late';
    }),
    failPublic: jobs.define(
      'fail-public',
      async () => {
        throw new JobError('report failed', { code: 'REPORT_FAILED', retry: false });
      },
      { attempts: 1 },
    ),
    failPrivate: jobs.define(
      'fail-private',
      async () => {
        throw new Error('password=hunter2 at db.internal:5432');
      },
      { attempts: 1 },
    ),
    redirect: jobs.define('redirect', async () => seeOther('/files/42', { id: 42 })),
    // The README's quick-start handler: it reads `req.body.steps` without a guard.
    quick: jobs.define('quick', async (req: RequestSnapshot<{ steps?: number }>) => ({ steps: req.body.steps ?? 3 })),
  };
  const routes = [
    { path: '/echo', job: defs.echo },
    { path: '/steps', job: defs.steps, options: { estimatedSeconds: 3 } },
    { path: '/slow', job: defs.slow },
    { path: '/fail-public', job: defs.failPublic },
    { path: '/fail-private', job: defs.failPrivate },
    { path: '/redirect', job: defs.redirect },
    { path: '/quick', job: defs.quick },
  ];
  return { jobs, routes };
}

/** A request over node:http, which (unlike fetch) sends any method, TRACE included, and no default headers. */
function rawRequest(
  url: string,
  method: string,
  headers: Record<string, string> = {},
  body?: Buffer | string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const PROBLEM = /^application\/problem\+json/;

describe.each(FRAMEWORK_VERSIONS)('HTTP contract on %s', (framework: Framework) => {
  let jobs: Jobs;
  let app: RunningApp;
  const user = { 'x-user': 'alice' };
  const json = { 'content-type': 'application/json', ...user };

  beforeAll(async () => {
    const built = buildJobs();
    jobs = built.jobs;
    app = await startApp(framework, {
      jobs,
      routes: built.routes,
      options: { basePath: '/jobs', maxWaitSeconds: 2, heartbeatMs: 200 },
    });
  });
  afterAll(async () => {
    await app.close();
    await jobs.close({ timeoutMs: 100 });
  });

  const post = (path: string, body: unknown = {}, headers: Record<string, string> = {}) =>
    fetch(`${app.url}${path}`, {
      method: 'POST',
      headers: { ...json, ...headers },
      body: JSON.stringify(body),
      redirect: 'manual',
    });

  async function pollUntilDone(statusUrl: string, headers: Record<string, string> = user) {
    const seen: number[] = [];
    for (let i = 0; i < 400; i++) {
      const res = await fetch(`${app.url}${statusUrl}`, { headers, redirect: 'manual' });
      const doc = await res.json();
      if (typeof doc.progress === 'number') seen.push(doc.progress);
      if (['complete', 'failed', 'canceled'].includes(doc.status)) return { res, doc, seen };
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error('job did not finish');
  }

  it('submit answers 202 with Location, Retry-After, Cache-Control: no-store and the accepted document', async () => {
    const res = await post('/steps', { value: 1 });
    expect(res.status).toBe(202);
    const text = await res.text();
    // Sent with its length, not in chunks, on every adapter.
    expect(res.headers.get('transfer-encoding')).toBeNull();
    expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(text));
    const body = JSON.parse(text);
    expect(body.jobId).toMatch(JOB_ID);
    expect(body.status).toBe('queued');
    expect(body.statusUrl).toBe(`/jobs/${body.jobId}`);
    expect(body.estimatedSeconds).toBe(3);
    expect(new Date(body.createdAt).toISOString()).toBe(body.createdAt);
    expect(res.headers.get('location')).toBe(body.statusUrl);
    expect(res.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(3);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('a plain submit answers just the accepted document; the job gets the body and query as sent', async () => {
    const res = await post('/echo?x=1&y=two', { value: 'é "quoted" \\ ok' });
    expect(res.status).toBe(202);
    const body = JSON.parse(await res.text());
    expect(Object.keys(body)).toEqual(['jobId', 'status', 'statusUrl', 'createdAt']);
    expect(body.jobId).toMatch(JOB_ID);
    expect(body).toMatchObject({ status: 'queued', statusUrl: `/jobs/${body.jobId}` });
    expect(new Date(body.createdAt).toISOString()).toBe(body.createdAt);
    expect(res.headers.get('location')).toBe(body.statusUrl);
    expect(res.headers.get('vary')).toMatch(/prefer/i);
    expect((await jobs.get(body.jobId))?.input).toMatchObject({
      body: { value: 'é "quoted" \\ ok' },
      query: { x: '1', y: 'two' },
    });
    const plain = await (await post('/echo', { value: 1 })).json();
    const plainInput = (await jobs.get(plain.jobId))?.input as RequestSnapshot | undefined;
    expect(plainInput?.query).toEqual({});
  });

  it('a body in any JSON spelling reaches the job as the value it spells', async () => {
    // Spaces, escapes and number forms that JSON.stringify would write otherwise: the job must see the parsed value,
    // whether the store keeps the body's own text (adapters that read it) or serialises the parsed body.
    const text =
      '{ "value" : "\\u00e9\\n\\"" ,\n "n": [1.50, 1E2, 0.1e1, 10000000000000000000001, -7],\t"o": {"a" : null, "b":true}, "s": [] }';
    const res = await fetch(`${app.url}/echo?q=1`, { method: 'POST', headers: json, body: text });
    expect(res.status).toBe(202);
    const { jobId } = await res.json();
    expect((await jobs.get(jobId))?.input).toEqual({
      body: { value: 'é\n"', n: [1.5, 100, 1, 1e22, -7], o: { a: null, b: true }, s: [] },
      params: {},
      query: { q: '1' },
    });
    const { doc } = await pollUntilDone(`/jobs/${jobId}`);
    expect(doc).toMatchObject({ status: 'complete', result: { echo: 'é\n"' } });
  });

  it('a body nested 256 levels deep is taken; one level deeper is 400 problem+json', async () => {
    // Objects and arrays alternate: `{"a":[{"a":[…1…]}]}`, `levels` containers in all.
    const nested = (levels: number) =>
      JSON.parse(
        Array.from({ length: levels }, (_, i) => (i % 2 ? '[' : '{"a":')).join('') +
          '1' +
          Array.from({ length: levels }, (_, i) => (i % 2 ? ']' : '}'))
            .reverse()
            .join(''),
      );
    expect((await post('/echo', nested(256))).status).toBe(202);
    const deeper = await post('/echo', nested(257));
    expect(deeper.status).toBe(400);
    expect(deeper.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await deeper.json()).code).toBe('ERR_RESPOND_ASYNC_BAD_BODY');
    expect((await post('/echo', [[[[{ a: [nested(250)] }]]]])).status).toBe(202);
    expect((await post('/echo', [[[[{ a: [[nested(252)]] }]]]])).status).toBe(400);
  });

  it('status reaches complete with the result, progress climbing to 100, Retry-After only while unfinished', async () => {
    const { statusUrl } = await (await post('/steps')).json();
    const first = await fetch(`${app.url}${statusUrl}`, { headers: user });
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toBe('no-store');
    const firstDoc = await first.json();
    if (firstDoc.status !== 'complete') expect(first.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    const { res, doc, seen } = await pollUntilDone(statusUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get('retry-after')).toBeNull();
    expect(doc).toMatchObject({ status: 'complete', result: { done: true }, progress: 100, attempt: 1 });
    expect(doc.finishedAt).toBeDefined();
    expect(doc.startedAt).toBeDefined();
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    expect(seen.at(-1)).toBe(100);
  });

  it('a public failure shows its message and code; a private one a generic message; never a stack', async () => {
    const pub = await pollUntilDone((await (await post('/fail-public')).json()).statusUrl);
    expect(pub.doc.status).toBe('failed');
    expect(pub.doc.error).toEqual({ message: 'report failed', code: 'REPORT_FAILED' });
    const priv = await pollUntilDone((await (await post('/fail-private')).json()).statusUrl);
    expect(priv.doc.status).toBe('failed');
    expect(priv.doc.error).toEqual({ message: 'The job failed' });
    const text = JSON.stringify(priv.doc);
    expect(text).not.toMatch(/hunter2|stack|at .*\.ts/);
  });

  it('unknown, malformed and other owners’ jobs are 404 problem+json', async () => {
    const { statusUrl } = await (await post('/echo')).json();
    for (const [path, headers] of [
      ['/jobs/AAAAAAAAAAAAAAAAAAAAAA', user],
      ['/jobs/not-a-job-id', user],
      ['/jobs/%2e%2e%2fetc', user],
      [statusUrl, { 'x-user': 'mallory' }],
      [statusUrl, {}],
      [`${statusUrl}/events`, { 'x-user': 'mallory' }],
    ] as const) {
      const res = await fetch(`${app.url}${path}`, { headers });
      expect(res.status, path).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const body = await res.json();
      expect(body).toMatchObject({ status: 404, title: 'Not Found', code: 'ERR_RESPOND_ASYNC_JOB_NOT_FOUND' });
    }
    const del = await fetch(`${app.url}${statusUrl}`, { method: 'DELETE', headers: { 'x-user': 'mallory' } });
    expect(del.status).toBe(404);
    // A segment longer than Fastify's router takes (maxParamLength, 100 by default) is refused by that router with
    // its own 414 before any route runs; every other adapter answers the 404 problem.
    for (const path of [`/jobs/${'A'.repeat(300)}`, `/jobs/${'A'.repeat(300)}/events`]) {
      const res = await fetch(`${app.url}${path}`, { headers: user });
      expect(res.status, path).toBe(framework === 'fastify' ? 414 : 404);
      if (framework !== 'fastify') expect(res.headers.get('content-type')).toMatch(PROBLEM);
    }
  });

  it('cancel: a running job is aborted (202 then canceled); a finished one is 409', async () => {
    const { statusUrl } = await (await post('/slow')).json();
    for (let i = 0; i < 200; i++) {
      const doc = await (await fetch(`${app.url}${statusUrl}`, { headers: user })).json();
      if (doc.status === 'processing') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const del = await fetch(`${app.url}${statusUrl}`, { method: 'DELETE', headers: user });
    expect(del.status).toBe(202);
    expect((await del.json()).jobId).toBeDefined();
    const { doc } = await pollUntilDone(statusUrl);
    expect(doc.status).toBe('canceled');
    const again = await fetch(`${app.url}${statusUrl}`, { method: 'DELETE', headers: user });
    expect(again.status).toBe(409);
    expect(again.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('bad JSON is 400, an oversized body 413, a non-JSON body 415 — all problem+json, nothing queued', async () => {
    const before = (await fetch(`${app.url}/jobs`, { headers: user }).then((r) => r.json())).jobs.length;
    const bad = await fetch(`${app.url}/echo`, { method: 'POST', headers: json, body: '{"value": ' });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(JSON.stringify(await bad.json())).not.toMatch(/at .*\.(js|ts)|SyntaxError/);
    const big = await fetch(`${app.url}/echo`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ value: 'x'.repeat(2 * 1024 * 1024) }),
    });
    expect(big.status).toBe(413);
    expect(big.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const text = await fetch(`${app.url}/echo`, {
      method: 'POST',
      headers: { ...user, 'content-type': 'text/plain' },
      body: 'hi',
    });
    expect(text.status).toBe(415);
    expect(text.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const after = (await fetch(`${app.url}/jobs`, { headers: user }).then((r) => r.json())).jobs.length;
    expect(after).toBe(before);
  });

  it('a method the status URL does not serve is 405 with Allow', async () => {
    const { statusUrl } = await (await post('/echo')).json();
    const res = await fetch(`${app.url}${statusUrl}`, { method: 'PUT', headers: json, body: '{}' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD, DELETE');
  });

  it('Prefer: wait answers 200 with the terminal document and Preference-Applied when the job ends in time', async () => {
    const fast = await post('/echo', { value: 'quick' }, { prefer: 'respond-async, wait=2' });
    expect(fast.status).toBe(200);
    expect(fast.headers.get('preference-applied')).toBe('wait=2');
    expect(fast.headers.get('vary')).toMatch(/Prefer/i);
    expect(await fast.json()).toMatchObject({ status: 'complete', result: { echo: 'quick' } });
    const started = Date.now();
    const slow = await post('/slow', {}, { prefer: 'wait=1' });
    expect(slow.status).toBe(202);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(slow.headers.get('preference-applied')).toBeNull();
    await fetch(`${app.url}${slow.headers.get('location')}`, { method: 'DELETE', headers: user });
    const capped = Date.now();
    const overMax = await post('/slow', {}, { prefer: 'wait=600' });
    expect(overMax.status).toBe(202);
    expect(Date.now() - capped).toBeLessThan(5000);
    await fetch(`${app.url}${overMax.headers.get('location')}`, { method: 'DELETE', headers: user });
  });

  it('Idempotency-Key: same request returns the same job; a different one 422; malformed 400; concurrent firsts make one job', async () => {
    const key = `"${crypto.randomUUID()}"`;
    const a = await post('/echo', { value: 1 }, { 'idempotency-key': key });
    const b = await post('/echo', { value: 1 }, { 'idempotency-key': key });
    expect(a.status).toBe(202);
    expect([200, 202]).toContain(b.status);
    expect(b.headers.get('idempotent-replayed')).toBe('true');
    expect((await b.json()).jobId).toBe((await a.json()).jobId);
    const other = await post('/echo', { value: 2 }, { 'idempotency-key': key });
    expect(other.status).toBe(422);
    expect(other.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const otherUser = await post('/echo', { value: 1 }, { 'idempotency-key': key, 'x-user': 'bob' });
    expect(otherUser.status).toBe(202);
    for (const bad of ['""', '"a\\b"', 'has space', `"${'k'.repeat(256)}"`]) {
      const res = await post('/echo', {}, { 'idempotency-key': bad });
      expect(res.status, bad).toBe(400);
    }
    const bare = await post('/echo', {}, { 'idempotency-key': 'bare-token-123' });
    expect(bare.status).toBe(202);
    const concurrentKey = `"${crypto.randomUUID()}"`;
    const all = await Promise.all(
      Array.from({ length: 10 }, () => post('/echo', { value: 'c' }, { 'idempotency-key': concurrentKey })),
    );
    const ids = new Set(await Promise.all(all.map(async (r) => (await r.json()).jobId)));
    expect(ids.size).toBe(1);
  });

  it('events: status first, progress on each change, one terminal event, then the stream ends', async () => {
    const { statusUrl } = await (await post('/steps')).json();
    const res = await fetch(`${app.url}${statusUrl}/events`, { headers: user });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    // no-transform: compression() and proxies pass events on as they come instead of buffering the stream.
    expect(res.headers.get('cache-control')).toBe('no-store, no-transform');
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    const events = await readEvents(res);
    expect(events[0].event).toBe('status');
    expect(events.at(-1)!.event).toBe('complete');
    expect(events.at(-1)!.data.result).toEqual({ done: true });
    expect(events.filter((e) => e.event === 'progress').length).toBeGreaterThanOrEqual(1);
    const ids = events.map((e) => Number(e.id));
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1])).toBe(true);
    const resumed = await fetch(`${app.url}${statusUrl}/events`, {
      headers: { ...user, 'last-event-id': String(ids.at(-1)) },
    });
    expect(resumed.status).toBe(204);
    const finished = await readEvents(await fetch(`${app.url}${statusUrl}/events`, { headers: user }));
    expect(finished.map((e) => e.event)).toEqual(['complete']);
  });

  it('303 See Other to the result URL when the handler returned seeOther()', async () => {
    const res = await post('/redirect', {}, { prefer: 'wait=2' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/files/42');
    const doc = await res.json();
    expect(doc).toMatchObject({ status: 'complete', resultUrl: '/files/42', result: { id: 42 } });
  });

  it('lists the caller’s recent jobs, and nobody else’s', async () => {
    const mine = await (await post('/echo', {}, { 'x-user': 'lister' })).json();
    const list = await (await fetch(`${app.url}/jobs`, { headers: { 'x-user': 'lister' } })).json();
    expect(list.jobs.map((j: { jobId: string }) => j.jobId)).toEqual([mine.jobId]);
    const anonymous = await fetch(`${app.url}/jobs`);
    expect(anonymous.status).toBe(404);
  });
});

describe.each(FRAMEWORK_VERSIONS)('HTTP contract on %s: bodies, methods and paths alike', (framework: Framework) => {
  let jobs: Jobs;
  let app: RunningApp;
  const user = { 'x-user': 'alice' };

  beforeAll(async () => {
    const built = buildJobs();
    jobs = built.jobs;
    app = await startApp(framework, {
      jobs,
      routes: built.routes,
      // The app's own routes under the base path: one registered first, two after the status routes.
      appRoutesBefore: [{ method: 'GET', path: '/jobs/dev' }],
      appRoutesAfter: [
        { method: 'POST', path: '/jobs' },
        { method: 'GET', path: '/jobs/:id/notes' },
      ],
    });
  });
  afterAll(async () => {
    await app.close();
    await jobs.close({ timeoutMs: 100 });
  });

  const send = (path: string, headers: Record<string, string>, body?: Buffer | string, method = 'POST') =>
    rawRequest(`${app.url}${path}`, method, { ...user, ...headers }, body);
  const inputOf = async (text: string) => (await jobs.get(JSON.parse(text).jobId))?.input as RequestSnapshot;
  const listed = async () => (await (await fetch(`${app.url}/jobs`, { headers: user })).json()).jobs.length;

  it('takes application/json and any application/*+json in UTF-8 or US-ASCII', async () => {
    for (const type of [
      'application/merge-patch+json',
      'application/vnd.api+json; charset=utf-8',
      'Application/JSON; charset="UTF-8"',
      'application/json;charset=us-ascii',
    ]) {
      const res = await send('/echo', { 'content-type': type }, '{"value":"typed"}');
      expect(res.status, type).toBe(202);
      expect((await inputOf(res.text)).body, type).toEqual({ value: 'typed' });
    }
  });

  it('refuses a body without Content-Type, or in another charset, with 415 problem+json, queueing nothing', async () => {
    const before = await listed();
    const json = '{"value":"é"}';
    for (const [headers, body] of [
      [{}, Buffer.from(json)],
      [{ 'content-type': 'application/json; charset=utf-16' }, Buffer.from(`\ufeff${json}`, 'utf16le')],
      [{ 'content-type': 'application/json; charset=latin1' }, Buffer.from(json, 'latin1')],
      [{ 'content-type': 'application/json; charset=iso-8859-1' }, Buffer.from(json, 'latin1')],
      [{ 'content-type': 'text/plain' }, Buffer.from(json)],
    ] as Array<[Record<string, string>, Buffer]>) {
      const res = await send('/echo', headers, body);
      expect(res.status, JSON.stringify(headers)).toBe(415);
      expect(res.headers['content-type']).toMatch(PROBLEM);
      expect(JSON.parse(res.text).code).toBe('ERR_RESPOND_ASYNC_UNSUPPORTED_MEDIA_TYPE');
    }
    expect(await listed()).toBe(before);
  });

  it('an empty body, with or without a JSON Content-Type, is the empty object: the quick-start handler runs', async () => {
    const types: Array<Record<string, string>> = [
      {},
      { 'content-type': 'application/json' },
      { 'content-type': 'text/plain' },
    ];
    for (const headers of types) {
      const res = await send('/quick', headers);
      expect(res.status, JSON.stringify(headers)).toBe(202);
      const { jobId } = JSON.parse(res.text);
      expect((await inputOf(res.text)).body).toEqual({});
      const done = await jobs.waitFor(jobId, 5000);
      expect(done).toMatchObject({ status: 'complete', result: { steps: 3 } });
    }
  });

  it('a `__proto__` or `constructor` key is plain data: accepted, kept, and no prototype is touched', async () => {
    const text = '{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":2}},"value":"p"}';
    const res = await send('/echo', { 'content-type': 'application/json' }, text);
    expect(res.status).toBe(202);
    const body = (await inputOf(res.text)).body as Record<string, unknown>;
    expect(Object.hasOwn(body, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(body)).toBe(Object.prototype);
    expect(JSON.stringify(body)).toBe(text);
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(await jobs.waitFor(JSON.parse(res.text).jobId, 5000)).toMatchObject({ result: { echo: 'p' } });
  });

  it('OPTIONS, TRACE and other methods on a job’s paths are 405 problem+json with Allow', async () => {
    const { jobId } = JSON.parse((await send('/echo', { 'content-type': 'application/json' }, '{}')).text);
    for (const [path, allow] of [
      [`/jobs/${jobId}`, 'GET, HEAD, DELETE'],
      [`/jobs/${jobId}/events`, 'GET, HEAD'],
      ['/jobs/AAAAAAAAAAAAAAAAAAAAAA', 'GET, HEAD, DELETE'],
    ]) {
      for (const method of ['OPTIONS', 'TRACE', 'PATCH', 'POST']) {
        const res = await send(path, {}, undefined, method);
        expect(res.status, `${method} ${path}`).toBe(405);
        expect(res.headers.allow, `${method} ${path}`).toBe(allow);
        expect(res.headers['content-type']).toMatch(PROBLEM);
      }
    }
    // A body on such a request is not parsed: the method decides, whatever the body.
    const put = await send(`/jobs/${jobId}`, { 'content-type': 'text/plain' }, 'not json', 'PUT');
    expect(put.status).toBe(405);
  });

  it('paths under the base path that are not a job’s go to the app: its own routes answer, else its 404', async () => {
    const id = 'AAAAAAAAAAAAAAAAAAAAAA';
    // The app's own routes, registered before and after the status routes.
    for (const [method, path, route] of [
      ['GET', '/jobs/dev', '/jobs/dev'],
      ['POST', '/jobs', '/jobs'],
      ['GET', `/jobs/${id}/notes`, '/jobs/:id/notes'],
    ]) {
      const res = await send(path, {}, undefined, method);
      expect(res.status, `${method} ${path}`).toBe(200);
      expect(JSON.parse(res.text)).toEqual({ app: route });
    }
    // Nobody's: the app's own 404 (not the library's problem), whatever the framework makes of it.
    for (const path of [`/jobs//${id}`, `/jobs/${id}/foo`, `/jobs/${id}/events/x`, '/jobs/', `/jobs/${id}/`]) {
      const res = await send(path, {}, undefined, 'GET');
      expect(res.status, path).toBe(404);
      expect(res.headers['content-type'], path).not.toMatch(PROBLEM);
    }
    // A single segment that is not a job of this owner stays the library's 404 problem.
    const unknown = await send('/jobs/not-a-job', {}, undefined, 'GET');
    expect(unknown.status).toBe(404);
    expect(unknown.headers['content-type']).toMatch(PROBLEM);
  });

  it('Idempotency-Key: the same key with another query string is a different request (422)', async () => {
    const key = `"${crypto.randomUUID()}"`;
    const headers = { 'content-type': 'application/json', 'idempotency-key': key };
    const pdf = await send('/echo?format=pdf', headers, '{}');
    expect(pdf.status).toBe(202);
    const again = await send('/echo?format=pdf', headers, '{}');
    expect(JSON.parse(again.text).jobId).toBe(JSON.parse(pdf.text).jobId);
    const csv = await send('/echo?format=csv', headers, '{}');
    expect(csv.status).toBe(422);
    expect(csv.headers['content-type']).toMatch(PROBLEM);
  });

  it('twenty event streams open at once print no MaxListenersExceededWarning', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    const controller = new AbortController();
    try {
      const { statusUrl } = JSON.parse((await send('/slow', { 'content-type': 'application/json' }, '{}')).text);
      const streams = await Promise.all(
        Array.from({ length: 20 }, () =>
          fetch(`${app.url}${statusUrl}/events`, { headers: user, signal: controller.signal }),
        ),
      );
      expect(streams.map((r) => r.status)).toEqual(Array(20).fill(200));
      await Promise.all(streams.map((r) => r.body!.getReader().read()));
      await new Promise((r) => setTimeout(r, 50)); // warnings are emitted on a later tick
      await fetch(`${app.url}${statusUrl}`, { method: 'DELETE', headers: user });
    } finally {
      controller.abort();
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  });
});

describe('anonymous apps (no owner option)', () => {
  it.each(FRAMEWORKS)('%s: GET on the base path is the app’s', async (framework) => {
    const { jobs, routes } = buildJobs();
    const app = await startApp(framework, {
      jobs,
      routes,
      anonymous: true,
      appRoutesAfter: [{ method: 'GET', path: '/jobs' }],
    });
    try {
      const res = await fetch(`${app.url}/jobs`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ app: '/jobs' });
    } finally {
      await app.close();
      await jobs.close({ timeoutMs: 10 });
    }
  });
});

describe('HTTP contract: the same bytes from every framework', () => {
  it('answers a 404, a 405, a 400 and a 415 identically', async () => {
    const seen: Record<string, string[]> = {};
    for (const framework of FRAMEWORK_VERSIONS) {
      const { jobs, routes } = buildJobs();
      const app = await startApp(framework, { jobs, routes });
      try {
        const answers = [
          await fetch(`${app.url}/jobs/AAAAAAAAAAAAAAAAAAAAAA`),
          await fetch(`${app.url}/jobs/AAAAAAAAAAAAAAAAAAAAAA/events`, { method: 'DELETE' }),
          await fetch(`${app.url}/echo`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: '{',
          }),
          await fetch(`${app.url}/echo`, { method: 'POST', headers: { 'idempotency-key': '""' } }),
          await fetch(`${app.url}/jobs/AAAAAAAAAAAAAAAAAAAAAA`, { method: 'OPTIONS' }),
          await fetch(`${app.url}/echo`, { method: 'POST', body: new TextEncoder().encode('{}') }), // no Content-Type
          await fetch(`${app.url}/echo`, {
            method: 'POST',
            headers: { 'content-type': 'application/json; charset=utf-16' },
            body: new TextEncoder().encode('{}'),
          }),
        ];
        seen[framework] = await Promise.all(
          answers.map(
            async (r) =>
              `${r.status} ${r.headers.get('content-type')} ${r.headers.get('cache-control')} ${r.headers.get('allow')} ${await r.text()}`,
          ),
        );
      } finally {
        await app.close();
        await jobs.close({ timeoutMs: 10 });
      }
    }
    for (const framework of FRAMEWORK_VERSIONS) expect(seen[framework], framework).toEqual(seen.express);
  });

  it('a full store answers 503 with Retry-After and queues nothing', async () => {
    for (const framework of FRAMEWORK_VERSIONS) {
      const store = new MemoryStore({ maxJobs: 1 });
      const { jobs, routes } = buildJobs(store);
      const app = await startApp(framework, { jobs, routes });
      try {
        const first = await fetch(`${app.url}/slow`, { method: 'POST', headers: { 'x-user': 'a' } });
        expect(first.status).toBe(202);
        const second = await fetch(`${app.url}/slow`, { method: 'POST', headers: { 'x-user': 'a' } });
        expect(second.status, framework).toBe(503);
        expect(second.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
        expect(second.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(store.size).toBe(1);
      } finally {
        await app.close();
        await jobs.close({ timeoutMs: 10 });
      }
    }
  });
});
