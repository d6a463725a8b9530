// The protocol's own request checks, without a framework: which paths are status routes, which bodies are JSON.
import { afterAll, describe, expect, it } from 'vitest';
import { createJobs } from '../src/core/runtime.js';
import { HttpProtocol } from '../src/http/protocol.js';
import { MemoryStore } from '../src/stores/memory.js';

const jobs = createJobs({ store: new MemoryStore(), worker: false, logger: { error() {}, warn() {} } });
const task = jobs.define('task', async () => ({ ok: true }));
afterAll(() => jobs.close());

describe('HttpProtocol', () => {
  it('matches the status routes under basePath and nothing that only starts like it', () => {
    const protocol = new HttpProtocol(jobs, { basePath: '/api/jobs' });
    const ours = ['/api/jobs', '/api/jobs/abc', '/api/jobs/abc/events'];
    // A trailing slash is another path (the app's, as deeper paths are): Fastify's router sees it so too.
    const others = ['/api/jobsx', '/api/jobs-old/abc', '/api/job', '/api', '/', '/reports', '/api/jobs/a/b', ''];
    others.push('/api/jobs/', '/api/jobs/abc/', '/api/jobs//abc', '/api/jobs/abc/events/x');
    expect(ours.filter((path) => !protocol.matches(path))).toEqual([]);
    expect(others.filter((path) => protocol.matches(path))).toEqual([]);
  });

  it('parses a body of any JSON media type, in any case and with parameters; anything else is 415', () => {
    const protocol = new HttpProtocol(jobs);
    const body = Buffer.from('{"a":[1,2]}');
    const json = [
      'application/json',
      'application/json; charset=utf-8',
      'application/json;charset=UTF-8',
      'Application/JSON',
      'APPLICATION/JSON; CHARSET=UTF-8',
      'application/vnd.api+json',
      'application/problem+json; charset=utf-8',
      'application/json ; charset=utf-8',
    ];
    for (const type of json) expect(protocol.parseBody(body, type), type).toEqual({ a: [1, 2] });
    const other = [
      'text/plain',
      'application/jsonx',
      'application/json-seq',
      'text/json',
      'application/x-json',
      'json',
    ];
    for (const type of other) {
      let status: number | undefined;
      try {
        protocol.parseBody(body, type);
      } catch (error) {
        status = protocol.error(error).status;
      }
      expect(status, type).toBe(415);
    }
  });

  it("answers each 202 with its own job's createdAt, to the millisecond, as the status document has it", async () => {
    const protocol = new HttpProtocol(jobs);
    const request = { raw: {}, method: 'POST', path: '/reports', header: () => undefined, body: { n: 1 } };
    const seen = new Set<string>();
    // Jobs accepted within one millisecond and across several: each answer's time is its own job's.
    for (let i = 0; i < 200 && seen.size < 4; i++) {
      const accepted = JSON.parse((await protocol.submit(task, request)).body ?? '');
      const stored = await protocol.handle({ ...request, method: 'GET', path: `/jobs/${accepted.jobId}` });
      const job = await jobs.get(accepted.jobId);
      expect(accepted.createdAt).toBe(new Date(job!.createdAt).toISOString());
      expect(JSON.parse(stored?.body ?? '').createdAt).toBe(accepted.createdAt);
      seen.add(accepted.createdAt);
      if (i % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect(seen.size).toBeGreaterThan(1);
  });
});
