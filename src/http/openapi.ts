// The OpenAPI 3.1 document of wrapped routes and their status endpoints, framework-free, and its merge into an app's.
import type { StandardSchemaV1 } from './standard-schema.js';
import type { RouteSchema } from './validation.js';

/** A JSON Schema (2020-12, as OpenAPI 3.1 uses it), or any OpenAPI object: plain JSON data. */
export type JsonObject = Record<string, unknown>;

/** An OpenAPI 3.1 document (the members this library writes are typed loosely: it is JSON). */
export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; [key: string]: unknown };
  paths?: Record<string, Record<string, unknown>>;
  components?: Record<string, Record<string, unknown>>;
  [key: string]: unknown;
}

/** One wrapped route, as its app mounted it. */
export interface OpenApiRoute {
  /** Default `post`. */
  method?: string;
  /** The route's path, in OpenAPI (`/reports/{id}`) or Express/Koa (`/reports/:id`) syntax. */
  path: string;
  /** The job the route runs (its name, or its definition): names the operation. */
  job?: string | { readonly name: string };
  /** The schemas given to the route (`RouteOptions.schema`): body, params, query and result. */
  schema?: RouteSchema<any>;
  summary?: string;
  description?: string;
  operationId?: string;
  tags?: string[];
}

/** Options of `openapiDocument`. */
export interface OpenApiOptions {
  /** The document's `info`. Default `{ title: 'API', version: '1.0.0' }`. */
  info?: OpenApiDocument['info'];
  routes: OpenApiRoute[];
  /** Where the status endpoints are mounted (the adapter's `basePath`). Default `/jobs`. */
  basePath?: string;
  /** Whether the adapter has an `owner` option: then `GET {basePath}` lists the caller's jobs. Default false. */
  owner?: boolean;
  /** Whether webhooks are configured: each route then documents its callback (`callbacks`). Default false. */
  webhooks?:
    | boolean
    | { /** Runtime expression of the callback URL. Default `{$request.body#/callbackUrl}`. */ callbackUrl?: string };
  /**
   * A converter for schemas that do not give their JSON Schema themselves (valibot: `@valibot/to-json-schema`'s
   * `toJsonSchema`). Tried first; return `undefined` to fall back to the schema's own (Standard JSON Schema, zod 4).
   */
  toJsonSchema?: (schema: StandardSchemaV1, direction: 'input' | 'output') => object | undefined;
}

const PROBLEM = 'application/problem+json';
const REF = (section: string, name: string) => ({ $ref: `#/components/${section}/RespondAsync${name}` });
const EVENTS = ['status', 'progress', 'complete', 'failed', 'canceled'] as const;

/**
 * The JSON Schema of a Standard Schema: the `toJsonSchema` option's answer, else the Standard JSON Schema interface
 * (`schema['~standard'].jsonSchema`), else zod 4's own `toJSONSchema()`, else the open schema `{}`.
 */
export function jsonSchemaOf(
  schema: StandardSchemaV1 | undefined,
  direction: 'input' | 'output',
  convert?: OpenApiOptions['toJsonSchema'],
): JsonObject {
  if (!schema) return {};
  const attempts: Array<() => unknown> = [
    () => convert?.(schema, direction),
    () => schema['~standard'].jsonSchema?.[direction]({ target: 'draft-2020-12' }),
    () => (schema as { toJSONSchema?: (options?: unknown) => unknown }).toJSONSchema?.({ io: direction }),
  ];
  for (const attempt of attempts) {
    let found: unknown;
    try {
      found = attempt();
    } catch {
      // A schema a converter cannot express (a transform, a custom check) is documented as open, not an error.
      continue;
    }
    if (typeof found === 'object' && found !== null) {
      const { $schema: _dialect, ...rest } = found as JsonObject;
      return rest;
    }
  }
  return {};
}

