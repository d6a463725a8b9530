// respond-async/express: wrap an Express route so it answers 202, and serve the status endpoints. Translation only.
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import express from 'express';
import type { JobDefinition, Jobs } from './core/runtime.js';
import type { JobContext } from './core/types.js';
import { type AdminOptions, AdminProtocol } from './http/admin.js';
import { nodeHeader, parsedByApp, pathOf, readNodeBody, readNodeBytes, sendNode } from './http/node.js';
import {
  HttpProtocol,
  type ProtocolRequest,
  type RespondAsyncOptions,
  type RouteOptions,
  type RouteOptionsArg,
} from './http/protocol.js';
import { type ReplayFailure, replayInto } from './http/replay.js';
import type { HttpResponse } from './http/response.js';
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

declare global {
  namespace Express {
    interface Request {
      /** Set while a wrapped handler replays (`ra.wrap`): the job's progress reporter and cancel signal. */
      job?: WrappedJob;
    }
  }
}

export type ExpressRespondAsyncOptions = RespondAsyncOptions<Request>;
export type ExpressRouteOptions<Input> = RouteOptions<Request, Input>;
export type ExpressWrapOptions = WrapOptions<Request>;

export interface ExpressRespondAsync {
  /** A handler for a route that answers 202 and runs `job` in the background. */
  route<Input>(job: JobDefinition<Input, unknown>, ...options: RouteOptionsArg<Request, Input>): RequestHandler;
  /**
   * Wrap an existing handler unchanged: the route answers 202 as every wrapped route does, and the handler runs as
   * job `options.name`, replayed with the request as it came (body bytes, headers but secrets, params, query, what
   * `capture` kept); its response becomes the job's result, served by `GET {statusUrl}/result`. A worker process
   * calls `wrap` with the same handler and name to run these jobs (and ignores the middleware it returns).
   * @example
   * app.post('/exports', auth, ra.wrap(exportHandler, {
   *   name: 'export',
   *   capture: (req) => ({ user: req.user }),
   *   restore: (req, captured) => { req.user = captured.user },
   * }));
   */
  wrap(handler: RequestHandler<any, any, any, any>, options: ExpressWrapOptions): RequestHandler;
  /**
   * Middleware serving `GET|DELETE {basePath}/:jobId`, `GET {basePath}/:jobId/events` and `GET {basePath}`, relative
   * to where it is mounted: `api.use(ra.routes()); app.use('/api/v1', api)` serves `/api/v1/jobs/:jobId`.
   */
  routes(): RequestHandler;
  /**
   * Error middleware, mounted after the routes (`app.use(ra.errors())`): turns the errors of a body parser that ran
   * before a wrapped route (`express.json()`: bad JSON, too large, unsupported charset or encoding) into
   * problem+json; any other error goes on to the app's error handlers.
   */
  errors(): ErrorRequestHandler;
  /** The status URL of a job. */
  statusUrl(jobId: string): string;
  /**
   * The operator's dashboard and admin API, where the app mounts it: `app.use('/admin', ra.admin({ authorize }))`
   * serves the page at `/admin/`, the API under `/admin/api/`. `authorize` is required.
   */
  admin(options: AdminOptions<Request>): RequestHandler;
}

/**
 * Express adapter (Express 4.18+ and 5).
 * @example
 * const ra = respondAsync(jobs, { owner: (req) => req.get('x-user') });
 * app.post('/reports', ra.route(report));
 * app.use(ra.routes());
 */
