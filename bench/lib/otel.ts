// The OpenTelemetry SDK (2.x) of the accept path's `otel` route, registered globally the way an application
// registers it at startup, with exporters that drop what they receive: what is measured is the library's spans and
// metrics under a real SDK, not an exporter's network.
import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';

export interface OtelSummary {
  /** Spans the batch processor handed to the exporter. */
  spans: number;
  /** Of those, the `send <job>` spans. */
  sendSpans: number;
  /** The `respond_async.jobs.submitted` counter, summed over its attributes. */
  submitted: number;
}

export interface RegisteredOtel {
  /** Flush the spans still batched, then count what was exported and read the submit counter. */
  summary(): Promise<OtelSummary>;
}

/** Register a tracer provider, a meter provider and the AsyncLocalStorage context manager as the global ones. */
export function registerOtel(): RegisteredOtel {
  let spans = 0;
  let sendSpans = 0;
  const spanExporter: SpanExporter = {
    export(batch: ReadableSpan[], done: (result: ExportResult) => void) {
      spans += batch.length;
      for (const span of batch) if (span.name.startsWith('send ')) sendSpans += 1;
      done({ code: ExportResultCode.SUCCESS });
    },
    shutdown: async () => {},
  };
  const metricExporter: PushMetricExporter = {
    export(_metrics: ResourceMetrics, done: (result: ExportResult) => void) {
      done({ code: ExportResultCode.SUCCESS });
    },
    forceFlush: async () => {},
    shutdown: async () => {},
    selectAggregationTemporality: () => AggregationTemporality.CUMULATIVE,
  };
  const spanProcessor = new BatchSpanProcessor(spanExporter);
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [spanProcessor] });
  // A long interval, as a real exporter would use: collection rarely runs during a turn.
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(tracerProvider);
  metrics.setGlobalMeterProvider(meterProvider);
  return {
    async summary() {
      await spanProcessor.forceFlush();
      const { resourceMetrics } = await reader.collect();
      let submitted = 0;
      for (const scope of resourceMetrics.scopeMetrics) {
        for (const metric of scope.metrics) {
          if (metric.descriptor.name !== 'respond_async.jobs.submitted' || metric.dataPointType !== DataPointType.SUM)
            continue;
          for (const point of metric.dataPoints) submitted += point.value;
        }
      }
      return { spans, sendSpans, submitted };
    },
  };
}
