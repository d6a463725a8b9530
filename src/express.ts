// respond-async/express: wrap an Express route so it answers 202, and serve the status endpoints. Translation only.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { JobDefinition, Jobs } from './core/runtime.js';
import { nodeHeader, parsedByApp, pathOf, readNodeBody, sendNode } from './http/node.js';
import {
  HttpProtocol,
  type ProtocolRequest,
  type RespondAsyncOptions,
  type RouteOptions,
  type RouteOptionsArg,
} from './http/protocol.js';
import type { HttpResponse } from './http/response.js';

export type ExpressRespondAsyncOptions = RespondAsyncOptions<Request>;
export type ExpressRouteOptions<Input> = RouteOptions<Request, Input>;

export interface ExpressRespondAsync {
  /** A handler for a route that answers 202 and runs `job` in the background. */
  route<Input>(job: JobDefinition<Input, unknown>, ...options: RouteOptionsArg<Request, Input>): RequestHandler;
  /** Middleware serving `GET|DELETE {basePath}/:jobId`, `GET {basePath}/:jobId/events` and `GET {basePath}`. Mount it on the app, not under a path. */
  routes(): RequestHandler;
  /** The status URL of a job. */
  statusUrl(jobId: string): string;
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

  const toRequest = (req: Request, body: unknown, bodyJson?: string): ProtocolRequest<Request> => ({
    raw: req,
    method: req.method,
    path: pathOf(req.originalUrl),
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
      return (req: Request, res: Response) => {
        // accept() never rejects and sendNode() answers 500 problem+json when it cannot write: the catch is a last guard.
        accept(req)
          .then((response) => sendNode(res, response))
          .catch(() => res.destroy());
      };
    },
    routes() {
      return (req: Request, res: Response, next: NextFunction) => {
        const path = pathOf(req.originalUrl);
        if (!protocol.matches(path)) return next();
        protocol
          .handle(toRequest(req, undefined))
          .catch((error: unknown) => protocol.error(error))
          .then((response) => (response ? sendNode(res, response) : next()))
          // next() may throw (a later middleware); Express then has its own error path.
          .catch((error: unknown) => next(error));
      };
    },
    statusUrl: (id) => protocol.statusUrl(id),
  };
}

export type { RespondAsyncOptions, RouteOptions } from './http/protocol.js';
