// respond-async/fastify: a Fastify 5 plugin serving the status endpoints, and route options for wrapped routes.
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import Fastify, {
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
  type FastifySchema,
  type preParsingAsyncHookHandler,
  type RequestPayload,
  type RouteHandlerMethod,
  type RouteShorthandOptionsWithHandler,
} from 'fastify';
import fp from 'fastify-plugin';
import { raceAbort } from './core/abort.js';
import type { JobDefinition, Jobs } from './core/runtime.js';
import type { JobContext } from './core/types.js';
import { type AdminOptions, AdminProtocol } from './http/admin.js';
import { limitResponseBody, nodeHeader, pathOf, readNodeBody, readNodeBytes, sendNode } from './http/node.js';
import { type FastifyOpenApiSchemas, fastifyOpenApiSchemas, type OpenApiOptions } from './http/openapi.js';
import { ProblemError } from './http/problem.js';
import {
  HttpProtocol,
  type ProtocolRequest,
  type RequestBody,
  type RespondAsyncOptions,
  type RouteOptions,
  type RouteOptionsArg,
} from './http/protocol.js';
import { injectOptions, type ReplayFailure, settleInjected } from './http/replay.js';
import { type HttpResponse, writableResponse } from './http/response.js';
import {
  bytesOfParsedBody,
  checkWrapOptions,
  defineOptionsOf,
  parseReplayBody,
  pinClient,
  selectHeaders,
  type WrapOptions,
  type WrappedJob,
  type WrappedRequestSnapshot,
  wrappedJob,
} from './http/wrap.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set while a wrapped handler replays (`ra.wrap`): the job's progress reporter and cancel signal. */
    job?: WrappedJob;
  }
}

export interface FastifyRespondAsyncOptions extends RespondAsyncOptions<FastifyRequest> {
  /**
   * For the route schemas `@fastify/swagger` reads: the JSON Schema of a Standard Schema that does not give its own
   * (valibot: `@valibot/to-json-schema`), as `openapiDocument`'s option of that name.
   */
  toJsonSchema?: OpenApiOptions['toJsonSchema'];
}
export type FastifyRouteOptions<Input> = RouteOptions<FastifyRequest, Input>;

/** Options of `ra.wrap(handler, options)` on Fastify. */
export interface FastifyWrapOptions extends WrapOptions<FastifyRequest> {
  /**
   * The handler replays on a Fastify instance of its own (its `this`), where nothing of the app's is registered:
   * decorate it, or register the plugins the handler relies on, here. Its body parsers are replaced by the replay's
   * (see `parse`).
   */
  setup?: (instance: FastifyInstance) => void | Promise<void>;
}

export interface FastifyRespondAsync {
  /** Register with `await app.register(ra.plugin)`: serves the status endpoints under `basePath`. */
  plugin: FastifyPluginAsync;
  /** Route options (handler, body reading, problem+json errors) for `app.post('/reports', ra.route(report))`. */
  route<Input>(
    job: JobDefinition<Input, unknown>,
    ...options: RouteOptionsArg<FastifyRequest, Input>
  ): RouteShorthandOptionsWithHandler;
  /**
   * Route options wrapping an existing handler unchanged: `app.post('/exports', ra.wrap(exportHandler, { name }))`.
   * The route answers 202 as every wrapped route does, and the handler runs as job `name`, replayed by `inject()` with
   * the request as it came (body bytes, headers but secrets, params, query, what `capture` kept); its response
   * becomes the job's result, served by `GET {statusUrl}/result`. A worker process calls `wrap` with the same
   * handler and name to run these jobs.
   */
  wrap(handler: RouteHandlerMethod<any, any, any, any>, options: FastifyWrapOptions): RouteShorthandOptionsWithHandler;
  statusUrl(jobId: string): string;
  /**
   * The operator's dashboard and admin API, as a plugin to register under the prefix of your choice:
   * `app.register(ra.admin({ authorize }), { prefix: '/admin' })`. `authorize` is required.
   */
  admin(options: AdminOptions<FastifyRequest>): FastifyPluginAsync;
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
  const adapter: Adapter = {
    jobs,
    protocol,
    // Route schemas for documentation (`@fastify/swagger`) only: these compilers neither validate nor serialize, so
    // Fastify answers exactly as the other adapters do (the library validates with the route's Standard Schemas).
    docs: fastifyOpenApiSchemas({
      basePath: protocol.basePath,
      owner: protocol.listsJobs,
      webhooks: options.webhooks !== undefined,
      toJsonSchema: options.toJsonSchema,
    }),
    mount: '',
    streams: new Set(),
    errorHandler: (error, _request, reply) => send(adapter, reply, protocol.error(error)),
    readBody: bodyReader(protocol),
  };
  return {
    plugin: fp(statusPlugin(adapter), { fastify: '5.x', name: 'respond-async' }),
    route<Input>(job: JobDefinition<Input, unknown>, routeOptions?: FastifyRouteOptions<Input>) {
      return submitRoute(adapter, job, routeOptions);
    },
    wrap: (handler, wrapOptions) => wrappedRoute(adapter, handler, wrapOptions),
    statusUrl: (id) => protocol.statusUrl(id),
    admin(adminOptions) {
      const admin = new AdminProtocol<FastifyRequest>(jobs, adminOptions, (error) => protocol.error(error));
      return adminPlugin(admin, adapter);
    },
  };
}

