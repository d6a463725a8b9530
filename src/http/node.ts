// Node http glue shared by the Express, Koa and Fastify adapters: read a body within the limit, write an answer.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { ProblemError } from './problem.js';
import type { HttpProtocol, RequestBody } from './protocol.js';
import { type HttpResponse, unwritableResponse } from './response.js';

/**
 * Read and parse a JSON request body from a Node stream (the request, or what a Fastify preParsing hook hands on),
 * stopping at the protocol's size limit. @internal
 */
export function readNodeBody(
  req: Readable,
  headers: IncomingHttpHeaders,
  protocol: HttpProtocol<unknown>,
): Promise<RequestBody> {
  if (headers['content-encoding'] !== undefined) {
    try {
      protocol.checkEncoding(headers['content-encoding']);
    } catch (error) {
      return Promise.reject(error);
    }
  }
  return readNode(req, headers, protocol, (raw) => protocol.readBody(raw, headers['content-type']));
}

/**
 * Read a request body from a Node stream as the bytes that came, whatever their type or encoding, stopping at the
 * protocol's size limit (413): the body of a wrapped handler. @internal
 */
export function readNodeBytes(
  req: Readable,
  headers: IncomingHttpHeaders,
  protocol: HttpProtocol<unknown>,
): Promise<Buffer> {
  return readNode(req, headers, protocol, (raw) => raw);
}

function readNode<T>(
  req: Readable,
  headers: IncomingHttpHeaders,
  protocol: HttpProtocol<unknown>,
  finish: (raw: Buffer) => T,
): Promise<T> {
  const limit = protocol.maxBodyBytes;
  const declared = Number(headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return tooLarge(req, protocol, 0);
  // A stream already read or torn down: the async iterator below knows how each of those ends.
  if (req.readableEnded || req.destroyed || req.readableFlowing !== null) return readByIterator(req, protocol, finish);
  // Plain listeners, not `for await`: this runs on every submit, and a body usually arrives in one chunk, which an
  // async iterator per request would wrap in extra promises.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const off = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        off();
        tooLarge(req, protocol, size).then(resolve, reject);
        return;
      }
      chunks.push(chunk);
    };
    // After 'end' the listeners stay: no data comes after it, so removing them would change nothing, and a later
    // 'error' or 'close' finds the body settled.
    let ended = false;
    const onEnd = () => {
      ended = true;
      try {
        const raw = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        resolve(finish(raw));
      } catch (error) {
        reject(error);
      }
    };
    const onError = (error: Error) => {
      if (ended) return;
      off();
      reject(error);
    };
    const onClose = () => {
      if (ended) return;
      off();
      reject(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** How much of an oversized body is read and dropped so that the client, still sending, can read the 413. */
const DRAIN_BYTES = 8 * 1024 * 1024;

/**
 * Answer 413 for an oversized body. A client still sending it would get EPIPE instead of the answer if the socket
 * closed under it, so up to DRAIN_BYTES more are read and dropped first; beyond that the connection is cut.
 */
function tooLarge(req: Readable, protocol: HttpProtocol<unknown>, alreadyRead: number): Promise<never> {
  const error = new ProblemError(protocol.error({ status: 413 }));
  if (req.readableEnded || req.destroyed) return Promise.reject(error);
  return new Promise((_resolve, reject) => {
    let drained = alreadyRead;
    const done = () => {
      req.off('data', onData);
      req.off('end', done);
      req.off('error', done);
      req.off('close', done);
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      drained += chunk.length;
      if (drained > DRAIN_BYTES) {
        done();
        req.destroy();
      }
    };
    req.on('data', onData);
    req.on('end', done);
    req.on('error', done);
    req.on('close', done);
    req.resume();
  });
}

async function readByIterator<T>(
  req: Readable,
  protocol: HttpProtocol<unknown>,
  finish: (raw: Buffer) => T,
): Promise<T> {
  const limit = protocol.maxBodyBytes;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new ProblemError(protocol.error({ status: 413 }));
    chunks.push(chunk);
  }
  return finish(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
}

/**
 * Write a protocol answer to a Node response, streaming events until the job ends or the client leaves.
 * An answer that cannot be written becomes the 500 problem answer (or, once headers are out, a cut connection):
 * never an exception. For a stream, returns the function that ends it early. @internal
 */
export function sendNode(res: ServerResponse, response: HttpResponse): (() => void) | undefined {
  try {
    return writeNode(res, response);
  } catch {
    if (res.headersSent) {
      res.destroy();
      return undefined;
    }
    // writeHead may have set some of the answer's headers (its length among them) before it threw.
    for (const name in response.headers) res.removeHeader(name);
    res.removeHeader('content-length');
    const fallback = unwritableResponse();
    res.writeHead(fallback.status, fallback.headers);
    res.end(fallback.body);
    return undefined;
  }
}

function writeNode(res: ServerResponse, response: HttpResponse): (() => void) | undefined {
  if (!response.stream) {
    const body = response.bytes ?? response.body;
    // A body that is all here goes with its length, as Fastify and Koa send it, rather than in chunks; 204 and 304
    // carry none.
    const sized = body !== undefined && response.status !== 204 && response.status !== 304;
    res.writeHead(
      response.status,
      sized ? { 'content-length': String(Buffer.byteLength(body)), ...response.headers } : response.headers,
    );
    res.end(body);
    return undefined;
  }
  res.writeHead(response.status, response.headers);
  res.flushHeaders();
  const stop = response.stream.open({
    write: (chunk) => void res.write(chunk),
    end: () => res.end(),
  });
  // 'close' fires when the client leaves and after the stream ends: either way the listener goes.
  res.once('close', stop);
  return () => {
    stop();
    res.end();
  };
}

/**
 * Whether a body parser of the app read this request, so that its parsed `body` stands (checked by the protocol's
 * rules). Otherwise the adapter reads the bytes itself: a parser that skipped the request (another media type, no
 * body) may still have left a `{}` placeholder, which is not the body. @internal
 */
export function parsedByApp(req: IncomingMessage, body: unknown): boolean {
  return body !== undefined && req.readableEnded;
}

/** The path of a Node request URL, without its query. @internal */
export function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const q = raw.indexOf('?');
  return q === -1 ? raw : raw.slice(0, q);
}

/** A header getter over Node's lower-cased header object. @internal */
export function nodeHeader(req: IncomingMessage): (name: string) => string | undefined {
  return (name) => {
    const value = req.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  };
}

/**
 * Bound what a handler writes to `res` to `maxBytes`: past it, further chunks are dropped (so a handler that streams
 * a large file holds no more than the limit in memory) and the returned function says the limit was passed. @internal
 */
export function limitResponseBody(res: ServerResponse, maxBytes: number): () => boolean {
  let size = 0;
  let over = false;
  const count = (chunk: unknown, encoding: unknown): boolean => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return true;
    size +=
      typeof chunk === 'string'
        ? Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
        : (chunk as Uint8Array).byteLength;
    over ||= size > maxBytes;
    return !over;
  };
  const write = res.write;
  const end = res.end;
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    if (count(chunk, rest[0])) return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
    if (callback) process.nextTick(callback);
    return true;
  } as ServerResponse['write'];
  res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    if (count(chunk, rest[0])) return (end as (...args: unknown[]) => ServerResponse).call(this, chunk, ...rest);
    return (end as (...args: unknown[]) => ServerResponse).call(
      this,
      ...rest.filter((arg) => typeof arg === 'function'),
    );
  } as ServerResponse['end'];
  return () => over;
}
