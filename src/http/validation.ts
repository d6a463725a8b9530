// Validation of a wrapped route's request with Standard Schemas: the library's own, so every adapter answers alike.
import type { RequestSnapshot } from '../core/types.js';
import { problem } from './problem.js';
import type { HttpResponse } from './response.js';
import type { StandardSchemaV1 } from './standard-schema.js';

/**
 * Schemas of a wrapped route (any Standard Schema: zod 4, valibot 1, arktype 2). `body` (and `params`, `query`)
 * validate the request before anything is stored; the job's input holds their output. `result` only documents the
 * result (OpenAPI). `Body` is the body type the job expects, so a schema whose output disagrees does not compile.
 */
export interface RouteSchema<Body = unknown> {
  body?: StandardSchemaV1<unknown, Body>;
  params?: StandardSchemaV1;
  query?: StandardSchemaV1;
  result?: StandardSchemaV1;
}

/** One entry of a 400 answer's `errors`: `pointer` is an RFC 6901 JSON Pointer into the body (or into `in`). */
export interface ValidationErrorItem {
  /** Set for issues of the path parameters or the query; absent for the body. */
  in?: 'params' | 'query';
  pointer: string;
  message: string;
}

/** The request parts after validation, or the 400 answer. */
export type Validated =
  | { ok: true; body: unknown; params: RequestSnapshot['params']; query: RequestSnapshot['query'] }
  | { ok: false; response: HttpResponse };

const PARTS = ['body', 'params', 'query'] as const;

/** Validate `body`, `params` and `query` with the route's schemas (each optional); all issues are reported at once. */
export async function validateRequest(
  schema: RouteSchema<any> | undefined,
  body: unknown,
  params: RequestSnapshot['params'],
  query: RequestSnapshot['query'],
): Promise<Validated> {
  const values: Record<(typeof PARTS)[number], unknown> = { body, params, query };
  if (!schema) return { ok: true, body, params, query };
  const errors: ValidationErrorItem[] = [];
  for (const part of PARTS) {
    const partSchema = schema[part];
    if (!partSchema) continue;
    const result = await partSchema['~standard'].validate(values[part]);
    if (!result.issues) {
      values[part] = result.value;
      continue;
    }
    for (const issue of result.issues) {
      const item: ValidationErrorItem = { pointer: jsonPointer(issue.path), message: issue.message };
      errors.push(part === 'body' ? item : { in: part, ...item });
    }
  }
  if (errors.length > 0) {
    const detail = 'The request does not match the schema; see errors';
    return { ok: false, response: problem(400, 'ERR_RESPOND_ASYNC_INVALID_REQUEST', detail, {}, { errors }) };
  }
  return {
    ok: true,
    body: values.body,
    params: values.params as RequestSnapshot['params'],
    query: values.query as RequestSnapshot['query'],
  };
}

/** An issue path as an RFC 6901 JSON Pointer: `''` for the whole value, `/a/0/b~1c` for `['a', 0, 'b/c']`. */
export function jsonPointer(path: StandardSchemaV1.Issue['path']): string {
  let pointer = '';
  for (const segment of path ?? []) {
    const key = typeof segment === 'object' && segment !== null ? segment.key : segment;
    const text = typeof key === 'symbol' ? (key.description ?? '') : String(key);
    pointer += `/${text.replaceAll('~', '~0').replaceAll('/', '~1')}`;
  }
  return pointer;
}
