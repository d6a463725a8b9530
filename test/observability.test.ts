// OpenTelemetry with the real SDK 2.x: one trace from the HTTP request (server span) through `send` to every
// attempt's `process` span, on each framework, across a SQLite restart and across processes on PostgreSQL; metrics.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context, metrics, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebhookDeliveries } from '../src/http/webhooks.js';
import { createJobs, type Jobs } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { startApp } from './helpers/apps.js';
import { pgUrl, schemas } from './helpers/postgres.js';
import { sleep } from './helpers/time.js';

const exporter = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const reader = new PeriodicExportingMetricReader({
  exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
  exportIntervalMillis: 3_600_000,
});
const meterProvider = new MeterProvider({ readers: [reader] });
const http = new HttpInstrumentation();
const tracer = () => trace.getTracer('test');
const dirs: string[] = [];
const pg = schemas('otel');

beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(tracerProvider);
  metrics.setGlobalMeterProvider(meterProvider);
  http.setTracerProvider(tracerProvider);
  http.enable();
  // The instrumentation patches `http` when it is next required: the servers below then get SERVER spans.
  createRequire(import.meta.url)('node:http');
});

afterAll(async () => {
  http.disable();
  await tracerProvider.shutdown();
  await meterProvider.shutdown();
  trace.disable();
  metrics.disable();
  context.disable();
  propagation.disable();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await pg.dropAll();
});

/** The finished spans of one trace, once `done` holds for them (within 10 s). */
async function spansOf(traceId: string, done: (spans: ReadableSpan[]) => boolean): Promise<ReadableSpan[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const spans = exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId);
    if (done(spans) || Date.now() > deadline) return spans;
    await sleep(20);
  }
}

const processSpans = (spans: ReadableSpan[]) =>
  spans.filter((s) => s.kind === SpanKind.CONSUMER).sort((a, b) => attemptOf(a) - attemptOf(b));
const attemptOf = (span: ReadableSpan) => Number(span.attributes['respond_async.job.attempt']);

/** A job failing on its first attempt and completing on its second, retried at once. */
function defineFlaky(jobs: Jobs) {
  return jobs.define(
    'flaky',
    async (_input, ctx) => {
      if (ctx.attempt === 1) throw new Error('first attempt fails');
      return { ok: true };
    },
    { attempts: 3, backoff: () => 0 },
  );
}

