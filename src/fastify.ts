// respond-async/fastify: a Fastify 5 plugin serving the status endpoints, and route options for wrapped routes.
import type {
  FastifyError,
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  RouteShorthandOptionsWithHandler,
} from 'fastify';
import fp from 'fastify-plugin';
import type { JobDefinition, Jobs } from './core/runtime.js';
import { nodeHeader, pathOf, sendNode, tooLarge } from './http/node.js';
import {
  HttpProtocol,
  type ProtocolRequest,
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
  /** Route options (handler, body limit, problem+json errors) for `app.post('/reports', ra.route(report))`. */
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

  const toRequest = (request: FastifyRequest, body?: unknown): ProtocolRequest<FastifyRequest> => ({
    raw: request,
    method: request.method,
    path: pathOf(request.url),
    header: nodeHeader(request.raw),
    body,
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

  const errorHandler = (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    // Fastify stops reading an oversized body (a declared length over the limit, or too many bytes sent). A client
    // still sending it would get EPIPE instead of the answer if the socket closed under it: the rest is read and
    // dropped (bounded) before the 413, as with the other adapters. Done here, not in a preParsing hook, which
    // would cost every request.
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return tooLarge(request.raw, protocol as HttpProtocol<unknown>, 0).catch((problem: unknown) => {
        send(reply, protocol.error(problem));
      });
    }
    return send(reply, protocol.error(error));
  };

  const statusHandler = async (request: FastifyRequest, reply: FastifyReply) => {
    const response = await protocol.handle(toRequest(request)).catch((error: unknown) => protocol.error(error));
    return send(reply, response ?? protocol.error({ status: 404 }));
  };

  const plugin: FastifyPluginAsync = async (app: FastifyInstance) => {
    const base = protocol.basePath;
    app.addHook('preClose', async () => {
      for (const end of streams) end();
    });
    const common = {
      method: ['GET', 'HEAD', 'DELETE', 'POST', 'PUT', 'PATCH'],
      exposeHeadRoutes: false,
      bodyLimit: protocol.maxBodyBytes,
      errorHandler,
      handler: statusHandler,
    };
    const params = {
      type: 'object',
      properties: { jobId: { type: 'string' } },
      required: ['jobId'],
    };
    app.route({ ...common, url: base });
    app.route({ ...common, url: `${base}/:jobId`, schema: { params } });
    app.route({ ...common, url: `${base}/:jobId/events`, schema: { params } });
    // Anything else under the base path, ids longer than Fastify's maxParamLength included: the protocol answers
    // (a 404 problem+json) instead of Fastify's own 414.
    app.route({ ...common, url: `${base}/*` });
  };

  return {
    plugin: fp(plugin, { fastify: '5.x', name: 'respond-async' }),
    route<Input>(job: JobDefinition<Input, unknown>, routeOptions?: FastifyRouteOptions<Input>) {
      return {
        bodyLimit: protocol.maxBodyBytes,
        errorHandler,
        handler: async (request, reply) => {
          let response: HttpResponse;
          try {
            const body = protocol.checkParsedBody(request.body, request.headers);
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

export type { RespondAsyncOptions, RouteOptions } from './http/protocol.js';