export function respondAsync(jobs: Jobs, options: ExpressRespondAsyncOptions = {}): ExpressRespondAsync {
  const protocol = new HttpProtocol<Request>(jobs, options);

  // The mount is the router's mount path (`req.baseUrl`), for the status routes and a wrapped route alike: a route
  // and `routes()` on one router share it, so its Location is where `routes()` answers.
  const toRequest = (
    req: Request,
    body: unknown,
    bodyJson?: string,
    path = pathOf(req.originalUrl),
  ): ProtocolRequest<Request> => ({
    raw: req,
    method: req.method,
    path,
    mount: req.baseUrl,
    header: nodeHeader(req),
    body,
    bodyJson,
    params: { ...(req.params as Record<string, string>) },
    query: { ...(req.query as Record<string, unknown>) },
  });

  return {
    route<Input>(job: JobDefinition<Input, unknown>, routeOptions?: ExpressRouteOptions<Input>) {
      const accept = async (req: Request): Promise<HttpResponse> => {
        try {
          if (parsedByApp(req, req.body)) {
            return await protocol.submit(
              job,
              toRequest(req, protocol.checkParsedBody(req.body, req.headers)),
              routeOptions,
            );
          }
          const body = await readNodeBody(req, req.headers, protocol as HttpProtocol<unknown>);
          return await protocol.submit(job, toRequest(req, body.value, body.json), routeOptions);
        } catch (error) {
          return protocol.error(error);
        }
      };
      return answerWith(accept);
    },
    wrap(handler, wrapOptions) {
      checkWrapOptions(wrapOptions);
      const definition = jobs.define(
        wrapOptions.name,
        replayer(handler, wrapOptions, jobs.options.maxResultBytes),
        defineOptionsOf(wrapOptions),
      );
      const accept = async (req: Request): Promise<HttpResponse> => {
        try {
          const parsed = parsedByApp(req, req.body);
          const body = parsed
            ? bytesOfParsedBody(req.body, req.headers['content-type'])
            : await readNodeBytes(req, req.headers, protocol as HttpProtocol<unknown>);
          if (body.byteLength > protocol.maxBodyBytes) return protocol.error({ status: 413 });
          const snapshot = snapshotOf(req, body, wrapOptions, parsed);
          const path = pathOf(req.originalUrl);
          return await protocol.submitWrapped(
            definition,
            toRequest(req, undefined, undefined, path),
            snapshot,
            wrapOptions.estimatedSeconds,
          );
        } catch (error) {
          return protocol.error(error);
        }
      };
      return answerWith(accept);
    },
    routes() {
      return (req: Request, res: Response, next: NextFunction) => {
        // Relative to where the app mounted this middleware (`api.use(ra.routes()); app.use('/api/v1', api)`).
        const path = pathOf(req.url);
        if (!protocol.matches(path)) return next();
        protocol
          .handle(toRequest(req, undefined, undefined, path))
          .catch((error: unknown) => protocol.error(error))
          .then((response) => (response ? sendNode(res, response) : next()))
          // next() may throw (a later middleware); Express then has its own error path.
          .catch((error: unknown) => next(error));
      };
    },
    errors() {
      return (error: unknown, _req: Request, res: Response, next: NextFunction) => {
        const response = protocol.bodyParserError(error);
        if (response === undefined || res.headersSent) return next(error);
        sendNode(res, response);
      };
    },
    statusUrl: (id) => protocol.statusUrl(id),
    admin(adminOptions) {
      const admin = new AdminProtocol<Request>(jobs, adminOptions, (error) => protocol.error(error));
      return (req: Request, res: Response) => {
        const url = req.originalUrl;
        const query = url.indexOf('?');
        admin
          .handle({
            raw: req,
            method: req.method,
            path: pathOf(url).slice(req.baseUrl.length),
            mount: req.baseUrl,
            query: new URLSearchParams(query === -1 ? '' : url.slice(query + 1)),
            header: nodeHeader(req),
          })
          .then((response) => sendNode(res, response))
          .catch(() => res.destroy());
      };
    },
  };
}

/**
 * Give a replayed request the `baseUrl` and `url` it had under the app's router, set by hand: the mount is a concrete
 * path (`/orgs/urn:isbn:1`), which `app.use(mount)` would read as a route pattern (`:`, `*`, `(` mean something there).
 */
