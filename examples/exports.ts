// The `POST /exports` demo: an ordinary handler of each framework, written as if respond-async did not exist. Each
// example wraps its own with `ra.wrap(handler, { name: 'export-<framework>' })`; examples/worker.ts wraps all three.
import type { Request, Response } from 'express';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Context } from 'koa';

export interface ExportBody {
  /** How long the export takes, in ms. Default 100. */
  ms?: number;
  /** Rows to report. Default 10. */
  rows?: number;
}

/** What each export handler answers (201). */
export interface ExportResult {
  user: string | null;
  rows: number;
}

function exportOf(body: unknown, user: string | undefined): { ms: number; result: ExportResult } {
  const { ms, rows } = (typeof body === 'object' && body !== null ? body : {}) as ExportBody;
  return {
    ms: typeof ms === 'number' ? ms : 100,
    result: { user: user ?? null, rows: typeof rows === 'number' ? rows : 10 },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Express: `app.post('/exports', express.json(), expressExport)` would serve it synchronously. */
export async function expressExport(req: Request, res: Response): Promise<void> {
  const { ms, result } = exportOf(req.body, req.get('x-user'));
  await sleep(ms);
  res.status(201).json(result);
}

/** Fastify: a route handler returning its reply. */
export async function fastifyExport(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const user = request.headers['x-user'];
  const { ms, result } = exportOf(request.body, typeof user === 'string' ? user : undefined);
  await sleep(ms);
  return reply.code(201).send(result);
}

/** Koa: a middleware setting the status and body. */
export async function koaExport(ctx: Context): Promise<void> {
  const { ms, result } = exportOf((ctx.request as { body?: unknown }).body, ctx.get('x-user') || undefined);
  await sleep(ms);
  ctx.status = 201;
  ctx.body = result;
}
