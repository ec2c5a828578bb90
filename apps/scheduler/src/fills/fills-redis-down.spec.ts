import request from 'supertest';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import { hoursAgo } from '../../../../test/helpers/scheduler';
import { SchedulerModule } from '../scheduler.module';
import { ENQUEUE_WAIT_MS } from './fills.service';

/** Nothing listens here: a Redis that never answers. */
const DEAD_REDIS = 'redis://127.0.0.1:6390';

describe('fills with Redis unreachable (scheduler, real Postgres)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp((config) => SchedulerModule.forRoot(config), {
      env: { REDIS_URL: DEAD_REDIS },
      largeBodyRoutes: ['/v1/fills'],
    });
  }, 15_000);
  afterAll(() => t.close(), 15_000);

  it('answers within seconds, the ready notice committed as pending for the reconciler', async () => {
    const pharmacy = await t.given.pharmacy({ settings: { readyCoalesceSeconds: 0 } });
    const patient = await t.given.patient(pharmacy, { consent: ['sms'] });
    const staff = await t.given.apiKey('staff', pharmacy);
    const started = Date.now();
    const response = await request(t.http)
      .post('/v1/fills')
      .set('Authorization', `Bearer ${staff}`)
      .send({
        fills: [
          {
            pharmacyId: pharmacy.id,
            externalId: 'F-redis-down',
            patientExternalId: patient.externalId,
            rxNumber: 'RX200',
            fillNumber: 0,
            drugName: 'Lisinopril 10 mg',
            quantity: 30,
            daysSupply: 30,
            refillsRemaining: 3,
            filledAt: hoursAgo(2),
            status: 'ready',
            readyAt: hoursAgo(0.1),
          },
        ],
      })
      .expect(200);
    expect(Date.now() - started).toBeLessThan(ENQUEUE_WAIT_MS + 3_000);
    expect(response.body.results).toEqual([expect.objectContaining({ externalId: 'F-redis-down' })]);
    const notices = await t.db.query(`SELECT kind, state FROM notifications WHERE patient_id = $1`, [
      patient.id,
    ]);
    expect(notices).toEqual([{ kind: 'ready', state: 'pending' }]);
  });
});
