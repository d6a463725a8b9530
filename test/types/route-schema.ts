// Type test: a route's body schema and its job's input must agree. With the default input (the request snapshot), a
// `schema.body` whose output is not the job's `RequestSnapshot<Body>` body does not compile (`@ts-expect-error`).
import { type } from 'arktype';
import * as v from 'valibot';
import { z } from 'zod';
import type { JobDefinition } from '../../src/core/runtime.js';
import type { RequestSnapshot } from '../../src/core/types.js';
import type { ExpressRespondAsync } from '../../src/express.js';
import type { FastifyRespondAsync } from '../../src/fastify.js';
import type { FetchRespondAsync } from '../../src/fetch.js';
import type { StandardSchemaV1 } from '../../src/http/standard-schema.js';
import type { KoaRespondAsync } from '../../src/koa.js';

declare const express: ExpressRespondAsync;
declare const fastify: FastifyRespondAsync;
declare const koa: KoaRespondAsync;
declare const fetchAdapter: FetchRespondAsync;

const Report = z.object({ steps: z.number().int(), label: z.string().default('report') });
const ReportV = v.object({ steps: v.number(), label: v.optional(v.string(), 'report') });
const ReportA = type({ steps: 'number.integer', label: 'string = "report"' });
const Other = z.object({ steps: z.string() });

// The job's input type, inferred from the schema.
type ReportInput = RequestSnapshot<StandardSchemaV1.InferOutput<typeof Report>>;
declare const report: JobDefinition<ReportInput>;
declare const wrong: JobDefinition<RequestSnapshot<{ steps: number; label: number }>>;
declare const custom: JobDefinition<{ userId: string }>;
declare const plain: JobDefinition<RequestSnapshot>;

// Agreeing schemas compile, from any of the three libraries.
express.route(report, { schema: { body: Report } });
express.route(report, { schema: { body: ReportV } });
express.route(report, { schema: { body: ReportA } });
fastify.route(report, { schema: { body: Report, query: z.object({ dryRun: z.string().optional() }) } });
koa.post('/reports', report, { schema: { body: Report } });
fetchAdapter.route(report, { schema: { body: Report, result: z.object({ ok: z.boolean() }) } });
// A snapshot with an unknown body takes any schema; so does a custom input (its `input()` builds the job input).
express.route(plain, { schema: { body: Other } });
express.route(custom, { input: () => ({ userId: 'u' }), schema: { body: Other } });

// @ts-expect-error the schema's output ({ steps: string }) is not the job's body type
express.route(report, { schema: { body: Other } });
// @ts-expect-error the job expects label: number, the schema gives a string
express.route(wrong, { schema: { body: Report } });
// @ts-expect-error the same with valibot
fastify.route(wrong, { schema: { body: ReportV } });
// @ts-expect-error the same with arktype
koa.route(wrong, { schema: { body: ReportA } });
// @ts-expect-error and on koa.post and fetch
koa.post('/reports', report, { schema: { body: Other } });
// @ts-expect-error fetch
fetchAdapter.route(report, { schema: { body: Other } });
