// The app's ordinary `POST /api/v1/users/:id/exports` handler, one per framework, as it was before respond-async:
// the API process wraps it, and the worker process wraps the same handler under the same name to run its jobs.

/** What the handler answers: who asked (set by the app's auth), the param, the query and the JSON body. */
function exportOf(user, id, format, body) {
  const rows = Math.min(Number(body?.rows) || 0, 1000);
  const lines = Array.from({ length: rows }, (_, i) => `${id},${i}`);
  return { user, id, format: format ?? null, rows: body?.rows ?? null, note: 'ünïcode ✓', lines };
}

/** A long export (`waitMs` in the body) ends early when its job is canceled. */
function work(ms, signal) {
  if (!ms) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => resolve(clearTimeout(timer)), { once: true });
  });
}

export async function expressExport(req, res) {
  await req.job?.progress(50, 'half way');
  await work(req.body?.waitMs, req.job?.signal);
  res
    .status(201)
    .set('x-export-id', `exp-${req.params.id}`)
    .json(exportOf(req.user, req.params.id, req.query.format, req.body));
}

export async function fastifyExport(request, reply) {
  await request.job?.progress(50, 'half way');
  await work(request.body?.waitMs, request.job?.signal);
  return reply
    .code(201)
    .header('x-export-id', `exp-${request.params.id}`)
    .send(exportOf(request.user, request.params.id, request.query.format, request.body));
}

export async function koaExport(ctx) {
  await ctx.job?.progress(50, 'half way');
  await work(ctx.request.body?.waitMs, ctx.job?.signal);
  ctx.status = 201;
  ctx.set('x-export-id', `exp-${ctx.params.id}`);
  ctx.body = exportOf(ctx.state.user, ctx.params.id, ctx.query.format, ctx.request.body);
}

/** The wrap options, the same in the API and the worker process: the user the auth middleware set travels along. */
export const wrapOf = {
  express: [
    expressExport,
    {
      name: 'express-export',
      capture: (req) => ({ user: req.user }),
      restore: (req, captured) => {
        req.user = captured.user;
      },
    },
  ],
  fastify: [
    fastifyExport,
    {
      name: 'fastify-export',
      capture: (request) => ({ user: request.user }),
      restore: (request, captured) => {
        request.user = captured.user;
      },
    },
  ],
  koa: [
    koaExport,
    {
      name: 'koa-export',
      capture: (ctx) => ({ user: ctx.state.user }),
      restore: (ctx, captured) => {
        ctx.state.user = captured.user;
      },
    },
  ],
};

/** The dashboard's authorize, on the app's own auth: no user 401, a user other than `ops` 403. */
export function opsOnly(user) {
  if (user === null) return 401;
  return user === 'ops' ? true : 403;
}
