// Fastify with @fastify/swagger: the wrapped routes and the status endpoints carry route schemas for documentation,
// so the app's own OpenAPI 3.1 document lists them without extra code (and validates); Fastify neither validates nor
// serializes with those schemas, so the answers stay the library's.
import swagger from '@fastify/swagger';
import { Validator } from '@seriousme/openapi-schema-validator';
import { toJsonSchema } from '@valibot/to-json-schema';
import Fastify from 'fastify';
import * as v from 'valibot';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { RequestSnapshot } from '../src/core/types.js';
import { respondAsync } from '../src/fastify.js';
import { createJobs, MemoryStore, type StandardSchemaV1 } from '../src/index.js';

type Json = Record<string, any>;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

// The README's "Fastify and @fastify/swagger" snippet.
const ReportBody = z.object({ steps: z.number().int().min(1).max(1000), label: z.string().default('report') });
const ReportResult = z.object({ steps: z.number().int() });
const ExportBody = v.object({ rows: v.pipe(v.number(), v.integer(), v.minValue(1)) });

async function documentedApp(options: { owner?: boolean; webhooks?: boolean } = {}) {
  const jobs = createJobs({ store: new MemoryStore() });
  cleanups.push(() => jobs.close());
  const report = jobs.define(
    'report',
    async (req: RequestSnapshot<StandardSchemaV1.InferOutput<typeof ReportBody>>) => ({ steps: req.body.steps }),
  );
  const exporter = jobs.define('export', async () => ({ done: true }));
  const app = Fastify();
  cleanups.push(() => app.close());
  await app.register(swagger, { openapi: { openapi: '3.1.0', info: { title: 'Reports API', version: '1.0.0' } } });
  const ra = respondAsync(jobs, {
    owner: options.owner ? (request) => request.headers['x-user']?.toString() : undefined,
    webhooks: options.webhooks ? { secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' } : undefined,
    // valibot gives no JSON Schema itself: @valibot/to-json-schema converts it.
    toJsonSchema: (schema) =>
      schema['~standard'].vendor === 'valibot' ? toJsonSchema(schema as v.GenericSchema) : undefined,
  });
  await app.register(
    async (api) => {
      await api.register(ra.plugin);
      api.post('/reports', ra.route(report, { schema: { body: ReportBody, result: ReportResult } }));
      api.post('/exports/:kind', ra.route(exporter, { schema: { body: ExportBody } }));
      // The operator's API is not part of the app's public document.
      await api.register(ra.admin({ authorize: () => true }), { prefix: '/admin' });
    },
    { prefix: '/api/v1' },
  );
  await app.ready();
  return { app, doc: app.swagger() as unknown as Json };
}

describe('@fastify/swagger', () => {
  it('lists the wrapped routes and the status endpoints, in a document that validates as OpenAPI 3.1', async () => {
    const { doc } = await documentedApp({ owner: true, webhooks: true });
    expect(doc.openapi).toBe('3.1.0');
    const result = await new Validator().validate(doc as never);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/api/v1/exports/{kind}',
      '/api/v1/jobs',
      '/api/v1/jobs/{jobId}',
      '/api/v1/jobs/{jobId}/events',
      '/api/v1/jobs/{jobId}/result',
      '/api/v1/reports',
    ]);
    // Only the operations the contract documents: the methods that answer 405 are hidden.
    expect(Object.keys(doc.paths['/api/v1/jobs/{jobId}']).sort()).toEqual(['delete', 'get']);
    expect(Object.keys(doc.paths['/api/v1/jobs/{jobId}/events'])).toEqual(['get']);
    expect(Object.keys(doc.paths['/api/v1/jobs/{jobId}/result'])).toEqual(['get']);
    expect(Object.keys(doc.paths['/api/v1/jobs'])).toEqual(['get']);
  });

  it('documents a wrapped route as openapiDocument does: body schema, headers, 202 with Location, problem+json', async () => {
    const { doc } = await documentedApp({ webhooks: true });
    const post = doc.paths['/api/v1/reports'].post;
    expect(post.operationId).toBe('submit-report');
    expect(post.requestBody.content['application/json'].schema).toMatchObject({
      type: 'object',
      properties: { steps: { type: 'integer', minimum: 1, maximum: 1000 }, label: { type: 'string' } },
      required: ['steps'],
    });
    expect(post.parameters.map((p: Json) => [p.in, p.name])).toEqual([
      ['header', 'Prefer'],
      ['header', 'Idempotency-Key'],
    ]);
    const accepted = post.responses['202'];
    expect(Object.keys(accepted.headers)).toEqual(expect.arrayContaining(['Location', 'Retry-After']));
    expect(accepted.content['application/json'].schema.required).toEqual(['jobId', 'status', 'statusUrl', 'createdAt']);
    // With Prefer: wait, this route's result schema.
    expect(post.responses['200'].content['application/json'].schema.properties.result).toMatchObject({
      type: 'object',
      properties: { steps: { type: 'integer' } },
    });
    for (const status of ['400', '413', '415', '422', '429', '503']) {
      expect(Object.keys(post.responses[status].content)).toEqual(['application/problem+json']);
    }
    expect(Object.keys(post.callbacks.jobFinished)).toEqual(['{$request.body#/callbackUrl}']);
    // The valibot body through the converter, the path parameter from the URL.
    const exporter = doc.paths['/api/v1/exports/{kind}'].post;
    expect(exporter.requestBody.content['application/json'].schema).toMatchObject({
      properties: { rows: { type: 'integer', minimum: 1 } },
    });
    expect(exporter.parameters).toContainEqual(expect.objectContaining({ in: 'path', name: 'kind', required: true }));
  });

  it('documents status (200, 303, 404), cancel (200, 202, 409), events (text/event-stream), with every result', async () => {
    const { doc } = await documentedApp();
    const status = doc.paths['/api/v1/jobs/{jobId}'];
    expect(Object.keys(status.get.responses)).toEqual(expect.arrayContaining(['200', '303', '404']));
    expect(Object.keys(status.delete.responses)).toEqual(expect.arrayContaining(['200', '202', '404', '409']));
    expect(status.get.parameters).toEqual([expect.objectContaining({ in: 'path', name: 'jobId', required: true })]);
    expect(Object.keys(doc.paths['/api/v1/jobs/{jobId}/events'].get.responses['200'].content)).toEqual([
      'text/event-stream',
    ]);
    // The status document's result: open, since the export route has no result schema (registered after the plugin).
    const result = status.get.responses['200'].content['application/json'].schema.properties.result;
    expect(result).toEqual({ description: expect.any(String) });
  });

  it('takes the results of routes registered after the plugin into the status document', async () => {
    const jobs = createJobs({ store: new MemoryStore() });
    cleanups.push(() => jobs.close());
    const report = jobs.define('report', async () => ({ steps: 1 }));
    const app = Fastify();
    cleanups.push(() => app.close());
    await app.register(swagger, { openapi: { openapi: '3.1.0', info: { title: 'T', version: '1' } } });
    const ra = respondAsync(jobs);
    await app.register(ra.plugin);
    app.post('/reports', ra.route(report, { schema: { result: ReportResult } }));
    await app.ready();
    const doc = app.swagger() as unknown as Json;
    const get = doc.paths['/jobs/{jobId}'].get;
    expect(get.responses['200'].content['application/json'].schema.properties.result).toMatchObject({
      type: 'object',
      properties: { steps: { type: 'integer' } },
    });
  });

  it('validates with the library, not with Fastify: 400 problem+json with errors, and an unknown header passes', async () => {
    const { app } = await documentedApp();
    const bad = await app.inject({ method: 'POST', url: '/api/v1/reports', payload: { steps: 0 } });
    expect([bad.statusCode, bad.headers['content-type']]).toEqual([400, 'application/problem+json; charset=utf-8']);
    expect(bad.json()).toMatchObject({
      code: 'ERR_RESPOND_ASYNC_INVALID_REQUEST',
      errors: [{ pointer: '/steps', message: expect.any(String) }],
    });
    // The documented Idempotency-Key is a string; a malformed one is the library's 400, not Fastify's.
    const key = await app.inject({
      method: 'POST',
      url: '/api/v1/reports',
      headers: { 'idempotency-key': '???' },
      payload: { steps: 1 },
    });
    expect(key.statusCode).toBe(400);
    expect(key.json().code).toMatch(/^ERR_RESPOND_ASYNC_/);
    const ok = await app.inject({ method: 'POST', url: '/api/v1/reports', payload: { steps: 2 } });
    expect(ok.statusCode).toBe(202);
  });
});
