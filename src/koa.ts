// respond-async/koa: Koa middleware for wrapped routes and status endpoints, with or without @koa/router.
import type { Context, Middleware } from 'koa';
import type { JobDefinition, Jobs } from './core/runtime.js';
import { type AdminOptions, AdminProtocol, adminPath } from './http/admin.js';
import { nodeHeader, parsedByApp, readNodeBody, sendNode } from './http/node.js';
import {
  HttpProtocol,
  type ProtocolRequest,
  type RespondAsyncOptions,
  type RouteOptions,
  type RouteOptionsArg,
} from './http/protocol.js';
import { type HttpResponse, writableResponse } from './http/response.js';

export type KoaRespondAsyncOptions = RespondAsyncOptions<Context>;
export type KoaRouteOptions<Input> = RouteOptions<Context, Input>;

export interface KoaRespondAsync {
  /** Middleware for a route (e.g. `router.post('/reports', ra.route(report))`): answers 202 and runs `job`. */
  route<Input>(job: JobDefinition<Input, unknown>, ...options: RouteOptionsArg<Context, Input>): Middleware;
  /** Like `route`, matching `method` and `path` itself, for apps without a router: `app.use(ra.post('/reports', report))`. */
  post<Input>(
    path: string,
    job: JobDefinition<Input, unknown>,
    ...options: RouteOptionsArg<Context, Input>
  ): Middleware;
  /**
   * Middleware serving the status endpoints under `basePath`. Mount it on the app (`app.use(ra.routes())`), not with a
   * prefixed `@koa/router`'s `use()`, which runs middleware only on paths where one of its routes matched: for
   * `/api/v1`, give the full `basePath: '/api/v1/jobs'`.
   */
  routes(): Middleware;
  /**
   * Middleware mounted before the app's body parser (`app.use(ra.errors()); app.use(bodyParser())`): turns its errors
   * (bad JSON, too large, unsupported encoding) into problem+json; other errors are rethrown.
   */
  errors(): Middleware;
  statusUrl(jobId: string): string;
  /**
   * The operator's dashboard and admin API under `options.path` (or where koa-mount mounts it):
   * `app.use(ra.admin({ path: '/admin', authorize }))`. `authorize` is required.
   */
  admin(options: KoaAdminOptions): Middleware;
}

export interface KoaAdminOptions extends AdminOptions<Context> {
  /** Where the dashboard answers, such as `/admin`. Required. */
  path: string;
}

/**
 * Koa adapter (Koa 2 and 3).
 * @example
 * const ra = respondAsync(jobs, { owner: (ctx) => ctx.get('x-user') || null });
 * app.use(ra.routes());
 * app.use(ra.post('/reports', report));
 */
export function respondAsync(jobs: Jobs, options: KoaRespondAsyncOptions = {}): KoaRespondAsync {
  const protocol = new HttpProtocol<Context>(jobs, options);

  const toRequest = (ctx: Context, body: unknown, bodyJson?: string): ProtocolRequest<Context> => {
    const params = (ctx as { params?: Record<string, string> }).params;
    return {
      raw: ctx,
      method: ctx.method,
      path: ctx.path,
      // koa-mount strips its prefix from ctx.path and keeps it here.
      mount: mountOf(ctx),
      header: nodeHeader(ctx.req),
      body,
      bodyJson,
      params: params === undefined ? {} : { ...params },
      // Koa parses and caches the query on first read: a URL without one need not pay for that.
      query: ctx.url.includes('?') ? { ...ctx.query } : {},
    };
  };

  const send = (ctx: Context, given: HttpResponse): void => {
    const response = writableResponse(given);
    if (response.stream) {
      ctx.respond = false;
      sendNode(ctx.res, response);
      return;
    }
    ctx.status = response.status;
    // What ctx.set() does, without its per-call arrays: our names are lower case and our values strings already.
    const { res } = ctx;
    if (!res.headersSent) for (const name in response.headers) res.setHeader(name, response.headers[name]);
    ctx.body = response.body;
  };

  const route =
    <Input>(job: JobDefinition<Input, unknown>, routeOptions?: KoaRouteOptions<Input>): Middleware =>
    async (ctx) => {
      let response: HttpResponse;
      try {
        const parsed = (ctx.request as { body?: unknown }).body;
        if (parsedByApp(ctx.req, parsed)) {
          const body = protocol.checkParsedBody(parsed, ctx.req.headers);
          response = await protocol.submit(job, toRequest(ctx, body), routeOptions);
        } else {
          const body = await readNodeBody(ctx.req, ctx.req.headers, protocol as HttpProtocol<unknown>);
          response = await protocol.submit(job, toRequest(ctx, body.value, body.json), routeOptions);
        }
      } catch (error) {
        response = protocol.error(error);
      }
      send(ctx, response);
    };

  return {
    route,
    post<Input>(path: string, job: JobDefinition<Input, unknown>, routeOptions?: KoaRouteOptions<Input>) {
      const handler = route(job, routeOptions);
      return (ctx, next) => (ctx.method === 'POST' && ctx.path === path ? handler(ctx, next) : next());
    },
    routes() {
      const handle = async (ctx: Context, next: () => Promise<unknown>) => {
        const response = await protocol
          .handle(toRequest(ctx, undefined))
          .catch((error: unknown) => protocol.error(error));
        if (!response) return next();
        send(ctx, response);
      };
      // Not async itself: a request for another route (a wrapped POST among them) goes on without a promise more,
      // and without parsing its URL when the URL (origin-form, as clients send it) does not start with the base path.
      const base = protocol.basePath;
      return (ctx, next) => {
        const url = ctx.url;
        const maybe = url.startsWith(base) || url.charCodeAt(0) !== 47; // 47: '/'
        return maybe && protocol.matches(ctx.path) ? handle(ctx, next) : next();
      };
    },
    errors() {
      return async (ctx, next) => {
        try {
          await next();
        } catch (error) {
          const response = protocol.bodyParserError(error);
          if (response === undefined || ctx.res.headersSent) throw error;
          send(ctx, response);
        }
      };
    },
    statusUrl: (id) => protocol.statusUrl(id),
    admin(adminOptions) {
      const admin = new AdminProtocol<Context>(jobs, adminOptions, (error) => protocol.error(error));
      const path = adminPath(adminOptions.path);
      return async (ctx, next) => {
        const own = ctx.path === path || ctx.path.startsWith(`${path}/`);
        if (!own) return next();
        const response = await admin.handle({
          raw: ctx,
          method: ctx.method,
          path: ctx.path.slice(path.length),
          mount: mountOf(ctx) + path,
          query: new URLSearchParams(ctx.querystring),
          header: nodeHeader(ctx.req),
        });
        send(ctx, response);
      };
    },
  };
}

export type { AdminDecision, AdminOptions } from './http/admin.js';

/** koa-mount's prefix (`ctx.mountPath`, stripped from `ctx.path`), without a trailing slash; `''` without it. */
function mountOf(ctx: Context): string {
  const mountPath = (ctx as { mountPath?: string }).mountPath;
  return mountPath === undefined || mountPath === '/' ? '' : mountPath.replace(/\/+$/, '');
}

export type { RespondAsyncOptions, RouteOptions } from './http/protocol.js';
