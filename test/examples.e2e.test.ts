// The examples, end to end: examples/{express,fastify,koa}.ts started as separate processes exactly as the
// examples contract says (tsx, PORT, STORE, WEBHOOK_SECRET, WEBHOOK_ALLOW_ORIGINS), driven over real sockets.
// The same scenarios run on STORE=memory, sqlite:<file> and a postgres:// URL; on the durable stores the example is
// also SIGKILLed with jobs in flight and restarted, and every job must still complete.
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ExampleFramework, type ExampleProcess, freePort, startExample } from './helpers/example-process.js';
import { adminQuery, closeAdmin, pgUrl } from './helpers/postgres.js';
import { sleep } from './helpers/time.js';

const FRAMEWORKS: ExampleFramework[] = ['express', 'fastify', 'koa'];
type StoreKind = 'memory' | 'sqlite' | 'postgres';
const TERMINAL = ['complete', 'failed', 'canceled'];
const STATUS_URL = /^\/jobs\/[A-Za-z0-9_-]{22,}$/;

const dir = mkdtempSync(join(tmpdir(), 'respond-async-examples-'));
const databases: string[] = [];
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (databases.length > 0) {
    for (const name of databases) await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => {});
    await closeAdmin();
  }
});

/** Figures worth reading in the test output (throughput, recovery time). */
function report(label: string, text: string): void {
  console.log(`[examples e2e] ${((Date.now() - T0) / 1000).toFixed(1)}s ${label}: ${text}`);
}

const T0 = Date.now();
const newUser = () => `user-${randomUUID()}`;

/** The STORE value for one example process: its own SQLite file, or its own PostgreSQL database. */
async function storeFor(kind: StoreKind, framework: ExampleFramework): Promise<string> {
  if (kind === 'memory') return 'memory';
  if (kind === 'sqlite') return `sqlite:${join(dir, `${framework}.db`)}`;
  const base = new URL(pgUrl());
  const name = `ra_e2e_${framework}_${randomBytes(4).toString('hex')}`;
  await adminQuery(`CREATE DATABASE "${name}"`);
  databases.push(name);
  base.pathname = `/${name}`;
  return base.href;
}

interface Delivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A loopback webhook receiver that records every POST and answers 204. */
async function startReceiver(): Promise<{ server: Server; port: number; deliveries: Delivery[] }> {
  const deliveries: Delivery[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      deliveries.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, deliveries };
}

interface SseEvent {
  event: string;
  id: string | undefined;
  data: any;
}

/** Read a Server-Sent Events body until the server closes it. */
async function readSse(response: Response): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    for (let cut = buffer.indexOf('\n\n'); cut !== -1; cut = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const fields: Record<string, string> = {};
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const name = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        fields[name] = name === 'data' && fields.data !== undefined ? `${fields.data}\n${value}` : value;
      }
      if (fields.data !== undefined) {
        events.push({ event: fields.event ?? 'message', id: fields.id, data: JSON.parse(fields.data) });
      }
    }
  }
  return events;
}

