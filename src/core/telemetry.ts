// OpenTelemetry traces and metrics of the runtime, through `@opentelemetry/api` loaded lazily as an optional peer.
import { createRequire } from 'node:module';
import type * as OtelApi from '@opentelemetry/api';

/** The name of the tracer and of the meter, and the value of `messaging.system`. */
export const TELEMETRY_NAME = 'respond-async';

type Api = typeof OtelApi;

let loaded: Api | null | undefined;

/**
 * `@opentelemetry/api`, or null when it is not installed. Loaded on first use only: it is an optional peer, so the
 * core works without it. Every copy of the API (ESM or CommonJS) shares the providers an SDK registers globally.
 */
function loadApi(): Api | null {
  if (loaded !== undefined) return loaded;
  try {
    // ESM: resolve from this module's URL; the CommonJS build empties `import.meta`, hence `__filename` there.
    loaded = createRequire(import.meta.url ?? __filename)('@opentelemetry/api') as Api;
  } catch {
    loaded = null;
  }
  return loaded;
}

/** How an attempt ended, as `respond_async.job.outcome` and the `outcome` metric attribute say it. */
export type AttemptOutcomeLabel = 'complete' | 'failed' | 'retrying' | 'canceled' | 'timeout' | 'lost';

/** A producer span's context as stored with a job: the W3C `traceparent` and `tracestate` headers, as JSON. */
interface StoredContext {
  traceparent: string;
  tracestate?: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The `send` span of a submit. @internal */
export interface SendSpan {
  /** The context to store with the job (JSON of `traceparent`/`tracestate`), or null when there is no trace. */
  readonly traceContext: string | null;
  end(error?: unknown): void;
}

/** The `process` span of an attempt. @internal */
export interface ProcessSpan {
  /** The trace id, for log lines; undefined when there is no trace. */
  readonly traceId: string | undefined;
  /** Run `fn` with this span active, so spans the handler starts are its children. */
  run<T>(fn: () => T): T;
  end(outcome: AttemptOutcomeLabel, error?: unknown): void;
}

/** A webhook delivery's `CLIENT` span. @internal */
export interface ClientSpan {
  /** Headers carrying the span's context to the receiver (empty when there is no trace). */
  readonly headers: Record<string, string>;
  end(statusCode: number | undefined, error?: string): void;
}

const NO_SEND: SendSpan = { traceContext: null, end() {} };
const NO_PROCESS: ProcessSpan = { traceId: undefined, run: (fn) => fn(), end() {} };
const NO_CLIENT: ClientSpan = { headers: {}, end() {} };

interface Instruments {
  submitted: OtelApi.Counter;
  finished: OtelApi.Counter;
  wait: OtelApi.Histogram;
  run: OtelApi.Histogram;
  running: OtelApi.UpDownCounter;
  deliveries: OtelApi.Counter;
}

/**
 * The spans and metrics of one runtime. Without `@opentelemetry/api` every method is a no-op; with it but no SDK
 * registered the API's own no-op tracer and meter answer, so nothing is emitted either.
 * @internal
 */
export class Telemetry {
  readonly #api = loadApi();
  #instruments: Instruments | undefined;
  #untraced: ProcessSpan | undefined;

  /** Start the `PRODUCER` span of a submit, in the caller's active context (the request's span, if any). */
  send(name: string, id: string): SendSpan {
    const api = this.#api;
    if (!api || !tracing(api)) return NO_SEND;
    const span = api.trace.getTracer(TELEMETRY_NAME).startSpan(`send ${name}`, {
      kind: api.SpanKind.PRODUCER,
      attributes: messaging('send', name, id),
    });
    const sc = span.spanContext();
    const traceContext = api.isSpanContextValid(sc) ? JSON.stringify(toStored(sc)) : null;
    return {
      traceContext,
      end: (error) => {
        if (error !== undefined) fail(api, span, error);
        span.end();
      },
    };
  }

  /** Count a job created by this process. */
  submitted(name: string): void {
    this.#metrics()?.submitted.add(1, nameAttributes(name));
  }

