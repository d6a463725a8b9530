// openapiDocument(): the OpenAPI 3.1 document of wrapped routes and their status endpoints validates as OpenAPI 3.1,
// describes the HTTP contract (202 + Location, Prefer, Idempotency-Key, problem+json errors, status, cancel, events,
// list, the webhook callback), and carries the JSON Schema of zod 4 and valibot (via a converter) schemas.
import { Validator } from '@seriousme/openapi-schema-validator';
import { toJsonSchema } from '@valibot/to-json-schema';
import { type } from 'arktype';
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { mergeOpenApi, openapiDocument } from '../src/index.js';

// The README's "OpenAPI" snippet.
const Report = z.object({ steps: z.number().int().min(1).max(1000), label: z.string().default('report') });
const ReportResult = z.object({ steps: z.number().int() });
const Export = v.object({ rows: v.pipe(v.number(), v.integer(), v.minValue(1)) });

const doc = openapiDocument({
  info: { title: 'Reports API', version: '1.0.0' },
  routes: [
    { method: 'post', path: '/reports', job: 'report', schema: { body: Report, result: ReportResult } },
    { method: 'post', path: '/exports/:kind', job: 'export', schema: { body: Export } },
  ],
  basePath: '/jobs',
  owner: true,
  webhooks: true,
  // valibot gives no JSON Schema itself: @valibot/to-json-schema converts it.
  toJsonSchema: (schema) =>
    schema['~standard'].vendor === 'valibot' ? toJsonSchema(schema as v.GenericSchema) : undefined,
});

type Json = Record<string, any>;
const paths = doc.paths as Record<string, Json>;
const resolve = (node: Json): Json => {
  if (typeof node.$ref !== 'string') return node;
  const [, , section, name] = node.$ref.split('/');
  return (doc.components as Json)[section][name];
};

describe('openapiDocument', () => {
  it('validates as OpenAPI 3.1', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const result = await new Validator().validate(doc as never);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
  });

  it('documents a wrapped route: body schema from zod, 202 with Location and Retry-After, 200 on Prefer: wait, problem+json errors', () => {
    const post = paths['/reports'].post;
    expect(post.requestBody.required).toBe(true);
    expect(post.requestBody.content['application/json'].schema).toMatchObject({
      type: 'object',
      properties: { steps: { type: 'integer', minimum: 1, maximum: 1000 }, label: { type: 'string' } },
      required: ['steps'],
    });
    const names = post.parameters.map((p: Json) => resolve(p).name);
    expect(names).toEqual(['Prefer', 'Idempotency-Key']);
    const accepted = post.responses['202'];
    expect(Object.keys(accepted.headers)).toEqual(expect.arrayContaining(['Location', 'Retry-After']));
    expect(resolve(accepted.content['application/json'].schema).required).toEqual([
      'jobId',
      'status',
      'statusUrl',
      'createdAt',
    ]);
    expect(post.responses['200'].content['application/json']).toBeDefined();
    for (const status of ['400', '413', '415', '422', '429', '503']) {
      expect(Object.keys(resolve(post.responses[status]).content)).toEqual(['application/problem+json']);
    }
    const problem = resolve(resolve(post.responses['400']).content['application/problem+json'].schema);
    expect(problem.properties.errors.items.required).toEqual(['pointer', 'message']);
  });

  it('takes a valibot body through the converter, and a path parameter from an Express-style path', () => {
    const post = paths['/exports/{kind}'].post;
    expect(post.requestBody.content['application/json'].schema).toMatchObject({
      type: 'object',
      properties: { rows: { type: 'integer', minimum: 1 } },
      required: ['rows'],
    });
    expect(post.parameters[0]).toEqual({ name: 'kind', in: 'path', required: true, schema: { type: 'string' } });
  });

  it('documents the webhook as a callback with the Standard Webhooks headers', () => {
    const callback = paths['/reports'].post.callbacks.jobFinished['{$request.body#/callbackUrl}'].post;
    expect(callback.parameters.map((p: Json) => p.name)).toEqual([
      'webhook-id',
      'webhook-timestamp',
      'webhook-signature',
    ]);
  });

  it('documents status (200, 303, 404), cancel (200, 202, 409), events (text/event-stream) and the list', () => {
    const status = paths['/jobs/{jobId}'];
    expect(Object.keys(status.get.responses)).toEqual(expect.arrayContaining(['200', '303', '404']));
    expect(Object.keys(status.delete.responses)).toEqual(expect.arrayContaining(['200', '202', '404', '409']));
    const events = paths['/jobs/{jobId}/events'].get;
    expect(Object.keys(events.responses['200'].content)).toEqual(['text/event-stream']);
    for (const name of ['status', 'progress', 'complete', 'failed', 'canceled'])
      expect(events.description).toContain(`\`${name}\``);
    const list = paths['/jobs'].get;
    expect(list.parameters.map((p: Json) => p.name)).toEqual(['limit', 'cursor']);
    expect(list.responses['200'].headers.Link).toBeDefined();
  });

  it("gives the status document's result as the routes' result schemas, or open when a route has none", () => {
    const result = (schemaDoc: typeof doc) =>
      (schemaDoc.components as Json).schemas.RespondAsyncStatusDocument.properties.result;
    // The export route has no result schema: any result.
    expect(result(doc)).toEqual({ description: expect.any(String) });
    const typed = openapiDocument({
      routes: [{ path: '/reports', job: 'report', schema: { body: Report, result: ReportResult } }],
    });
    expect(result(typed)).toMatchObject({ type: 'object', properties: { steps: { type: 'integer' } } });
  });

  it('takes JSON Schema from the Standard JSON Schema interface (arktype) and leaves other schemas open', async () => {
    const fromArktype = openapiDocument({ routes: [{ path: '/a', schema: { body: type({ n: 'number' }) } }] });
    expect(paths['/reports'].post.requestBody.content['application/json'].schema.$schema).toBeUndefined();
    expect((fromArktype.paths as Json)['/a'].post.requestBody.content['application/json'].schema).toMatchObject({
      type: 'object',
      properties: { n: { type: 'number' } },
    });
    // valibot without a converter: an open object.
    const open = openapiDocument({ routes: [{ path: '/v', schema: { body: Export } }], owner: false });
    expect((open.paths as Json)['/v'].post.requestBody.content['application/json'].schema).toEqual({});
    expect((open.paths as Json)['/jobs']).toBeUndefined();
    expect((await new Validator().validate(open as never)).valid).toBe(true);
  });
});

describe('mergeOpenApi', () => {
  it("adds the routes and status endpoints to an app's own document, keeping its paths and info", async () => {
    const existing = {
      openapi: '3.1.0',
      info: { title: 'My API', version: '2.0.0' },
      paths: { '/health': { get: { responses: { 200: { description: 'OK' } } } } },
      components: { schemas: { Health: { type: 'object' } } },
    };
    const merged = mergeOpenApi(existing, doc);
    expect(merged.info.title).toBe('My API');
    expect(Object.keys(merged.paths)).toEqual(
      expect.arrayContaining(['/health', '/reports', '/jobs/{jobId}', '/jobs/{jobId}/events']),
    );
    expect(Object.keys(merged.components.schemas)).toEqual(expect.arrayContaining(['Health', 'RespondAsyncProblem']));
    expect(existing.paths).not.toHaveProperty('/reports');
    expect((await new Validator().validate(merged as never)).valid).toBe(true);
  });
});
