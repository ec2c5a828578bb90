import request from 'supertest';
import { verifyChain, verifyConsentEvidence } from '@rxnotify/common/audit/audit-chain';
import { KeyRing } from '@rxnotify/common/crypto/key-ring';
import { rotateKeys } from '@rxnotify/common/crypto/rotate';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import type { PatientFixture, PharmacyFixture } from '../../../../test/helpers/given';
import { ConsentApiModule } from '../consent-api.module';

describe('consent (consent-api, real Postgres)', () => {
  let t: TestApp;
  let pharmacy: PharmacyFixture;
  let staff: string;
  let phones = 4000;

  const newPatient = (): Promise<PatientFixture> =>
    t.given.patient(pharmacy, { phone: `+1415555${phones++}` });
  const put = (patientId: string, channel: string, body: object, key = staff) =>
    request(t.http)
      .put(`/v1/patients/${patientId}/consent/${channel}`)
      .set('Authorization', `Bearer ${key}`)
      .send(body);
  const get = (patientId: string, key = staff) =>
    request(t.http).get(`/v1/patients/${patientId}/consent`).set('Authorization', `Bearer ${key}`);

  beforeAll(async () => {
    t = await startTestApp((config) => ConsentApiModule.forRoot(config));
    pharmacy = await t.given.pharmacy();
    staff = await t.given.apiKey('staff', pharmacy);
  });
  afterAll(() => t.close());

  it('records a consent with its evidence, and reads it back with the history oldest first', async () => {
    const patient = await newPatient();
    const optIn = await put(patient.id, 'sms', {
      status: 'opted_in',
      source: 'paper_form',
      evidence: 'Signed intake form, scanned as #4411; patient Ada asked for texts',
    }).expect(200);
    expect(optIn.body).toEqual({
      channel: 'sms',
      status: 'opted_in',
      source: 'paper_form',
      updatedAt: expect.any(String),
    });
    await put(patient.id, 'voice', { status: 'opted_in', source: 'verbal' }).expect(200);
    await put(patient.id, 'sms', { status: 'opted_out', source: 'phone_call' }).expect(200);

    const res = await get(patient.id).expect(200);
    expect(res.body).toEqual({
      sms: { status: 'opted_out', source: 'phone_call', updatedAt: expect.any(String) },
      voice: { status: 'opted_in', source: 'verbal', updatedAt: expect.any(String) },
      history: [
        {
          channel: 'sms',
          status: 'opted_in',
          source: 'paper_form',
          evidence: 'Signed intake form, scanned as #4411; patient Ada asked for texts',
          at: optIn.body.updatedAt,
        },
        { channel: 'voice', status: 'opted_in', source: 'verbal', evidence: null, at: expect.any(String) },
        {
          channel: 'sms',
          status: 'opted_out',
          source: 'phone_call',
          evidence: null,
          at: res.body.sms.updatedAt,
        },
      ],
    });

    // The patient record shows the same current state.
    const record = await request(t.http)
      .get(`/v1/patients/${patient.id}`)
      .set('Authorization', `Bearer ${staff}`)
      .expect(200);
    expect(record.body.consent).toEqual({ sms: res.body.sms, voice: res.body.voice });
  });

  it('keeps evidence encrypted, names the key as actor, and logs each access', async () => {
    const patient = await newPatient();
    await put(patient.id, 'sms', {
      status: 'opted_in',
      source: 'pharmacist',
      evidence: 'Confirmed by phone with daughter',
    }).expect(200);
    await get(patient.id).expect(200);

    const evidence = await t.db.query(
      `SELECT v.evidence_enc FROM consent_evidence v JOIN consent_events e ON e.id = v.consent_event_id WHERE e.patient_id = $1`,
      [patient.id],
    );
    expect(evidence).toHaveLength(1);
    expect(evidence[0].evidence_enc).not.toContain('daughter');
    expect(t.keys.decrypt(evidence[0].evidence_enc)).toBe('Confirmed by phone with daughter');

    const [key] = await t.db.query(
      `SELECT id FROM api_keys WHERE key_hash = encode(sha256($1::bytea), 'hex')`,
      [staff],
    );
    const events = await t.db.query(`SELECT actor, pharmacy_id FROM consent_events WHERE patient_id = $1`, [
      patient.id,
    ]);
    expect(events).toEqual([{ actor: `key:${key.id}`, pharmacy_id: pharmacy.id }]);

    const log = await t.db.query(`SELECT action, route FROM access_log WHERE patient_id = $1 ORDER BY id`, [
      patient.id,
    ]);
    expect(log).toEqual([
      { action: 'consent.update', route: `PUT /v1/patients/${patient.id}/consent/sms` },
      { action: 'consent.read', route: `GET /v1/patients/${patient.id}/consent` },
    ]);
  });

  it('answers unknown on both channels before any record', async () => {
    const patient = await newPatient();
    expect((await get(patient.id).expect(200)).body).toEqual({
      sms: { status: 'unknown', source: null, updatedAt: null },
      voice: { status: 'unknown', source: null, updatedAt: null },
      history: [],
    });
  });

  it('refuses bad input naming the field, and changes nothing', async () => {
    const patient = await newPatient();
    expect(
      (await put(patient.id, 'email', { status: 'opted_in', source: 'x' }).expect(400)).body.message,
    ).toEqual(['channel must be one of sms, voice']);
    expect((await put('nope', 'sms', { status: 'opted_in', source: 'x' }).expect(400)).body.message).toEqual([
      'id must be a UUID',
    ]);
    const bad = await put(patient.id, 'sms', {
      status: 'maybe',
      source: '',
      evidence: 'e'.repeat(2001),
    }).expect(422);
    expect(bad.body.message).toEqual(
      expect.arrayContaining([
        expect.stringContaining('status must be one of'),
        expect.stringContaining('source must be text of 1 to 100'),
        expect.stringContaining('evidence must be'),
      ]),
    );
    await put(patient.id, 'sms', { status: 'opted_in', source: 's'.repeat(101) }).expect(422);
    await put(patient.id, 'sms', { source: 'x' }).expect(422);
    expect(await t.db.query(`SELECT 1 FROM consent_events WHERE patient_id = $1`, [patient.id])).toEqual([]);
  });

  it('limits writes to staff and integration, reads to them and auditors, and hides other pharmacies', async () => {
    const patient = await newPatient();
    const auditor = await t.given.apiKey('auditor', pharmacy);
    const integration = await t.given.apiKey('integration', pharmacy);
    await put(patient.id, 'sms', { status: 'opted_in', source: 'x' }, auditor).expect(403);
    await put(patient.id, 'sms', { status: 'opted_in', source: 'ehr_sync' }, integration).expect(200);
    await get(patient.id, auditor).expect(200);
    await get(patient.id, integration).expect(200);

    const elsewhere = await t.given.pharmacy({ name: 'Elsewhere', smsFrom: '+14155550122' });
    const outsider = await t.given.apiKey('staff', elsewhere);
    await put(patient.id, 'sms', { status: 'opted_out', source: 'x' }, outsider).expect(404);
    await get(patient.id, outsider).expect(404);
    await request(t.http).get(`/v1/patients/${patient.id}/consent`).expect(401);
    expect((await get(patient.id).expect(200)).body.sms.status).toBe('opted_in');
  });

  it('keeps the current state equal to the last event under concurrent changes', async () => {
    const patient = await newPatient();
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        put(patient.id, 'sms', { status: i % 2 ? 'opted_in' : 'opted_out', source: `race-${i}` }).expect(200),
      ),
    );
    const { body } = await get(patient.id).expect(200);
    expect(body.history).toHaveLength(10);
    const last = body.history[body.history.length - 1];
    expect(body.sms).toMatchObject({ status: last.status, source: last.source });
  });

  it('makes the evidence tamper-evident: rotation keeps it provable, a changed text is named, deletion is refused', async () => {
    const patient = await newPatient();
    const text = 'Signed intake form #5120, witnessed by J. Reyes';
    await put(patient.id, 'sms', { status: 'opted_in', source: 'paper_form', evidence: text }).expect(200);
    await put(patient.id, 'voice', { status: 'opted_in', source: 'pharmacist' }).expect(200);
    const [event, bare] = await t.db.query<{ id: string; evidence_mac: string | null }[]>(
      `SELECT id::text, evidence_mac FROM consent_events WHERE patient_id = $1 ORDER BY id`,
      [patient.id],
    );
    expect(event.evidence_mac).toBe(t.keys.evidenceMac(text));
    expect(bare.evidence_mac).toBeNull();
    expect(await verifyConsentEvidence(t.db, t.keys)).toBeNull();
    expect((await verifyChain(t.db, 'consent_events')).broken).toBeNull();
    const evidenceOf = async () =>
      (
        await t.db.query<{ evidence_enc: string }[]>(
          `SELECT evidence_enc FROM consent_evidence WHERE consent_event_id = $1`,
          [event.id],
        )
      )[0].evidence_enc;

    // Key rotation rewrites the ciphertext (allowed) and the plaintext still matches the chained MAC.
    const rotated = new KeyRing(
      [{ id: 'rot2', key: Buffer.alloc(32, 9) }, ...t.config.phi.keys],
      t.config.phi.indexKey,
    );
    await rotateKeys(t.db, rotated);
    expect(await evidenceOf()).toMatch(/^v1\.rot2\./);
    expect(await verifyConsentEvidence(t.db, rotated)).toBeNull();
    await rotateKeys(
      t.db,
      new KeyRing([...t.config.phi.keys, { id: 'rot2', key: Buffer.alloc(32, 9) }], t.config.phi.indexKey),
    );
    expect(await verifyConsentEvidence(t.db, t.keys)).toBeNull();

    // A different text under a valid ciphertext: the database cannot tell, the MAC can.
    const original = await evidenceOf();
    await t.db.query(`UPDATE consent_evidence SET evidence_enc = $2 WHERE consent_event_id = $1`, [
      event.id,
      t.keys.encrypt('Verbal consent, no witness'),
    ]);
    expect(await verifyConsentEvidence(t.db, t.keys)).toMatchObject({
      chain: 'consent_events',
      id: event.id,
      problem: 'consent evidence does not match the MAC in its event',
    });
    await t.db.query(`UPDATE consent_evidence SET evidence_enc = $2 WHERE consent_event_id = $1`, [
      event.id,
      original,
    ]);
    expect(await verifyConsentEvidence(t.db, t.keys)).toBeNull();

    // Removing, moving or adding evidence after the fact is refused by the database itself.
    for (const [sql, params] of [
      [`DELETE FROM consent_evidence WHERE consent_event_id = $1`, [event.id]],
      [`UPDATE consent_evidence SET consent_event_id = $2 WHERE consent_event_id = $1`, [event.id, bare.id]],
      [`INSERT INTO consent_evidence (consent_event_id, evidence_enc) VALUES ($1, $2)`, [bare.id, original]],
      [`TRUNCATE consent_evidence`, []],
    ] as const) {
      await expect(t.db.query(sql, [...params])).rejects.toThrow(/consent_evidence/);
    }

    // A forged MAC written behind the trigger's back (as superuser) breaks the event's chain hash.
    const behindTheTrigger = async (mac: string, evidence: string) =>
      t.db.transaction(async (tx) => {
        await tx.query(`ALTER TABLE consent_events DISABLE TRIGGER consent_events_append_only`);
        await tx.query(`ALTER TABLE consent_evidence DISABLE TRIGGER consent_evidence_guard`);
        await tx.query(`UPDATE consent_events SET evidence_mac = $2 WHERE id = $1`, [event.id, mac]);
        await tx.query(`UPDATE consent_evidence SET evidence_enc = $2 WHERE consent_event_id = $1`, [
          event.id,
          evidence,
        ]);
        await tx.query(`ALTER TABLE consent_evidence ENABLE TRIGGER consent_evidence_guard`);
        await tx.query(`ALTER TABLE consent_events ENABLE TRIGGER consent_events_append_only`);
      });
    const forged = 'Verbal consent, no witness';
    await behindTheTrigger(t.keys.evidenceMac(forged), t.keys.encrypt(forged));
    expect(await verifyConsentEvidence(t.db, t.keys)).toBeNull();
    expect((await verifyChain(t.db, 'consent_events')).broken).toMatchObject({
      id: event.id,
      problem: 'hash does not match the row content',
    });
    await behindTheTrigger(t.keys.evidenceMac(text), original);
    expect((await verifyChain(t.db, 'consent_events')).broken).toBeNull();
  });
});
