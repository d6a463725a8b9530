// Replaying a wrapped route's request into the handler, in any process: injected requests, the response kept.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { InjectOptions, Response as InjectResponse } from 'light-my-request';
import { raceAbort } from '../core/abort.js';
import { UnrecoverableError } from '../core/errors.js';
import type { JobContext } from '../core/types.js';
import { limitResponseBody } from './node.js';
import {
  type CapturedResponse,
  captureResponse,
  clientErrorStatus,
  HandlerAnswerError,
  ResultTooLargeError,
  settleReplay,
  type WrappedRequestSnapshot,
} from './wrap.js';

/** What an injected request answered: light-my-request's response, and Fastify's `inject()` alike. */
export type InjectedResponse = Pick<InjectResponse, 'statusCode' | 'headers' | 'rawPayload'>;

/** The injected request of a replay: the snapshot's method, URL, headers and body bytes. @internal */
export function injectOptions(snapshot: WrappedRequestSnapshot): InjectOptions {
  const options: InjectOptions = {
    method: snapshot.method,
    url: snapshot.url,
    headers: { ...snapshot.headers },
    remoteAddress: '127.0.0.1',
  };
  if (snapshot.body !== null) options.payload = Buffer.from(snapshot.body, 'base64');
  return options;
}

/** A replay's outcome, as the adapter observed it while the handler ran. @internal */
export interface ReplayFailure {
  /** What the handler threw, or passed to `next(err)`. */
  error?: unknown;
  /** The handler wrote more than the limit. */
  tooLarge?: boolean;
}

/**
 * Replay `snapshot` into `listener` (an Express app, a Koa callback) with light-my-request, its response bounded by
 * `maxBytes`, and make the job's result of it (see `settleInjected`). Rejects with the signal's reason when the job
 * is canceled or times out before the handler answers. @internal
 */
export async function replayInto(
  listener: (req: IncomingMessage, res: ServerResponse) => void,
  snapshot: WrappedRequestSnapshot,
  ctx: JobContext,
  maxBytes: number,
  failure: ReplayFailure,
): Promise<CapturedResponse> {
  const { default: inject } = await loadInjector();
  const bounded = (req: IncomingMessage, res: ServerResponse) => {
    pinOwnMethods(req);
    pinOwnMethods(res);
    const over = limitResponseBody(res, maxBytes);
    res.once('finish', () => {
      if (over()) failure.tooLarge = true;
    });
    listener(req, res);
  };
  const response = await raceAbort(inject(bounded, injectOptions(snapshot)), ctx.signal);
  return settleInjected(response, failure, maxBytes);
}

/**
 * The job result of an injected response: what the handler threw fails the attempt (or the job at once, when the
 * error carries a 4xx status, which its framework would have answered with); a response past the limit fails the
 * job; else the response, by `settleReplay`. @internal
 */
export function settleInjected(response: InjectedResponse, failure: ReplayFailure, maxBytes: number): CapturedResponse {
  if (failure.error !== undefined) {
    const status = clientErrorStatus(failure.error);
    throw status === undefined ? failure.error : new HandlerAnswerError(status);
  }
  if (failure.tooLarge || response.rawPayload.byteLength > maxBytes) throw new ResultTooLargeError(maxBytes);
  return settleReplay(captureResponse(response.statusCode, response.headers, response.rawPayload));
}

/**
 * Copy the methods of `target`'s own class (light-my-request's request and response) onto it. Express gives every
 * request and response it handles its own prototypes (`Object.setPrototypeOf`), which would drop light-my-request's
 * `writeHead`, `write` and `end`, and so the response it collects. (Handed an Express app rather than a function,
 * light-my-request would instead re-parent Express's shared prototypes onto its classes, for every app in the
 * process, breaking the app's real server.) @internal
 */
export function pinOwnMethods(target: object): void {
  const proto = Object.getPrototypeOf(target) as object;
  for (const name of Object.getOwnPropertyNames(proto)) {
    const descriptor = Object.getOwnPropertyDescriptor(proto, name);
    if (name === 'constructor' || typeof descriptor?.value !== 'function' || Object.hasOwn(target, name)) continue;
    Object.defineProperty(target, name, { value: descriptor.value, writable: true, configurable: true });
  }
}

let injector: Promise<{ default: typeof import('light-my-request') }> | undefined;

/** light-my-request, imported on the first replay: only apps that wrap an Express or Koa handler need it. */
function loadInjector(): Promise<{ default: typeof import('light-my-request') }> {
  injector ??= import('light-my-request').catch((cause: unknown) => {
    injector = undefined;
    // Another attempt in this process would not find it either: the job fails at once, its code public, and can be
    // retried (the dashboard's retry) once the package is installed.
    throw new UnrecoverableError(
      'respond-async: wrapping an Express or Koa handler needs `light-my-request` in the process that runs the job: ' +
        'npm install light-my-request',
      { code: 'ERR_RESPOND_ASYNC_DRIVER_MISSING', cause },
    );
  });
  return injector;
}
