// respond-async/koa: Koa middleware for wrapped routes and status endpoints, with or without @koa/router.
import type { ServerResponse } from 'node:http';
import Koa, { type Context, type Middleware } from 'koa';
import type { JobDefinition, Jobs } from './core/runtime.js';
import type { JobContext } from './core/types.js';
import { type AdminOptions, AdminProtocol, adminPath } from './http/admin.js';
import { nodeHeader, parsedByApp, readNodeBody, readNodeBytes, sendNode } from './http/node.js';
import { ProblemError } from './http/problem.js';
import {
  HttpProtocol,
  type ProtocolRequest,
  type RespondAsyncOptions,
  type RouteOptions,
  type RouteOptionsArg,
} from './http/protocol.js';
import { type ReplayFailure, replayInto } from './http/replay.js';
import { type HttpResponse, unwritableResponse } from './http/response.js';
import {
  bytesOfParsedBody,
  checkWrapOptions,
  defineOptionsOf,
  parseReplayBody,
  pinClient,
  selectHeaders,
  snapshotBytes,
  type WrapOptions,
  type WrappedJob,
  type WrappedRequestSnapshot,
  wrappedJob,
} from './http/wrap.js';

declare module 'koa' {
  interface DefaultContext {
    /** Set while a wrapped middleware replays (`ra.wrap`): the job's progress reporter and cancel signal. */
    job?: WrappedJob;
  }
}

export type KoaRespondAsyncOptions = RespondAsyncOptions<Context>;
export type KoaRouteOptions<Input> = RouteOptions<Context, Input>;
export type KoaWrapOptions = WrapOptions<Context>;

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
   * Middleware serving the status endpoints under `basePath`: on the app (`app.use(ra.routes())`), or on a
   * `@koa/router` (`v1.use(ra.routes())`), where they live under the router's prefix (`/api/v1/jobs/:id`) and so does
   * the Location of the wrapped routes.
   */
  routes(): Middleware;
  /**
   * Middleware mounted before the app's body parser (`app.use(ra.errors()); app.use(bodyParser())`): turns its errors
   * (bad JSON, too large, unsupported encoding) into problem+json; other errors are rethrown.
   */
  errors(): Middleware;
  /**
   * Wrap an existing route middleware unchanged: `router.post('/exports', auth, ra.wrap(exportMiddleware, { name }))`.
   * The route answers 202 as every wrapped route does, and the middleware runs as job `name`, replayed into a Koa
   * app of its own with the request as it came (body bytes, headers but secrets, params, query, what `capture`
   * kept); its response becomes the job's result, served by `GET {statusUrl}/result`. A worker process calls `wrap`
   * with the same middleware and name to run these jobs.
   */
  wrap(middleware: Middleware<any, any>, options: KoaWrapOptions): Middleware;
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

  // Where a `@koa/router` mounted `routes()` (its prefix, `router.use(ra.routes())`): the Location of wrapped routes.
  let routerMount = '';
  // `under`: the part of ctx.path before the status routes (a router's prefix), or routerMount for a wrapped route.
  const toRequest = (ctx: Context, body: unknown, bodyJson?: string, under?: string): ProtocolRequest<Context> => {
    const params = (ctx as { params?: Record<string, string> }).params;
    return {
      raw: ctx,
      method: ctx.method,
      path: under === undefined ? ctx.path : ctx.path.slice(under.length),
      // koa-mount strips its prefix from ctx.path and keeps it here.
      mount: mountOf(ctx) + (under ?? routerMount),
      header: nodeHeader(ctx.req),
      body,
      bodyJson,
      params: params === undefined ? {} : { ...params },
      // Koa parses and caches the query on first read: a URL without one need not pay for that.
      query: ctx.url.includes('?') ? { ...ctx.query } : {},
    };
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
      const handle = async (ctx: Context, next: () => Promise<unknown>, under = '') => {
        const response = await protocol
          .handle(toRequest(ctx, undefined, undefined, under))
          .catch((error: unknown) => protocol.error(error));
        if (!response) return next();
        send(ctx, response);
      };
      // Not async itself: a request for another route (a wrapped POST among them) goes on without a promise more,
      // and without parsing its URL when the URL (origin-form, as clients send it) does not start with the base path.
      const base = protocol.basePath;
      const middleware: Middleware = (ctx, next) => {
        const url = ctx.url;
        const maybe = url.startsWith(base) || url.charCodeAt(0) !== 47; // 47: '/'
        return maybe && protocol.matches(ctx.path) ? handle(ctx, next) : next();
      };
      // `router.use(ra.routes())` on a @koa/router: a router runs `use()` middleware only where one of its routes
      // matched, so this middleware comes as a nested router of one route (what `router.use(other.routes())`
      // takes), whose paths are the protocol's under the router's prefix. The router copies the layer and prefixes
      // it (`setPrefix`, once per enclosing router); the copy's path is `{prefix}{basePath}`, which the router hands
      // back as `ctx.routerPath` when it runs the layer.
      const layer = routerLayer(base, protocol, handle, (mount) => {
        routerMount = mount;
      });
      const router = {
        stack: [layer],
        param() {
          return this;
        },
      };
      return Object.assign(middleware, { router });
    },
    errors: () => bodyParserErrors(protocol),
    wrap(middleware, wrapOptions) {
      checkWrapOptions(wrapOptions);
      const definition = jobs.define(
        wrapOptions.name,
        replayer(middleware, wrapOptions, jobs.options.maxResultBytes),
        defineOptionsOf(wrapOptions),
      );
      return async (ctx) => {
        let response: HttpResponse;
        try {
          const request = ctx.request as { body?: unknown; rawBody?: unknown };
          const parsed = parsedByApp(ctx.req, request.body);
          const body = parsed
            ? // `@koa/bodyparser` keeps the text it parsed.
              typeof request.rawBody === 'string'
              ? Buffer.from(request.rawBody)
              : bytesOfParsedBody(request.body, ctx.get('content-type'))
            : await readNodeBytes(ctx.req, ctx.req.headers, protocol as HttpProtocol<unknown>);
          if (body.byteLength > protocol.maxBodyBytes) throw new ProblemError(protocol.error({ status: 413 }));
          const snapshot = snapshotOf(ctx, body, wrapOptions, parsed);
          response = await protocol.submitWrapped(
            definition,
            toRequest(ctx, undefined),
            snapshot,
            wrapOptions.estimatedSeconds,
          );
        } catch (error) {
          response = protocol.error(error);
        }
        send(ctx, response);
      };
    },
    statusUrl: (id) => protocol.statusUrl(id),
    admin: (adminOptions) => adminMiddleware(jobs, protocol, adminOptions),
  };
}

