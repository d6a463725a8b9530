// RFC 9457 problem details: every error the library answers, in one shape.
import type { HttpResponse } from './response.js';
import { jsonResponse } from './response.js';

/** An RFC 9457 problem document, with a stable `code`. */
export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail?: string;
  code: string;
  [extension: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** A problem+json answer. `headers` are added (e.g. Retry-After, Allow). */
export function problem(
  status: number,
  code: string,
  detail?: string,
  headers: Record<string, string> = {},
  extensions: Record<string, unknown> = {},
): HttpResponse {
  const doc: ProblemDocument = { type: 'about:blank', title: TITLES[status] ?? 'Error', status, code };
  if (detail !== undefined) doc.detail = detail;
  Object.assign(doc, extensions);
  return jsonResponse(status, doc, { ...headers, 'content-type': 'application/problem+json' });
}

/** An error raised while handling a request, carrying the problem answer to send. */
export class ProblemError extends Error {
  readonly response: HttpResponse;
  constructor(response: HttpResponse) {
    super(`HTTP ${response.status}`);
    this.name = 'ProblemError';
    this.response = response;
  }
}
