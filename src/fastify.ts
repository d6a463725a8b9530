// respond-async/fastify: a Fastify 5 plugin serving the status endpoints, and route options for wrapped routes.
import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  preParsingAsyncHookHandler,
  RequestPayload,
  RouteShorthandOptionsWithHandler,
} from 'fastify';
import fp from 'fastify-plugin';
import type { JobDefinition, Jobs } from './core/runtime.js';
import { nodeHeader, pathOf, readNodeBody, sendNode } from './http/node.js';
import {
  HttpProtocol,
  type ProtocolRequest,
  type RequestBody,
  type RespondAsyncOptions,
  type RouteOptions,
  type RouteOptionsArg,
} from './http/protocol.js';
import { type HttpResponse, writableResponse } from './http/response.js';

export type FastifyRespondAsyncOptions = RespondAsyncOptions<FastifyRequest>;
export type FastifyRouteOptions<Input> = RouteOptions<FastifyRequest, Input>;

export interface FastifyRespondAsync {
  /** Register with `await app.register(ra.plugin)`: serves the status endpoints under `basePath`. */
  plugin: FastifyPluginAsync;
  /** Route options (handler, body reading, problem+json errors) for `app.post('/reports', ra.route(report))`. */
  route<Input>(
    job: JobDefinition<Input, unknown>,
    ...options: RouteOptionsArg<FastifyRequest, Input>
  ): RouteShorthandOptionsWithHandler;
  statusUrl(jobId: string): string;
}

/**
 * Fastify adapter (Fastify 5). Works with `app.inject()`.
 * @example
 * const ra = respondAsync(jobs, { owner: (req) => req.headers['x-user']?.toString() });
 * await app.register(ra.plugin);
 * app.post('/reports', ra.route(report));
 */
export function respondAsync(jobs: Jobs, options: FastifyRespondAsyncOptions = {}): FastifyRespondAsync {
  const protocol = new HttpProtocol<FastifyRequest>(jobs, options);

  // Where the plugin is registered (the registering instance's `prefix`): the Location of every wrapped route.
  let mount = '';
  const toRequest = (request: FastifyRequest, body?: RequestBody, prefix = mount): ProtocolRequest<FastifyRequest> => ({
    raw: request,
    method: request.method,
    path: pathOf(request.url).slice(prefix.length),
    mount: prefix,
    header: nodeHeader(request.raw),
    body: body?.value,
    bodyJson: body?.json,
    params: { ...(request.params as Record<string, string>) },
    query: { ...(request.query as Record<string, unknown>) },
  });

  // Open event streams, ended before the server closes (Fastify waits for hijacked connections otherwise).
  const streams = new Set<() => void>();
  const send = (reply: FastifyReply, given: HttpResponse): FastifyReply | undefined => {
    const response = writableResponse(given);
    if (response.stream) {
      reply.hijack();
      const end = sendNode(reply.raw, response);
      if (end) {
        streams.add(end);
        reply.raw.once('close', () => streams.delete(end));
      }
      return undefined;
    }
    return reply.code(response.status).headers(response.headers).send(response.body);
  };

  const errorHandler = (error: unknown, _request: FastifyRequest, reply: FastifyReply) =>
    send(reply, protocol.error(error));

  // Bodies of wrapped routes, read by the protocol's rules (as the other adapters do) instead of Fastify's parsers,
  // which refuse `application/*+json`, a `__proto__` key and an empty JSON body. Kept until the handler runs, so that
  // the app's own hooks (authentication) still answer before a bad body does.
  const readBody: preParsingAsyncHookHandler = async (request, _reply, payload) => {
    try {
      (request as WithBody)[BODY] = {
        body: await readNodeBody(payload, request.raw.headers, protocol as HttpProtocol<unknown>),
      };
    } catch (error) {
      (request as WithBody)[BODY] = { error };
    }
    return skipParsing(request, payload);
  };

  const statusHandler = (prefix: string) => async (request: FastifyRequest, reply: FastifyReply) => {
    const response = await protocol
      .handle(toRequest(request, undefined, prefix))
      .catch((error: unknown) => protocol.error(error));
    // Not one of ours after all (`{basePath}/` matches `:jobId` empty): the app's 404, as on the other adapters.
    if (response) return send(reply, response);
    reply.callNotFound();
    return reply;
  };

  const plugin: FastifyPluginAsync = async (app: FastifyInstance) => {
    // Fastify prefixes the routes below with the registering instance's prefix (`register(…, { prefix })`), so
    // `basePath` is relative to it, and so is every status URL.
    mount = app.prefix;
    const base = protocol.basePath;
    app.addHook('preClose', async () => {
      for (const end of streams) end();
    });
    // Only the paths the protocol owns (DESIGN.md, "Paths under the base path"): the app's own routes under the
    // base path still register, and anything else there reaches the app's 404. Every method on a job's paths, so
    // that those it does not take answer 405 with Allow; their bodies are never parsed (nor read).
    const common = {
      exposeHeadRoutes: false,
      errorHandler,
      handler: statusHandler(app.prefix),
      preParsing: (request: FastifyRequest, _reply: FastifyReply, payload: RequestPayload) =>
        Promise.resolve(skipParsing(request, payload)),
    };
    const methods = ['GET', 'HEAD', 'DELETE', 'POST', 'PUT', 'PATCH', 'OPTIONS', 'TRACE'];
    app.route({ ...common, method: methods, url: `${base}/:jobId` });
    app.route({ ...common, method: methods, url: `${base}/:jobId/events` });
    if (protocol.listsJobs) app.route({ ...common, method: ['GET', 'HEAD'], url: base });
  };

  return {
    plugin: fp(plugin, { fastify: '5.x', name: 'respond-async' }),
    route<Input>(job: JobDefinition<Input, unknown>, routeOptions?: FastifyRouteOptions<Input>) {
      return {
        errorHandler,
        preParsing: readBody,
        handler: async (request, reply) => {
          let response: HttpResponse;
          try {
            const read = (request as WithBody)[BODY];
            if (read?.error !== undefined) throw read.error;
            // No read: the app replaced the route's preParsing hook, so Fastify parsed the body; checked by the rules.
            const body = read
              ? read.body
              : { value: protocol.checkParsedBody(request.body, request.headers), json: undefined };
            response = await protocol.submit(job, toRequest(request, body), routeOptions);
          } catch (error) {
            response = protocol.error(error);
          }
          return send(reply, response);
        },
      };
    },
    statusUrl: (id) => protocol.statusUrl(id),
  };
}

/**
 * Where a wrapped route's preParsing hook leaves the body it read (or the error reading it) for the handler: a
 * property of the request, as Fastify keeps its own per-request state, rather than a WeakMap keyed by the request,
 * whose entries are dear to add and to collect on every request.
 */
const BODY = Symbol('respond-async.body');
type WithBody = FastifyRequest & { [BODY]?: { body?: RequestBody; error?: unknown } };

/**
 * Tell Fastify the request has no body left to parse (its body was read here, or is not wanted): its parsers never
 * run on these routes. The request's own headers (`request.raw.headers`) are left as they came.
 */
function skipParsing(request: FastifyRequest, payload: RequestPayload): RequestPayload {
  request.headers = { 'content-type': undefined, 'content-length': '0', 'transfer-encoding': undefined };
  return payload;
}

export type { RespondAsyncOptions, RouteOptions } from './http/protocol.js';
