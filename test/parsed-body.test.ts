// A body the framework already parsed (express.json(), Fastify's parser, a Koa body parser) is held to the same
// size limit as one this library reads: its declared Content-Length, or, when it declares none (chunked) or is
// compressed, the size of the parsed body serialised again.
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import express from 'express';
import express4 from 'express4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJobs } from '../src/core/runtime.js';
import { respondAsync } from '../src/express.js';
import { MemoryStore } from '../src/stores/memory.js';

const LIMIT = 1024;
let url: URL;
let close: () => Promise<void>;

beforeAll(async () => {
  const jobs = createJobs({ store: new MemoryStore(), worker: false });
  const job = jobs.define('echo', async () => null);
  const ra = respondAsync(jobs, { maxBodyBytes: LIMIT });
  const app = express();
  // The app's own parser allows far more than respond-async does, and inflates gzip bodies.
  app.use(express.json({ limit: '10mb' }));
  app.post('/echo', ra.route(job));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/echo`);
  close = () => new Promise((resolve) => server.close(() => resolve()));
});

afterAll(() => close());

/** POST `body`; `chunked` sends it without a Content-Length. */
function post(
  body: Buffer,
  headers: Record<string, string> = {},
  chunked = false,
): Promise<{ status: number; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(chunked ? {} : { 'content-length': body.length }),
        ...headers,
      },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] }));
    });
    req.on('error', reject);
    if (chunked) {
      req.write(body.subarray(0, 10));
      req.end(body.subarray(10));
    } else {
      req.end(body);
    }
  });
}

const json = (value: string) => Buffer.from(JSON.stringify({ value }));

describe('a body parsed by the framework', () => {
  it('within the limit is accepted, with or without a Content-Length', async () => {
    expect((await post(json('x'.repeat(LIMIT - 100)))).status).toBe(202);
    expect((await post(json('x'.repeat(LIMIT - 100)), {}, true)).status).toBe(202);
  });

  it('over the limit is 413 problem+json, whether it declares its length or comes chunked', async () => {
    for (const chunked of [false, true]) {
      const res = await post(json('x'.repeat(LIMIT + 100)), {}, chunked);
      expect(res.status).toBe(413);
      expect(res.type).toMatch(/^application\/problem\+json/);
    }
  });

  it('compressed, is measured as parsed: a small gzip that inflates past the limit is 413', async () => {
    const body = gzipSync(json('x'.repeat(20 * LIMIT)));
    expect(body.length).toBeLessThan(LIMIT);
    const res = await post(body, { 'content-encoding': 'gzip' });
    expect(res.status).toBe(413);
    expect((await post(gzipSync(json('small')), { 'content-encoding': 'gzip' })).status).toBe(202);
  });

  it('counts whitespace it was sent with, as a body read by respond-async itself would', async () => {
    // 1 200 bytes on the wire, 30 once parsed and serialised again.
    const padded = Buffer.from(`{"value": "small"${' '.repeat(1200)}}`);
    expect((await post(padded)).status).toBe(413);
  });
});

describe('a body a parser of the app skipped', () => {
  // Express 4's express.json() (body-parser 1) leaves `req.body = {}` on a request it does not parse (another media
  // type, no body) without reading it: that placeholder is not the body.
  let base: string;
  let jobs: ReturnType<typeof createJobs>;
  let closeApp: () => Promise<void>;

  beforeAll(async () => {
    jobs = createJobs({ store: new MemoryStore(), worker: false });
    const job = jobs.define('echo', async () => null);
    const ra = respondAsync(jobs);
    const app = express4();
    app.use(express4.json());
    app.post('/echo', ra.route(job) as unknown as express4.RequestHandler);
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    closeApp = () => new Promise((resolve) => server.close(() => resolve()));
  });
  afterAll(() => closeApp());

  const bodyOf = async (res: Response) => (await jobs.get((await res.json()).jobId))?.input;

  it('is read by respond-async itself: an application/*+json body reaches the job', async () => {
    const res = await fetch(`${base}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/merge-patch+json' },
      body: '{"value":"kept"}',
    });
    expect(res.status).toBe(202);
    expect(await bodyOf(res)).toMatchObject({ body: { value: 'kept' } });
  });

  it('no body at all is the empty object, and a non-JSON body is still 415', async () => {
    const empty = await fetch(`${base}/echo`, { method: 'POST' });
    expect(empty.status).toBe(202);
    expect(await bodyOf(empty)).toMatchObject({ body: {} });
    const text = await fetch(`${base}/echo`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
    expect(text.status).toBe(415);
    expect(text.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });
});