function remount(req: Request, mount: string): void {
  if (mount === '' || !req.url.startsWith(mount)) return;
  const rest = req.url.slice(mount.length);
  req.baseUrl = mount;
  req.url = rest.startsWith('/') ? rest : `/${rest}`;
}

/**
 * The host and port the client asked for, as Express 5's `req.host` reads it (`X-Forwarded-Host` from a trusted
 * proxy, else `Host`); Express 4's `req.host` is a deprecated alias of `hostname`, so it is not called.
 */
function hostOf(req: Request): string {
  const trust = req.app.get('trust proxy fn') as ((address: string | undefined, hop: number) => boolean) | undefined;
  const forwarded = req.get('x-forwarded-host');
  const host = forwarded && trust?.(req.socket.remoteAddress, 0) ? forwarded.split(',')[0].trim() : req.get('host');
  return host ?? '';
}

/** What a wrapped Express route keeps of the request for its replay. */
function snapshotOf(
  req: Request,
  body: Buffer,
  wrapOptions: ExpressWrapOptions,
  parsed: boolean,
): Omit<WrappedRequestSnapshot, 'owner'> {
  return {
    method: req.method,
    url: req.originalUrl,
    mount: req.baseUrl,
    params: { ...(req.params as Record<string, string>) },
    query: { ...(req.query as Record<string, unknown>) },
    headers: selectHeaders(req.headers, wrapOptions.headers, parsed),
    body: body.byteLength === 0 ? null : body.toString('base64'),
    captured: wrapOptions.capture?.(req) ?? null,
    client: {
      protocol: req.protocol,
      ip: req.ip ?? '',
      ips: req.ips,
      hostname: req.hostname ?? '',
      host: hostOf(req),
    },
  };
}

/** A route handler answering what `accept` builds for the request. */
function answerWith(accept: (req: Request) => Promise<HttpResponse>) {
  return (req: Request, res: Response) => {
    // accept() never rejects and sendNode() answers 500 problem+json when it cannot write: the catch is a last guard.
    accept(req)
      .then((response) => sendNode(res, response))
      .catch(() => res.destroy());
  };
}

/**
 * The job handler of a wrapped Express route: each attempt replays the snapshot into a fresh Express app whose only
 * middleware runs `handler` with the snapshot's mount, params, query, body and restored context.
 */
function replayer(
  handler: RequestHandler<any, any, any, any>,
  wrapOptions: ExpressWrapOptions,
  maxResultBytes: number,
) {
  return (snapshot: WrappedRequestSnapshot, ctx: JobContext) => {
    const failure: ReplayFailure = {};
    const app = express();
    app.disable('x-powered-by');
    app.use((req: Request, res: Response, next: NextFunction) => {
      remount(req, snapshot.mount);
      req.params = snapshot.params;
      // Express 5 parses the query from the URL with the app's parser: the snapshot holds what the route saw.
      Object.defineProperty(req, 'query', { value: snapshot.query, writable: true, configurable: true });
      if (wrapOptions.parse !== false)
        req.body = parseReplayBody(
          snapshotBytes(snapshot),
          req.headers['content-type'],
          req.headers['content-encoding'],
        );
      pinClient(req, snapshot.client);
      req.job = wrappedJob(ctx);
      wrapOptions.restore?.(req, snapshot.captured);
      // Express 4 does not catch a rejected promise; a returned promise is caught here on both.
      const returned: unknown = handler(req, res, next);
      if (returned instanceof Promise) returned.catch(next);
    });
    app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
      failure.error = error ?? new Error('next() was called with a falsy error');
      if (res.headersSent) res.end();
      else res.status(500).end();
    });
    return replayInto(app, snapshot, ctx, maxResultBytes, failure);
  };
}

export type { AdminDecision, AdminOptions } from './http/admin.js';

export type { RespondAsyncOptions, RouteOptions } from './http/protocol.js';
export type { CapturedResponse, WrappedJob, WrappedRequestSnapshot } from './http/wrap.js';