/** The OpenAPI 3.1 document of `routes` and the status endpoints under `basePath`. */
export function openapiDocument(options: OpenApiOptions): OpenApiDocument {
  const basePath = (options.basePath ?? '/jobs').replace(/\/+$/, '');
  const convert = options.toJsonSchema;
  const result = resultSchema(
    options.routes.map((route) => route.schema?.result),
    convert,
  );
  const paths: Record<string, Record<string, unknown>> = {};
  const operationIds = new Set<string>();
  for (const route of options.routes) {
    const path = openapiPath(route.path);
    const operation = submitOperation(route, options);
    // Ids must be unique: a second route of the same job goes without one rather than break the document.
    const id = operation.operationId;
    if (typeof id === 'string' && operationIds.has(id)) delete operation.operationId;
    else if (typeof id === 'string') operationIds.add(id);
    paths[path] = { ...paths[path], [(route.method ?? 'post').toLowerCase()]: operation };
  }
  if (options.owner) paths[basePath] = { get: listOperation(basePath) };
  paths[`${basePath}/{jobId}`] = statusPath();
  paths[`${basePath}/{jobId}/events`] = eventsPath();
  paths[`${basePath}/{jobId}/result`] = resultPath();
  return {
    openapi: '3.1.0',
    info: options.info ?? { title: 'API', version: '1.0.0' },
    paths,
    components: components({ description: RESULT_DESCRIPTION, ...result }),
  };
}

const RESULT_DESCRIPTION = 'The handler’s return value, when `complete`.';

/** The status document's `result`: any of the routes' results when each route has a result schema, else open. */
function resultSchema(results: Array<StandardSchemaV1 | undefined>, convert: OpenApiOptions['toJsonSchema']) {
  return results.length > 0 && results.every((schema) => schema !== undefined)
    ? anyOf(results.map((schema) => jsonSchemaOf(schema, 'output', convert)))
    : {};
}

/**
 * `ours` merged into `existing`, in one call: the paths of both (an operation of `ours` replaces the same method on
 * the same path), and the components of both (ours are named `RespondAsync…`). `existing` keeps its `openapi`,
 * `info`, servers and the rest; it is not modified. Both should be OpenAPI 3.1 (the schemas are JSON Schema 2020-12).
 */
export function mergeOpenApi<Doc extends Partial<OpenApiDocument>>(existing: Doc, ours: OpenApiDocument): Doc {
  const paths: Record<string, Record<string, unknown>> = { ...existing.paths };
  for (const [path, item] of Object.entries(ours.paths ?? {})) paths[path] = { ...paths[path], ...item };
  const componentsOut: Record<string, Record<string, unknown>> = { ...existing.components };
  for (const [section, entries] of Object.entries(ours.components ?? {})) {
    componentsOut[section] = { ...componentsOut[section], ...entries };
  }
  return { ...existing, paths, components: componentsOut };
}

/** `/reports/:id` → `/reports/{id}`. */
function openapiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function anyOf(schemas: JsonObject[]): JsonObject {
  if (schemas.some((schema) => Object.keys(schema).length === 0)) return {};
  return schemas.length === 1 ? schemas[0] : { anyOf: schemas };
}

function submitOperation(route: OpenApiRoute, options: Pick<OpenApiOptions, 'toJsonSchema' | 'webhooks'>): JsonObject {
  const convert = options.toJsonSchema;
  const schema = route.schema ?? {};
  const jobName = typeof route.job === 'string' ? route.job : route.job?.name;
  const operation: JsonObject = {
    ...(route.operationId || jobName ? { operationId: route.operationId ?? `submit-${jobName}` } : {}),
    ...(route.summary ? { summary: route.summary } : {}),
    description:
      route.description ??
      `Starts${jobName ? ` job \`${jobName}\`` : ' a job'} in the background: \`202 Accepted\` with its status URL ` +
        'in `Location`, or, with `Prefer: wait=N`, the finished status document when the job ends within N seconds.',
    ...(route.tags ? { tags: route.tags } : {}),
    parameters: [
      ...pathParameters(route.path, jsonSchemaOf(schema.params, 'input', convert)),
      ...queryParameters(jsonSchemaOf(schema.query, 'input', convert)),
      REF('parameters', 'Prefer'),
      REF('parameters', 'IdempotencyKey'),
    ],
    requestBody: {
      required: schema.body !== undefined,
      content: { 'application/json': { schema: jsonSchemaOf(schema.body, 'input', convert) } },
    },
    responses: {
      200: {
        description: 'With `Prefer: wait=N`: the job ended within the wait; the status document.',
        headers: { 'Preference-Applied': { schema: { type: 'string' }, description: '`wait=N`' } },
        content: { 'application/json': { schema: REF('schemas', 'StatusDocument') } },
      },
      202: {
        description: 'Accepted: the job is queued (or, for a replayed Idempotency-Key, the job as it is).',
        headers: {
          Location: REF('headers', 'Location'),
          'Retry-After': REF('headers', 'RetryAfter'),
          'Idempotent-Replayed': { schema: { type: 'string', const: 'true' } },
        },
        content: { 'application/json': { schema: REF('schemas', 'Accepted') } },
      },
      400: REF('responses', 'BadRequest'),
      413: REF('responses', 'ContentTooLarge'),
      415: REF('responses', 'UnsupportedMediaType'),
      422: REF('responses', 'IdempotencyKeyReused'),
      429: REF('responses', 'TooManyRequests'),
      503: REF('responses', 'ServiceUnavailable'),
    },
  };
  if (options.webhooks) operation.callbacks = callbacks(options.webhooks);
  return operation;
}

