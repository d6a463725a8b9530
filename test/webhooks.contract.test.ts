// Webhooks through each adapter over real sockets: a callbackUrl in the submitted body gets the terminal document,
// signed and verified by the `standardwebhooks` package; a refused URL is a 400 at submit with nothing queued.
// Receivers are loopback listeners; the refused one must stay silent.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJobs, type Jobs } from '../src/core/runtime.js';
import type { RequestSnapshot } from '../src/core/types.js';
import { MemoryStore } from '../src/stores/memory.js';
import { FRAMEWORKS, type Framework, type RunningApp, startApp } from './helpers/apps.js';
import { type SilentListener, startSilentListener } from './helpers/silent-listener.js';

interface Received {
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

async function receiver(): Promise<{ origin: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => {
      received.push({ url: req.url ?? '', headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, server };
}

async function until<T>(probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.each(FRAMEWORKS)('webhooks on %s', (framework: Framework) => {
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const user = { 'content-type': 'application/json', 'x-user': 'alice' };
  let jobs: Jobs;
  let app: RunningApp;
  let hooks: Awaited<ReturnType<typeof receiver>>;
  let silent: SilentListener;

  beforeAll(async () => {
    hooks = await receiver();
    silent = await startSilentListener();
    jobs = createJobs({ store: new MemoryStore(), pollIntervalMs: 20, logger: { error() {} } });
    const echo = jobs.define('echo', async (req: RequestSnapshot) => ({ body: req.body }));
    app = await startApp(framework, {
      jobs,
      routes: [{ path: '/echo', job: echo }],
      options: { webhooks: { secret, allowOrigins: [hooks.origin], backoff: { delayMs: 50 } } },
    });
  });
  afterAll(async () => {
    await app.close();
    await jobs.close();
    await new Promise((resolve) => hooks.server.close(resolve));
    await silent.close();
  });

  it('POSTs the terminal document to the callbackUrl, signed the Standard Webhooks way', async () => {
    const callbackUrl = `${hooks.origin}/hooks/${framework}`;
    const res = await fetch(`${app.url}/echo`, {
      method: 'POST',
      headers: user,
      body: JSON.stringify({ value: 7, callbackUrl }),
    });
    expect(res.status).toBe(202);
    const { jobId } = (await res.json()) as { jobId: string };

    const hook = await until(() => hooks.received.find((r) => r.url === `/hooks/${framework}`));
    expect(hook.headers['webhook-id']).toBe(`msg_${jobId}`);
    const doc = new Webhook(secret).verify(hook.body, hook.headers as Record<string, string>);
    // The callbackUrl is taken out of the job's input: the handler saw only { value }.
    expect(doc).toMatchObject({ jobId, status: 'complete', result: { body: { value: 7 } } });
    expect(() =>
      new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(
        hook.body,
        hook.headers as Record<string, string>,
      ),
    ).toThrow();
  });

  it('refuses a callbackUrl to a private address not on allowOrigins: 400 problem+json, nothing queued, no request', async () => {
    for (const callbackUrl of [`${silent.origin}/hook`, `http://2130706433:${silent.port}/`, 'file:///etc/passwd']) {
      const res = await fetch(`${app.url}/echo`, {
        method: 'POST',
        headers: { ...user, 'x-user': 'bob' },
        body: JSON.stringify({ callbackUrl }),
      });
      expect(res.status, callbackUrl).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const problem = (await res.json()) as Record<string, unknown>;
      expect(problem.status).toBe(400);
      expect(JSON.stringify(problem)).not.toMatch(/\bat .*\.ts:\d+/);
    }
    const list = await fetch(`${app.url}/jobs`, { headers: { 'x-user': 'bob' } });
    expect(((await list.json()) as { jobs: unknown[] }).jobs).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(silent.hits).toEqual([]);
  });
});
