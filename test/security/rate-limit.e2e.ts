import request from 'supertest';
import twilio from 'twilio';
import { ConsentApiModule } from '../../apps/consent-api/src/consent-api.module';
import { SchedulerModule } from '../../apps/scheduler/src/scheduler.module';
import { loadConfig } from '../../libs/common/src/config/config';
import { startTestApp, type TestApp } from '../helpers/app';
import { waitFor } from '../helpers/wait';
import type { PatientFixture } from '../helpers/given';

const LIMIT = 5;
const WEBHOOK_LIMIT = 7;

/** Rate limits, booted in-process with small limits: per API key, per client IP without one, per source IP on webhooks. */
describe('rate limits (consent-api in-process, RATE_LIMIT_PER_MINUTE=5, WEBHOOK_RATE_LIMIT_PER_MINUTE=7)', () => {
  let t: TestApp;
  let patient: PatientFixture;
  let staff: string;
  let auditor: string;

  beforeAll(async () => {
    t = await startTestApp((config) => ConsentApiModule.forRoot(config), {
      env: { RATE_LIMIT_PER_MINUTE: String(LIMIT), WEBHOOK_RATE_LIMIT_PER_MINUTE: String(WEBHOOK_LIMIT) },
    });
    const pharmacy = await t.given.pharmacy();
    patient = await t.given.patient(pharmacy, { phone: '+14155556123' });
    staff = await t.given.apiKey('staff', pharmacy);
    auditor = await t.given.apiKey('auditor', pharmacy);
  });
  afterAll(() => t.close());

  it('answers a key over its budget 429 in JSON with Retry-After, across routes, and the next key is unaffected', async () => {
    // One budget for the whole app: alternating two routes draws on the same one.
    const statuses = await burst(LIMIT, (i) =>
      request(t.http)
        .get(`/v1/patients/${patient.id}${i % 2 ? '/consent' : ''}`)
        .set('Authorization', `Bearer ${staff}`),
    );
    expect(statuses).toEqual(Array(LIMIT).fill(200));

    const refused = await request(t.http)
      .get(`/v1/patients/${patient.id}`)
      .set('Authorization', `Bearer ${staff}`);
    expect(refused.status).toBe(429);
    expect(refused.headers['content-type']).toMatch(/application\/json/);
    expect(refused.body).toEqual({ statusCode: 429, message: expect.stringMatching(/too many requests/) });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    // A refused request reads nothing: no access-log row for it.
    const [reads] = await t.db.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM access_log WHERE key_id IS NOT NULL`,
    );
    expect(reads.n).toBe(LIMIT);

    await request(t.http)
      .get(`/v1/patients/${patient.id}`)
      .set('Authorization', `Bearer ${auditor}`)
      .expect(200);
  });

  it('counts requests without a key by client IP, before the key check', async () => {
    const statuses = await burst(LIMIT + 2, () => request(t.http).get(`/v1/patients/${patient.id}`));
    expect(statuses).toEqual([...Array(LIMIT).fill(401), 429, 429]);
  });

  it('counts Twilio webhooks by source IP at the webhook rate, and ignores an Authorization header there', async () => {
    const url = `${t.config.publicUrls.consentApi}/webhooks/twilio/sms`;
    let n = 0;
    const signed = (authorization?: string) => {
      const form = {
        MessageSid: `SM${String(n++).padStart(32, '0')}`,
        From: '+14155559999',
        To: '+14155550100',
        Body: 'hello',
      };
      const req = request(t.http)
        .post('/webhooks/twilio/sms')
        .type('form')
        .set('X-Twilio-Signature', twilio.getExpectedTwilioSignature(t.config.twilio.authToken, url, form))
        .send(form);
      return authorization ? req.set('Authorization', authorization) : req;
    };
    const statuses = await burst(WEBHOOK_LIMIT, () => signed());
    expect(statuses).toEqual(Array(WEBHOOK_LIMIT).fill(200));
    expect((await signed()).status).toBe(429);
    expect((await signed(`Bearer rxn_made-up-${n}`)).status).toBe(429);
  });

  it('never limits /health or /metrics', async () => {
    expect(await burst(LIMIT * 3, () => request(t.http).get('/health'))).toEqual(Array(LIMIT * 3).fill(200));
    expect(await burst(LIMIT * 3, () => request(t.http).get('/metrics'))).toEqual(Array(LIMIT * 3).fill(200));
  });
});

describe('rate limit configuration', () => {
  it('defaults to 600 a minute per key and 60000 a minute per webhook source (Twilio sends several callbacks a text from few addresses)', () => {
    expect(loadConfig({}).rateLimit).toEqual({ perMinute: 600, webhooksPerMinute: 60_000 });
  });

  it('refuses a limit below 1, naming the variable', () => {
    expect(() => loadConfig({ RATE_LIMIT_PER_MINUTE: '0' })).toThrow(/RATE_LIMIT_PER_MINUTE is out of range/);
    expect(() => loadConfig({ WEBHOOK_RATE_LIMIT_PER_MINUTE: 'lots' })).toThrow(
      /WEBHOOK_RATE_LIMIT_PER_MINUTE must be a number/,
    );
  });

  it('applies to every app (the scheduler too): the budget is per app process', async () => {
    const s = await startTestApp((config) => SchedulerModule.forRoot(config), {
      env: { RATE_LIMIT_PER_MINUTE: '2', SCAN_INTERVAL_SECONDS: '86400' },
    });
    try {
      // Let boot-time Redis work (the scan schedule) finish: closing an app with a Redis command in flight can
      // raise an unhandled 'Connection is closed' (see the issue note on CatalogQueues).
      await waitFor(
        'the scheduler to be ready',
        async () => (await request(s.http).get('/health/ready')).status === 200,
      );
      const key = await s.given.apiKey('staff');
      const statuses = await burst(3, () =>
        request(s.http).post('/v1/fills').set('Authorization', `Bearer ${key}`).send({ fills: [] }),
      );
      expect(statuses).toEqual([422, 422, 429]);
    } finally {
      await s.close();
    }
  });
});

/** The statuses of `n` requests sent one after the other. */
async function burst(n: number, send: (i: number) => request.Test): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i += 1) statuses.push((await send(i)).status);
  return statuses;
}
