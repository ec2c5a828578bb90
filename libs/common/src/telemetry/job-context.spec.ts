import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { DelayedError } from 'bullmq';
import { JobName, QueueName, type TraceCarrier } from '../queue/queue.catalog';
import { currentTraceCarrier, withJobContext, withProducerSpan } from './job-context';
import { startTelemetry, stopTelemetry } from './sdk';

describe('trace context through a job', () => {
  const exporter = new InMemorySpanExporter();
  const job = (trace?: TraceCarrier) => ({
    id: 'b3a1f6a2-4f9e-4a53-9d3c-2f1f9a7c0001',
    name: JobName.SendNotification,
    queueName: QueueName.Delivery,
    attemptsMade: 2,
    data: { notificationId: 'b3a1f6a2-4f9e-4a53-9d3c-2f1f9a7c0001', ...(trace ? { trace } : {}) },
  });

  beforeAll(() => {
    startTelemetry({
      app: 'test',
      otel: { protocol: 'http/protobuf' },
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
  });
  afterAll(() => stopTelemetry());
  beforeEach(() => exporter.reset());

  it('has nothing to carry outside a span', () => {
    expect(currentTraceCarrier()).toBeUndefined();
  });

  it("continues the producer's trace in the worker, as a child of the producer span", async () => {
    const carrier = await withProducerSpan(QueueName.Delivery, ['n-1'], async (trace) => trace);
    expect(carrier?.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);

    const result = await withJobContext(job(carrier), async () => ({
      outcome: 'suppressed',
      reason: 'opted_out',
    }));
    expect(result).toEqual({ outcome: 'suppressed', reason: 'opted_out' });

    const [publish, deliver] = exporter.getFinishedSpans();
    expect(publish).toMatchObject({ name: 'publish delivery', kind: SpanKind.PRODUCER });
    expect(deliver).toMatchObject({ name: 'deliver notification', kind: SpanKind.CONSUMER });
    expect(deliver.spanContext().traceId).toBe(publish.spanContext().traceId);
    expect(deliver.parentSpanContext?.spanId).toBe(publish.spanContext().spanId);
    expect(deliver.attributes).toMatchObject({
      'messaging.destination.name': 'delivery',
      'messaging.message.id': 'b3a1f6a2-4f9e-4a53-9d3c-2f1f9a7c0001',
      'rxnotify.job.attempt': 3,
      'rxnotify.outcome': 'suppressed',
    });
  });

  it('starts a new trace for a job without a carrier', async () => {
    await withJobContext(job(), async () => undefined);
    const [deliver] = exporter.getFinishedSpans();
    expect(deliver.parentSpanContext).toBeUndefined();
  });

  it('records a failure by its class only and rethrows it untouched', async () => {
    const error = new Error('provider said no to +14155552671');
    await expect(withJobContext(job(), async () => Promise.reject(error))).rejects.toBe(error);
    const [deliver] = exporter.getFinishedSpans();
    expect(deliver.status).toEqual({ code: SpanStatusCode.ERROR, message: 'Error' });
    expect(
      JSON.stringify({ attributes: deliver.attributes, events: deliver.events, status: deliver.status }),
    ).not.toContain('4155552671');
  });

  it('does not call a postponed job (DelayedError) a failure', async () => {
    await expect(
      withJobContext(job(), async () => Promise.reject(new DelayedError())),
    ).rejects.toBeInstanceOf(DelayedError);
    const [deliver] = exporter.getFinishedSpans();
    expect(deliver.status.code).toBe(SpanStatusCode.UNSET);
    expect(deliver.attributes['rxnotify.outcome']).toBe('postponed');
  });
});
