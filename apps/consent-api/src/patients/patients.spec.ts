import { revokeApiKey } from '@rxnotify/common/auth/api-keys';
import request from 'supertest';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import type { PharmacyFixture } from '../../../../test/helpers/given';
import { ConsentApiModule } from '../consent-api.module';

describe('patients (consent-api, real Postgres)', () => {
  let t: TestApp;
  let pharmacy: PharmacyFixture;
  let other: PharmacyFixture;
  let staff: string;
  let externalIds = 0;

  const upsert = (body: object, key = staff) =>
    request(t.http).post('/v1/patients').set('Authorization', `Bearer ${key}`).send(body);
  const read = (id: string, key = staff) =>
    request(t.http).get(`/v1/patients/${id}`).set('Authorization', `Bearer ${key}`);
  const patient = (overrides: object = {}) => ({
    pharmacyId: pharmacy.id,
    externalId: `PMS-${++externalIds}`,
    firstName: 'Grace',
    lastName: 'Hopper',
    phone: '(415) 555-2671',
    ...overrides,
  });
  const accessLog = (patientId: string) =>
    t.db.query<{ action: string; key_id: string; role: string; pharmacy_id: string; route: string }[]>(
      `SELECT action, key_id, role, pharmacy_id, route FROM access_log WHERE patient_id = $1 ORDER BY id`,
      [patientId],
    );

  beforeAll(async () => {
    t = await startTestApp((config) => ConsentApiModule.forRoot(config));
    pharmacy = await t.given.pharmacy({ smsFrom: '+14155550100' });
    other = await t.given.pharmacy({ name: 'Elsewhere Drug', smsFrom: '+14155550111' });
    staff = await t.given.apiKey('staff', pharmacy);
  });
  afterAll(() => t.close());

  it('creates with 201, then updates the same patient with 200', async () => {
    const input = patient({ language: 'es', timezone: 'America/Los_Angeles' });
    const created = await upsert(input).expect(201);
    expect(created.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      pharmacyId: pharmacy.id,
      externalId: input.externalId,
      firstName: 'Grace',
      lastName: 'Hopper',
      phone: '+14155552671',
      language: 'es',
      timezone: 'America/Los_Angeles',
      detailedMessages: false,
      consent: {
        sms: { status: 'unknown', source: null, updatedAt: null },
        voice: { status: 'unknown', source: null, updatedAt: null },
      },
    });

    // Left out: language and timezone keep what was stored; null clears the last name.
    const updated = await upsert({
      ...input,
      language: undefined,
      timezone: undefined,
      lastName: null,
      phone: '+1 415 555 2672',
    }).expect(200);
    expect(updated.body).toMatchObject({
      id: created.body.id,
      lastName: null,
      phone: '+14155552672',
      language: 'es',
      timezone: 'America/Los_Angeles',
    });

    const [row] = await t.db.query(`SELECT phone_index FROM patients WHERE id = $1`, [created.body.id]);
    expect(row.phone_index).toBe(t.keys.blindIndex('+14155552672'));
  });

  it('stores the opt-in to detailed messages: false by default, kept when left out, changed when given', async () => {
    const input = patient();
    const created = await upsert(input).expect(201);
    expect(created.body.detailedMessages).toBe(false);
    const id = created.body.id;
    const column = async () =>
      (await t.db.query(`SELECT detailed_messages FROM patients WHERE id = $1`, [id]))[0].detailed_messages;
    expect(await column()).toBe(false);

    const optedIn = await upsert({ ...input, detailedMessages: true }).expect(200);
    expect(optedIn.body).toMatchObject({ id, detailedMessages: true });
    expect(await column()).toBe(true);
    expect((await read(id).expect(200)).body.detailedMessages).toBe(true);

    // A PhMS that does not know the flag re-sends the patient: the opt-in stays. Null also leaves it.
    await upsert({ ...input, firstName: 'Grace B.' }).expect(200);
    await upsert({ ...input, detailedMessages: null }).expect(200);
    expect((await read(id).expect(200)).body).toMatchObject({ firstName: 'Grace', detailedMessages: true });

    await upsert({ ...input, detailedMessages: false })
      .expect(200)
      .expect((r) => expect(r.body.detailedMessages).toBe(false));
    expect(await column()).toBe(false);

    const optedInAtOnce = await upsert(patient({ detailedMessages: true })).expect(201);
    expect(optedInAtOnce.body.detailedMessages).toBe(true);
  });

  it('clears consent when the phone number changes: consent was given for the old number', async () => {
    const input = patient();
    const { id } = (await upsert(input).expect(201)).body;
    await request(t.http)
      .put(`/v1/patients/${id}/consent/sms`)
      .set('Authorization', `Bearer ${staff}`)
      .send({ status: 'opted_in', source: 'counter' })
      .expect(200);
    // Same number, other formatting: nothing changes.
    await upsert({ ...input, phone: '415-555-2671' }).expect(200);
    expect((await read(id).expect(200)).body.consent.sms.status).toBe('opted_in');

    await upsert({ ...input, phone: '(415) 555-2699' }).expect(200);
    const after = (await read(id).expect(200)).body;
    expect(after.phone).toBe('+14155552699');
    expect(after.consent.sms.status).toBe('unknown');
    const history = await request(t.http)
      .get(`/v1/patients/${id}/consent`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(200);
    expect(history.body.history.at(-1)).toMatchObject({
      channel: 'sms',
      status: 'unknown',
      source: 'phone_changed',
    });
  });

  it('stores names and phone only as ciphertext', async () => {
    const { body } = await upsert(
      patient({ firstName: 'Zelda', lastName: 'Quixote', phone: '415-555-2673' }),
    ).expect(201);
    const [row] = await t.db.query(`SELECT * FROM patients WHERE id = $1`, [body.id]);
    const stored = JSON.stringify(row);
    for (const plain of ['Zelda', 'Quixote', '4155552673', '555-2673']) expect(stored).not.toContain(plain);
    expect(t.keys.decrypt(row.first_name_enc)).toBe('Zelda');
    expect(t.keys.decrypt(row.last_name_enc)).toBe('Quixote');
    expect(t.keys.decrypt(row.phone_enc)).toBe('+14155552673');
  });

  it.each([
    [{ phone: '555' }, 'phone must be a valid phone number'],
    [{ phone: undefined }, 'phone must be a valid phone number'],
    [
      { firstName: '' },
      'firstName must be text of 1 to 100 characters, not blank, without control characters',
    ],
    [
      { externalId: 'x'.repeat(201) },
      'externalId must be text of 1 to 200 characters, not blank, without control characters',
    ],
    [
      { externalId: 'A\u0000B' },
      'externalId must be text of 1 to 200 characters, not blank, without control characters',
    ],
    [
      { externalId: 'A\ud800B' },
      'externalId must be text of 1 to 200 characters, not blank, without control characters',
    ],
    [{ language: 'fr' }, 'language must be one of the following values: en, es'],
    [{ timezone: 'Europe/Atlantis' }, 'timezone must be an IANA time zone, such as America/New_York'],
    [{ pharmacyId: 'main-street' }, 'pharmacyId must be a UUID'],
    [{ ssn: '123-45-6789' }, 'property ssn should not exist'],
    [{ detailedMessages: 'yes' }, 'detailedMessages must be a boolean value'],
  ])('answers 422 naming the field for %j', async (overrides, problem) => {
    const res = await upsert(patient(overrides)).expect(422);
    expect(res.body.message).toContain(problem);
  });

  it('writes an access-log row for every upsert and read', async () => {
    const { body } = await upsert(patient()).expect(201);
    const read1 = await read(body.id).expect(200);
    expect(read1.body).toMatchObject({ id: body.id, firstName: 'Grace', phone: '+14155552671' });
    const auditor = await t.given.apiKey('auditor', pharmacy);
    await read(body.id, auditor).expect(200);

    const rows = await accessLog(body.id);
    expect(rows.map((r) => [r.action, r.role, r.pharmacy_id, r.route])).toEqual([
      ['patient.upsert', 'staff', pharmacy.id, 'POST /v1/patients'],
      ['patient.read', 'staff', pharmacy.id, `GET /v1/patients/${body.id}`],
      ['patient.read', 'auditor', pharmacy.id, `GET /v1/patients/${body.id}`],
    ]);
    expect(JSON.stringify(rows)).not.toContain('Grace');
  });

  it('answers 404, never 403, for another pharmacy, and writes no access-log row', async () => {
    const theirs = await t.given.patient(other, { phone: '+14155552699' });
    await read(theirs.id).expect(404);
    await upsert(patient({ pharmacyId: other.id })).expect(404);
    await upsert(patient({ pharmacyId: '0b4a4c1e-3a35-4b52-8b6c-2f7d3b9d6c01' })).expect(404);
    await read('0b4a4c1e-3a35-4b52-8b6c-2f7d3b9d6c01').expect(404);
    expect(await accessLog(theirs.id)).toEqual([]);
    // An unscoped key reaches every pharmacy.
    const unscoped = await t.given.apiKey('staff');
    await read(theirs.id, unscoped).expect(200);
  });

  it('answers 400 naming a malformed id', async () => {
    const res = await read('12345').expect(400);
    expect(res.body.message).toEqual(['id must be a UUID']);
  });

  it('answers 401 without a key or with a revoked one, 403 for a role that may not', async () => {
    const { body } = await upsert(patient()).expect(201);
    await request(t.http).get(`/v1/patients/${body.id}`).expect(401);
    await read(body.id, 'rxn_not-a-real-key').expect(401);

    const revoked = await t.given.apiKey('staff', pharmacy);
    await read(body.id, revoked).expect(200);
    expect(await revokeApiKey(t.db, revoked)).toBe(true);
    await read(body.id, revoked).expect(401);

    const integration = await t.given.apiKey('integration', pharmacy);
    await read(body.id, integration).expect(403);
    await upsert(patient(), integration).expect(201);
    const auditor = await t.given.apiKey('auditor', pharmacy);
    await upsert(patient(), auditor).expect(403);
  });

  it('gives concurrent upserts of one patient one row', async () => {
    const input = patient();
    const answers = await Promise.all(Array.from({ length: 8 }, () => upsert(input)));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
  });
});
