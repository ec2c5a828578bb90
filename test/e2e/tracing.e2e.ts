import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { Client } from 'pg';
import { loadConfig } from '../../libs/common/src/config/config';
import { KeyRing } from '../../libs/common/src/crypto/key-ring';
import { NotificationQueue } from '../../libs/common/src/queue/notification-queue';
import { QueueName } from '../../libs/common/src/queue/queue.catalog';
import { TEST_INDEX_KEY, TEST_PHI_KEYS } from '../helpers/config';
import { client, startStack, type Stack } from '../helpers/stack';
import { waitFor } from '../helpers/wait';

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: Array<{ key: string; value: OtlpValue }>;
  events?: unknown[];
}
interface ReceivedSpan extends OtlpSpan {
  service: string;
  attrs: Record<string, string | number | boolean | undefined>;
}

const SERVER = 2;
const CLIENT = 3;

/** A collector in this process: takes OTLP/HTTP JSON on /v1/traces, as Jaeger or an OpenTelemetry Collector would. */
async function startCollector(): Promise<{ url: string; spans: ReceivedSpan[]; close(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const payload = JSON.parse(body) as {
          resourceSpans: Array<{
            resource: { attributes: Array<{ key: string; value: OtlpValue }> };
            scopeSpans: Array<{ spans: OtlpSpan[] }>;
          }>;
        };
        for (const resourceSpans of payload.resourceSpans) {
          const service = String(
            resourceSpans.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue,
          );
          for (const scope of resourceSpans.scopeSpans) {
            for (const span of scope.spans) {
              const attrs = Object.fromEntries(
                (span.attributes ?? []).map((a) => [
                  a.key,
                  a.value.stringValue ?? a.value.intValue ?? a.value.boolValue ?? a.value.doubleValue,
                ]),
              );
              spans.push({ ...span, service, attrs });
            }
          }
        }
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * Tracing on the built apps, as processes: OTLP export (http/json), service names, automatic spans for
 * HTTP, Nest, pg and Redis, and one trace from the staff's ready click to the provider call.
 */
describe('tracing (all apps as processes, OTLP to a collector)', () => {
  let stack: Stack;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  const phone = '+14155552671';
  const firstName = 'Adaline';

  beforeAll(async () => {
    collector = await startCollector();
    stack = await startStack({
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
    });
  }, 60000);
  afterAll(async () => {
    await stack?.stop();
    await collector?.close();
  });

  /** A pharmacy texting from `smsFrom`, an opted-in patient with `patientPhone` and a fill marked ready: the notification's id. */
  async function readyClick(patientPhone: string, externalId: string, smsFrom: string): Promise<string> {
    const adminKey = stack
      .cli('api-key', 'create', '--role', 'admin', '--label', 'tracing')
      .stdout.trim()
      .split('\n')
      .pop() as string;
    const admin = client(stack.urls.consentApi, adminKey);
    const pharmacy = (
      await admin.post('/v1/pharmacies', {
        name: 'Main Street Pharmacy',
        timezone: 'America/New_York',
        smsFrom,
        callbackPhone: '+14155550199',
        settings: { readyCoalesceSeconds: 0, quietHours: { start: '00:00', end: '23:59' } },
      })
    ).body as { id: string };
    const staffKey = stack
      .cli('api-key', 'create', '--role', 'staff', '--pharmacy', pharmacy.id, '--label', 'counter')
      .stdout.trim()
      .split('\n')
      .pop() as string;
    const consent = client(stack.urls.consentApi, staffKey);
    const scheduler = client(stack.urls.scheduler, staffKey);
    const patient = (
      await consent.post('/v1/patients', {
        pharmacyId: pharmacy.id,
        externalId: `PT-${externalId}`,
        firstName,
        phone: patientPhone,
      })
    ).body as { id: string };
    expect(
      (await consent.put(`/v1/patients/${patient.id}/consent/sms`, { status: 'opted_in', source: 'counter' }))
        .status,
    ).toBe(200);
    const fills = await scheduler.post('/v1/fills', {
      fills: [
        {
          pharmacyId: pharmacy.id,
          externalId: `F-${externalId}`,
          patientExternalId: `PT-${externalId}`,
          rxNumber: `RX-${externalId}`,
          fillNumber: 0,
          drugName: 'Metformin 500 mg',
          quantity: 60,
          daysSupply: 30,
          refillsRemaining: 2,
          filledAt: new Date(Date.now() - 3600_000).toISOString(),
          status: 'in_progress',
        },
      ],
    });
    const fillId = (fills.body as { results: Array<{ id: string }> }).results[0].id;
    const ready = await scheduler.post(`/v1/fills/${fillId}/ready`);
    expect(ready.status).toBe(202);
    return (ready.body as { notificationId: string }).notificationId;
  }

  it("follows a ready click from the scheduler through the queue to the dispatcher's provider call, without PHI", async () => {
    const notificationId = await readyClick(phone, 'T', '+14155550100');

    const deliver = await waitFor(
      'the dispatcher\'s "deliver notification" span',
      () =>
        collector.spans.find(
          (s) =>
            s.service === 'dispatcher' &&
            s.name === 'deliver notification' &&
            s.attrs['messaging.message.id'] === notificationId,
        ),
      20000,
    );
    // The provider call ends inside the delivery span; give the exporter a moment for the last batch.
    const trace = await waitFor('the provider call in the trace', () => {
      const spans = collector.spans.filter((s) => s.traceId === deliver.traceId);
      return spans.some(
        (s) =>
          s.service === 'dispatcher' &&
          s.kind === CLIENT &&
          /Messages\.json/.test(String(s.attrs['url.full'] ?? s.attrs['http.url'])),
      )
        ? spans
        : null;
    });

    const click = trace.find(
      (s) =>
        s.service === 'scheduler' && s.kind === SERVER && s.attrs['http.route'] === '/v1/fills/:id/ready',
    );
    expect(click).toBeDefined();
    expect(click?.parentSpanId ?? '').toBe('');
    const publish = trace.find((s) => s.service === 'scheduler' && s.name === 'publish delivery');
    expect(deliver.parentSpanId).toBe(publish?.spanId);
    const db = (s: ReceivedSpan) => s.attrs['db.system.name'] ?? s.attrs['db.system'];
    expect(trace.some((s) => s.service === 'scheduler' && db(s) === 'postgresql')).toBe(true);
    expect(trace.some((s) => s.service === 'scheduler' && db(s) === 'redis')).toBe(true);
    expect(trace.some((s) => s.service === 'dispatcher' && db(s) === 'postgresql')).toBe(true);

    expect(new Set(collector.spans.map((s) => s.service))).toEqual(
      new Set(['consent-api', 'scheduler', 'dispatcher']),
    );
    expect(
      collector.spans.some((s) =>
        /^\/(health|metrics)/.test(String(s.attrs['url.path'] ?? s.attrs['http.target'])),
      ),
    ).toBe(false);
    const everything = JSON.stringify(
      collector.spans.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events })),
    );
    for (const secret of [phone, phone.slice(2), firstName, 'Metformin'])
      expect(everything).not.toContain(secret);
  }, 60000);

  it("keeps the phone out of the provider lookup's span (GET Messages.json?To=…&From=…) when an attempt is settled", async () => {
    const lookedUp = '+14155557391';
    const sent = await readyClick(lookedUp, 'L', '+14155550101');
    // A second notice about the same fill whose earlier attempt never got an answer (the dispatcher died after
    // the intent was written): before sending anything, the dispatcher searches the provider for it by number.
    const config = loadConfig({
      NODE_ENV: 'test',
      PHI_ENCRYPTION_KEYS: TEST_PHI_KEYS,
      PHI_INDEX_KEY: TEST_INDEX_KEY,
    });
    const keys = new KeyRing(config.phi.keys, config.phi.indexKey);
    const db = new Client({ connectionString: stack.database.url });
    await db.connect();
    let notificationId: string;
    try {
      const { rows } = await db.query<{ id: string }>(
        `WITH n AS (
           INSERT INTO notifications (pharmacy_id, patient_id, kind, fill_ids, dedup_key, due_at)
           SELECT pharmacy_id, patient_id, kind, fill_ids, 'test:lookup', now() FROM notifications WHERE id = $1
           RETURNING id, pharmacy_id, patient_id)
         INSERT INTO messages (notification_id, notification_ids, pharmacy_id, patient_id, channel, to_enc, from_number, body_enc, status, created_at)
         SELECT n.id, ARRAY[n.id], n.pharmacy_id, n.patient_id, 'sms', $2, '+14155550101', $3, 'intent', now() - interval '10 minutes'
         FROM n RETURNING notification_id AS id`,
        [sent, keys.encrypt(lookedUp), keys.encrypt('Your prescription is ready')],
      );
      notificationId = rows[0].id;
    } finally {
      await db.end();
    }
    const queue = new Queue(QueueName.Delivery, {
      connection: { host: '127.0.0.1', port: 6379 },
      prefix: stack.env.QUEUE_PREFIX,
    });
    try {
      await new NotificationQueue(queue).enqueue([{ notificationId }]);
    } finally {
      await queue.close();
    }

    const search = await waitFor(
      "the dispatcher's provider search span",
      () =>
        collector.spans.find(
          (s) =>
            s.service === 'dispatcher' &&
            s.kind === CLIENT &&
            /Messages\.json\?/.test(String(s.attrs['url.full'] ?? s.attrs['http.url'])),
        ),
      30000,
    );
    expect(String(search.attrs['url.full'])).toMatch(/[?&]To=REDACTED(&|$)/);
    expect(String(search.attrs['url.full'])).toMatch(/[?&]From=REDACTED(&|$)/);

    const everything = JSON.stringify(
      collector.spans.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events })),
    );
    for (const form of [
      lookedUp,
      encodeURIComponent(lookedUp),
      '4155557391',
      '5557391',
      '555-7391',
      '555 7391',
      '555.7391',
      '(415)',
    ])
      expect(everything).not.toContain(form);
  }, 60000);
});
