// Server-Sent Events read by a real EventSource client, resumed with Last-Event-ID, and free of listener leaks.
import { EventSource } from 'eventsource';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJobs, type Jobs } from '../src/core/runtime.js';
import type { RequestSnapshot } from '../src/core/types.js';
import { MemoryStore } from '../src/stores/memory.js';
import { FRAMEWORKS, type Framework, type RunningApp, startApp } from './helpers/apps.js';

function userFetch(user: string): typeof fetch {
  return (input, init) =>
    fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), 'x-user': user } });
}

describe.each(FRAMEWORKS)('SSE on %s', (framework: Framework) => {
  let jobs: Jobs;
  let app: RunningApp;
  const gates: Array<() => void> = [];
  const release = () => {
    for (const open of gates.splice(0)) open();
  };

  beforeAll(async () => {
    jobs = createJobs({ store: new MemoryStore(), pollIntervalMs: 50, concurrency: 100, logger: { error() {} } });
    const steps = jobs.define('steps', async (req: RequestSnapshot<{ n?: number; ms?: number }>, ctx) => {
      const n = req.body?.n ?? 5;
      for (let i = 1; i <= n; i++) {
        await new Promise((r) => setTimeout(r, req.body?.ms ?? 30));
        await ctx.progress((100 * i) / n);
      }
      return { n };
    });
    const gate = jobs.define('gate', async (_req: RequestSnapshot, ctx) => {
      await ctx.progress(1);
      await new Promise<void>((resolve) => {
        gates.push(resolve);
        ctx.signal.addEventListener('abort', () => resolve());
      });
      return 'opened';
    });
    app = await startApp(framework, {
      jobs,
      routes: [
        { path: '/steps', job: steps },
        { path: '/gate', job: gate },
      ],
      options: { heartbeatMs: 100 },
    });
  });
  afterAll(async () => {
    release();
    await app.close();
    await jobs.close({ timeoutMs: 100 });
  });

  const submit = async (path: string, body: unknown, user = 'ann') => {
    const res = await fetch(`${app.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user': user },
      body: JSON.stringify(body),
    });
    return (await res.json()) as { statusUrl: string; jobId: string };
  };

  it('a real EventSource receives status, progress and complete, and stops when the job is over', async () => {
    const { statusUrl } = await submit('/steps', { n: 5, ms: 40 });
    const source = new EventSource(`${app.url}${statusUrl}/events`, { fetch: userFetch('ann') });
    const received: Array<{ type: string; id: string; data: any }> = [];
    let opens = 0;
    source.onopen = () => {
      opens += 1;
    };
    const done = new Promise<void>((resolve, reject) => {
      for (const type of ['status', 'progress', 'complete', 'failed', 'canceled']) {
        source.addEventListener(type, (event) => {
          received.push({ type, id: event.lastEventId, data: JSON.parse(event.data) });
          if (type === 'complete') resolve();
        });
      }
      setTimeout(() => reject(new Error('no complete event')), 10_000);
    });
    await done;
    // After the terminal event the server ends the stream; the client's reconnect gets 204 and stops.
    await new Promise((r) => setTimeout(r, 1500));
    expect(source.readyState).toBe(EventSource.CLOSED);
    expect(opens).toBe(1);
    source.close();
    expect(received[0].type).toBe('status');
    expect(received.at(-1)!.type).toBe('complete');
    expect(received.at(-1)!.data.result).toEqual({ n: 5 });
    const progress = received.filter((e) => e.type === 'progress').map((e) => e.data.progress);
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
    expect(new Set(received.map((e) => e.id)).size).toBe(received.length);
  });

  it('Last-Event-ID resumes without repeating events', async () => {
    const { statusUrl } = await submit('/gate', {});
    const first = await fetch(`${app.url}${statusUrl}/events`, { headers: { 'x-user': 'ann' } });
    const reader = first.body!.getReader();
    let text = '';
    while (!/progress|"progress":1/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    const last = Math.max(...ids);
    const resumed = fetch(`${app.url}${statusUrl}/events`, {
      headers: { 'x-user': 'ann', 'last-event-id': String(last) },
    }).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 200));
    release();
    const rest = await resumed;
    const restIds = [...rest.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(restIds.length).toBeGreaterThanOrEqual(1);
    expect(Math.min(...restIds)).toBeGreaterThan(last);
    expect(rest).toMatch(/event: complete/);
  });

  it('sends heartbeat comments while a job runs', async () => {
    const { statusUrl } = await submit('/gate', {});
    const res = await fetch(`${app.url}${statusUrl}/events`, { headers: { 'x-user': 'ann' } });
    const reader = res.body!.getReader();
    let text = '';
    const until = Date.now() + 3000;
    while (!text.includes(': keep-alive') && Date.now() < until) {
      text += new TextDecoder().decode((await reader.read()).value);
    }
    await reader.cancel();
    release();
    expect(text).toContain(': keep-alive');
  });

  it(`frees every listener after ${framework === 'express' ? '10,000' : '1,000'} connects and disconnects`, async () => {
    const { statusUrl } = await submit('/gate', {}, 'leak');
    const total = framework === 'express' ? 10_000 : 1_000;
    const baseline = jobs.watcherCount();
    let next = 0;
    const worker = async () => {
      while (next < total) {
        next += 1;
        const controller = new AbortController();
        const res = await fetch(`${app.url}${statusUrl}/events`, {
          headers: { 'x-user': 'leak' },
          signal: controller.signal,
        });
        const reader = res.body!.getReader();
        await reader.read();
        controller.abort();
        await reader.cancel().catch(() => {});
      }
    };
    await Promise.all(Array.from({ length: 20 }, worker));
    const deadline = Date.now() + 10_000;
    while (jobs.watcherCount() > baseline && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(jobs.watcherCount()).toBe(baseline);
    release();
  }, 180_000);
});