function pathParameters(path: string, params: JsonObject): JsonObject[] {
  const names = [...openapiPath(path).matchAll(/\{([^}]+)\}/g)].map((match) => match[1]);
  const properties = (params.properties ?? {}) as Record<string, JsonObject>;
  return names.map((name) => ({ name, in: 'path', required: true, schema: properties[name] ?? { type: 'string' } }));
}

function queryParameters(query: JsonObject): JsonObject[] {
  const properties = (query.properties ?? {}) as Record<string, JsonObject>;
  const required = new Set(Array.isArray(query.required) ? query.required : []);
  return Object.entries(properties).map(([name, schema]) => ({
    name,
    in: 'query',
    required: required.has(name),
    schema,
  }));
}

function callbacks(webhooks: OpenApiOptions['webhooks']): JsonObject {
  const expression = (typeof webhooks === 'object' && webhooks.callbackUrl) || '{$request.body#/callbackUrl}';
  const header = (name: string, description: string) => ({
    name,
    in: 'header',
    required: true,
    description,
    schema: { type: 'string' },
  });
  return {
    jobFinished: {
      [expression]: {
        post: {
          summary: 'The job ended (complete, failed or canceled): its status document, signed (Standard Webhooks).',
          parameters: [
            header('webhook-id', 'Message id, the same on every retry of one delivery.'),
            header('webhook-timestamp', 'Seconds since the Unix epoch.'),
            header('webhook-signature', '`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`; verify with verifyWebhook.'),
          ],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: REF('schemas', 'StatusDocument') } },
          },
          responses: {
            '2XX': { description: 'Delivered; any other answer is retried with backoff.' },
          },
        },
      },
    },
  };
}

function statusPath(): JsonObject {
  const jobId = REF('parameters', 'JobId');
  const documentContent = { 'application/json': { schema: REF('schemas', 'StatusDocument') } };
  return {
    parameters: [jobId],
    get: {
      operationId: 'respond-async-status',
      summary: 'The status document of a job.',
      responses: {
        200: {
          description: 'The status document; `Retry-After` while the job is not finished.',
          headers: { 'Retry-After': REF('headers', 'RetryAfter') },
          content: documentContent,
        },
        303: {
          description: 'Complete, and the result lives elsewhere: `Location` is the result URL.',
          headers: { Location: REF('headers', 'Location') },
          content: documentContent,
        },
        404: REF('responses', 'NotFound'),
        503: REF('responses', 'ServiceUnavailable'),
      },
    },
    delete: {
      operationId: 'respond-async-cancel',
      summary: 'Cancel a job.',
      responses: {
        200: { description: 'A queued job: canceled at once.', content: documentContent },
        202: {
          description: 'A running job: its signal is aborted; it ends `canceled` when its handler stops.',
          headers: { 'Retry-After': REF('headers', 'RetryAfter') },
          content: documentContent,
        },
        404: REF('responses', 'NotFound'),
        409: REF('responses', 'Conflict'),
        503: REF('responses', 'ServiceUnavailable'),
      },
    },
  };
}

