// Webhook signing, verification (interoperable with the `standardwebhooks` package) and delivery against real
// loopback receivers. All traffic stays on 127.0.0.1; host names are resolved by injected fake lookups, and a
// guard fails the test run if anything reaches the real resolver with a name other than localhost.
import { randomBytes } from 'node:crypto';
import dns from 'node:dns';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, isIP } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { JobRecord } from '../src/core/types.js';
import { respondAsync } from '../src/fetch.js';
import {
  parseRetryAfter,
  signWebhook,
  startWebhookDeliveries,
  validateWebhookOptions,
  verifyWebhook,
  WebhookVerificationError,
} from '../src/http/webhooks.js';
import { createJobs, type Jobs, MemoryStore } from '../src/index.js';
import { sleep } from './helpers/time.js';

const newSecret = () => 'whsec_' + randomBytes(24).toString('base64');
const quietLogger = { error: () => {}, warn: () => {} };

// ---------------------------------------------------------------------------------------------------------------
// Guard: no real DNS query for anything but localhost.

const realDns: string[] = [];
beforeAll(() => {
  const guard = (host: string) => {
    // Address literals are answered without a query; so is localhost.
    if (host !== 'localhost' && isIP(host) === 0) {
      realDns.push(host);
      throw new Error(`test attempted a real DNS lookup of ${host}`);
    }
  };
  const lookup = dns.lookup;
  vi.spyOn(dns, 'lookup').mockImplementation(((host: string, ...rest: unknown[]) => {
    guard(host);
    return (lookup as (...args: unknown[]) => unknown)(host, ...rest);
  }) as typeof dns.lookup);
  const promisesLookup = dns.promises.lookup;
  vi.spyOn(dns.promises, 'lookup').mockImplementation(((host: string, ...rest: unknown[]) => {
    guard(host);
    return (promisesLookup as (...args: unknown[]) => unknown)(host, ...rest);
  }) as typeof dns.promises.lookup);
});
afterAll(() => {
  vi.restoreAllMocks();
  expect(realDns).toEqual([]);
});

// ---------------------------------------------------------------------------------------------------------------
// Receivers

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
  url: string;
}

interface Receiver {
  origin: string;
  port: number;
  requests: Received[];
  connections: number;
  close(): Promise<void>;
}

type Responder = (req: Received, res: ServerResponse, index: number) => void;