/** What the parts of one `respondAsync()` share: the plugin, its routes, the wrapped routes and `admin()`. */
interface Adapter {
  jobs: Jobs;
  protocol: HttpProtocol<FastifyRequest>;
  docs: FastifyOpenApiSchemas;
  /**
   * Where the plugin is registered (the registering instance's `prefix`): the Location of every wrapped route. Set
   * when the plugin registers, read on each request.
   */
  mount: string;
  /** Open event streams, ended before the server closes (Fastify waits for hijacked connections otherwise). */
  streams: Set<() => void>;
  /** Every route's error handler: what Fastify catches, answered as problem+json. */
  errorHandler: (error: unknown, request: FastifyRequest, reply: FastifyReply) => FastifyReply | undefined;
  /** The preParsing hook of `route()`'s routes. */
  readBody: preParsingAsyncHookHandler;
}

/** The protocol's view of a request; `prefix`: what of its path lies before the protocol's paths. */
function toRequest(
  adapter: Adapter,
  request: FastifyRequest,
  body?: RequestBody,
  prefix = adapter.mount,
): ProtocolRequest<FastifyRequest> {
  return {
    raw: request,
    method: request.method,
    path: pathOf(request.url).slice(prefix.length),
    mount: prefix,
    header: nodeHeader(request.raw),
    body: body?.value,
    bodyJson: body?.json,
    params: { ...(request.params as Record<string, string>) },
    query: { ...(request.query as Record<string, unknown>) },
  };
}

/** Write a protocol answer on the reply (a stream goes straight to the response, hijacked from Fastify). */
function send(adapter: Adapter, reply: FastifyReply, given: HttpResponse): FastifyReply | undefined {
  const response = writableResponse(given);
  if (response.stream) {
    reply.hijack();
    const end = sendNode(reply.raw, response);
    if (end) {
      adapter.streams.add(end);
      reply.raw.once('close', () => adapter.streams.delete(end));
    }
    return undefined;
  }
  return reply
    .code(response.status)
    .headers(response.headers)
    .send(response.bytes ? Buffer.from(response.bytes) : response.body);
}

/** A route handler answering what `accept` builds for the request; what it throws is answered as problem+json. */
function answerWith(adapter: Adapter, accept: (request: FastifyRequest) => Promise<HttpResponse>) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    let response: HttpResponse;
    try {
      response = await accept(request);
    } catch (error) {
      response = adapter.protocol.error(error);
    }
    return send(adapter, reply, response);
  };
}

/** End the open event streams before the server closes. */
function endStreamsOnClose(app: FastifyInstance, streams: Set<() => void>): void {
  app.addHook('preClose', async () => {
    for (const end of streams) end();
  });
}