function eventsPath(): JsonObject {
  return {
    parameters: [REF('parameters', 'JobId')],
    get: {
      operationId: 'respond-async-events',
      summary: 'Server-Sent Events of a job.',
      description:
        `Events: ${EVENTS.map((name) => `\`${name}\``).join(', ')}. The current status document first ` +
        '(`status`), `progress` on each change, then one terminal event (`complete`, `failed` or `canceled`) and ' +
        'the stream ends. Each event has an `id:` and its data is the status document; a comment heartbeat keeps ' +
        'the stream open. Reconnect with `Last-Event-ID` to skip events already seen.',
      parameters: [{ name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' } }],
      responses: {
        200: {
          description: `The event stream (events ${EVENTS.join(', ')}).`,
          content: { 'text/event-stream': { schema: { type: 'string' } } },
        },
        404: REF('responses', 'NotFound'),
        503: REF('responses', 'ServiceUnavailable'),
      },
    },
  };
}

function resultPath(): JsonObject {
  const problem = (description: string) => ({
    description,
    content: { [PROBLEM]: { schema: { $ref: '#/components/schemas/RespondAsyncProblem' } } },
  });
  return {
    parameters: [REF('parameters', 'JobId')],
    get: {
      operationId: 'respond-async-result',
      summary: 'The result of a complete job.',
      description:
        "A wrapped handler's response (`wrap()`), exactly as it answered: status, headers and body. Any other job's " +
        'result as JSON, or `303 See Other` to the URL its handler returned with `seeOther()`.',
      responses: {
        default: {
          description: "The handler's response, or the job's result as JSON.",
          content: { '*/*': { schema: {} } },
        },
        404: problem(
          'No such job, or it is not complete yet (`ERR_RESPOND_ASYNC_RESULT_NOT_READY`, with Retry-After).',
        ),
        409: problem('The job failed or was canceled: it has no result.'),
        503: REF('responses', 'ServiceUnavailable'),
      },
    },
  };
}

function listOperation(basePath: string): JsonObject {
  return {
    operationId: 'respond-async-list',
    summary: "The caller's recent jobs, newest first.",
    parameters: [
      {
        name: 'limit',
        in: 'query',
        required: false,
        schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
      },
      {
        name: 'cursor',
        in: 'query',
        required: false,
        description: 'The `nextCursor` of the previous page.',
        schema: { type: 'string' },
      },
    ],
    responses: {
      200: {
        description: `A page of jobs (summaries, without \`result\`); \`Link: <${basePath}?cursor=…>; rel="next"\` when there is a next page.`,
        headers: { Link: { schema: { type: 'string' }, description: 'RFC 8288 `rel="next"` link.' } },
        content: { 'application/json': { schema: REF('schemas', 'JobList') } },
      },
      400: REF('responses', 'BadRequest'),
      404: REF('responses', 'NotFound'),
      503: REF('responses', 'ServiceUnavailable'),
    },
  };
}

/** The components the operations refer to, named `RespondAsync…` so that they merge into an app's own. */
function components(result: JsonObject): Record<string, Record<string, unknown>> {
  const problemResponse = (description: string, retryAfter = false) => ({
    description,
    ...(retryAfter ? { headers: { 'Retry-After': REF('headers', 'RetryAfter') } } : {}),
    content: { [PROBLEM]: { schema: REF('schemas', 'Problem') } },
  });
  return {
    schemas: componentSchemas(result),
    parameters: {
      RespondAsyncJobId: { name: 'jobId', in: 'path', required: true, schema: { type: 'string' } },
      RespondAsyncPrefer: {
        name: 'Prefer',
        in: 'header',
        required: false,
        description: '`wait=N` (RFC 7240): answer with the finished job if it ends within N seconds.',
        schema: { type: 'string', examples: ['wait=5'] },
      },
      RespondAsyncIdempotencyKey: {
        name: 'Idempotency-Key',
        in: 'header',
        required: false,
        description: 'The same key with the same request returns the same job; with another request, 422.',
        schema: { type: 'string', examples: ['"8e03978e-40d5-43e8-bc93-6894a57f9324"'] },
      },
    },
    headers: {
      RespondAsyncLocation: { description: 'The status URL of the job.', schema: { type: 'string' } },
      RespondAsyncRetryAfter: { description: 'Seconds to wait before polling again.', schema: { type: 'integer' } },
    },
    responses: {
      RespondAsyncBadRequest: problemResponse('Invalid request (code `ERR_RESPOND_ASYNC_INVALID_REQUEST`, `errors`).'),
      RespondAsyncNotFound: problemResponse('No such job (unknown, expired, malformed, or another caller’s).'),
      RespondAsyncConflict: problemResponse('The job has already finished.'),
      RespondAsyncContentTooLarge: problemResponse('The body is over the size limit.'),
      RespondAsyncUnsupportedMediaType: problemResponse('The body is not JSON in UTF-8.'),
      RespondAsyncIdempotencyKeyReused: problemResponse('The Idempotency-Key was used with a different request.'),
      RespondAsyncTooManyRequests: problemResponse('The caller holds too many jobs.', true),
      RespondAsyncServiceUnavailable: problemResponse('The job store is unavailable or the queue is full.', true),
    },
  };
}

