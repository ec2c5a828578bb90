import { IncomingMessage, type RequestOptions } from 'node:http';
import { diag, DiagLogLevel, type Attributes, type DiagLogger } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { AppConfig } from '../config/config';
import { routeTemplate } from '../http/route-template';

/** Requests an orchestrator or Prometheus makes every few seconds: never worth a trace. */
const UNTRACED_PATHS = /^\/(health(\/live|\/ready)?|metrics)(\?|$)/;

export interface TelemetryOptions {
  /** The app's name; `OTEL_SERVICE_NAME` wins when set. */
  app: string;
  otel: AppConfig['otel'];
  /** Tests pass their own (an in-memory exporter); otherwise an OTLP exporter when an endpoint is configured. */
  spanProcessors?: SpanProcessor[];
}

let running: NodeSDK | null = null;

/**
 * Starts tracing for this process. It must run before express, pg, ioredis and @nestjs/core are first
 * required: instrumentation patches a module as it loads (http/main.ts loads the app only afterwards).
 *
 * Spans are always recorded, so trace ids reach the logs and the job payloads and W3C context flows from
 * HTTP to the queue to the worker; they leave the process only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
 * Every SDK default that would read other OTEL_* variables (metrics and logs exporters) is turned off:
 * Prometheus serves metrics, pino serves logs.
 */
export function startTelemetry(options: TelemetryOptions): NodeSDK {
  if (running) return running;
  diag.setLogger(stderrDiag, DiagLogLevel.WARN);
  const sdk = new NodeSDK({
    serviceName: options.otel.serviceName ?? options.app,
    spanProcessors: options.spanProcessors ?? exportingProcessors(options.otel),
    metricReaders: [],
    logRecordProcessors: [],
    textMapPropagator: new CompositePropagator({
      propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
    }),
    instrumentations: instrumentations(),
  });
  sdk.start();
  running = sdk;
  return sdk;
}

/** Flushes and stops the SDK started by {@link startTelemetry}; a no-op when none runs. */
export async function stopTelemetry(): Promise<void> {
  const sdk = running;
  running = null;
  await sdk?.shutdown();
}

export function exporterFor(otel: AppConfig['otel']): SpanExporter | null {
  if (!otel.endpoint) return null;
  // The standard variable names the collector's base URL; the signal's path is ours to add.
  const url = `${otel.endpoint.replace(/\/+$/, '')}/v1/traces`;
  return otel.protocol === 'http/json'
    ? new OTLPJsonTraceExporter({ url })
    : new OTLPProtoTraceExporter({ url });
}

function exportingProcessors(otel: AppConfig['otel']): SpanProcessor[] {
  const exporter = exporterFor(otel);
  // Without an exporter, a processor that drops spans: a tracer provider is still registered, so spans get
  // real ids (for logs and job payloads) and context propagates.
  return [exporter ? new BatchSpanProcessor(exporter) : new DroppingSpanProcessor()];
}

function instrumentations() {
  return [
    new HttpInstrumentation({
      ignoreIncomingRequestHook: (request) => UNTRACED_PATHS.test(request.url ?? ''),
      // What these hooks return replaces the instrumentation's own url.full and url.query.
      startOutgoingSpanHook: outgoingUrlAttributes,
      startIncomingSpanHook: (request) => incomingQueryAttributes(request.url ?? ''),
      // The route template Express matched names the server span (`POST /v1/fills/:id/ready`), never the URL.
      applyCustomAttributesOnSpan: (span, request) => {
        if (!(request instanceof IncomingMessage)) return;
        const route = routeTemplate(request);
        if (route === 'unmatched') return;
        span.setAttribute('http.route', route);
        span.updateName(`${request.method ?? 'GET'} ${route}`);
      },
    }),
    // No express or Nest instrumentation: a span per middleware and handler cost the dispatcher about a tenth of
    // its CPU under load (bench/README.md), and the HTTP span already covers the request.
    // Query text only (parameters are never recorded): the SQL holds no PHI, the parameters may.
    new PgInstrumentation({ requireParentSpan: true, enhancedDatabaseReporting: false }),
    // BullMQ polls Redis all the time: only commands made inside a trace get a span, and only their name
    // (arguments may be job payloads or keys).
    new IORedisInstrumentation({ requireParentSpan: true, dbStatementSerializer: (command) => command }),
  ];
}

/**
 * Query values may be PHI: the provider's message and call searches are `?To=%2B1…&From=…`. Every value is
 * replaced (the instrumentation only redacts a fixed list of signature parameters); the names stay, for debugging.
 */
export function redactQuery(query: string): string {
  const redacted = new URLSearchParams();
  for (const name of new URLSearchParams(query).keys()) redacted.append(name, 'REDACTED');
  return redacted.toString();
}

/** url.full of an outgoing request with its query values redacted and no credentials; nothing when it has no query. */
export function outgoingUrlAttributes(request: RequestOptions): Attributes {
  const path = request.path ?? '/';
  const at = path.indexOf('?');
  if (at < 0) return {};
  const port = request.port ? String(request.port) : '';
  let host = request.host ?? request.hostname ?? 'localhost';
  if (!host.includes(':') && port && port !== '80' && port !== '443') host += `:${port}`;
  return {
    'url.full': `${request.protocol ?? 'http:'}//${host}${path.slice(0, at)}?${redactQuery(path.slice(at + 1))}`,
  };
}

/** url.query of an incoming request with every value redacted; nothing when it has no query. */
export function incomingQueryAttributes(url: string): Attributes {
  const at = url.indexOf('?');
  return at < 0 || at === url.length - 1 ? {} : { 'url.query': redactQuery(url.slice(at + 1)) };
}

class DroppingSpanProcessor implements SpanProcessor {
  onStart(): void {}
  onEnd(): void {}
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** The SDK's own complaints (an unreachable collector): one line on stderr, never a span's content. */
const stderrDiag: DiagLogger = {
  error: (message) => process.stderr.write(`opentelemetry: ${message}\n`),
  warn: (message) => process.stderr.write(`opentelemetry: ${message}\n`),
  info: () => undefined,
  debug: () => undefined,
  verbose: () => undefined,
};
