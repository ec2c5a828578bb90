import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import type { PatientFixture, PharmacyFixture } from '../../../../test/helpers/given';
import { ConsentApiModule } from '../consent-api.module';

describe('audit access route (consent-api, real Postgres)', () => {
  let t: TestApp;
  let pharmacy: PharmacyFixture;
  let patient: PatientFixture;
  let auditor: string;
  let staff: string;

  const access = (query: string, key = auditor) =>
    request(t.http).get(`/v1/audit/access${query}`).set('Authorization', `Bearer ${key}`);

  beforeAll(async () => {
    t = await startTestApp((config) => ConsentApiModule.forRoot(config));
    pharmacy = await t.given.pharmacy();
    patient = await t.given.patient(pharmacy);
    auditor = await t.given.apiKey('auditor', pharmacy);
    staff = await t.given.apiKey('staff', pharmacy);
    await request(t.http)
      .get(`/v1/patients/${patient.id}`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(200);
    await request(t.http)
      .get(`/v1/patients/${patient.id}/consent`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(200);
  });
  afterAll(() => t.close());

  it("lists who read or changed a patient's data, oldest first", async () => {
    const res = await access(`?patientId=${patient.id}`).expect(200);
    expect(res.body).toEqual([
      {
        keyId: expect.any(String),
        role: 'staff',
        pharmacyId: pharmacy.id,
        patientId: patient.id,
        action: 'patient.read',
        route: `GET /v1/patients/${patient.id}`,
        at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      },
      expect.objectContaining({ action: 'consent.read', route: `GET /v1/patients/${patient.id}/consent` }),
    ]);
  });

  it('filters by time', async () => {
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await access(`?patientId=${patient.id}&from=${future}`).expect(200)).body).toEqual([]);
    expect(
      (await access(`?patientId=${patient.id}&from=2020-01-01T00:00:00Z&to=${future}`).expect(200)).body,
    ).toHaveLength(2);
  });

  it('shows a pharmacy-scoped auditor only its own pharmacy, and admins everything', async () => {
    const elsewhere = await t.given.pharmacy({ name: 'Elsewhere', smsFrom: '+14155550133' });
    const outsider = await t.given.apiKey('auditor', elsewhere);
    expect((await access(`?patientId=${patient.id}`, outsider).expect(200)).body).toEqual([]);
    const admin = await t.given.apiKey('admin');
    expect((await access(`?patientId=${patient.id}`, admin).expect(200)).body).toHaveLength(2);
  });

  it.each([
    ['?from=yesterday', 'from must be a valid ISO 8601 date string'],
    ['?to=2026-02-30T00:00:00Z', 'to must be a valid ISO 8601 date string'],
    ['?patientId=42', 'patientId must be a UUID'],
    ['?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z', 'to must not be before from'],
    ['?sort=desc', 'property sort should not exist'],
  ])('answers 422 naming the field for %s', async (query, problem) => {
    expect((await access(query).expect(422)).body.message).toContain(problem);
  });

  it('refuses, rather than cuts short, an answer of more than 10000 records, and answers once narrowed', async () => {
    const busy = randomUUID();
    await t.db.query(
      `INSERT INTO access_log (key_id, role, pharmacy_id, patient_id, action, route, at)
       SELECT gen_random_uuid(), 'integration', $1, $2, 'fill.upsert', 'POST /v1/fills', timestamptz '2020-01-01' + n * interval '1 second'
       FROM generate_series(1, 10001) AS n`,
      [pharmacy.id, busy],
    );
    const res = await access(`?patientId=${busy}`).expect(422);
    expect(res.body.message).toEqual([
      expect.stringContaining('more than 10000 access records match: narrow from and to'),
    ]);
    expect((await access(`?patientId=${busy}&to=2020-01-01T00:00:10Z`).expect(200)).body).toHaveLength(10);
  });

  it('is for auditors and admins only', async () => {
    await access('', staff).expect(403);
    await request(t.http).get('/v1/audit/access').expect(401);
  });
});