/** The documents: accepted, status, list and problem; `result` is the status document's `result` member. */
function componentSchemas(result: JsonObject): Record<string, unknown> {
  const time = { type: 'string', format: 'date-time' };
  const status = { type: 'string', enum: ['queued', 'processing', 'complete', 'failed', 'canceled'] };
  return {
    RespondAsyncAccepted: {
      type: 'object',
      required: ['jobId', 'status', 'statusUrl', 'createdAt'],
      properties: {
        jobId: { type: 'string' },
        status,
        statusUrl: { type: 'string' },
        estimatedSeconds: { type: 'number' },
        createdAt: time,
      },
    },
    RespondAsyncStatusDocument: {
      type: 'object',
      required: ['jobId', 'status', 'statusUrl', 'createdAt', 'updatedAt'],
      properties: {
        jobId: { type: 'string' },
        status,
        statusUrl: { type: 'string' },
        progress: { type: 'number', minimum: 0, maximum: 100 },
        message: { type: 'string' },
        result,
        resultUrl: { type: 'string' },
        error: {
          type: 'object',
          required: ['message'],
          properties: { message: { type: 'string' }, code: { type: 'string' } },
        },
        retryAt: time,
        createdAt: time,
        updatedAt: time,
        startedAt: time,
        finishedAt: time,
        attempt: { type: 'integer', minimum: 1 },
      },
    },
    RespondAsyncJobList: {
      type: 'object',
      required: ['jobs'],
      properties: {
        jobs: { type: 'array', items: REF('schemas', 'StatusDocument') },
        nextCursor: { type: 'string' },
      },
    },
    RespondAsyncProblem: {
      type: 'object',
      description: 'RFC 9457 problem details, with a stable `code`.',
      required: ['type', 'title', 'status', 'code'],
      properties: {
        type: { type: 'string' },
        title: { type: 'string' },
        status: { type: 'integer' },
        detail: { type: 'string' },
        code: { type: 'string', examples: ['ERR_RESPOND_ASYNC_INVALID_REQUEST'] },
        errors: {
          type: 'array',
          description: 'With `ERR_RESPOND_ASYNC_INVALID_REQUEST`: what the schema refused.',
          items: {
            type: 'object',
            required: ['pointer', 'message'],
            properties: {
              in: { type: 'string', enum: ['params', 'query'], description: 'Absent for the body.' },
              pointer: { type: 'string', description: 'RFC 6901 JSON Pointer into the body (or into `in`).' },
              message: { type: 'string' },
            },
          },
        },
      },
    },
  };
}

/** The route `schema`s the Fastify adapter gives its routes, for `@fastify/swagger` (see `fastifyOpenApiSchemas`). */
export interface FastifyOpenApiSchemas {
  /** The schema of a wrapped route; its result schema joins the status document's `result`. */
  submit(route: Omit<OpenApiRoute, 'path' | 'method'>): JsonObject;
  /**
   * `GET {basePath}/:jobId`, `DELETE {basePath}/:jobId`, `GET {basePath}/:jobId/events`,
   * `GET {basePath}/:jobId/result`, `GET {basePath}`.
   */
  status: JsonObject;
  cancel: JsonObject;
  events: JsonObject;
  result: JsonObject;
  list: JsonObject;
}

/**
 * Fastify route `schema`s with the operations of `openapiDocument`, `$ref`s inlined (Fastify resolves no
 * `#/components/…`), parameters under `params`/`querystring`/`headers`, responses with their `content`: the form
 * `@fastify/swagger` turns back into the same operations. Documentation only: the adapter pairs them with
 * compilers that neither validate nor serialize, so Fastify answers as the other adapters do.
 */
