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