/** The members of a `@koa/router` layer (route) that a router reads when it mounts and runs a nested router's. */
interface KoaRouterLayer {
  mount: string;
  path: string;
  name: undefined;
  methods: string[];
  paramNames: string[];
  opts: Record<string, unknown>;
  stack: Middleware[];
  setPrefix(prefix: string): KoaRouterLayer;
  match(path: string): boolean;
  captures(path: string): string[];
  params(path: string, captures: string[], params?: Record<string, string>): Record<string, string>;
  param(): KoaRouterLayer;
}

export type { AdminDecision, AdminOptions } from './http/admin.js';

/** What a wrapped Koa middleware keeps of the request for its replay. */
function snapshotOf(
  ctx: Context,
  body: Buffer,
  wrapOptions: KoaWrapOptions,
  parsed: boolean,
): Omit<WrappedRequestSnapshot, 'owner'> {
  const params = (ctx as { params?: Record<string, string> }).params;
  return {
    method: ctx.method,
    url: ctx.url,
    mount: mountOf(ctx),
    params: params === undefined ? {} : { ...params },
    query: { ...ctx.query },
    headers: selectHeaders(ctx.req.headers, wrapOptions.headers, parsed),
    body: body.byteLength === 0 ? null : body.toString('base64'),
    captured: wrapOptions.capture?.(ctx) ?? null,
    client: { protocol: ctx.protocol, ip: ctx.ip, ips: ctx.ips, hostname: ctx.hostname, host: ctx.host },
  };
}

/**
 * The job handler of a wrapped Koa middleware: each attempt replays the snapshot into a fresh Koa app whose only
 * middleware runs `middleware` with the snapshot's params, body and restored context.
 */
