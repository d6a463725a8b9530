// respond-async/fetch: the adapter for Web Request/Response runtimes (Hono, Bun, Deno, Next.js route handlers).
import type { JobDefinition, Jobs } from './core/runtime.js';
import { type AdminOptions, AdminProtocol, adminPath } from './http/admin.js';
import { ProblemError } from './http/problem.js';
import {
  HttpProtocol,
  type ProtocolRequest,
  type RequestBody,
  type RespondAsyncOptions,
  type RouteOptions,
  type RouteOptionsArg,
} from './http/protocol.js';
import { type HttpResponse, unwritableResponse, writableResponse } from './http/response.js';

export type FetchRespondAsyncOptions = RespondAsyncOptions<Request>;
export type FetchRouteOptions<Input> = RouteOptions<Request, Input>;

export interface FetchRespondAsync {
  /** A `(request, params?) => Response` handler that answers 202 and runs `job`. */
  route<Input>(
    job: JobDefinition<Input, unknown>,
    ...options: RouteOptionsArg<Request, Input>
  ): (request: Request, params?: Record<string, string>) => Promise<Response>;
  /** Answer a status-endpoint request under `basePath`, or `undefined` when the path is not one. */
  handle(request: Request): Promise<Response | undefined>;
  statusUrl(jobId: string): string;
  /**
   * The operator's dashboard and admin API under `options.path` (such as `/admin`): a handler answering the requests
   * under it, and `undefined` for any other. `authorize` is required.
   */
  admin(options: FetchAdminOptions): (request: Request) => Promise<Response | undefined>;
}

export interface FetchAdminOptions extends AdminOptions<Request> {
  /** Where the dashboard answers, such as `/admin`. */
  path: string;
}

const NO_BODY: RequestBody = { value: undefined, json: undefined };

/**
 * Fetch adapter.
 * @example
 * const ra = respondAsync(jobs);
 * app.post('/reports', (c) => ra.route(report)(c.req.raw));          // Hono
 * app.use('/jobs/*', async (c, next) => (await ra.handle(c.req.raw)) ?? next()); // the rest goes on to your routes
 */
export function respondAsync(jobs: Jobs, options: FetchRespondAsyncOptions = {}): FetchRespondAsync {
  const protocol = new HttpProtocol<Request>(jobs, options);

  const toRequest = (
    request: Request,
    body: RequestBody,
    params?: Record<string, string>,
  ): ProtocolRequest<Request> => {
    const url = new URL(request.url);
    return {
      raw: request,
      method: request.method,
      path: url.pathname,
      header: (name) => request.headers.get(name) ?? undefined,
      body: body.value,
      bodyJson: body.json,
      params: params ?? {},
      query: Object.fromEntries(url.searchParams),
    };
  };

  const readBody = async (request: Request): Promise<RequestBody> => {
    protocol.checkEncoding(request.headers.get('content-encoding') ?? undefined);
    const declared = Number(request.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > protocol.maxBodyBytes) {
      throw new ProblemError(protocol.error({ status: 413 }));
    }
    if (!request.body) return NO_BODY;
    const reader = request.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > protocol.maxBodyBytes) {
        await reader.cancel().catch(() => {});
        throw new ProblemError(protocol.error({ status: 413 }));
      }
      chunks.push(value);
    }
    return protocol.readBody(Buffer.concat(chunks), request.headers.get('content-type') ?? undefined);
  };

  return {
    route<Input>(job: JobDefinition<Input, unknown>, routeOptions?: FetchRouteOptions<Input>) {
      return (request, params) =>
        readBody(request)
          .then((body) => protocol.submit(job, toRequest(request, body, params), routeOptions))
          .catch((error: unknown) => protocol.error(error))
          .then(toResponse);
    },
    async handle(request) {
      const response = await protocol
        .handle(toRequest(request, NO_BODY))
        .catch((error: unknown) => protocol.error(error));
      return response && toResponse(response);
    },
    statusUrl: (id) => protocol.statusUrl(id),
    admin(adminOptions) {
      const admin = new AdminProtocol<Request>(jobs, adminOptions, (error) => protocol.error(error));
      const path = adminPath(adminOptions.path);
      return async (request) => {
        const url = new URL(request.url);
        if (url.pathname !== path && !url.pathname.startsWith(`${path}/`)) return undefined;
        const response = await admin.handle({
          raw: request,
          method: request.method,
          path: url.pathname.slice(path.length),
          mount: path,
          query: url.searchParams,
          header: (name) => request.headers.get(name) ?? undefined,
        });
        return toResponse(response);
      };
    },
  };
}

export type { AdminDecision, AdminOptions } from './http/admin.js';

/**
 * A Web Response from a protocol answer, or the 500 problem answer when the runtime refuses one of its headers
 * (`Headers` throws on a value no HTTP message may carry).
 */
function toResponse(response: HttpResponse): Response {
  try {
    // Headers accepts values (past U+00FF) that the server under it may still refuse: checked as Node would.
    return webResponse(writableResponse(response));
  } catch {
    return webResponse(unwritableResponse());
  }
}

/** A Web Response from a protocol answer; an event stream becomes a ReadableStream that stops when canceled. */
function webResponse(response: HttpResponse): Response {
  const { stream } = response;
  if (!stream) {
    const body = response.bytes ? new Uint8Array(response.bytes) : (response.body ?? null);
    return new Response(body, { status: response.status, headers: response.headers });
  }
  const encoder = new TextEncoder();
  let stop: (() => void) | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      stop = stream.open({
        write: (chunk) => {
          try {
            controller.enqueue(encoder.encode(chunk));
          } catch {
            stop?.(); // the reader went away
          }
        },
        end: () => {
          try {
            controller.close();
          } catch {}
        },
      });
    },
    cancel() {
      stop?.();
    },
  });
  return new Response(body, { status: response.status, headers: response.headers });
}

export type { RespondAsyncOptions, RouteOptions } from './http/protocol.js';