function scenarios(kind: StoreKind, framework: ExampleFramework): void {
  const durable = kind !== 'memory';
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  // The dashboard is mounted where ADMIN_TOKEN is set: with the durable stores; not with the memory store.
  const adminToken = durable ? randomBytes(12).toString('hex') : undefined;
  let store = '';
  let app: ExampleProcess;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  beforeAll(async () => {
    receiver = await startReceiver();
    store = await storeFor(kind, framework);
    app = await startExample(framework, {
      STORE: store,
      WEBHOOK_SECRET: secret,
      WEBHOOK_ALLOW_ORIGINS: `http://127.0.0.1:${receiver.port}`,
      ADMIN_TOKEN: adminToken,
    });
  }, 60_000);

  afterAll(async () => {
    const exit = await app?.kill('SIGTERM');
    receiver?.server.closeAllConnections();
    await new Promise((resolve) => receiver?.server.close(resolve) ?? resolve(undefined));
    // A graceful shutdown (SIGTERM) must end the process by itself, with status 0.
    if (exit) expect(exit, app.output()).toEqual({ code: 0, signal: null });
  }, 30_000);

  const submit = (body: unknown, user: string, headers: Record<string, string> = {}) =>
    fetch(`${app.url}/reports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user': user, ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  const status = (statusUrl: string, user: string) => fetch(`${app.url}${statusUrl}`, { headers: { 'x-user': user } });

  /** Poll a status URL until the job ends; the progress values seen on the way, in order. */
  async function untilDone(statusUrl: string, user: string, timeoutMs = 20_000, everyMs = 25) {
    const seen: number[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await status(statusUrl, user);
      const text = await res.text();
      expect(res.status, text).toBe(200);
      const doc = JSON.parse(text);
      if (typeof doc.progress === 'number' && seen.at(-1) !== doc.progress) seen.push(doc.progress);
      if (TERMINAL.includes(doc.status)) return { res, doc, text, seen };
      if (Date.now() > deadline) throw new Error(`${statusUrl} still ${doc.status} after ${timeoutMs} ms`);
      await sleep(everyMs);
    }
  }

  async function accepted(res: Response): Promise<{ jobId: string; statusUrl: string; status: string }> {
    const text = await res.text();
    expect(res.status, text).toBe(202);
    const body = JSON.parse(text);
    expect(res.headers.get('location')).toBe(body.statusUrl);
    return body;
  }

  async function expectProblem(res: Response, statusCode: number) {
    const text = await res.text();
    expect(res.status, text).toBe(statusCode);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const body = JSON.parse(text);
    expect(body.status).toBe(statusCode);
    expect(text).not.toMatch(/\bat .+\.(ts|js):\d+|"stack"/);
    return body;
  }

  // Durable stores: crash first, so that the scenarios below run on the restarted example while the leases of the
  // killed process lapse (30 s by default); the last test checks that every job in flight at the kill completes.
  let crash:
    | {
        user: string;
        submits: Array<{ statusUrl: string }>;
        killedAt: number;
        restartedAt: number;
        onRestart: string[];
      }
    | undefined;
  if (durable) {
    it.sequential('SIGKILL with 20 jobs queued or running, then restart on the same STORE', async () => {
      const user = newUser();
      const submits = await Promise.all(
        Array.from({ length: 20 }, (_, i) => submit({ steps: 5, stepMs: 200, value: i }, user).then(accepted)),
      );
      // Kill once a job has made progress, while others are running or queued. Any job will do: on a loaded
      // machine the first ones may have finished by the time all 20 are accepted (they start as they are stored).
      const deadline = Date.now() + 15_000;
      for (;;) {
        const docs = await Promise.all(submits.map(async (s) => (await status(s.statusUrl, user)).json()));
        const running = docs.some((doc) => doc.status === 'processing' && (doc.progress ?? 0) > 0);
        const unfinished = docs.filter((doc) => doc.status === 'queued' || doc.status === 'processing').length;
        if (running && unfinished > 1) break;
        if (Date.now() > deadline)
          throw new Error(`no job made progress: ${JSON.stringify(docs.map((d) => d.status))}`);
        await sleep(20);
      }
      const killedAt = Date.now();
      const exit = await app.kill('SIGKILL');
      expect(exit.signal).toBe('SIGKILL');
      await expectGone(app.url);
      app = await startExample(framework, {
        STORE: store,
        WEBHOOK_SECRET: secret,
        WEBHOOK_ALLOW_ORIGINS: `http://127.0.0.1:${receiver.port}`,
        ADMIN_TOKEN: adminToken,
      });
      const restartedAt = Date.now();
      // The restarted example serves the jobs of the killed one: none is lost.
      const onRestart = await Promise.all(
        submits.map(async (s) => {
          const res = await status(s.statusUrl, user);
          expect(res.status).toBe(200);
          return (await res.json()).status as string;
        }),
      );
      for (const state of onRestart) expect(['queued', 'processing', 'complete']).toContain(state);
      crash = { user, submits, killedAt, restartedAt, onRestart };
    }, 60_000);
  }

  it.sequential('ADMIN_TOKEN set: the dashboard at /admin behind HTTP Basic (admin/token); unset: nothing there', async () => {
    if (!adminToken) {
      await expectProblem(await fetch(`${app.url}/admin/`), 404);
      await expectProblem(await fetch(`${app.url}/admin/api/jobs`), 404);
      return;
    }
    const basic = (password: string) => ({
      authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`,
    });
    for (const headers of [{}, basic('wrong'), basic(`${adminToken}x`)]) {
      const refused = await fetch(`${app.url}/admin/`, { headers });
      expect(refused.headers.get('www-authenticate')).toBe('Basic realm="respond-async"');
      await expectProblem(refused, 401);
    }
    const page = await fetch(`${app.url}/admin/`, { headers: basic(adminToken) });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('respond-async');
    const { jobId } = await accepted(await submit({ steps: 1, stepMs: 0 }, newUser()));
    const listed = await fetch(`${app.url}/admin/api/jobs?name=report&limit=200`, { headers: basic(adminToken) });
    expect(((await listed.json()) as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id)).toContain(jobId);
  });

  it.sequential('submit: 202 with Location and Retry-After; polling reaches complete, progress climbing to 100', async () => {
    const user = newUser();
    // 4 steps of 150 ms: long enough for a poll every 15 ms to see a step before 100 on a loaded machine.
    const res = await submit({ steps: 4, stepMs: 150, value: { report: 'q3', n: [1, 2] } }, user);
    const body = await accepted(res);
    expect(body.statusUrl).toMatch(STATUS_URL);
    expect(body.status).toBe('queued');
    expect(res.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const { doc, seen } = await untilDone(body.statusUrl, user, 20_000, 15);
    expect(doc).toMatchObject({
      jobId: body.jobId,
      status: 'complete',
      statusUrl: body.statusUrl,
      progress: 100,
      result: { value: { report: 'q3', n: [1, 2] }, steps: 4 },
    });
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    expect(seen.at(-1)).toBe(100);
    expect(seen.length, `progress seen: ${seen}`).toBeGreaterThanOrEqual(2);
  });

  it.sequential('fail: true ends failed with "report failed" and no stack anywhere in the body', async () => {
    const user = newUser();
    const { statusUrl } = await accepted(await submit({ fail: true }, user));
    const { doc, text } = await untilDone(statusUrl, user);
    expect(doc.status).toBe('failed');
    expect(doc.error.message).toBe('report failed');
    expect(text).not.toMatch(/stack|\bat .+\.(ts|js)|report\.ts|JobError/);
  });

  it.sequential('another X-User gets 404 problem+json on status, DELETE and events', async () => {
    const user = newUser();
    const { statusUrl } = await accepted(await submit({ steps: 2, stepMs: 200 }, user));
    const mallory = { 'x-user': newUser() };
    await expectProblem(await fetch(`${app.url}${statusUrl}`, { headers: mallory }), 404);
    await expectProblem(await fetch(`${app.url}${statusUrl}`, { method: 'DELETE', headers: mallory }), 404);
    await expectProblem(await fetch(`${app.url}${statusUrl}/events`, { headers: mallory }), 404);
    await expectProblem(await fetch(`${app.url}${statusUrl}`), 404);
    // An X-User over 200 characters is refused, not cut to one that another user shares.
    const long = `${user}${'x'.repeat(200)}`;
    await expectProblem(await submit({ steps: 1 }, long), 400);
    await expectProblem(await fetch(`${app.url}${statusUrl}`, { headers: { 'x-user': long } }), 400);
    // The owner's job was not touched by the foreign DELETE.
    const { doc } = await untilDone(statusUrl, user);
    expect(doc.status).toBe('complete');
  });

  it.sequential('DELETE of a running job (steps 50, stepMs 100) ends it canceled', async () => {
    const user = newUser();
    const { statusUrl } = await accepted(await submit({ steps: 50, stepMs: 100 }, user));
    const deadline = Date.now() + 15_000;
    for (;;) {
      const doc = await (await status(statusUrl, user)).json();
      if (doc.status === 'processing') break;
      expect(doc.status).toBe('queued');
      if (Date.now() > deadline) throw new Error('the job never started');
      await sleep(20);
    }
    const del = await fetch(`${app.url}${statusUrl}`, { method: 'DELETE', headers: { 'x-user': user } });
    const delText = await del.text();
    expect(del.status, delText).toBe(202);
    const { doc } = await untilDone(statusUrl, user);
    expect(doc.status).toBe('canceled');
    expect(doc.progress ?? 0).toBeLessThan(100);
    expect(doc.result).toBeUndefined();
  });

  it.sequential('bad JSON is 400 and a 2 MiB body 413, both problem+json', async () => {
    const user = newUser();
    await expectProblem(await submit('{"steps": ', user), 400);
    await expectProblem(await submit({ value: 'x'.repeat(2 * 1024 * 1024) }, user), 413);
    // A body its schema refuses is 400 with the issues in `errors` (JSON Pointers), and nothing was queued.
    await expectProblem(await submit({ steps: 'many' }, user), 400);
    const invalid = await expectProblem(await submit({ steps: 0, stepMs: 70_000, fail: 'yes', other: 1 }, user), 400);
    expect(invalid.code).toBe('ERR_RESPOND_ASYNC_INVALID_REQUEST');
    expect(invalid.errors.map((e: { pointer: string }) => e.pointer).sort()).toEqual(['/fail', '/stepMs', '/steps']);
    const list = await (await fetch(`${app.url}/jobs`, { headers: { 'x-user': user } })).json();
    expect(list.jobs).toEqual([]);
  });

  if (!durable) {
    it.sequential('GET /openapi.json validates as OpenAPI 3.1 and documents POST /reports, /exports and /jobs', async () => {
      const res = await fetch(`${app.url}/openapi.json`);
      expect(res.status).toBe(200);
      const doc = await res.json();
      const validation = await new Validator().validate(doc);
      expect(validation.errors).toBeUndefined();
      expect(validation.valid).toBe(true);
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining([
          '/reports',
          '/exports',
          '/jobs',
          '/jobs/{jobId}',
          '/jobs/{jobId}/events',
          '/jobs/{jobId}/result',
        ]),
      );
      const body = doc.paths['/reports'].post.requestBody.content['application/json'].schema;
      expect(body.properties.steps).toMatchObject({ type: 'integer', minimum: 1, maximum: 1000 });
      expect(body.properties.stepMs).toMatchObject({ type: 'integer', minimum: 0, maximum: 60_000 });
    });
  }

  it.sequential('200 concurrent submits (steps 1, stepMs 0) all reach complete', async () => {
    const user = newUser();
    const started = Date.now();
    const submits = await Promise.all(
      Array.from({ length: 200 }, (_, i) => submit({ steps: 1, stepMs: 0, value: i }, user).then(accepted)),
    );
    const submitted = Date.now();
    expect(new Set(submits.map((s) => s.jobId)).size).toBe(200);
    const docs = await Promise.all(submits.map((s) => untilDone(s.statusUrl, user, 45_000, 100)));
    const finished = Date.now();
    docs.forEach(({ doc }, i) => {
      expect(doc).toMatchObject({ status: 'complete', result: { value: i, steps: 1 } });
    });
    report(
      `${framework}/${kind}`,
      `200 concurrent submits accepted in ${submitted - started} ms, all complete after ${finished - started} ms`,
    );
  }, 60_000);

  it.sequential('GET /jobs/:id/events serves SSE: status first, progress, then complete, then the stream ends', async () => {
    const user = newUser();
    const { statusUrl, jobId } = await accepted(await submit({ steps: 10, stepMs: 150, value: 'sse' }, user));
    const res = await fetch(`${app.url}${statusUrl}/events`, {
      headers: { 'x-user': user, accept: 'text/event-stream' },
      signal: AbortSignal.timeout(20_000),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = await readSse(res);
    const names = events.map((e) => e.event);
    expect(names[0]).toBe('status');
    expect(names.at(-1)).toBe('complete');
    expect(names.slice(1, -1).every((name) => name === 'progress' || name === 'status')).toBe(true);
    for (const event of events) {
      expect(event.id).toMatch(/\S/);
      expect(event.data.jobId).toBe(jobId);
    }
    expect(events.at(-1)?.data).toMatchObject({
      status: 'complete',
      progress: 100,
      result: { value: 'sse', steps: 10 },
    });
  });

  it.sequential('Prefer: wait=5 with a quick job answers 200 with the terminal document and Preference-Applied', async () => {
    const user = newUser();
    const res = await submit({ steps: 1, stepMs: 0, value: 'fast' }, user, { prefer: 'wait=5' });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(res.headers.get('preference-applied')).toBe('wait=5');
    expect(JSON.parse(text)).toMatchObject({ status: 'complete', result: { value: 'fast', steps: 1 } });
  });

  it.sequential('POST /exports: a wrapped handler; {statusUrl}/result answers exactly its 201 response', async () => {
    const user = newUser();
    const res = await fetch(`${app.url}/exports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user': user },
      body: JSON.stringify({ rows: 3, ms: 50 }),
    });
    const { statusUrl } = await accepted(res);
    const { doc } = await untilDone(statusUrl, user);
    expect(doc).toMatchObject({ status: 'complete', resultUrl: `${statusUrl}/result` });
    const result = await fetch(`${app.url}${doc.resultUrl}`, { headers: { 'x-user': user } });
    expect(result.status).toBe(201);
    expect(result.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await result.text()).toBe(JSON.stringify({ user, rows: 3 }));
  });

  it.sequential('Idempotency-Key replays the same job (Idempotent-Replayed: true); another body is 422', async () => {
    const user = newUser();
    const key = { 'idempotency-key': `"${randomUUID()}"` };
    const first = await submit({ steps: 1, stepMs: 0, value: 'once' }, user, key);
    const firstBody = await accepted(first);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const again = await submit({ steps: 1, stepMs: 0, value: 'once' }, user, key);
    const againText = await again.text();
    expect([200, 202], againText).toContain(again.status);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(JSON.parse(againText).jobId).toBe(firstBody.jobId);
    await expectProblem(await submit({ steps: 1, stepMs: 0, value: 'twice' }, user, key), 422);
    const list = await (await fetch(`${app.url}/jobs`, { headers: { 'x-user': user } })).json();
    expect(list.jobs.map((job: { jobId: string }) => job.jobId)).toEqual([firstBody.jobId]);
  });

  it.sequential('a callbackUrl on the allowlist gets a POST signed the Standard Webhooks way', async () => {
    const user = newUser();
    const path = `/hook/${randomUUID()}`;
    const callbackUrl = `http://127.0.0.1:${receiver.port}${path}`;
    const { jobId, statusUrl } = await accepted(
      await submit({ steps: 1, stepMs: 0, value: 'hook', callbackUrl }, user),
    );
    const deadline = Date.now() + 20_000;
    let delivery = receiver.deliveries.find((d) => d.path === path);
    while (!delivery) {
      if (Date.now() > deadline) throw new Error(`no webhook delivered to ${path}`);
      await sleep(25);
      delivery = receiver.deliveries.find((d) => d.path === path);
    }
    const headers = {
      'webhook-id': String(delivery.headers['webhook-id']),
      'webhook-timestamp': String(delivery.headers['webhook-timestamp']),
      'webhook-signature': String(delivery.headers['webhook-signature']),
    };
    const payload = new Webhook(secret).verify(delivery.body, headers);
    expect(payload).toMatchObject({ jobId, status: 'complete', statusUrl, result: { value: 'hook', steps: 1 } });
    expect(() => new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(delivery.body, headers)).toThrow();
    // One delivery per job, and the callback URL is not part of the job's input or result.
    await sleep(200);
    expect(receiver.deliveries.filter((d) => d.path === path)).toHaveLength(1);
    expect(delivery.body).not.toContain('callbackUrl');
  });

  it.sequential('a callbackUrl to a loopback port not on the allowlist is refused at submit with 400', async () => {
    const user = newUser();
    let port = await freePort();
    while (port === receiver.port) port = await freePort();
    const body = await expectProblem(
      await submit({ steps: 1, stepMs: 0, callbackUrl: `http://127.0.0.1:${port}/hook` }, user),
      400,
    );
    expect(JSON.stringify(body)).toMatch(/callback/i);
    const list = await (await fetch(`${app.url}/jobs`, { headers: { 'x-user': user } })).json();
    expect(list.jobs).toEqual([]);
  });

  if (durable) {
    it.sequential('every job in flight at the SIGKILL completes on the restarted example', async () => {
      expect(crash, 'runs after the SIGKILL test of this suite').toBeDefined();
      const { user, submits, killedAt, restartedAt, onRestart } = crash!;
      const docs = await Promise.all(submits.map((s) => untilDone(s.statusUrl, user, 100_000, 250)));
      const finished = Date.now();
      docs.forEach(({ doc }, i) => {
        expect(doc).toMatchObject({ status: 'complete', progress: 100, result: { value: i, steps: 5 } });
      });
      const retried = docs.filter(({ doc }) => (doc.attempt ?? 1) > 1).length;
      report(
        `${framework}/${kind}`,
        `SIGKILL with 20 jobs in flight (on restart: ${JSON.stringify(countBy(onRestart))}); restart took ` +
          `${restartedAt - killedAt} ms; all 20 complete ${finished - killedAt} ms after the kill ` +
          `(${retried} on a second attempt)`,
      );
    }, 120_000);
  }
}