describe.each(['express', 'fastify', 'koa'] as const)('one trace from an HTTP request on %s', (framework) => {
  it('holds the server span, send, and a process span per attempt (retrying, then complete)', async () => {
    exporter.reset();
    const jobs = createJobs({ pollIntervalMs: 20, logger: { error() {} } });
    const flaky = defineFlaky(jobs);
    const app = await startApp(framework, { jobs, routes: [{ path: '/reports', job: flaky }], anonymous: true });
    try {
      const res = await fetch(`${app.url}/reports`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(res.status).toBe(202);
      const [job] = await jobs.list(null, 1);
      expect((await jobs.waitFor(job!.id, 10_000))?.status).toBe('complete');

      const server = exporter
        .getFinishedSpans()
        .find((s) => s.kind === SpanKind.SERVER && s.attributes['url.path'] === '/reports');
      expect(server, 'the HTTP instrumentation made a server span').toBeDefined();
      const spans = await spansOf(server!.spanContext().traceId, (all) => processSpans(all).length >= 2);

      const send = spans.find((s) => s.kind === SpanKind.PRODUCER);
      expect(send?.name).toBe('send flaky');
      expect(send?.parentSpanContext?.spanId).toBe(server!.spanContext().spanId);
      expect(send?.attributes).toMatchObject({
        'messaging.system': 'respond-async',
        'messaging.operation.type': 'send',
        'messaging.destination.name': 'flaky',
        'messaging.message.id': job!.id,
      });
      const attempts = processSpans(spans);
      expect(attempts.map((s) => [s.name, attemptOf(s), s.attributes['respond_async.job.outcome']])).toEqual([
        ['process flaky', 1, 'retrying'],
        ['process flaky', 2, 'complete'],
      ]);
      for (const span of attempts) {
        expect(span.parentSpanContext?.spanId).toBe(send!.spanContext().spanId);
        expect(span.links.map((link) => link.context.spanId)).toEqual([send!.spanContext().spanId]);
        expect(span.attributes).toMatchObject({
          'messaging.system': 'respond-async',
          'messaging.operation.type': 'process',
          'messaging.destination.name': 'flaky',
          'messaging.message.id': job!.id,
        });
      }
      expect(attempts[0]!.status.code).toBe(SpanStatusCode.ERROR);
      expect(attempts[0]!.events.map((e) => e.name)).toContain('exception');
      expect(attempts[1]!.status.code).not.toBe(SpanStatusCode.ERROR);
    } finally {
      await app.close();
      await jobs.close();
    }
  });
});

describe('the stored trace context', () => {
  it('survives a restart on SQLite: the process span after reopening is in the request trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ra-otel-'));
    dirs.push(dir);
    const path = join(dir, 'jobs.db');
    const api = createJobs({ store: new SqliteStore({ path }), worker: false });
    api.define('report', async () => 'done');
    const { requestTrace, id } = await tracer().startActiveSpan('request', async (span) => {
      const { job } = await api.submit('report', { n: 1 });
      span.end();
      return { requestTrace: span.spanContext().traceId, id: job.id };
    });
    await api.close();

    const worker = createJobs({ store: new SqliteStore({ path }), pollIntervalMs: 20 });
    worker.define('report', async () => 'done');
    try {
      expect((await worker.waitFor(id, 10_000))?.status).toBe('complete');
      const spans = await spansOf(requestTrace, (all) => processSpans(all).length >= 1);
      const send = spans.find((s) => s.kind === SpanKind.PRODUCER);
      const [run] = processSpans(spans);
      expect(run?.attributes['messaging.message.id']).toBe(id);
      expect(run?.parentSpanContext?.spanId).toBe(send?.spanContext().spanId);
      expect(run?.attributes['respond_async.job.outcome']).toBe('complete');
    } finally {
      await worker.close();
    }
  });

  it('crosses processes on PostgreSQL: a worker process exports its process span in the API trace', async () => {
    const schema = pg.next();
    const api = createJobs({ store: new PostgresStore({ connectionString: pgUrl(), schema }), worker: false });
    api.define('report', async () => 'done');
    await api.ready();
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/otel-pg-worker.ts', pgUrl(), schema], {
      cwd: join(import.meta.dirname, '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
      });
      const { requestTrace, sendSpan, id } = await tracer().startActiveSpan('request', async (span) => {
        const { job } = await api.submit('report', {});
        span.end();
        const send = exporter.getFinishedSpans().find((s) => s.attributes['messaging.message.id'] === job.id);
        return { requestTrace: span.spanContext().traceId, sendSpan: send?.spanContext().spanId, id: job.id };
      });
      expect((await api.waitFor(id, 15_000))?.status).toBe('complete');
      const deadline = Date.now() + 10_000;
      while (!out.includes('"process report"') && Date.now() < deadline) await sleep(20);
      const exported = out
        .split('\n')
        .filter((line) => line.startsWith('SPAN '))
        .map((line) => JSON.parse(line.slice(5)) as Record<string, unknown>);
      expect(exported).toContainEqual(
        expect.objectContaining({
          name: 'process report',
          traceId: requestTrace,
          parentSpanId: sendSpan,
          messageId: id,
          outcome: 'complete',
        }),
      );
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      await api.close();
    }
  });
});