  /** Start the `CONSUMER` span of an attempt: the child of the job's stored context, with a link to it. */
  process(job: { id: string; name: string; attempt: number; traceContext?: string | null }): ProcessSpan {
    const api = this.#api;
    if (!api) return NO_PROCESS;
    const parent = fromStored(api, job.traceContext);
    // Nothing to record and no trace to continue: the handler runs outside any span, as under a no-op tracer.
    if (!parent && !tracing(api)) {
      this.#untraced ??= untraced(api);
      return this.#untraced;
    }
    const parentContext = parent ? api.trace.setSpanContext(api.ROOT_CONTEXT, parent) : api.ROOT_CONTEXT;
    const span = api.trace.getTracer(TELEMETRY_NAME).startSpan(
      `process ${job.name}`,
      {
        kind: api.SpanKind.CONSUMER,
        attributes: { ...messaging('process', job.name, job.id), 'respond_async.job.attempt': job.attempt },
        links: parent ? [{ context: parent }] : [],
      },
      parentContext,
    );
    const active = api.trace.setSpan(parentContext, span);
    const sc = span.spanContext();
    return {
      traceId: api.isSpanContextValid(sc) ? sc.traceId : undefined,
      run: (fn) => api.context.with(active, fn),
      end: (outcome, error) => {
        span.setAttribute('respond_async.job.outcome', outcome);
        if (error !== undefined) fail(api, span, error);
        span.end();
      },
    };
  }

  /** An attempt started: how long the job waited since it was created, in seconds. */
  started(name: string, waitedMs: number): void {
    const m = this.#metrics();
    if (!m) return;
    m.running.add(1, { 'respond_async.job.name': name });
    m.wait.record(Math.max(0, waitedMs) / 1000, { 'respond_async.job.name': name });
  }

  /** An attempt ended after `ranMs`. */
  finished(name: string, outcome: AttemptOutcomeLabel, ranMs: number): void {
    const m = this.#metrics();
    if (!m) return;
    m.running.add(-1, { 'respond_async.job.name': name });
    m.run.record(Math.max(0, ranMs) / 1000, { 'respond_async.job.name': name, 'respond_async.job.outcome': outcome });
    m.finished.add(1, { 'respond_async.job.name': name, 'respond_async.job.outcome': outcome });
  }

  /** Start the `CLIENT` span of a webhook delivery under the job's trace. */
  webhook(job: { traceContext?: string | null }, url: URL): ClientSpan {
    const api = this.#api;
    if (!api) return NO_CLIENT;
    const parent = fromStored(api, job.traceContext);
    const parentContext = parent ? api.trace.setSpanContext(api.ROOT_CONTEXT, parent) : api.ROOT_CONTEXT;
    const span = api.trace.getTracer(TELEMETRY_NAME).startSpan(
      'POST',
      {
        kind: api.SpanKind.CLIENT,
        attributes: {
          'http.request.method': 'POST',
          'url.full': url.href,
          'server.address': url.hostname,
          'server.port': Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
        },
      },
      parentContext,
    );
    const sc = span.spanContext();
    const headers: Record<string, string> = {};
    if (span.isRecording() && api.isSpanContextValid(sc)) {
      const stored = toStored(sc);
      headers.traceparent = stored.traceparent;
      if (stored.tracestate) headers.tracestate = stored.tracestate;
    }
    return {
      headers,
      end: (statusCode, error) => {
        if (statusCode !== undefined) span.setAttribute('http.response.status_code', statusCode);
        if (error !== undefined || (statusCode !== undefined && statusCode >= 400)) {
          span.setAttribute(
            'error.type',
            statusCode !== undefined && statusCode >= 400 ? String(statusCode) : '_OTHER',
          );
          span.setStatus({ code: api.SpanStatusCode.ERROR, ...(error === undefined ? {} : { message: error }) });
        }
        span.end();
      },
    };
  }

  /** Count a webhook delivery attempt by its outcome (`delivered`, `retrying`, `failed`). */
  delivery(outcome: string): void {
    this.#metrics()?.deliveries.add(1, { 'respond_async.webhook.outcome': outcome });
  }

  /** The trace id of a stored context, for log lines. */
  traceIdOf(traceContext: string | null | undefined): string | undefined {
    const api = this.#api;
    return api ? fromStored(api, traceContext)?.traceId : undefined;
  }