/** The killed example no longer answers (its sockets close a moment after the signal). */
async function expectGone(url: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const answered = await fetch(`${url}/jobs/x`, { signal: AbortSignal.timeout(1000) }).then(
      () => true,
      () => false,
    );
    if (!answered) return;
    if (Date.now() > deadline) throw new Error(`${url} still answers after SIGKILL`);
    await sleep(50);
  }
}

function countBy(values: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

describe('examples with STORE=memory', () => {
  describe.concurrent.each(FRAMEWORKS)('%s', (framework) => scenarios('memory', framework));
});

describe('examples split into API processes (WORKER=false) and examples/worker.ts on one SQLite file', () => {
  it('the worker runs `report` and every `export-*` job the API processes accept, and exits on SIGTERM', async () => {
    const STORE = `sqlite:${join(dir, 'split.db')}`;
    const apis = await Promise.all(FRAMEWORKS.map((framework) => startExample(framework, { STORE, WORKER: 'false' })));
    const worker = await startWorkerExample(STORE);
    try {
      const user = newUser();
      for (const [i, api] of apis.entries()) {
        const post = (path: string, body: unknown) =>
          fetch(`${api.url}${path}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-user': user },
            body: JSON.stringify(body),
          });
        const exported = (await (await post('/exports', { rows: i, ms: 10 })).json()) as { statusUrl: string };
        const reported = (await (await post('/reports', { steps: 1, stepMs: 0 })).json()) as { statusUrl: string };
        const result = await until(async () => {
          const res = await fetch(`${api.url}${exported.statusUrl}/result`, { headers: { 'x-user': user } });
          return res.status === 404 ? undefined : res;
        });
        expect(result.status).toBe(201);
        expect(await result.json()).toEqual({ user, rows: i });
        const doc = await until(async () => {
          const res = await fetch(`${api.url}${reported.statusUrl}`, { headers: { 'x-user': user } });
          const body = (await res.json()) as { status: string };
          return body.status === 'complete' ? body : undefined;
        });
        expect(doc).toMatchObject({ status: 'complete', result: { steps: 1 } });
      }
    } finally {
      for (const api of apis) await api.kill('SIGTERM');
    }
    expect(await worker.stop(), worker.output()).toEqual({ code: 0, signal: null });
  }, 90_000);
});

/** Poll `check` until it returns a value (every 50 ms, up to 20 s). */
async function until<T>(check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in 20 s');
    await sleep(50);
  }
}

/** Start examples/worker.ts on `STORE`, resolved once it runs jobs; `stop()` sends SIGTERM and waits for the exit. */
async function startWorkerExample(STORE: string) {
  const child = spawn(join(import.meta.dirname, '..', 'node_modules', '.bin', 'tsx'), ['examples/worker.ts'], {
    cwd: join(import.meta.dirname, '..'),
    env: { ...process.env, STORE, LEASE_MS: '3000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`examples/worker.ts did not start: ${output}`)), 30_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk;
      if (/^worker \d+ runs:/m.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => reject(new Error(`examples/worker.ts exited: ${output}`)));
  });
  return {
    output: () => output,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const info = await exited;
      clearTimeout(timer);
      return info;
    },
  };
}

describe('examples with a durable STORE', () => {
  describe.concurrent.each(['sqlite', 'postgres'] as const)('STORE=%s', (kind) => {
    describe.concurrent.each(FRAMEWORKS)('%s', (framework) => scenarios(kind, framework));
  });
});
