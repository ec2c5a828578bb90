import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import request from 'supertest';
import { DispatcherModule } from '../../apps/dispatcher/src/dispatcher.module';
import { Metrics } from '../../libs/common/src/metrics/metrics.service';
import { NotificationQueue } from '../../libs/common/src/queue/notification-queue';
import { QueueName } from '../../libs/common/src/queue/queue.catalog';
import { startTestApp, type TestApp } from '../helpers/app';
import { waitFor } from '../helpers/wait';

describe('GET /metrics (dispatcher, real Postgres and Redis)', () => {
  let t: TestApp;
  let staff: string;
  const scrape = async () => (await request(t.http).get('/metrics').expect(200)).text;
  /** One sample's value, found by its exact labels in Prometheus text. */
  const sample = (text: string, series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };

  beforeAll(async () => {
    t = await startTestApp((config) => DispatcherModule.forRoot(config));
    const pharmacy = await t.given.pharmacy();
    staff = await t.given.apiKey('staff', pharmacy);
  });
  afterAll(async () => {
    const queue = new Queue(QueueName.Delivery, {
      connection: { host: '127.0.0.1', port: 6379 },
      prefix: t.config.queue.prefix,
    });
    await t.close();
    await queue.obliterate({ force: true });
    await queue.close();
  });

  it('counts HTTP requests by route template and status, never by raw URL', async () => {
    const ids = [randomUUID(), randomUUID()];
    for (const id of ids)
      await request(t.http)
        .get(`/v1/notifications/${id}`)
        .set('Authorization', `Bearer ${staff}`)
        .expect(404);
    await request(t.http).get(`/v1/notifications/${ids[0]}`).expect(401);
    await request(t.http).get('/no/such/route').expect(404);
    await request(t.http).get('/health').expect(200);

    const text = await scrape();
    expect(sample(text, 'http_requests_total{method="GET",route="/v1/notifications/:id",status="404"}')).toBe(
      2,
    );
    expect(sample(text, 'http_requests_total{method="GET",route="/v1/notifications/:id",status="401"}')).toBe(
      1,
    );
    expect(sample(text, 'http_requests_total{method="GET",route="unmatched",status="404"}')).toBe(1);
    expect(sample(text, 'http_requests_total{method="GET",route="/health",status="200"}')).toBe(1);
    expect(text).toMatch(
      /^http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/v1\/notifications\/:id",status="404"\} \d+$/m,
    );
    for (const id of ids) expect(text).not.toContain(id);
    expect(text).not.toContain('/no/such/route');
  });

  it('serves process metrics and queue depth per catalog queue and state', async () => {
    const text = await scrape();
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    for (const queue of Object.values(QueueName)) {
      expect(sample(text, `queue_depth{queue="${queue}",state="waiting"}`)).toEqual(expect.any(Number));
      expect(sample(text, `queue_depth{queue="${queue}",state="delayed"}`)).toEqual(expect.any(Number));
    }
  });

  it("times jobs from the workers' events: wait before start, duration by outcome", async () => {
    const pharmacy = await t.given.pharmacy();
    const patient = await t.given.patient(pharmacy, { phone: '+14155550123', consent: [] });
    const { notificationId } = await t.given.notice(patient);
    await t.app.get(NotificationQueue).enqueue([{ notificationId }]);

    const text = await waitFor('the job to be timed', async () => {
      const scraped = await scrape();
      return (sample(scraped, 'job_duration_seconds_count{queue="delivery",status="completed"}') ?? 0) >= 1
        ? scraped
        : null;
    });
    expect(sample(text, 'job_wait_seconds_count{queue="delivery"}')).toBeGreaterThanOrEqual(1);
  });

  it('counts what the product reports through the typed methods, with bounded labels', async () => {
    const metrics = t.app.get(Metrics);
    metrics.messageSent('ready', 'sms');
    metrics.message('refill_due', 'voice', 'failed');
    metrics.suppressed('opted_out');
    metrics.consentChanged('sms_keyword', 'opted_out');
    metrics.consentChanged('front counter, signed form', 'opted_in');

    const text = await scrape();
    expect(sample(text, 'messages_total{kind="ready",channel="sms",status="sent"}')).toBe(1);
    expect(sample(text, 'messages_total{kind="refill_due",channel="voice",status="failed"}')).toBe(1);
    expect(sample(text, 'suppressions_total{reason="opted_out"}')).toBe(1);
    expect(sample(text, 'consent_changes_total{source="sms_keyword",status="opted_out"}')).toBe(1);
    expect(sample(text, 'consent_changes_total{source="api",status="opted_in"}')).toBe(1);
    expect(text).not.toContain('front counter');
  });
});
