// The framework-free answer every protocol function returns; adapters only copy it out.

/** A Server-Sent Events body: `open` starts writing to `sink` and returns the function that stops. */
export interface EventStream {
  open(sink: { write(chunk: string): void; end(): void }): () => void;
}

/** A complete HTTP answer: status, headers (lower-case names), and a serialized body or an event stream. */
export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  /** Serialized body; absent for an event stream or an empty answer. */
  body?: string;
  /** A body of bytes (a wrapped handler's response), sent instead of `body`. */
  bytes?: Uint8Array;
  stream?: EventStream;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** A JSON answer, serialized once here so every adapter sends the same bytes. */
export function jsonResponse(status: number, value: unknown, headers: Record<string, string> = {}): HttpResponse {
  const out: Record<string, string> = { 'content-type': JSON_TYPE, 'cache-control': 'no-store', ...headers };
  if (out['content-type'] === 'application/problem+json')
    out['content-type'] = 'application/problem+json; charset=utf-8';
  return { status, headers: out, body: JSON.stringify(value) };
}

/** A header name is an RFC 9110 token; a value holds no control character other than tab (and nothing past U+00FF). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const BAD_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * `response`, or the 500 problem answer (`unwritableResponse()`) when one of its headers could not be written:
 * every adapter checks here, so that no framework fails the request its own way (a crash, a text/plain 500).
 */
export function writableResponse(response: HttpResponse): HttpResponse {
  for (const name in response.headers) {
    if (!HEADER_NAME.test(name) || BAD_HEADER_VALUE.test(response.headers[name])) return unwritableResponse();
  }
  return response;
}

/**
 * What an adapter sends instead of an answer the framework refused to write (a header value no HTTP message may
 * carry, such as a `Location` stored before redirect URLs were checked): 500 problem+json, never a crash.
 */
export function unwritableResponse(): HttpResponse {
  const doc = {
    type: 'about:blank',
    title: 'Internal Server Error',
    status: 500,
    code: 'ERR_RESPOND_ASYNC_UNWRITABLE_ANSWER',
    detail: 'The answer could not be written',
  };
  return jsonResponse(500, doc, { 'content-type': 'application/problem+json' });
}