describe('webhook deliveries', () => {
  it('are CLIENT spans under the job trace, with the HTTP client attributes, and carry their context', async () => {
    const received: Array<string | undefined> = [];
    const { createServer } = createRequire(import.meta.url)('node:http') as typeof import('node:http');
    const receiver = createServer((req, res) => {
      received.push(req.headers.traceparent as string | undefined);
      req.resume();
      req.on('end', () => res.writeHead(204).end());
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
    const jobs = createJobs({ pollIntervalMs: 20 });
    jobs.define('hooked', async () => 'done');
    startWebhookDeliveries(jobs, {
      webhooks: { secret: `whsec_${randomBytes(24).toString('base64')}`, allowOrigins: [origin] },
      statusUrl: (id) => `/jobs/${id}`,
      pollIntervalMs: 20,
    });
    try {
      const { requestTrace, id } = await tracer().startActiveSpan('request', async (span) => {
        const { job } = await jobs.submit('hooked', {}, { callbackUrl: `${origin}/hook` });
        span.end();
        return { requestTrace: span.spanContext().traceId, id: job.id };
      });
      const spans = await spansOf(requestTrace, (all) =>
        all.some((s) => s.kind === SpanKind.CLIENT && s.attributes['http.response.status_code'] !== undefined),
      );
      const send = spans.find((s) => s.kind === SpanKind.PRODUCER && s.attributes['messaging.message.id'] === id);
      const client = spans.find((s) => s.kind === SpanKind.CLIENT && s.attributes['url.full'] === `${origin}/hook`);
      expect(client?.name).toBe('POST');
      expect(client?.parentSpanContext?.spanId).toBe(send?.spanContext().spanId);
      expect(client?.attributes).toMatchObject({
        'http.request.method': 'POST',
        'url.full': `${origin}/hook`,
        'http.response.status_code': 204,
      });
      expect(received[0]).toBe(`00-${requestTrace}-${client?.spanContext().spanId}-01`);
      const { resourceMetrics } = await reader.collect();
      const deliveries = resourceMetrics.scopeMetrics
        .flatMap((scope) => scope.metrics)
        .find((m) => m.descriptor.name === 'respond_async.webhook.deliveries');
      expect(
        deliveries?.dataPoints.find((p) => p.attributes['respond_async.webhook.outcome'] === 'delivered')?.value,
      ).toBeGreaterThanOrEqual(1);
    } finally {
      await jobs.close();
      await new Promise((resolve) => receiver.close(resolve));
    }
  });
});

describe('metrics', () => {
  it('count submitted and finished jobs by outcome, running jobs, and time waits and runs', async () => {
    const jobs = createJobs({ pollIntervalMs: 20, logger: { error() {} } });
    const ok = jobs.define('m-ok', async () => 1);
    const bad = jobs.define(
      'm-bad',
      async () => {
        throw new Error('no');
      },
      { attempts: 1 },
    );
    const slow = jobs.define(
      'm-slow',
      (_input, ctx) =>
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
    );
    try {
      const ids = [];
      for (let i = 0; i < 3; i += 1) ids.push((await jobs.submit(ok, {})).job.id);
      for (let i = 0; i < 2; i += 1) ids.push((await jobs.submit(bad, {})).job.id);
      const { job: toCancel } = await jobs.submit(slow, {});
      while ((await jobs.get(toCancel.id))?.status !== 'processing') await sleep(10);
      await jobs.cancel(toCancel.id);
      for (const id of [...ids, toCancel.id]) await jobs.waitFor(id, 10_000);
      await sleep(50);

      const { resourceMetrics } = await reader.collect();
      const all = resourceMetrics.scopeMetrics
        .filter((scope) => scope.scope.name === 'respond-async')
        .flatMap((scope) => scope.metrics);
      const points = (name: string) =>
        (all.find((m) => m.descriptor.name === name)?.dataPoints ?? []) as DataPoint<number | Histogram>[];
      const sum = (name: string, attributes: Record<string, string>) =>
        points(name)
          .filter((p) => Object.entries(attributes).every(([k, v]) => p.attributes[k] === v))
          .reduce((n, p) => n + (typeof p.value === 'number' ? p.value : p.value.count), 0);

      expect(all.find((m) => m.descriptor.name === 'respond_async.jobs.submitted')?.descriptor.unit).toBe('{job}');
      expect(sum('respond_async.jobs.submitted', { 'respond_async.job.name': 'm-ok' })).toBe(3);
      expect(sum('respond_async.jobs.submitted', { 'respond_async.job.name': 'm-bad' })).toBe(2);
      expect(
        sum('respond_async.jobs.finished', {
          'respond_async.job.name': 'm-ok',
          'respond_async.job.outcome': 'complete',
        }),
      ).toBe(3);
      expect(
        sum('respond_async.jobs.finished', {
          'respond_async.job.name': 'm-bad',
          'respond_async.job.outcome': 'failed',
        }),
      ).toBe(2);
      expect(
        sum('respond_async.jobs.finished', {
          'respond_async.job.name': 'm-slow',
          'respond_async.job.outcome': 'canceled',
        }),
      ).toBe(1);
      for (const name of ['m-ok', 'm-bad', 'm-slow']) {
        expect(sum('respond_async.jobs.running', { 'respond_async.job.name': name })).toBe(0);
      }
      expect(sum('respond_async.job.wait.duration', { 'respond_async.job.name': 'm-ok' })).toBe(3);
      expect(sum('respond_async.job.run.duration', { 'respond_async.job.name': 'm-bad' })).toBe(2);
      const wait = all.find((m) => m.descriptor.name === 'respond_async.job.wait.duration');
      expect(wait?.descriptor.unit).toBe('s');
    } finally {
      await jobs.close();
    }
  });
});

describe('lifecycle events', () => {
  it('tell submitted, started, progress, retrying, completed, failed and canceled; a throwing listener is logged', async () => {
    const logged: string[] = [];
    const jobs = createJobs({ pollIntervalMs: 20, logger: { error: (message) => logged.push(message) } });
    const flaky = defineFlaky(jobs);
    const reporting = jobs.define('reporting', async (_input, ctx) => {
      await ctx.progress(50, 'half');
      return 'ok';
    });
    const bad = jobs.define(
      'bad',
      async () => {
        throw Object.assign(new Error('nope'), { expose: true });
      },
      { attempts: 1 },
    );
    const slow = jobs.define(
      'slow',
      (_input, ctx) =>
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
    );
    const seen: Array<[string, string, number]> = [];
    const events = ['submitted', 'started', 'progress', 'completed', 'retrying', 'failed', 'canceled'] as const;
    for (const event of events) jobs.on(event, (e) => seen.push([event, e.name, e.attempt]));
    jobs.on('completed', () => {
      throw new Error('listener bug');
    });
    let failure: { error: { message: string }; runMs: number } | undefined;
    const stop = jobs.on('failed', (e) => {
      failure = e;
    });
    try {
      const ids = [
        (await jobs.submit(flaky, {})).job.id,
        (await jobs.submit(reporting, {})).job.id,
        (await jobs.submit(bad, {})).job.id,
      ];
      const { job: running } = await jobs.submit(slow, {});
      while ((await jobs.get(running.id))?.status !== 'processing') await sleep(10);
      await jobs.cancel(running.id);
      for (const id of [...ids, running.id]) expect((await jobs.waitFor(id, 10_000))?.status).not.toBe('processing');
      await sleep(50);
      const of = (name: string) => seen.filter(([, n]) => n === name).map(([event, , attempt]) => [event, attempt]);
      expect(of('flaky')).toEqual([
        ['submitted', 0],
        ['started', 1],
        ['retrying', 1],
        ['started', 2],
        ['completed', 2],
      ]);
      expect(of('reporting')).toEqual([
        ['submitted', 0],
        ['started', 1],
        ['progress', 1],
        ['completed', 1],
      ]);
      expect(of('bad')).toEqual([
        ['submitted', 0],
        ['started', 1],
        ['failed', 1],
      ]);
      expect(of('slow')).toEqual([
        ['submitted', 0],
        ['started', 1],
        ['canceled', 1],
      ]);
      expect(failure?.error.message).toBe('nope');
      expect(failure?.runMs).toBeGreaterThanOrEqual(0);
      expect(logged.filter((line) => line.includes('"completed" listener threw'))).toHaveLength(2);
      stop();
      const { job: again } = await jobs.submit(bad, {});
      await jobs.waitFor(again.id, 10_000);
      await sleep(50);
      expect(of('bad').filter(([event]) => event === 'failed')).toHaveLength(2);
    } finally {
      await jobs.close();
    }
  });
});

describe('the logger', () => {
  const failing = (jobs: Jobs) =>
    jobs.define(
      'crash',
      async () => {
        throw new Error('boom');
      },
      { attempts: 1 },
    );

  it('a pino logger (child and bindings) gets fields first: job id, name, attempt, trace id and the error', async () => {
    const lines: Array<[Record<string, unknown>, string]> = [];
    const pinoLike = {
      error: (fields: Record<string, unknown>, message: string) => lines.push([fields, message]),
      warn: (fields: Record<string, unknown>, message: string) => lines.push([fields, message]),
      child: () => pinoLike,
      bindings: () => ({}),
    };
    const jobs = createJobs({ pollIntervalMs: 20, logger: pinoLike as never });
    try {
      const { requestTrace, id } = await tracer().startActiveSpan('request', async (span) => {
        const { job } = await jobs.submit(failing(jobs), {});
        span.end();
        return { requestTrace: span.spanContext().traceId, id: job.id };
      });
      await jobs.waitFor(id, 10_000);
      const [fields, message] = lines.find(([, m]) => m.includes('attempt 1 failed'))!;
      expect(message).toBe(`respond-async: job crash ${id} attempt 1 failed`);
      expect(fields).toMatchObject({ jobId: id, jobName: 'crash', attempt: 1, traceId: requestTrace });
      expect((fields.err as Error).message).toBe('boom');
    } finally {
      await jobs.close();
    }
  });

  it('console-like loggers keep (message, error); `logFormat` overrides the rule', async () => {
    const calls: unknown[][] = [];
    const consoleLike = { error: (...args: unknown[]) => calls.push(args) };
    const jobs = createJobs({ pollIntervalMs: 20, logger: consoleLike });
    const forced: unknown[][] = [];
    const other = createJobs({
      pollIntervalMs: 20,
      logFormat: 'fields',
      logger: { error: (...args: unknown[]) => forced.push(args) },
    });
    try {
      const { job } = await jobs.submit(failing(jobs), {});
      const { job: second } = await other.submit(failing(other), {});
      await jobs.waitFor(job.id, 10_000);
      await other.waitFor(second.id, 10_000);
      const line = calls.find(([m]) => String(m).includes('attempt 1 failed'))!;
      expect(line).toHaveLength(2);
      expect(line[0]).toMatch(
        new RegExp(`^respond-async: job crash ${job.id} attempt 1 failed \\(trace [0-9a-f]{32}\\)$`),
      );
      expect((line[1] as Error).message).toBe('boom');
      const structured = forced.find(([, m]) => String(m).includes('attempt 1 failed'))!;
      expect(structured[0]).toMatchObject({ jobId: second.id, jobName: 'crash', attempt: 1 });
    } finally {
      await jobs.close();
      await other.close();
    }
  });
});

describe('without @opentelemetry/api installed', () => {
  it('runs jobs, events and logs as usual (the API is an optional peer)', async () => {
    const script = `
      import { createRequire } from 'node:module';
      import { createJobs } from './src/index.ts';
      const jobs = createJobs({ pollIntervalMs: 20 });
      jobs.define('plain', async (_input, ctx) => { await ctx.progress(10); return 'ok'; });
      const events = [];
      jobs.on('completed', (e) => events.push(e.name));
      const { job } = await jobs.submit('plain', {});
      const done = await jobs.waitFor(job.id, 10000);
      await jobs.close();
      let loadable = true;
      try { createRequire(import.meta.url)('@opentelemetry/api'); } catch { loadable = false; }
      console.log(JSON.stringify({ status: done.status, events, traceContext: done.traceContext, loadable }));`;
    const child = spawn(
      process.execPath,
      ['--require', './test/fixtures/otel-hide-api.cjs', '--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code, err).toBe(0);
    expect(JSON.parse(out.trim())).toEqual({
      status: 'complete',
      events: ['plain'],
      traceContext: null,
      loadable: false,
    });
  }, 60_000);
});
