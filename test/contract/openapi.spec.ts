import type { DynamicModule } from '@nestjs/common';
import request from 'supertest';
import { ConsentApiModule } from '../../apps/consent-api/src/consent-api.module';
import { DispatcherModule } from '../../apps/dispatcher/src/dispatcher.module';
import { SchedulerModule } from '../../apps/scheduler/src/scheduler.module';
import type { AppConfig } from '../../libs/common/src/config/config';
import { startTestApp, type TestApp } from '../helpers/app';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

/**
 * The HTTP surface of CONTRACT.md ("HTTP API"), copied here on purpose: the contract is fixed and outside
 * tools are written against it, so this list changes only when the contract does. Path parameters as
 * OpenAPI writes them ({id}).
 */
const CONTRACT: Record<string, string[]> = {
  'consent-api': [
    'POST /v1/pharmacies',
    'PATCH /v1/pharmacies/{id}',
    'POST /v1/patients',
    'GET /v1/patients/{id}',
    'PUT /v1/patients/{id}/consent/{channel}',
    'GET /v1/patients/{id}/consent',
    'GET /v1/audit/access',
    'POST /webhooks/twilio/sms',
    'POST /webhooks/twilio/voice/gather',
  ],
  scheduler: [
    'POST /v1/fills',
    'POST /v1/fills/import',
    'POST /fhir/r4',
    'POST /v1/fills/{id}/ready',
    'POST /v1/fills/{id}/pickup',
    'POST /v1/scans',
    'GET /v1/patients/{id}/adherence',
  ],
  dispatcher: [
    'GET /v1/notifications/{id}',
    'GET /v1/notifications',
    'GET /v1/messages',
    'GET /v1/follow-ups',
    'POST /webhooks/twilio/status',
    'POST /webhooks/twilio/voice/status',
  ],
};

const MODULES: Record<string, (config: AppConfig) => DynamicModule> = {
  'consent-api': (config) => ConsentApiModule.forRoot(config),
  scheduler: (config) => SchedulerModule.forRoot(config),
  dispatcher: (config) => DispatcherModule.forRoot(config),
};

const SURFACE = /^\/(v1|fhir|webhooks)\//;
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

describe('the documented API (/docs-json) covers CONTRACT.md', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(() => database.drop());

  for (const [app, routes] of Object.entries(CONTRACT)) {
    describe(app, () => {
      let t: TestApp;
      let documented: Set<string>;
      beforeAll(async () => {
        t = await startTestApp(MODULES[app], { database });
        const docs = await request(t.http).get('/docs-json').expect(200);
        const paths = (docs.body as { paths: Record<string, Record<string, unknown>> }).paths;
        documented = new Set(
          Object.entries(paths)
            .filter(([path]) => SURFACE.test(path))
            .flatMap(([path, operations]) =>
              METHODS.filter((m) => m in operations).map((m) => `${m.toUpperCase()} ${path}`),
            ),
        );
      });
      afterAll(() => t.close());

      it('serves the OpenAPI UI at /docs', async () => {
        const page = await request(t.http).get('/docs').redirects(1).expect(200);
        expect(page.text).toContain('swagger');
      });

      it.each(routes.filter((route) => !route.includes(' /webhooks/')))('documents %s', (route) => {
        expect([...documented]).toContain(route);
      });

      // Twilio's webhooks are left out of the docs (no caller but Twilio); they must still exist, and refuse
      // an unsigned request (403), which a missing route would answer 404.
      const webhooks = routes.filter((route) => route.includes(' /webhooks/'));
      if (webhooks.length > 0)
        it.each(webhooks)('serves %s (documented or not), refusing an unsigned call', async (route) => {
          if (documented.has(route)) return;
          const path = route.split(' ')[1];
          await request(t.http)
            .post(path)
            .type('form')
            .send({ MessageSid: 'SM00000000000000000000000000000000' })
            .expect(403);
        });
    });
  }
});