function replayer(middleware: Middleware<any, any>, wrapOptions: KoaWrapOptions, maxResultBytes: number) {
  return (snapshot: WrappedRequestSnapshot, jobContext: JobContext) => {
    const failure: ReplayFailure = {};
    const app = new Koa();
    app.use(async (ctx, next) => {
      try {
        (ctx as { params?: Record<string, string> }).params = snapshot.params;
        if (wrapOptions.parse !== false) {
          const bytes = snapshotBytes(snapshot);
          const request = ctx.request as { body?: unknown; rawBody?: string };
          request.body = parseReplayBody(bytes, ctx.get('content-type'), ctx.get('content-encoding'));
          if (bytes !== undefined) request.rawBody = bytes.toString('utf8');
        }
        pinClient(ctx.request, snapshot.client);
        ctx.job = wrappedJob(jobContext);
        wrapOptions.restore?.(ctx, snapshot.captured);
        await middleware(ctx, next);
      } catch (error) {
        failure.error = error ?? new Error('the middleware threw a falsy value');
        ctx.status = 500;
        ctx.body = '';
      }
    });
    return replayInto(app.callback(), snapshot, jobContext, maxResultBytes, failure);
  };
}

/** `ra.errors()`: the app's body parser errors on wrapped routes as problem+json; other errors are rethrown. */
function bodyParserErrors(protocol: HttpProtocol<Context>): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const response = protocol.bodyParserError(error);
      if (response === undefined || ctx.res.headersSent) throw error;
      send(ctx, response);
    }
  };
}

/** `ra.admin()`: the operator's page and API under `adminOptions.path`. */
function adminMiddleware(jobs: Jobs, protocol: HttpProtocol<Context>, adminOptions: KoaAdminOptions): Middleware {
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
}

/** Write a protocol answer on the context (a stream goes straight to the response, around Koa). */
function send(ctx: Context, given: HttpResponse): void {
  if (given.stream) {
    ctx.respond = false;
    sendNode(ctx.res, given);
    return;
  }
  let response = given;
  const { res } = ctx;
  // A header Node refuses (a value no HTTP message may carry) makes the answer the 500 problem answer, as sendNode
  // does, rather than Koa's text/plain error.
  if (!res.headersSent && !setHeaders(res, response.headers)) {
    response = unwritableResponse();
    setHeaders(res, response.headers);
  }
  ctx.status = response.status;
  ctx.body = response.bytes ? Buffer.from(response.bytes) : response.body;
}

/**
 * What ctx.set() does, without its per-call arrays (our names are lower case and our values strings already), and
 * without checking the headers first: Node checks each as it is set. false if Node refused one, with none of these
 * names left set.
 */
function setHeaders(res: ServerResponse, headers: Record<string, string>): boolean {
  try {
    for (const name in headers) res.setHeader(name, headers[name]);
    return true;
  } catch {
    for (const name in headers) res.removeHeader(name);
    return false;
  }
}

/**
 * `routes()` as a `@koa/router` layer of one route (what `router.use(other.routes())` takes), so that a router runs
 * it under its prefix; `onPrefix` hears the router's prefix once the router sets it.
 */
function routerLayer(
  base: string,
  protocol: HttpProtocol<Context>,
  handle: (ctx: Context, next: () => Promise<unknown>, under?: string) => Promise<unknown>,
  onPrefix: (mount: string) => void,
): KoaRouterLayer {
  return {
    mount: '',
    path: base,
    name: undefined,
    methods: ['HEAD', 'GET', 'DELETE', 'POST', 'PUT', 'PATCH', 'OPTIONS', 'TRACE'],
    paramNames: [],
    opts: {},
    stack: [
      (ctx, next) => {
        const path = (ctx as { routerPath?: string }).routerPath ?? base;
        return handle(ctx, next, path.slice(0, path.length - base.length));
      },
    ],
    setPrefix(prefix: string) {
      this.mount = prefix.replace(/\/+$/, '') + this.mount;
      this.path = this.mount + base;
      onPrefix(this.mount);
      return this;
    },
    match(path: string) {
      return path.startsWith(this.path) && protocol.matches(path.slice(this.mount.length));
    },
    captures: () => [],
    params: (_path: string, _captures: string[], params?: Record<string, string>) => params ?? {},
    param() {
      return this;
    },
  };
}

/** koa-mount's prefix (`ctx.mountPath`, stripped from `ctx.path`), without a trailing slash; `''` without it. */
function mountOf(ctx: Context): string {
  const mountPath = (ctx as { mountPath?: string }).mountPath;
  return mountPath === undefined || mountPath === '/' ? '' : mountPath.replace(/\/+$/, '');
}

export type { RespondAsyncOptions, RouteOptions } from './http/protocol.js';
export type { CapturedResponse, WrappedJob, WrappedRequestSnapshot } from './http/wrap.js';