  #metrics(): Instruments | undefined {
    const api = this.#api;
    if (!api) return undefined;
    if (this.#instruments) return this.#instruments;
    const meter = api.metrics.getMeter(TELEMETRY_NAME);
    this.#instruments = {
      submitted: meter.createCounter('respond_async.jobs.submitted', {
        unit: '{job}',
        description: 'Jobs created by this process',
      }),
      finished: meter.createCounter('respond_async.jobs.finished', {
        unit: '{job}',
        description: 'Attempts ended by this process, by outcome',
      }),
      wait: meter.createHistogram('respond_async.job.wait.duration', {
        unit: 's',
        description: 'Time from a job being created to an attempt starting',
      }),
      run: meter.createHistogram('respond_async.job.run.duration', {
        unit: 's',
        description: 'Time an attempt ran',
      }),
      running: meter.createUpDownCounter('respond_async.jobs.running', {
        unit: '{job}',
        description: 'Jobs running in this process',
      }),
      deliveries: meter.createCounter('respond_async.webhook.deliveries', {
        unit: '{delivery}',
        description: 'Webhook delivery attempts, by outcome',
      }),
    };
    return this.#instruments;
  }
}

/** The `process` span of an attempt with no trace to continue while no tracer is registered: none, in no context. */
function untraced(api: Api): ProcessSpan {
  return { traceId: undefined, run: (fn) => api.context.with(api.ROOT_CONTEXT, fn), end() {} };
}

/**
 * Whether a tracer provider is registered: without one the API would hand out non-recording spans, and a submit
 * skips building the span and its attributes.
 */
function tracing(api: Api): boolean {
  const provider = api.trace.getTracerProvider();
  return !(provider instanceof api.ProxyTracerProvider) || provider.getDelegateTracer(TELEMETRY_NAME) !== undefined;
}

/** The attributes naming a job, one object per name (every submit counts with them). */
const NAME_ATTRIBUTES = new Map<string, OtelApi.Attributes>();
function nameAttributes(name: string): OtelApi.Attributes {
  let attributes = NAME_ATTRIBUTES.get(name);
  if (!attributes) {
    attributes = { 'respond_async.job.name': name };
    NAME_ATTRIBUTES.set(name, attributes);
  }
  return attributes;
}

function messaging(operation: 'send' | 'process', name: string, id: string): OtelApi.Attributes {
  return {
    'messaging.system': TELEMETRY_NAME,
    'messaging.operation.type': operation,
    'messaging.operation.name': operation,
    'messaging.destination.name': name,
    'messaging.message.id': id,
  };
}

function fail(api: Api, span: OtelApi.Span, error: unknown): void {
  if (error instanceof Error) span.recordException(error);
  else span.recordException(String(error));
  span.setStatus({
    code: api.SpanStatusCode.ERROR,
    message: error instanceof Error ? error.message : String(error),
  });
}

function toStored(sc: OtelApi.SpanContext): StoredContext {
  const flags = (sc.traceFlags & 0xff).toString(16).padStart(2, '0');
  const tracestate = sc.traceState?.serialize();
  return { traceparent: `00-${sc.traceId}-${sc.spanId}-${flags}`, ...(tracestate ? { tracestate } : {}) };
}

/** The span context a job stored, or undefined when it has none or it cannot be read. */
function fromStored(api: Api, text: string | null | undefined): OtelApi.SpanContext | undefined {
  if (!text) return undefined;
  let stored: Partial<StoredContext>;
  try {
    stored = JSON.parse(text) as Partial<StoredContext>;
  } catch {
    return undefined;
  }
  const match = typeof stored.traceparent === 'string' ? TRACEPARENT.exec(stored.traceparent) : null;
  if (!match) return undefined;
  const context: OtelApi.SpanContext = {
    traceId: match[1]!,
    spanId: match[2]!,
    traceFlags: Number.parseInt(match[3]!, 16),
    isRemote: true,
  };
  if (typeof stored.tracestate === 'string' && stored.tracestate.length > 0) {
    context.traceState = api.createTraceState(stored.tracestate);
  }
  return api.isSpanContextValid(context) ? context : undefined;
}
