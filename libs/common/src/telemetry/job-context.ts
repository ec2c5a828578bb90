import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
} from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { DelayedError, RateLimitError, WaitingChildrenError, WaitingError } from 'bullmq';
import { JobName, type TraceCarrier } from '../queue/queue.catalog';

const tracer = trace.getTracer('rxnotify');

/** What a job span is called, by job; "process <job>" for the others. */
const CONSUMER_SPANS: Partial<Record<string, string>> = {
  [JobName.SendNotification]: 'deliver notification',
};

/** BullMQ's ways for a processor to say "not now": the job goes back to wait, nothing failed. */
const NOT_FAILURES = [DelayedError, RateLimitError, WaitingChildrenError, WaitingError];

/** The parts of a BullMQ job that tracing reads (a `Job` of any payload with an optional `trace`). */
export interface TracedJob {
  id?: string;
  name: string;
  queueName: string;
  attemptsMade: number;
  data: { trace?: TraceCarrier };
}

/**
 * Runs `publish` inside a producer span for `count` jobs on `queue`, handing it the W3C trace context to
 * store in each job: the worker's span becomes its child, so one notification is one trace from the HTTP
 * request (or scan) that created it to the provider call. Ids only; never a payload.
 */
export async function withProducerSpan<T>(
  queue: string,
  messageIds: string[],
  publish: (carrier: TraceCarrier | undefined) => Promise<T>,
): Promise<T> {
  const attributes: Attributes = {
    'messaging.system': 'bullmq',
    'messaging.operation.type': 'send',
    'messaging.destination.name': queue,
    'messaging.batch.message_count': messageIds.length,
  };
  if (messageIds.length === 1) attributes['messaging.message.id'] = messageIds[0];
  return tracer.startActiveSpan(`publish ${queue}`, { kind: SpanKind.PRODUCER, attributes }, async (span) => {
    try {
      const carrier = currentTraceCarrier();
      // A bulk enqueue (a scan's thousand jobs a batch) is this one span: a span per Redis command of its
      // pipeline would cost more CPU and memory than the enqueue itself, and tell an operator nothing.
      if (messageIds.length > 1)
        return await context.with(suppressTracing(context.active()), () => publish(carrier));
      return await publish(carrier);
    } catch (error) {
      fail(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The active context as W3C headers, or undefined when there is no sampled-or-not span to continue. */
export function currentTraceCarrier(): TraceCarrier | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  if (!carrier.traceparent) return undefined;
  return carrier.tracestate
    ? { traceparent: carrier.traceparent, tracestate: carrier.tracestate }
    : { traceparent: carrier.traceparent };
}

/**
 * Runs a job's processing inside a consumer span ("deliver notification" for a send job) whose parent is
 * the producer span carried in the job, so the worker's database and provider calls join the trace that
 * enqueued it. A job without a carrier (enqueued before tracing, or by the reconciler) starts a new trace.
 * Exceptions are recorded and rethrown untouched, so BullMQ's retries work as before.
 */
export function withJobContext<T>(job: TracedJob, process: () => Promise<T>): Promise<T> {
  const carrier = job.data.trace;
  const parent = carrier ? propagation.extract(ROOT_CONTEXT, { ...carrier }) : ROOT_CONTEXT;
  const attributes: Attributes = {
    'messaging.system': 'bullmq',
    'messaging.operation.type': 'process',
    'messaging.destination.name': job.queueName,
    'rxnotify.job.name': job.name,
    'rxnotify.job.attempt': job.attemptsMade + 1,
  };
  if (job.id) attributes['messaging.message.id'] = job.id;
  const name = CONSUMER_SPANS[job.name] ?? `process ${job.name}`;
  return tracer.startActiveSpan(name, { kind: SpanKind.CONSUMER, attributes }, parent, async (span) => {
    try {
      const result = await process();
      const outcome = outcomeOf(result);
      if (outcome) span.setAttribute('rxnotify.outcome', outcome);
      return result;
    } catch (error) {
      if (NOT_FAILURES.some((kind) => error instanceof kind))
        span.setAttribute('rxnotify.outcome', 'postponed');
      else fail(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The delivery outcome's word (`sent`, `suppressed`...): a fixed vocabulary, never free text. */
function outcomeOf(result: unknown): string | undefined {
  if (typeof result !== 'object' || result === null || !('outcome' in result)) return undefined;
  const outcome = (result as { outcome: unknown }).outcome;
  return typeof outcome === 'string' && /^[a-z_]{1,32}$/.test(outcome) ? outcome : undefined;
}

function fail(span: Span, error: unknown): void {
  // The error's class only: messages can quote provider answers, which can quote a phone number.
  const type = error instanceof Error ? error.name : 'non-error thrown';
  span.setAttribute('error.type', type);
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}