/** `ra.plugin`: the status routes under `basePath`, relative to the prefix the plugin is registered with. */
function statusPlugin(adapter: Adapter): FastifyPluginAsync {
  const { protocol, docs } = adapter;
  return async (app: FastifyInstance) => {
    // Fastify prefixes the routes below with the registering instance's prefix (`register(…, { prefix })`), so
    // `basePath` is relative to it, and so is every status URL.
    const prefix = app.prefix;
    adapter.mount = prefix;
    const base = protocol.basePath;
    endStreamsOnClose(app, adapter.streams);
    // Only the paths the protocol owns (DESIGN.md, "Paths under the base path"): the app's own routes under the
    // base path still register, and anything else there reaches the app's 404. Every method on a job's paths, so
    // that those it does not take answer 405 with Allow; their bodies are never parsed (nor read).
    const common = {
      exposeHeadRoute: false,
      errorHandler: adapter.errorHandler,
      handler: async (request: FastifyRequest, reply: FastifyReply) => {
        const response = await protocol
          .handle(toRequest(adapter, request, undefined, prefix))
          .catch((error: unknown) => protocol.error(error));
        // Not one of ours after all (`{basePath}/` matches `:jobId` empty): the app's 404, as on the other adapters.
        if (response) return send(adapter, reply, response);
        reply.callNotFound();
        return reply;
      },
      preParsing: (request: FastifyRequest, _reply: FastifyReply, payload: RequestPayload) =>
        Promise.resolve(skipParsing(request, payload)),
    };
    // The documented operations carry their schema; the methods that only answer 405 are hidden from the document.
    const others = ['HEAD', 'POST', 'PUT', 'PATCH', 'OPTIONS', 'TRACE'];
    const documented = { ...common, ...documentationOnly };
    // `hide` is @fastify/swagger's; a fresh object per route, since Fastify marks the schemas it has seen.
    const hidden = () => ({ hide: true }) as FastifySchema;
    app.route({ ...documented, method: 'GET', url: `${base}/:jobId`, schema: docs.status });
    app.route({ ...documented, method: 'DELETE', url: `${base}/:jobId`, schema: docs.cancel });
    app.route({ ...common, method: others, url: `${base}/:jobId`, schema: hidden() });
    app.route({ ...documented, method: 'GET', url: `${base}/:jobId/events`, schema: docs.events });
    app.route({ ...common, method: ['DELETE', ...others], url: `${base}/:jobId/events`, schema: hidden() });
    app.route({ ...documented, method: 'GET', url: `${base}/:jobId/result`, schema: docs.result });
    app.route({ ...common, method: ['DELETE', ...others], url: `${base}/:jobId/result`, schema: hidden() });
    if (protocol.listsJobs) {
      app.route({ ...documented, method: 'GET', url: base, schema: docs.list });
      app.route({ ...common, method: 'HEAD', url: base, schema: hidden() });
    }
  };
}

/** `ra.route(job, options)`: route options answering 202 and running `job` with the request's body. */
function submitRoute<Input>(
  adapter: Adapter,
  job: JobDefinition<Input, unknown>,
  routeOptions?: FastifyRouteOptions<Input>,
): RouteShorthandOptionsWithHandler {
  const { protocol } = adapter;
  return {
    ...documentationOnly,
    schema: adapter.docs.submit({ job, schema: routeOptions?.schema }),
    errorHandler: adapter.errorHandler,
    preParsing: adapter.readBody,
    handler: answerWith(adapter, (request) => {
      const read = (request as WithBody)[BODY];
      if (read?.error !== undefined) throw read.error;
      // No read: the app replaced the route's preParsing hook, so Fastify parsed the body; checked by the rules.
      const body = read
        ? read.body
        : { value: protocol.checkParsedBody(request.body, request.headers), json: undefined };
      return protocol.submit(job, toRequest(adapter, request, body), routeOptions);
    }),
  };
}

/** `ra.wrap(handler, options)`: route options answering 202 and replaying `handler` with the request as job `name`. */
function wrappedRoute(
  adapter: Adapter,
  handler: RouteHandlerMethod<any, any, any, any>,
  wrapOptions: FastifyWrapOptions,
): RouteShorthandOptionsWithHandler {
  const { jobs, protocol } = adapter;
  checkWrapOptions(wrapOptions);
  const replay = replayer(handler, wrapOptions, jobs.options.maxResultBytes);
  const definition = jobs.define(wrapOptions.name, replay, defineOptionsOf(wrapOptions));
  return {
    ...documentationOnly,
    schema: adapter.docs.submit({ job: definition }),
    errorHandler: adapter.errorHandler,
    preParsing: rawReader(protocol),
    handler: answerWith(adapter, (request) => {
      const read = (request as WithRaw)[RAW];
      if (read?.error !== undefined) throw read.error;
      // No read: the app replaced the route's preParsing hook, so Fastify parsed the body.
      const parsed = read === undefined;
      const body = read?.body ?? bytesOfParsedBody(request.body ?? '', request.raw.headers['content-type']);
      if (body.byteLength > protocol.maxBodyBytes) throw new ProblemError(protocol.error({ status: 413 }));
      const snapshot = snapshotOf(request, body, wrapOptions, parsed || read?.decoded === true);
      return protocol.submitWrapped(definition, toRequest(adapter, request), snapshot, wrapOptions.estimatedSeconds);
    }),
  };
}

/**
 * The preParsing hook of `route()`'s routes: the body read by the protocol's rules (as the other adapters do) instead
 * of Fastify's parsers, which refuse `application/*+json`, a `__proto__` key and an empty JSON body. Kept until the
 * handler runs, so that the app's own hooks (authentication) still answer before a bad body does.
 */
