// OpenTelemetry for the examples: with OTEL=console, spans and metrics go to the console exporters.
import { createRequire } from 'node:module';

/**
 * With `OTEL=console`: register the SDK (NodeTracerProvider, console span exporter, console metric exporter every
 * 10 s) and the HTTP instrumentation (server spans), so that a request and its job print as one trace. Otherwise
 * nothing is loaded. Call it before the app creates its runtime.
 */
export async function otelFromEnv(): Promise<void> {
  if (process.env.OTEL !== 'console') return;
  const { metrics } = await import('@opentelemetry/api');
  const { NodeTracerProvider } = await import('@opentelemetry/sdk-trace-node');
  const { ConsoleSpanExporter, SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
  const { ConsoleMetricExporter, MeterProvider, PeriodicExportingMetricReader } = await import(
    '@opentelemetry/sdk-metrics'
  );
  const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http');
  const tracing = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())] });
  tracing.register();
  metrics.setGlobalMeterProvider(
    new MeterProvider({
      readers: [
        new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter(), exportIntervalMillis: 10_000 }),
      ],
    }),
  );
  const http = new HttpInstrumentation();
  http.setTracerProvider(tracing);
  http.enable();
  // The framework loaded `http` already: requiring it again lets the instrumentation patch it (server spans).
  createRequire(import.meta.url)('node:http');
}
