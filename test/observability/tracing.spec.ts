import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Queue } from 'bullmq';
import request from 'supertest';
import { SchedulerModule } from '../../apps/scheduler/src/scheduler.module';
import { DispatcherModule } from '../../apps/dispatcher/src/dispatcher.module';
import { SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN } from '../../libs/common/src/config/config';
import { QueueName } from '../../libs/common/src/queue/queue.catalog';
import { startTelemetry, stopTelemetry } from '../../libs/common/src/telemetry/sdk';
import { startSandbox, type Sandbox } from '../../tools/twilio-sandbox/src/sandbox';
import { startTestApp, type TestApp } from '../helpers/app';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { freePort, waitFor } from '../helpers/wait';

/**
 * One trace per notification: the scheduler's ready click and the dispatcher's delivery, two apps sharing a
 * database and a queue prefix in this process, end up in one trace through the W3C context in the job.
 */
describe('tracing across the queue (scheduler → BullMQ → dispatcher)', () => {
  const exporter = new InMemorySpanExporter();
  const phone = '+14155552671';
  const firstName = 'Adaline';
  let database: TestDatabase;
  let sandbox: Sandbox;
  let scheduler: TestApp;
  let dispatcher: TestApp;
  let prefix: string;

  beforeAll(async () => {
    startTelemetry({
      app: 'rxnotify-test',
      otel: { protocol: 'http/protobuf' },
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    database = await createTestDatabase();
    sandbox = await startSandbox({
      port: 0,
      accountSid: SANDBOX_ACCOUNT_SID,
      authToken: SANDBOX_AUTH_TOKEN,
      callbackDelayMs: 5,
    });
    const port = await freePort();
    prefix = `rxt-trace-${Date.now().toString(36)}`;
    const env = {
      QUEUE_PREFIX: prefix,
      TWILIO_API_BASE_URL: sandbox.url,
      DISPATCHER_PUBLIC_URL: `http://127.0.0.1:${port}`,
    };
    scheduler = await startTestApp((config) => SchedulerModule.forRoot(config), { database, env });
    dispatcher = await startTestApp((config) => DispatcherModule.forRoot(config), {
      database,
      env,
      listenPort: port,
    });
  });
  afterAll(async () => {
    await scheduler?.close();
    await dispatcher?.close();
    const queue = new Queue(QueueName.Delivery, { connection: { host: '127.0.0.1', port: 6379 }, prefix });
    await queue.obliterate({ force: true });
    await queue.close();
    await sandbox?.close();
    await database?.drop();
    await stopTelemetry();
  });

  it('puts the ready click and the delivery in one trace, and no span attribute holds the phone or name', async () => {
    const pharmacy = await scheduler.given.pharmacy({
      settings: { readyCoalesceSeconds: 0, quietHours: { start: '00:00', end: '23:59' } },
    });
    const patient = await scheduler.given.patient(pharmacy, { phone, firstName, consent: ['sms'] });
    const fill = await scheduler.given.fill(patient, { status: 'in_progress' });
    const staff = await scheduler.given.apiKey('staff', pharmacy);

    const click = await request(scheduler.http)
      .post(`/v1/fills/${fill.id}/ready`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(202);
    const notificationId = (click.body as { notificationId: string }).notificationId;

    const queue = new Queue(QueueName.Delivery, { connection: { host: '127.0.0.1', port: 6379 }, prefix });
    const job = await queue.getJob(notificationId);
    await queue.close();
    // The payload: the id and the W3C context, nothing else.
    expect(Object.keys(job?.data ?? {}).sort()).toEqual(['notificationId', 'trace']);
    expect(job?.data.trace.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);

    await waitFor('the text', () => sandbox.messages().some((message) => message.to === phone));
    const spans = await waitFor(
      'the "deliver notification" span (delivery.processor.ts runs deliver() inside withJobContext)',
      () => {
        const finished = exporter.getFinishedSpans();
        return finished.some((span) => span.name === 'deliver notification') ? finished : null;
      },
    );

    const publish = only(
      spans,
      (span) =>
        span.name === 'publish delivery' && span.attributes['messaging.message.id'] === notificationId,
    );
    expect(publish.kind).toBe(SpanKind.PRODUCER);
    const deliver = only(
      spans,
      (span) =>
        span.name === 'deliver notification' && span.attributes['messaging.message.id'] === notificationId,
    );
    expect(deliver.kind).toBe(SpanKind.CONSUMER);
    expect(deliver.spanContext().traceId).toBe(publish.spanContext().traceId);
    expect(deliver.parentSpanContext?.spanId).toBe(publish.spanContext().spanId);
    expect(deliver.attributes['rxnotify.outcome']).toBe('sent');

    // (HTTP, pg and Redis spans come from instrumentation, which patches modules as Node loads them: jest's
    // module registry bypasses that, so test/e2e/tracing.e2e.ts checks them on the built apps.)

    const everything = JSON.stringify(
      spans.map((span) => ({ name: span.name, attributes: span.attributes, events: span.events })),
    );
    for (const secret of [phone, phone.slice(2), firstName]) expect(everything).not.toContain(secret);
  });
});

function only(spans: ReadableSpan[], match: (span: ReadableSpan) => boolean): ReadableSpan {
  const found = spans.filter(match);
  if (found.length !== 1)
    throw new Error(`expected one span, found ${found.length}: ${spans.map((s) => s.name).join(', ')}`);
  return found[0];
}
