// A wrapped route validates its request with any Standard Schema (zod 4, valibot 1, arktype 2), the library's way on
// every adapter: an invalid body is 400 problem+json with `errors` [{ pointer, message }] and nothing is stored; a
// valid one is accepted and the handler receives the schema's output (defaults applied).
import { type } from 'arktype';
import * as v from 'valibot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createJobs, type Jobs } from '../src/core/runtime.js';
import type { RequestSnapshot } from '../src/core/types.js';
import type { StandardSchemaV1 } from '../src/http/standard-schema.js';
import { jsonPointer, validateRequest } from '../src/http/validation.js';
import { MemoryStore } from '../src/stores/memory.js';
import { FRAMEWORKS, type RunningApp, startApp } from './helpers/apps.js';

type Report = { steps: number; label: string; tags?: Record<string, string> };

const schemas = {
  zod: z.object({
    steps: z.number().int().min(1).max(1000),
    label: z.string().default('report'),
    tags: z.record(z.string(), z.string()).optional(),
  }),
  valibot: v.object({
    steps: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1000)),
    label: v.optional(v.string(), 'report'),
    tags: v.optional(v.record(v.string(), v.string())),
  }),
  arktype: type({
    steps: '1 <= number.integer <= 1000',
    label: 'string = "report"',
    'tags?': 'Record<string, string>',
  }),
};
const LIBRARIES = ['zod', 'valibot', 'arktype'] as const;

const store = new MemoryStore();
let jobs: Jobs;
const apps: Partial<Record<(typeof FRAMEWORKS)[number], RunningApp>> = {};

beforeAll(async () => {
  jobs = createJobs({ store });
  const routes = LIBRARIES.map((library) => ({
    path: `/${library}`,
    job: jobs.define(library, async (input: RequestSnapshot<Report>) => input),
    options: {
      schema: {
        body: schemas[library],
        // The query too (zod for all three routes: the query is not what differs here).
        query: z.object({ dryRun: z.enum(['true', 'false']).optional() }),
      },
    },
  }));
  for (const framework of FRAMEWORKS) apps[framework] = await startApp(framework, { jobs, routes, anonymous: true });
});

afterAll(async () => {
  for (const app of Object.values(apps)) await app?.close();
  await jobs.close();
});

async function post(framework: (typeof FRAMEWORKS)[number], path: string, body: unknown) {
  const res = await fetch(`${apps[framework]!.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

describe.each(LIBRARIES)('a route validated by a %s schema', (library) => {
  it('answers an invalid body 400 problem+json with errors [{ pointer, message }], alike on every adapter, and stores nothing', async () => {
    const before = store.size;
    const answers = [];
    for (const framework of FRAMEWORKS)
      answers.push(await post(framework, `/${library}`, { steps: 0, tags: { 'a/b~c': 5 } }));
    expect(store.size).toBe(before);
    // The same bytes from Express, Fastify, Koa and fetch: the validation is the library's, never the framework's.
    for (const answer of answers) expect(answer).toEqual(answers[0]);
    const [{ status, type: contentType, text }] = answers;
    expect(status).toBe(400);
    expect(contentType).toBe('application/problem+json; charset=utf-8');
    const doc = JSON.parse(text);
    expect(doc).toMatchObject({ status: 400, code: 'ERR_RESPOND_ASYNC_INVALID_REQUEST' });
    // JSON Pointers into the body, `/` and `~` escaped (RFC 6901).
    expect(doc.errors.map((e: { pointer: string }) => e.pointer)).toEqual(['/steps', '/tags/a~1b~0c']);
    for (const error of doc.errors) {
      expect(Object.keys(error)).toEqual(['pointer', 'message']);
      expect(typeof error.message).toBe('string');
    }
  });

  it('answers a missing body 400 (the empty object is validated), storing nothing', async () => {
    const before = store.size;
    const res = await fetch(`${apps.express!.url}/${library}`, { method: 'POST' });
    expect(res.status).toBe(400);
    expect((await res.json()).errors[0].pointer).toBe('/steps');
    expect(store.size).toBe(before);
  });

  it('accepts a valid body on every adapter: 202, and the handler receives the validated value', async () => {
    for (const framework of FRAMEWORKS) {
      const answer = await post(framework, `/${library}`, { steps: 3 });
      expect(answer.status).toBe(202);
      const { jobId } = JSON.parse(answer.text);
      const done = await jobs.waitFor(jobId, 5000);
      expect(done?.status).toBe('complete');
      // `label` is the schema's default: the input holds the schema's output, not the raw body.
      expect((done?.result as RequestSnapshot<Report> | undefined)?.body).toEqual({ steps: 3, label: 'report' });
    }
  });
});

describe('query validation', () => {
  it('reports an invalid query parameter with in: "query", and stores nothing', async () => {
    const before = store.size;
    const res = await fetch(`${apps.koa!.url}/zod?dryRun=maybe`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"steps":1}',
    });
    expect(res.status).toBe(400);
    const doc = await res.json();
    expect(doc.errors).toHaveLength(1);
    expect(doc.errors[0]).toMatchObject({ in: 'query', pointer: '/dryRun' });
    expect(store.size).toBe(before);
  });
});

describe('validateRequest', () => {
  it('awaits a schema whose validate returns a promise, and keeps its output', async () => {
    const slow: StandardSchemaV1<unknown, { n: number }> = {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: async (value) =>
          typeof (value as { n?: unknown }).n === 'number'
            ? { value: { n: (value as { n: number }).n * 2 } }
            : { issues: [{ message: 'n must be a number', path: [{ key: 'n' }] }] },
      },
    };
    expect(await validateRequest({ body: slow }, { n: 2 }, {}, {})).toEqual({
      ok: true,
      body: { n: 4 },
      params: {},
      query: {},
    });
    const refused = await validateRequest({ body: slow }, {}, {}, {});
    expect(refused.ok).toBe(false);
    if (!refused.ok)
      expect(JSON.parse(refused.response.body!).errors).toEqual([{ pointer: '/n', message: 'n must be a number' }]);
  });
});

describe('jsonPointer', () => {
  it('escapes ~ and / and takes { key } segments', () => {
    expect(jsonPointer(undefined)).toBe('');
    expect(jsonPointer(['a', 0, { key: 'b/c' }, '~x'])).toBe('/a/0/b~1c/~0x');
  });
});
