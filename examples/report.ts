// The demo shared by the three examples: the `report` job, the store chosen by STORE, and webhook settings.
// In your own app, import from 'respond-async' (and 'respond-async/sqlite', …) instead of '../src/…'.
import { z } from 'zod';
import {
  createJobs,
  InputError,
  JobError,
  type JobStore,
  type Jobs,
  MemoryStore,
  type OpenApiDocument,
  openapiDocument,
  type RequestSnapshot,
} from '../src/index.js';

/**
 * The body of `POST /reports` (a Standard Schema: zod here; valibot or arktype do as well). Each field optional,
 * other fields ignored (dropped); anything else is `400` problem+json with `errors`, nothing queued.
 */
export const ReportBody = z.object({
  steps: z.number().int().min(1).max(1000).optional(),
  stepMs: z.number().int().min(0).max(60_000).optional(),
  fail: z.boolean().optional(),
  callbackUrl: z.string().optional(),
  // Any JSON: the body was parsed from JSON already.
  value: z.unknown().optional(),
});
export type ReportBody = z.output<typeof ReportBody>;

/** What the `report` job returns (documented as the status document's `result`). */
export const ReportResult = z.object({ value: z.unknown(), steps: z.number().int() });
export type ReportResult = z.output<typeof ReportResult>;

/** The `report` job's input: the validated body with its defaults. */
export interface ReportInput {
  steps: number;
  stepMs: number;
  fail: boolean;
  value?: unknown;
}

/** The problem+json body the examples answer for any path no route answered (DESIGN.md, examples contract). */
export const NOT_FOUND = {
  type: 'about:blank',
  title: 'Not Found',
  status: 404,
  code: 'ERR_RESPOND_ASYNC_NOT_FOUND',
  detail: 'No route answers this path',
};

/** The port from PORT (default 3000). */
export const port = Number(process.env.PORT ?? 3000);

/** The store named by STORE: `memory` (default), `sqlite:<path>` or a `postgres://` URL. */
export async function storeFromEnv(spec = process.env.STORE ?? 'memory'): Promise<JobStore> {
  if (spec === 'memory') return new MemoryStore();
  if (spec.startsWith('sqlite:')) {
    const { SqliteStore } = await import('../src/sqlite.js');
    return new SqliteStore({ path: spec.slice('sqlite:'.length) });
  }
  if (spec.startsWith('postgres://') || spec.startsWith('postgresql://')) {
    const { PostgresStore } = await import('../src/postgres.js');
    return new PostgresStore({ connectionString: spec });
  }
  throw new Error(`STORE must be "memory", "sqlite:<file path>" or a postgres:// URL, got "${spec}"`);
}

/** Webhook settings from WEBHOOK_SECRET and WEBHOOK_ALLOW_ORIGINS, or undefined when no secret is set. */
export function webhooksFromEnv() {
  const secret = process.env.WEBHOOK_SECRET;
  if (!secret) return undefined;
  const allowOrigins = (process.env.WEBHOOK_ALLOW_ORIGINS ?? '')
    .split(',')
    .map((origin) => origin.trim())
    .filter(Boolean);
  return { secret, allowOrigins };
}

/** Longest X-User accepted. A longer one is refused, not cut: two names sharing a prefix must not share jobs. */
const MAX_USER_LENGTH = 200;

/** The authenticated user: the X-User header (a real app takes it from its auth middleware). */
export function userOf(header: string | string[] | undefined): string | null {
  const value = Array.isArray(header) ? header[0] : header;
  if (value && value.length > MAX_USER_LENGTH) {
    throw new InputError(`X-User must be at most ${MAX_USER_LENGTH} characters`); // 400 problem+json
  }
  return value || null;
}

/** The job input from the validated body (`ReportBody` checked it at submit): the defaults filled in. */
export function reportInput(snapshot: RequestSnapshot): ReportInput {
  const body = snapshot.body as ReportBody;
  return { steps: body.steps ?? 3, stepMs: body.stepMs ?? 100, fail: body.fail ?? false, value: body.value };
}

/** The OpenAPI 3.1 document the examples serve at `GET /openapi.json`. */
export function reportOpenApi(report: { readonly name: string }, exportJob: string): OpenApiDocument {
  return openapiDocument({
    info: { title: 'respond-async example', version: '1.0.0' },
    routes: [
      { path: '/reports', job: report, schema: { body: ReportBody, result: ReportResult } },
      { path: '/exports', job: exportJob, summary: 'An ordinary handler, wrapped: its response is the result.' },
    ],
    basePath: '/jobs',
    owner: true,
    webhooks: webhooksFromEnv() !== undefined,
  });
}

/** The runtime with the `report` job registered. */
export async function createDemo(
  // WORKER=false: an API-only process; examples/worker.ts runs the jobs.
  { worker = process.env.WORKER !== 'false' }: { worker?: boolean } = {},
): Promise<{ jobs: Jobs; report: ReturnType<typeof defineReport> }> {
  // LEASE_MS: how long a crashed process's jobs wait before another process takes them over (default 30 s).
  const leaseMs = process.env.LEASE_MS ? Number(process.env.LEASE_MS) : undefined;
  if (leaseMs !== undefined && !(Number.isInteger(leaseMs) && leaseMs >= 1000)) {
    throw new Error(`LEASE_MS must be an integer of at least 1000 (milliseconds), got ${process.env.LEASE_MS}`);
  }
  const jobs = createJobs({ store: await storeFromEnv(), concurrency: 50, leaseMs, worker });
  await jobs.ready();
  return { jobs, report: defineReport(jobs) };
}

function defineReport(jobs: Jobs) {
  return jobs.define('report', async (input: ReportInput, ctx): Promise<ReportResult> => {
    if (input.fail) throw new JobError('report failed', { retry: false });
    const steps = input.steps;
    for (let i = 1; i <= steps; i++) {
      await sleep(input.stepMs, ctx.signal);
      await ctx.progress((100 * i) / steps, `step ${i} of ${steps}`);
    }
    return { value: input.value, steps };
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Close the server and the runtime on SIGINT/SIGTERM, letting running jobs finish for up to 5 s. */
export function shutdownOnSignal(close: () => Promise<void>): void {
  const handler = () => {
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}