function bodyReader(protocol: HttpProtocol<FastifyRequest>): preParsingAsyncHookHandler {
  return async (request, _reply, payload) => {
    try {
      (request as WithBody)[BODY] = {
        body: await readNodeBody(payload, payloadHeaders(request, payload), protocol as HttpProtocol<unknown>),
      };
    } catch (error) {
      (request as WithBody)[BODY] = { error };
    }
    return skipParsing(request, payload);
  };
}

/** The preParsing hook of `wrap()`'s routes: the body's bytes as they came, kept as `bodyReader` keeps its body. */
function rawReader(protocol: HttpProtocol<FastifyRequest>): preParsingAsyncHookHandler {
  return async (request, _reply, payload) => {
    try {
      const headers = payloadHeaders(request, payload);
      (request as WithRaw)[RAW] = {
        body: await readNodeBytes(payload, headers, protocol as HttpProtocol<unknown>),
        decoded: headers !== request.raw.headers,
      };
    } catch (error) {
      (request as WithRaw)[RAW] = { error };
    }
    return skipParsing(request, payload);
  };
}

/** `ra.admin()`: the operator's page and API as a plugin. */
function adminPlugin(admin: AdminProtocol<FastifyRequest>, adapter: Adapter): FastifyPluginAsync {
  // Not wrapped in fastify-plugin: encapsulated, so that the prefix it is registered with applies to its routes.
  return async (app: FastifyInstance) => {
    const prefix = app.prefix;
    endStreamsOnClose(app, adapter.streams);
    const handler = async (request: FastifyRequest, reply: FastifyReply) => {
      const url = request.url;
      const query = url.indexOf('?');
      const response = await admin.handle({
        raw: request,
        method: request.method,
        path: pathOf(url).slice(prefix.length),
        mount: prefix,
        query: new URLSearchParams(query === -1 ? '' : url.slice(query + 1)),
        header: nodeHeader(request.raw),
      });
      return send(adapter, reply, response);
    };
    const route = {
      method: ['GET', 'HEAD', 'DELETE', 'POST', 'PUT', 'PATCH', 'OPTIONS'],
      exposeHeadRoute: false,
      errorHandler: adapter.errorHandler,
      handler,
      // No admin request has a body to read: none is parsed, whatever its type.
      preParsing: (request: FastifyRequest, _reply: FastifyReply, payload: RequestPayload) =>
        Promise.resolve(skipParsing(request, payload)),
    };
    // The operator's API stays out of the app's public document (@fastify/swagger reads `hide`); a fresh schema
    // object per route, since Fastify marks the schemas it has seen.
    app.route({ ...route, url: '/', schema: { hide: true } as FastifySchema });
    app.route({ ...route, url: '/*', schema: { hide: true } as FastifySchema });
  };
}

/** What a wrapped Fastify route keeps of the request for its replay. */
function snapshotOf(
  request: FastifyRequest,
  body: Buffer,
  wrapOptions: FastifyWrapOptions,
  parsed: boolean,
): Omit<WrappedRequestSnapshot, 'owner'> {
  return {
    method: request.method,
    url: request.url,
    mount: '',
    params: { ...(request.params as Record<string, string>) },
    query: { ...(request.query as Record<string, unknown>) },
    headers: selectHeaders(request.raw.headers, wrapOptions.headers, parsed),
    body: body.byteLength === 0 ? null : body.toString('base64'),
    captured: wrapOptions.capture?.(request) ?? null,
    client: {
      protocol: request.protocol,
      ip: request.ip,
      ips: request.ips ?? [],
      hostname: request.hostname,
      host: request.host,
    },
  };
}

/** Compilers for route schemas that are documentation only: they neither validate nor serialize. */
const documentationOnly = {
  validatorCompiler: () => () => true,
  serializerCompiler: () => (data: unknown) => JSON.stringify(data),
};

/** Marks a replay's injected request, so that the replay instance finds its snapshot and job. */
const REPLAY_HEADER = 'x-respond-async-replay';

interface Replay {
  snapshot: WrappedRequestSnapshot;
  ctx: JobContext;
  failure: ReplayFailure;
}

/**
 * The job handler of a wrapped Fastify route: each replay is a `inject()` into one Fastify instance, built on first
 * use, whose only route runs `handler` with the snapshot's params, body and restored context.
 */
