import request from 'supertest';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import { createTestDatabase, type TestDatabase } from '../../../../test/helpers/database';
import { startDispatcherWithSandbox, type DispatcherUnderTest } from '../../../../test/helpers/dispatcher';
import type { PatientFixture, PharmacyFixture } from '../../../../test/helpers/given';
import { ConsentApiModule } from '../../../consent-api/src/consent-api.module';

describe('notification reads by a key that reaches every pharmacy (dispatcher + consent-api, real Postgres)', () => {
  let database: TestDatabase;
  let dispatcher: DispatcherUnderTest;
  let consentApi: TestApp;
  let pharmacy: PharmacyFixture;
  let patient: PatientFixture;

  beforeAll(async () => {
    database = await createTestDatabase();
    dispatcher = await startDispatcherWithSandbox({ database });
    consentApi = await startTestApp((config) => ConsentApiModule.forRoot(config), { database });
    pharmacy = await dispatcher.given.pharmacy();
    patient = await dispatcher.given.patient(pharmacy);
    const { notificationId } = await dispatcher.given.notice(patient, {
      dueAt: new Date(Date.now() + 86_400_000),
    });
    await dispatcher.given.intentMessage(patient, notificationId);
  });
  afterAll(async () => {
    await consentApi?.close();
    await dispatcher?.close();
    await database?.drop();
  });

  it("shows the pharmacy's own auditor every read of its patients made with an unscoped key", async () => {
    const unscoped = await dispatcher.given.apiKey('staff');
    for (const path of [
      `/v1/notifications?patientId=${patient.id}`,
      `/v1/messages?patientId=${patient.id}`,
    ]) {
      const res = await request(dispatcher.http)
        .get(path)
        .set('Authorization', `Bearer ${unscoped}`)
        .expect(200);
      expect(res.body).toHaveLength(1);
    }

    const auditor = await consentApi.given.apiKey('auditor', pharmacy);
    const res = await request(consentApi.http)
      .get(`/v1/audit/access?patientId=${patient.id}`)
      .set('Authorization', `Bearer ${auditor}`)
      .expect(200);
    expect(res.body).toEqual([
      expect.objectContaining({ role: 'staff', pharmacyId: pharmacy.id, action: 'notifications.read' }),
      expect.objectContaining({ role: 'staff', pharmacyId: pharmacy.id, action: 'messages.read' }),
    ]);
  });
});