async function receiver(respond: Responder = (_req, res) => res.end('ok')): Promise<Receiver> {
  const requests: Received[] = [];
  const state = { connections: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const received = {
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
        url: req.url ?? '',
      };
      requests.push(received);
      respond(received, res, requests.length - 1);
    });
  });
  server.on('connection', () => {
    state.connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    requests,
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function until<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Signing and verification

describe('signWebhook / verifyWebhook', () => {
  const secret = newSecret();
  const body = JSON.stringify({ jobId: 'abc', status: 'complete', result: { value: 'é ✓' } });
  const now = () => Date.now();
  const headersFor = (signature: string, timestamp = Math.floor(now() / 1000), id = 'msg_abc') => ({
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signature,
  });

  it('round-trips', () => {
    const ts = Math.floor(Date.now() / 1000);
    const signature = signWebhook(secret, 'msg_abc', ts, body);
    expect(signature).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(verifyWebhook(secret, headersFor(signature, ts), body)).toEqual(JSON.parse(body));
    expect(verifyWebhook(secret, headersFor(signature, ts), Buffer.from(body))).toEqual(JSON.parse(body));
  });

  it('accepts Headers, mixed-case keys and one matching signature among several', () => {
    const ts = Math.floor(Date.now() / 1000);
    const good = signWebhook(secret, 'msg_abc', ts, body);
    const other = signWebhook(newSecret(), 'msg_abc', ts, body);
    const headers = new Headers({
      'Webhook-Id': 'msg_abc',
      'Webhook-Timestamp': String(ts),
      'Webhook-Signature': `v2,garbage ${other} ${good}`,
    });
    expect(verifyWebhook(secret, headers, body)).toEqual(JSON.parse(body));
    const record = { 'WEBHOOK-ID': 'msg_abc', 'Webhook-Timestamp': String(ts), 'webhook-signature': [other, good] };
    expect(verifyWebhook(secret, record, body)).toEqual(JSON.parse(body));
  });

  it('is verified by the standardwebhooks package', () => {
    const ts = Math.floor(Date.now() / 1000);
    const signature = signWebhook(secret, 'msg_xyz', ts, body);
    const payload = new Webhook(secret).verify(body, headersFor(signature, ts, 'msg_xyz'));
    expect(payload).toEqual(JSON.parse(body));
  });

  it('verifies what the standardwebhooks package signs', () => {
    const date = new Date();
    const signature = new Webhook(secret).sign('msg_123', date, body);
    const ts = Math.floor(date.getTime() / 1000);
    expect(signature).toBe(signWebhook(secret, 'msg_123', ts, body));
    expect(verifyWebhook(secret, headersFor(signature, ts, 'msg_123'), body)).toEqual(JSON.parse(body));
  });

  it('rejects a tampered body, id or timestamp, and another secret', () => {
    const ts = Math.floor(Date.now() / 1000);
    const signature = signWebhook(secret, 'msg_abc', ts, body);
    const reject = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        expect(error).toBeInstanceOf(WebhookVerificationError);
        expect((error as WebhookVerificationError).code).toBe('ERR_RESPOND_ASYNC_WEBHOOK_VERIFICATION');
        return;
      }
      throw new Error('expected a WebhookVerificationError');
    };
    reject(() => verifyWebhook(secret, headersFor(signature, ts), body.replace('complete', 'failed')));
    reject(() => verifyWebhook(secret, headersFor(signature, ts, 'msg_other'), body));
    reject(() => verifyWebhook(secret, headersFor(signature, ts - 1), body));
    reject(() => verifyWebhook(newSecret(), headersFor(signature, ts), body));
    reject(() => verifyWebhook(secret, headersFor('v1,' + 'A'.repeat(44), ts), body));
    reject(() => verifyWebhook(secret, headersFor('v1,', ts), body));
    expect(() => new Webhook(secret).verify(body.replace('complete', 'failed'), headersFor(signature, ts))).toThrow();
  });

  it('rejects old, future and malformed timestamps, honouring the tolerance', () => {
    const old = Math.floor(Date.now() / 1000) - 301;
    const signature = signWebhook(secret, 'msg_abc', old, body);
    expect(() => verifyWebhook(secret, headersFor(signature, old), body)).toThrow(/too old/);
    expect(verifyWebhook(secret, headersFor(signature, old), body, { toleranceSeconds: 600 })).toEqual(
      JSON.parse(body),
    );
    const future = Math.floor(Date.now() / 1000) + 301;
    expect(() => verifyWebhook(secret, headersFor(signWebhook(secret, 'msg_abc', future, body), future), body)).toThrow(
      /too new/,
    );
    const fixed = 1_700_000_000;
    const fixedSignature = signWebhook(secret, 'msg_abc', fixed, body);
    expect(verifyWebhook(secret, headersFor(fixedSignature, fixed), body, { now: () => fixed * 1000 + 5000 })).toEqual(
      JSON.parse(body),
    );
    expect(() =>
      verifyWebhook(secret, { ...headersFor(fixedSignature, fixed), 'webhook-timestamp': 'soon' }, body),
    ).toThrow(WebhookVerificationError);
    // The old timestamp is rejected by the reference implementation too.
    expect(() => new Webhook(secret).verify(body, headersFor(signature, old))).toThrow(/too old/);
  });

  it('rejects missing headers', () => {
    const ts = Math.floor(Date.now() / 1000);
    const signature = signWebhook(secret, 'msg_abc', ts, body);
    const full = headersFor(signature, ts);
    for (const name of Object.keys(full)) {
      const partial: Record<string, string | undefined> = { ...full, [name]: undefined };
      expect(() => verifyWebhook(secret, partial, body)).toThrow(/Missing required headers/);
    }
    expect(() => verifyWebhook(secret, new Headers(), body)).toThrow(WebhookVerificationError);
  });

  it('validates options', () => {
    expect(() => validateWebhookOptions({ secret: 'not-prefixed' })).toThrow(TypeError);
    expect(() => validateWebhookOptions({ secret: 'whsec_' })).toThrow(TypeError);
    expect(() => validateWebhookOptions({ secret: 'whsec_not base64!' })).toThrow(TypeError);
    expect(() => validateWebhookOptions({ secret, allowOrigins: ['nope'] })).toThrow(TypeError);
    expect(() => validateWebhookOptions({ secret, timeoutMs: 0 })).toThrow(TypeError);
    expect(() => validateWebhookOptions({ secret, maxAttempts: 1.5 })).toThrow(TypeError);
    expect(() => signWebhook('whsec_***', 'msg', 1, '')).toThrow(TypeError);
    expect(validateWebhookOptions({ secret })).toMatchObject({
      timeoutMs: 10_000,
      maxAttempts: 8,
      backoff: { delayMs: 5000, maxDelayMs: 3_600_000 },
    });
  });

  it('parses Retry-After as seconds or an HTTP-date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('1', now)).toBe(1000);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Delivery

describe('webhook deliveries', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function listen(respond?: Responder): Promise<Receiver> {
    const r = await receiver(respond);
    cleanups.push(() => r.close());
    return r;
  }

  function runtime(store = new MemoryStore()): Jobs {
    const jobs = createJobs({ store, pollIntervalMs: 20, logger: quietLogger });
    jobs.define(
      'echo',
      async (input: { value?: unknown; fail?: boolean }) => {
        if (input.fail) throw new Error('boom');
        return { value: input.value };
      },
      { attempts: 1 },
    );
    cleanups.push(() => jobs.close());
    return jobs;
  }

  function deliver(jobs: Jobs, secret: string, webhooks: Record<string, unknown> = {}): void {
    startWebhookDeliveries(jobs, {
      webhooks: { secret, backoff: { delayMs: 50 }, ...webhooks },
      statusUrl: (id) => '/jobs/' + id,
      pollIntervalMs: 20,
    });
  }

  async function settled(jobs: Jobs, id: string, timeoutMs = 5000): Promise<JobRecord> {
    return until(async () => {
      const job = await jobs.store.get(id);
      return job && job.deliveryStatus !== 'pending' && job.deliveryStatus !== null ? job : undefined;
    }, timeoutMs);
  }

  it('POSTs the signed terminal document once', async () => {
    const secret = newSecret();
    const r = await listen((_req, res) => res.writeHead(204).end());
    const jobs = runtime();
    deliver(jobs, secret, { allowOrigins: [r.origin] });
    const { job } = await jobs.submit('echo', { value: 42 }, { callbackUrl: `${r.origin}/hook?x=1` });
    const done = await settled(jobs, job.id);
    expect(done).toMatchObject({ deliveryStatus: 'delivered', deliveryAttempts: 1, deliveryNextAt: null });
    await sleep(150);
    expect(r.requests).toHaveLength(1);
    const [request] = r.requests;
    expect(request.url).toBe('/hook?x=1');
    expect(request.headers).toMatchObject({
      'content-type': 'application/json',
      'user-agent': 'respond-async',
      'webhook-id': `msg_${job.id}`,
      host: r.origin.slice('http://'.length),
    });
    const verified = new Webhook(secret).verify(request.body, request.headers as Record<string, string>);
    expect(verified).toMatchObject({
      jobId: job.id,
      status: 'complete',
      statusUrl: `/jobs/${job.id}`,
      result: { value: 42 },
      attempt: 1,
    });
    expect(verifyWebhook(secret, request.headers, request.body)).toEqual(verified);
  });

  it('delivers failed jobs too', async () => {
    const secret = newSecret();
    const r = await listen();
    const jobs = runtime();
    deliver(jobs, secret, { allowOrigins: [r.origin] });
    const { job } = await jobs.submit('echo', { fail: true }, { callbackUrl: `${r.origin}/hook` });
    expect(await settled(jobs, job.id)).toMatchObject({ deliveryStatus: 'delivered' });
    expect(JSON.parse(r.requests[0].body)).toMatchObject({ status: 'failed', error: { message: 'The job failed' } });
  });

  it('retries 500 twice then succeeds, with the same webhook-id', async () => {
    const secret = newSecret();
    const r = await listen((_req, res, i) => res.writeHead(i < 2 ? 500 : 200).end());
    const jobs = runtime();
    deliver(jobs, secret, { allowOrigins: [r.origin] });
    const { job } = await jobs.submit('echo', { value: 1 }, { callbackUrl: `${r.origin}/hook` });
    expect(await settled(jobs, job.id)).toMatchObject({ deliveryStatus: 'delivered', deliveryAttempts: 3 });
    expect(r.requests).toHaveLength(3);
    expect(new Set(r.requests.map((q) => q.headers['webhook-id']))).toEqual(new Set([`msg_${job.id}`]));
    for (const q of r.requests) expect(verifyWebhook(secret, q.headers, q.body)).toMatchObject({ jobId: job.id });
  });

  it('stops at 410 Gone', async () => {
    const r = await listen((_req, res) => res.writeHead(410).end());
    const jobs = runtime();
    deliver(jobs, newSecret(), { allowOrigins: [r.origin] });
    const { job } = await jobs.submit('echo', {}, { callbackUrl: `${r.origin}/hook` });
    expect(await settled(jobs, job.id)).toMatchObject({ deliveryStatus: 'failed', deliveryAttempts: 1 });
    await sleep(150);
    expect(r.requests).toHaveLength(1);
  });

  it('gives up after maxAttempts', async () => {
    const r = await listen((_req, res) => res.writeHead(503).end());
    const jobs = runtime();
    deliver(jobs, newSecret(), { allowOrigins: [r.origin], maxAttempts: 3, backoff: { delayMs: 10 } });
    const { job } = await jobs.submit('echo', {}, { callbackUrl: `${r.origin}/hook` });
    expect(await settled(jobs, job.id)).toMatchObject({ deliveryStatus: 'failed', deliveryAttempts: 3 });
    await sleep(100);
    expect(r.requests).toHaveLength(3);
  });

  it('honours Retry-After in seconds', async () => {
    const r = await listen((_req, res, i) =>
      (i === 0 ? res.writeHead(503, { 'retry-after': '1' }) : res.writeHead(200)).end(),
    );
    const jobs = runtime();
    deliver(jobs, newSecret(), { allowOrigins: [r.origin] });
    const { job } = await jobs.submit('echo', {}, { callbackUrl: `${r.origin}/hook` });
    expect(await settled(jobs, job.id)).toMatchObject({ deliveryStatus: 'delivered', deliveryAttempts: 2 });
    expect(r.requests[1].at - r.requests[0].at).toBeGreaterThanOrEqual(950);
  });

  it('caps Retry-After by maxDelayMs', async () => {
    const r = await listen((_req, res, i) =>
      (i === 0 ? res.writeHead(429, { 'retry-after': '3600' }) : res.writeHead(200)).end(),
    );
    const jobs = runtime();
    deliver(jobs, newSecret(), { allowOrigins: [r.origin], backoff: { delayMs: 50, maxDelayMs: 100 } });
    const { job } = await jobs.submit('echo', {}, { callbackUrl: `${r.origin}/hook` });
    expect(await settled(jobs, job.id, 3000)).toMatchObject({ deliveryStatus: 'delivered', deliveryAttempts: 2 });
  });

  it('never contacts a callback URL outside allowOrigins, and fails the delivery', async () => {
    const allowed = await listen();
    const forbidden = await listen();
    const jobs = runtime();
    deliver(jobs, newSecret(), { allowOrigins: [allowed.origin] });
    // The HTTP layer refuses such a URL at submit; the runtime alone does not, so the delivery check must.
    const { job } = await jobs.submit('echo', {}, { callbackUrl: `${forbidden.origin}/hook` });
    expect(await settled(jobs, job.id)).toMatchObject({ deliveryStatus: 'failed' });
    await sleep(150);
    expect(forbidden.connections).toBe(0);
    expect(forbidden.requests).toHaveLength(0);
    expect(allowed.requests).toHaveLength(0);
  });

  it('does not follow redirects', async () => {
    const target = await listen();
    const r = await listen((_req, res) => res.writeHead(302, { location: `${target.origin}/elsewhere` }).end());
    const jobs = runtime();
    deliver(jobs, newSecret(), { allowOrigins: [r.origin, target.origin], maxAttempts: 2, backoff: { delayMs: 10 } });
    const { job } = await jobs.submit('echo', {}, { callbackUrl: `${r.origin}/hook` });
    expect(await settled(jobs, job.id)).toMatchObject({ deliveryStatus: 'failed', deliveryAttempts: 2 });
    expect(r.requests).toHaveLength(2);
    expect(target.connections).toBe(0);
  });

  it('times out a receiver that does not answer, then retries', async () => {
    const r = await listen((_req, res, i) => {
      if (i > 0) res.end('ok');
    });
    const jobs = runtime();
    deliver(jobs, newSecret(), { allowOrigins: [r.origin], timeoutMs: 200, backoff: { delayMs: 10 } });
    const started = Date.now();
    const { job } = await jobs.submit('echo', {}, { callbackUrl: `${r.origin}/hook` });
    expect(await settled(jobs, job.id)).toMatchObject({ deliveryStatus: 'delivered', deliveryAttempts: 2 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('reads at most a bounded part of a large answer', async () => {
    const r = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = Buffer.alloc(64 * 1024, 'x');
      let sent = 0;
      const pump = () => {
        while (sent < 512 && res.write(chunk)) sent += 1;
        if (sent < 512 && !res.destroyed) res.once('drain', pump);
        else res.end();
      };
      res.on('error', () => {});
      pump();
    });
    const jobs = runtime();
    deliver(jobs, newSecret(), { allowOrigins: [r.origin] });
    const { job } = await jobs.submit('echo', {}, { callbackUrl: `${r.origin}/hook` });
    expect(await settled(jobs, job.id)).toMatchObject({ deliveryStatus: 'delivered', deliveryAttempts: 1 });
  });

  it('connects to the checked address of a host name, keeping the Host header', async () => {
    const r = await listen();
    const origin = `http://receiver.test:${r.port}`;
    const lookups: string[] = [];
    const lookup = async (host: string) => {
      lookups.push(host);
      return [{ address: '127.0.0.1', family: 4 as const }];
    };
    const jobs = runtime();
    deliver(jobs, newSecret(), { allowOrigins: [origin], lookup });
    const { job } = await jobs.submit('echo', {}, { callbackUrl: `${origin}/hook` });
    expect(await settled(jobs, job.id)).toMatchObject({ deliveryStatus: 'delivered' });
    expect(lookups).toEqual(['receiver.test']);
    expect(r.requests[0].headers.host).toBe(`receiver.test:${r.port}`);
  });

  it('re-checks the address at delivery time (DNS rebinding)', async () => {
    const r = await listen();
    let answer = '93.184.216.34';
    // A public address at submit, loopback at delivery: refused, and nothing is sent.
    const lookup = async () => [{ address: answer, family: 4 as const }];
    const jobs = runtime();
    deliver(jobs, newSecret(), { lookup });
    const { job } = await jobs.submit('echo', {}, { callbackUrl: `http://rebind.test:${r.port}/hook` });
    answer = '127.0.0.1';
    expect(await settled(jobs, job.id)).toMatchObject({ deliveryStatus: 'failed' });
    expect(r.connections).toBe(0);
  });

  it('retries when the host name does not resolve', async () => {
    const r = await listen();
    let calls = 0;
    const lookup = async () => {
      calls += 1;
      if (calls === 1) throw Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' });
      return [{ address: '127.0.0.1', family: 4 as const }];
    };
    const origin = `http://flaky.test:${r.port}`;
    const jobs = runtime();
    deliver(jobs, newSecret(), { allowOrigins: [origin], lookup, backoff: { delayMs: 10 } });
    const { job } = await jobs.submit('echo', {}, { callbackUrl: `${origin}/hook` });
    expect(await settled(jobs, job.id)).toMatchObject({ deliveryStatus: 'delivered', deliveryAttempts: 2 });
    expect(r.requests).toHaveLength(1);
  });

  it('close waits for a delivery in flight', async () => {
    const r = await listen((_req, res) => {
      setTimeout(() => res.end('ok'), 300);
    });
    const store = new MemoryStore();
    const jobs = runtime(store);
    deliver(jobs, newSecret(), { allowOrigins: [r.origin] });
    const { job } = await jobs.submit('echo', {}, { callbackUrl: `${r.origin}/hook` });
    await until(() => r.requests.length > 0);
    await jobs.close();
    expect(await store.get(job.id)).toMatchObject({ deliveryStatus: 'delivered', deliveryAttempts: 1 });
  });

  it('a delivery pending at shutdown is sent after a restart over the same store', async () => {
    let up = false;
    const r = await listen((_req, res) => res.writeHead(up ? 200 : 503).end());
    const secret = newSecret();
    const store = new MemoryStore();
    const first = runtime(store);
    deliver(first, secret, { allowOrigins: [r.origin], backoff: { delayMs: 400 } });
    const { job } = await first.submit('echo', { value: 'x' }, { callbackUrl: `${r.origin}/hook` });
    await until(async () => (await store.get(job.id))?.deliveryAttempts === 1);
    await first.close();
    expect(await store.get(job.id)).toMatchObject({ deliveryStatus: 'pending', deliveryAttempts: 1 });
    expect(r.requests).toHaveLength(1);

    up = true;
    const second = runtime(store);
    deliver(second, secret, { allowOrigins: [r.origin] });
    expect(await settled(second, job.id)).toMatchObject({ deliveryStatus: 'delivered', deliveryAttempts: 2 });
    expect(r.requests).toHaveLength(2);
    expect(r.requests[1].headers['webhook-id']).toBe(`msg_${job.id}`);
    expect(
      new Webhook(secret).verify(r.requests[1].body, r.requests[1].headers as Record<string, string>),
    ).toMatchObject({ jobId: job.id, status: 'complete', result: { value: 'x' } });
  });

  it('two adapters with webhooks on the same jobs run one delivery loop, and the job is POSTed once', async () => {
    const r = await listen();
    const store = new MemoryStore();
    let claims = 0;
    const claimDeliveries = store.claimDeliveries.bind(store);
    store.claimDeliveries = (options) => {
      claims += 1;
      return claimDeliveries(options);
    };
    const jobs = runtime(store);
    const webhooks = { secret: newSecret(), allowOrigins: [r.origin] };
    const api = respondAsync(jobs, { webhooks });
    respondAsync(jobs, { webhooks, basePath: '/v2/jobs' });
    // Each loop claims once as it starts, then every 500 ms while nothing is due.
    await sleep(250);
    expect(claims).toBe(1);
    const echo = jobs.definition('echo') as Parameters<typeof api.route>[0];
    const answer = await api.route(echo)(
      new Request('http://127.0.0.1/reports', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ callbackUrl: `${r.origin}/hook` }),
      }),
    );
    const { jobId } = (await answer.json()) as { jobId: string };
    expect(await settled(jobs, jobId)).toMatchObject({ deliveryStatus: 'delivered', deliveryAttempts: 1 });
    await sleep(150);
    expect(r.requests).toHaveLength(1);
    expect(JSON.parse(r.requests[0].body)).toMatchObject({ jobId, statusUrl: `/jobs/${jobId}` });
  });

  it('jobs without a callback URL are left alone', async () => {
    const r = await listen();
    const jobs = runtime();
    deliver(jobs, newSecret(), { allowOrigins: [r.origin] });
    const { job } = await jobs.submit('echo', {});
    const done = await jobs.waitFor(job.id, 2000);
    expect(done).toMatchObject({ status: 'complete', deliveryStatus: null });
    await sleep(100);
    expect(r.connections).toBe(0);
  });
});
