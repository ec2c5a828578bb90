import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { CatalogQueues } from '../../libs/common/src/metrics/catalog-queues';
import { JobName, QueueName } from '../../libs/common/src/queue/queue.catalog';
import { ConsentApiModule } from '../../apps/consent-api/src/consent-api.module';
import { DeliveryProcessor } from '../../apps/dispatcher/src/delivery/delivery.processor';
import { DispatcherModule } from '../../apps/dispatcher/src/dispatcher.module';
import { startTestApp, type TestApp } from '../helpers/app';

/** Nothing listens here: a Redis that never answers. */
const DEAD_REDIS = 'redis://127.0.0.1:6390';

describe('health endpoints', () => {
  describe('with Postgres and Redis up (dispatcher)', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp((config) => DispatcherModule.forRoot(config));
    });
    afterAll(() => t.close());

    it('GET /health answers 200 naming each dependency', async () => {
      const response = await request(t.http).get('/health').expect(200);
      expect(response.body).toMatchObject({
        status: 'ok',
        details: { postgres: { status: 'up' }, redis: { status: 'up' } },
      });
    });

    it('GET /health/live answers 200 without asking anything', async () => {
      const response = await request(t.http).get('/health/live').expect(200);
      expect(response.body).toEqual({ status: 'ok', info: {}, error: {}, details: {} });
    });

    it('GET /health/ready adds the lag of the queues the app consumes', async () => {
      const response = await request(t.http).get('/health/ready').expect(200);
      expect(response.body.details).toMatchObject({
        postgres: { status: 'up' },
        redis: { status: 'up' },
        queues: { status: 'up', delivery: { oldestWaitingSeconds: 0 } },
      });
    });

    it('GET /health/ready answers 503 naming the queue when a job waited over 5 minutes, /health stays 200', async () => {
      // The app's worker stops taking jobs (the last test of this app: it is not restarted).
      await t.app.get(DeliveryProcessor).worker.close();
      const queue = t.app.get(CatalogQueues).get(QueueName.Delivery);
      // Enqueued ten minutes ago, as if no worker had been there since.
      await queue.add(
        JobName.SendNotification,
        { notificationId: randomUUID() },
        { timestamp: Date.now() - 10 * 60_000 },
      );
      await queue.add(JobName.SendNotification, { notificationId: randomUUID() });
      try {
        const response = await request(t.http).get('/health/ready').expect(503);
        expect(response.body.error.queues).toMatchObject({
          status: 'down',
          message: expect.stringContaining('delivery'),
        });
        expect(response.body.error.queues.delivery.oldestWaitingSeconds).toBeGreaterThanOrEqual(600);
        await request(t.http).get('/health').expect(200);
      } finally {
        await queue.obliterate({ force: true });
      }
    });
  });

  for (const [name, module] of [
    ['consent-api', ConsentApiModule.forRoot.bind(ConsentApiModule)],
    ['dispatcher', DispatcherModule.forRoot.bind(DispatcherModule)],
  ] as const) {
    describe(`with Redis unreachable (${name})`, () => {
      let t: TestApp;
      beforeAll(async () => {
        t = await startTestApp((config) => module(config), { env: { REDIS_URL: DEAD_REDIS } });
      }, 10000);
      afterAll(() => t.close(), 10000);

      it('boots, and GET /health answers 503 naming redis down and postgres up within seconds', async () => {
        const started = Date.now();
        const response = await request(t.http).get('/health').expect(503);
        expect(Date.now() - started).toBeLessThan(3000);
        expect(response.body).toMatchObject({
          status: 'error',
          error: { redis: { status: 'down' } },
          details: { postgres: { status: 'up' }, redis: { status: 'down' } },
        });
      });

      it('stays live (a restart would not bring Redis back) but not ready', async () => {
        await request(t.http).get('/health/live').expect(200);
        const ready = await request(t.http).get('/health/ready').expect(503);
        expect(ready.body.error).toMatchObject({ redis: { status: 'down' } });
      });

      it('still answers /metrics', async () => {
        const started = Date.now();
        await request(t.http).get('/metrics').expect(200);
        expect(Date.now() - started).toBeLessThan(3000);
      });
    });
  }
});