function replayer(handler: RouteHandlerMethod<any, any, any, any>, options: FastifyWrapOptions, maxBytes: number) {
  const replays = new Map<string, Replay>();
  const byRequest = new WeakMap<FastifyRequest, Replay & { over: () => boolean }>();
  let instance: Promise<FastifyInstance> | undefined;
  const build = async (): Promise<FastifyInstance> => {
    // The body was held to `maxBodyBytes` at submit: the replay takes it whole, whatever Fastify's default limit.
    const app = Fastify({ bodyLimit: 2 ** 30 });
    app.decorateRequest('job', undefined);
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body, done) => {
      try {
        const bytes = body as Buffer;
        const { 'content-type': type, 'content-encoding': encoding } = request.headers;
        done(null, options.parse === false ? bytes : parseReplayBody(bytes, type, encoding));
      } catch (error) {
        done(error as Error, undefined);
      }
    });
    app.addHook('onRequest', async (request, reply) => {
      const token = request.raw.headers[REPLAY_HEADER];
      delete request.raw.headers[REPLAY_HEADER];
      const replay = typeof token === 'string' ? replays.get(token) : undefined;
      if (!replay) throw new Error('respond-async: a request reached the replay instance of a wrapped route unbidden');
      byRequest.set(request, { ...replay, over: limitResponseBody(reply.raw, maxBytes) });
      request.job = wrappedJob(replay.ctx);
    });
    app.addHook('preHandler', async (request) => {
      const replay = byRequest.get(request);
      if (!replay) return;
      request.params = replay.snapshot.params;
      pinClient(request, replay.snapshot.client);
      options.restore?.(request, replay.snapshot.captured);
    });
    app.addHook('onResponse', async (request) => {
      const replay = byRequest.get(request);
      if (replay?.over()) replay.failure.tooLarge = true;
    });
    app.setErrorHandler((error, request, reply) => {
      const replay = byRequest.get(request);
      if (replay) replay.failure.error = error;
      return reply.code(500).send('');
    });
    app.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], url: '*', handler });
    await options.setup?.(app);
    await app.ready();
    return app;
  };
  return async (snapshot: WrappedRequestSnapshot, ctx: JobContext) => {
    instance ??= build().catch((error: unknown) => {
      instance = undefined;
      throw error;
    });
    const app = await instance;
    const token = randomUUID();
    const failure: ReplayFailure = {};
    replays.set(token, { snapshot, ctx, failure });
    try {
      const request = injectOptions(snapshot);
      request.headers = { ...request.headers, [REPLAY_HEADER]: token };
      const response = await raceAbort(app.inject(request), ctx.signal);
      return settleInjected(response, failure, maxBytes);
    } finally {
      replays.delete(token);
    }
  };
}

export type { AdminDecision, AdminOptions } from './http/admin.js';

/**
 * Where a wrapped route's preParsing hook leaves the body it read (or the error reading it) for the handler: a
 * property of the request, as Fastify keeps its own per-request state, rather than a WeakMap keyed by the request,
 * whose entries are dear to add and to collect on every request.
 */
const BODY = Symbol('respond-async.body');
type WithBody = FastifyRequest & { [BODY]?: { body?: RequestBody; error?: unknown } };
/** The same for a route of `wrap()`: the bytes as they came (`decoded`: an app's hook already decoded them). */
const RAW = Symbol('respond-async.raw');
type WithRaw = FastifyRequest & { [RAW]?: { body?: Buffer; decoded?: boolean; error?: unknown } };

/**
 * The headers a route's body is read by: the request's, without `Content-Encoding` when an earlier preParsing hook of
 * the app replaced the payload stream of an encoded body. That hook decoded it (`@fastify/compress` decompresses
 * request bodies by default, and the app's other routes read them so): its bytes are no longer gzip, br or deflate.
 */
function payloadHeaders(request: FastifyRequest, payload: RequestPayload): IncomingHttpHeaders {
  const headers = request.raw.headers;
  if (payload === request.raw || headers['content-encoding'] === undefined) return headers;
  const { 'content-encoding': _decoded, ...rest } = headers;
  return rest;
}

/**
 * Tell Fastify the request has no body left to parse (its body was read here, or is not wanted): its parsers never
 * run on these routes. The request's own headers (`request.raw.headers`) are left as they came.
 */
function skipParsing(request: FastifyRequest, payload: RequestPayload): RequestPayload {
  request.headers = { 'content-type': undefined, 'content-length': '0', 'transfer-encoding': undefined };
  return payload;
}

export type { RespondAsyncOptions, RouteOptions } from './http/protocol.js';
export type { CapturedResponse, WrappedJob, WrappedRequestSnapshot } from './http/wrap.js';