export function fastifyOpenApiSchemas(options: Omit<OpenApiOptions, 'routes' | 'info'>): FastifyOpenApiSchemas {
  const basePath = (options.basePath ?? '/jobs').replace(/\/+$/, '');
  const convert = options.toJsonSchema;
  // The status routes are registered before the wrapped routes whose results they report, and Fastify keeps the
  // schema objects it was given (swagger reads them when the document is asked for): `result` is filled in place.
  const result: JsonObject = { description: RESULT_DESCRIPTION };
  const results: Array<StandardSchemaV1 | undefined> = [];
  const shared = components(result);
  const fastify = (operation: JsonObject, parts = shared) => fastifySchema(inline(operation, parts, result));
  const status = statusPath();
  const events = eventsPath();
  return {
    submit(route) {
      results.push(route.schema?.result);
      for (const key of Object.keys(result)) if (key !== 'description') delete result[key];
      Object.assign(result, resultSchema(results, convert));
      // With `Prefer: wait`, this route's own result: the status document with its result schema.
      const own = jsonSchemaOf(route.schema?.result, 'output', convert);
      const parts = components({ description: RESULT_DESCRIPTION, ...own });
      const schema = fastify(submitOperation({ ...route, path: '' }, options), parts);
      // Fastify names the path parameters from the route's URL; a params schema describes them.
      if (route.schema?.params) schema.params = jsonSchemaOf(route.schema.params, 'input', convert);
      return schema;
    },
    status: fastify(status.get as JsonObject),
    cancel: fastify(status.delete as JsonObject),
    events: fastify(events.get as JsonObject),
    result: fastify(resultPath().get as JsonObject),
    list: fastify(listOperation(basePath)),
  };
}

/** `node` with every `#/components/…` `$ref` replaced by a copy of its target; `keep` is kept as is (not copied). */
function inline(node: unknown, parts: Record<string, Record<string, unknown>>, keep: JsonObject): any {
  if (node === keep || typeof node !== 'object' || node === null) return node;
  if (Array.isArray(node)) return node.map((item) => inline(item, parts, keep));
  const ref = (node as JsonObject).$ref;
  if (typeof ref === 'string' && ref.startsWith('#/components/')) {
    const [, , section, name] = ref.split('/');
    return inline(parts[section][name], parts, keep);
  }
  return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, inline(value, parts, keep)]));
}

type Parameter = { name: string; in: string; required?: boolean; description?: string; schema?: JsonObject };
type Response = { description: string; headers?: Record<string, JsonObject>; content?: JsonObject };

/** An OpenAPI operation (refs inlined) as a Fastify route schema. */
function fastifySchema(operation: JsonObject): JsonObject {
  const { parameters, requestBody, responses, ...rest } = operation as JsonObject & {
    parameters?: Parameter[];
    requestBody?: { content: JsonObject };
    responses: Record<string, Response>;
  };
  const schema: JsonObject = { ...rest };
  const where = { path: 'params', query: 'querystring', header: 'headers' } as const;
  for (const [location, key] of Object.entries(where)) {
    const found = (parameters ?? []).filter((parameter) => parameter.in === location);
    if (found.length === 0) continue;
    schema[key] = {
      type: 'object',
      properties: Object.fromEntries(found.map((p) => [p.name, withDescription(p.schema ?? {}, p.description)])),
      required: found.filter((p) => p.required).map((p) => p.name),
    };
  }
  if (requestBody) schema.body = { content: requestBody.content };
  schema.response = Object.fromEntries(
    Object.entries(responses).map(([code, response]) => {
      const headers = Object.entries(response.headers ?? {}).map(([name, header]) => [
        name,
        withDescription(header.schema as JsonObject, header.description as string | undefined),
      ]);
      const out: JsonObject = { description: response.description, content: response.content };
      if (headers.length > 0) out.headers = Object.fromEntries(headers);
      return [code, out];
    }),
  );
  return schema;
}

function withDescription(schema: JsonObject, description: string | undefined): JsonObject {
  return description ? { ...schema, description } : schema;
}
