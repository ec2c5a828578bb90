import type { Bundle, FhirResource, MedicationDispense, OperationOutcome, Patient } from 'fhir/r4';
import request from 'supertest';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import {
  bundleOf,
  fhirFixture,
  loadFhirFixtures,
  type FhirFixture,
} from '../../../../test/helpers/fhir-fixtures';
import type { PharmacyFixture } from '../../../../test/helpers/given';
import { SchedulerModule } from '../scheduler.module';

interface EntryResult {
  entry: number;
  resourceType: string | null;
  id: string | null;
  outcome: 'created' | 'updated' | 'rejected';
  fillId?: string;
  patientId?: string;
  errors?: string[];
}
interface IngestAnswer {
  results: EntryResult[];
  operationOutcome: OperationOutcome;
}

/**
 * What each official example must come to, and for a rejected one, what its reason must name. Every file in the
 * fixtures folder needs a line here, so that a new fixture is looked at rather than passed over.
 */
const EXPECTED: Record<string, ['created' | 'rejected', string?]> = {
  // Neither example patient has a number we can text: pat1 has no telecom, "example" has Australian numbers
  // without a country code. The dispenses below attach to pat1 as the pharmacy already knows him (by his MRN).
  'patient-example-a.json': ['rejected', 'Patient.telecom has no valid phone number'],
  'patient-example.json': ['rejected', 'Patient.telecom has no valid phone number'],
  'medicationdispense0301.json': ['created'],
  'medicationdispense0302.json': ['created'],
  'medicationdispense0303.json': ['rejected', 'status on-hold is not a dispense the patient can pick up'],
  'medicationdispense0304.json': ['created'],
  'medicationdispense0305.json': [
    'rejected',
    'status entered-in-error is not a dispense the patient can pick up',
  ],
  'medicationdispense0306.json': ['created'],
  'medicationdispense0307.json': ['created'],
  'medicationdispense0308.json': ['created'],
  'medicationdispense0309.json': [
    'rejected',
    'status entered-in-error is not a dispense the patient can pick up',
  ],
  'medicationdispense0310.json': ['created'],
  'medicationdispense0311.json': ['created'],
  'medicationdispense0312.json': ['rejected', 'status on-hold is not a dispense the patient can pick up'],
  'medicationdispense0313.json': ['rejected', 'status stopped is not a dispense the patient can pick up'],
  'medicationdispense0314.json': ['created'],
  'medicationdispense0315.json': ['created'],
  'medicationdispense0316.json': ['created'],
  'medicationdispense0317.json': ['rejected', 'status stopped is not a dispense the patient can pick up'],
  'medicationdispense0318.json': ['created'],
  'medicationdispense0319.json': ['created'],
  'medicationdispense0320.json': ['created'],
  'medicationdispense0321.json': ['created'],
  'medicationdispense0322.json': ['created'],
  'medicationdispense0324.json': ['created'],
  'medicationdispense0325.json': ['created'],
  'medicationdispense0326.json': ['created'],
  'medicationdispense0327.json': ['created'],
  'medicationdispense0328.json': ['created'],
  'medicationdispense0329.json': ['created'],
  'medicationdispense0330.json': ['created'],
  'medicationdispense0331.json': ['created'],
  'medicationdispenseexample8.json': [
    'rejected',
    'MedicationDispense.daysSupply is required to compute refill dates',
  ],
};
const expectationFor = (file: string): ['created' | 'rejected', string?] =>
  file.startsWith('medicationrequest')
    ? ['rejected', 'resource type MedicationRequest is not ingested; send Patient and MedicationDispense']
    : EXPECTED[file];
/** The element each rejected example's issue must point at, below Bundle.entry[i].resource. */
const EXPRESSION: Record<string, string> = {
  'patient-example-a.json': '.telecom',
  'patient-example.json': '.telecom',
  'medicationdispense0303.json': '.status',
  'medicationdispenseexample8.json': '.daysSupply',
  'medicationrequest0321.json': '',
};

const hoursAgo = (h: number) => new Date(Date.now() - h * 3600_000).toISOString();

describe('POST /fhir/r4 (scheduler, real Postgres and Redis)', () => {
  let t: TestApp;
  let pharmacy: PharmacyFixture;
  let integration: string;
  let fixtures: FhirFixture[];

  const post = (body: unknown, key = integration, query = '') =>
    request(t.http)
      .post(`/fhir/r4${query}`)
      .set('Authorization', `Bearer ${key}`)
      .set('Content-Type', 'application/fhir+json')
      .send(JSON.stringify(body));
  const count = async (sql: string, params: unknown[] = []) =>
    (await t.db.query<{ n: number }[]>(`SELECT count(*)::int AS n FROM ${sql}`, params))[0].n;

  beforeAll(async () => {
    t = await startTestApp((config) => SchedulerModule.forRoot(config), { largeBodyRoutes: ['/fhir/r4'] });
    pharmacy = await t.given.pharmacy({ settings: { readyCoalesceSeconds: 0 } });
    integration = await t.given.apiKey('integration', pharmacy);
    fixtures = loadFhirFixtures();
  });
  afterAll(() => t.close());

  describe('every official HL7 R4 example in one collection Bundle', () => {
    let donald: { id: string };
    let first: IngestAnswer;

    beforeAll(async () => {
      // pat1 cannot be created from the Bundle (no phone), so the pharmacy knows Donald Duck already, by his MRN.
      donald = await t.given.patient(pharmacy, {
        externalId: '654321',
        firstName: 'Donald',
        phone: '+14155552680',
      });
      first = (await post(bundleOf(fixtures.map((f) => f.resource))).expect(200)).body;
    });

    it('has an expectation for every fixture file, pat1 first', () => {
      expect(fixtures[0].file).toBe('patient-example-a.json');
      expect(fixtures.length).toBeGreaterThanOrEqual(57);
      expect(fixtures.filter((f) => !expectationFor(f.file)).map((f) => f.file)).toEqual([]);
    });

    it('answers one result per entry, in entry order, each created or rejected as expected', () => {
      expect(first.results).toHaveLength(fixtures.length);
      const actual = first.results.map((r, i) => [
        fixtures[i].file,
        r.entry,
        r.resourceType,
        r.id,
        r.outcome,
      ]);
      const expected = fixtures.map((f, i) => [
        f.file,
        i,
        f.resource.resourceType,
        f.resource.id,
        expectationFor(f.file)[0],
      ]);
      expect(actual).toEqual(expected);
    });

    it('gives each rejection a reason a person understands, and one OperationOutcome issue pointing at the element', () => {
      const rejected = first.results.filter((r) => r.outcome === 'rejected');
      for (const result of rejected) {
        const [, reason] = expectationFor(fixtures[result.entry].file);
        expect(result.errors?.join(' ')).toContain(reason);
        for (const error of result.errors ?? []) {
          expect(error).toMatch(/^[A-Za-z][^]{20,}$/);
          expect(error).not.toMatch(/undefined|null|\[object|NaN/);
        }
      }
      const issues = first.operationOutcome.issue;
      expect(first.operationOutcome.resourceType).toBe('OperationOutcome');
      expect(issues).toHaveLength(rejected.length);
      issues.forEach((issue, k) => {
        const entry = rejected[k].entry;
        expect(issue).toMatchObject({ severity: 'error', diagnostics: rejected[k].errors?.join('; ') });
        expect(['invalid', 'not-supported', 'not-found', 'required']).toContain(issue.code);
        expect(issue.expression?.[0]).toMatch(new RegExp(`^Bundle\\.entry\\[${entry}\\]\\.resource`));
        const path = EXPRESSION[fixtures[entry].file];
        if (path !== undefined) expect(issue.expression).toContain(`Bundle.entry[${entry}].resource${path}`);
        if (fixtures[entry].file.startsWith('medicationrequest')) expect(issue.code).toBe('not-supported');
      });
      const daysSupply = issues.find((i) => i.expression?.some((e) => e.endsWith('.daysSupply')));
      expect(daysSupply).toMatchObject({ code: 'required' });
    });

    it("writes the accepted dispenses as Donald's fills, mapped from FHIR", async () => {
      const created = first.results.filter(
        (r) => r.resourceType === 'MedicationDispense' && r.outcome === 'created',
      );
      expect(created).toHaveLength(24);
      expect(await count(`fills WHERE pharmacy_id = $1 AND patient_id = $2`, [pharmacy.id, donald.id])).toBe(
        24,
      );
      const rows = await t.db.query<Record<string, unknown>[]>(
        `SELECT external_id, rx_number, fill_number, drug_name, ndc, quantity::float AS quantity, days_supply, refills_remaining,
                filled_at, status, ready_at, picked_up_at
         FROM fills WHERE external_id = ANY($1) ORDER BY external_id`,
        [['meddisp0301', 'meddisp0302', 'meddisp0304', 'meddisp0329', '12345689']],
      );
      expect(rows).toEqual([
        // 0318 is the one dispense with an identifier
        expect.objectContaining({
          external_id: '12345689',
          rx_number: 'medrx0314',
          status: 'ready',
          ndc: '0378-1805-01',
        }),
        {
          external_id: 'meddisp0301',
          rx_number: 'medrx0318',
          fill_number: 0,
          drug_name: 'Vancomycin Hydrochloride',
          ndc: '0069-2587-10',
          quantity: 12,
          days_supply: 3,
          refills_remaining: 0,
          filled_at: new Date('2015-01-15T10:20:00Z'),
          status: 'ready',
          ready_at: new Date('2015-01-15T10:20:00Z'),
          picked_up_at: null,
        },
        // a refill (RFP) of medrx0321, which allows 3 repeats and is in the Bundle
        expect.objectContaining({
          external_id: 'meddisp0302',
          fill_number: 1,
          refills_remaining: 2,
          status: 'ready',
          picked_up_at: null,
        }),
        expect.objectContaining({
          external_id: 'meddisp0304',
          status: 'picked_up',
          ready_at: new Date('2015-06-25T02:13:00Z'),
          picked_up_at: new Date('2015-06-26T02:13:00Z'),
        }),
        expect.objectContaining({
          external_id: 'meddisp0329',
          drug_name: 'Salicyclic Acid + Hydrocortisone + White Petrolatum ointment',
        }),
      ]);
    });

    it('sends nothing for years-old ready fills, and changes no patient', async () => {
      expect(await count(`fills WHERE patient_id = $1 AND status = 'ready'`, [donald.id])).toBe(13);
      expect(await count(`notifications`)).toBe(0);
      expect(await count(`patients WHERE pharmacy_id = $1`, [pharmacy.id])).toBe(1);
    });

    it('treats the re-sent Bundle as no change: accepted entries updated, no new or touched rows', async () => {
      const before = await t.db.query(`SELECT count(*)::int AS n, max(updated_at) AS at FROM fills`);
      const again: IngestAnswer = (await post(bundleOf(fixtures.map((f) => f.resource))).expect(200)).body;
      expect(again.results.map((r) => r.outcome)).toEqual(
        first.results.map((r) => (r.outcome === 'created' ? 'updated' : r.outcome)),
      );
      expect(again.results.map((r) => r.fillId)).toEqual(first.results.map((r) => r.fillId));
      expect(again.operationOutcome).toEqual(first.operationOutcome);
      expect(await t.db.query(`SELECT count(*)::int AS n, max(updated_at) AS at FROM fills`)).toEqual(before);
      expect(await count(`notifications`)).toBe(0);
    });
  });

  describe('a Bundle from a pharmacy system', () => {
    const patient = (overrides: Partial<Patient> = {}): Patient => ({
      resourceType: 'Patient',
      id: 'pt-1',
      identifier: [
        {
          type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
          value: 'MRN-4471',
        },
      ],
      name: [{ use: 'official', family: 'Reyes', given: ['Ana'] }],
      telecom: [{ system: 'phone', use: 'mobile', value: '(415) 555-2690' }],
      communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'es' }] } }],
      ...overrides,
    });
    const dispense = (overrides: Partial<MedicationDispense> = {}): MedicationDispense => ({
      resourceType: 'MedicationDispense',
      id: 'md-1',
      identifier: [{ value: `D-${Math.random().toString(36).slice(2)}` }],
      status: 'in-progress',
      subject: { reference: 'urn:uuid:ana' },
      medicationCodeableConcept: {
        coding: [
          {
            system: 'http://hl7.org/fhir/sid/ndc',
            code: '0093-7663-56',
            display: 'Atorvastatin 20 mg tablet',
          },
        ],
      },
      authorizingPrescription: [{ identifier: { value: 'RX-88' } }],
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'RF' }] },
      quantity: { value: 30 },
      daysSupply: { value: 30, unit: 'Day', system: 'http://unitsofmeasure.org', code: 'd' },
      whenPrepared: hoursAgo(1),
      ...overrides,
    });
    const bundle = (...entries: { fullUrl?: string; resource: FhirResource }[]): Bundle => ({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: entries,
    });

    it('creates the patient with an E.164 phone, then a ready fill for it and one ready notification', async () => {
      const answer: IngestAnswer = (
        await post(bundle({ resource: dispense() }, { fullUrl: 'urn:uuid:ana', resource: patient() })).expect(
          200,
        )
      ).body;
      expect(answer.results).toEqual([
        {
          entry: 0,
          resourceType: 'MedicationDispense',
          id: 'md-1',
          outcome: 'created',
          fillId: expect.any(String),
        },
        { entry: 1, resourceType: 'Patient', id: 'pt-1', outcome: 'created', patientId: expect.any(String) },
      ]);
      expect(answer.operationOutcome.issue).toEqual([
        { severity: 'information', code: 'informational', diagnostics: 'all 2 entries were accepted' },
      ]);
      const [row] = await t.db.query(`SELECT * FROM patients WHERE id = $1`, [answer.results[1].patientId]);
      expect(row).toMatchObject({
        external_id: 'MRN-4471',
        language: 'es',
        phone_index: t.keys.blindIndex('+14155552690'),
      });
      expect([
        t.keys.decrypt(row.first_name_enc),
        t.keys.decrypt(row.last_name_enc),
        t.keys.decrypt(row.phone_enc),
      ]).toEqual(['Ana', 'Reyes', '+14155552690']);
      const [fill] = await t.db.query(
        `SELECT patient_id, rx_number, fill_number, status FROM fills WHERE id = $1`,
        [answer.results[0].fillId],
      );
      expect(fill).toEqual({ patient_id: row.id, rx_number: 'RX-88', fill_number: 1, status: 'ready' });
      const notices = await t.db.query(`SELECT kind FROM notifications WHERE $1 = ANY(fill_ids)`, [
        answer.results[0].fillId,
      ]);
      expect(notices).toEqual([{ kind: 'ready' }]);
      const access = await t.db.query(
        `SELECT action, route FROM access_log WHERE patient_id = $1 ORDER BY id`,
        [row.id],
      );
      expect(access).toEqual([
        { action: 'patient.upsert', route: 'POST /fhir/r4' },
        { action: 'fill.upsert', route: 'POST /fhir/r4' },
      ]);
    });

    it('updates a known patient, clears consent given for the old number, and writes nothing when nothing changed', async () => {
      const known = await t.given.patient(pharmacy, { externalId: 'MRN-5001', consent: ['sms'] });
      const events = await count(`consent_events WHERE patient_id = $1`, [known.id]);
      const moved = patient({
        identifier: [{ value: 'MRN-5001' }],
        telecom: [{ system: 'phone', value: '+1 415 555 2691' }],
        communication: undefined,
      });
      const answer: IngestAnswer = (await post(bundle({ resource: moved })).expect(200)).body;
      expect(answer.results[0]).toMatchObject({ outcome: 'updated', patientId: known.id });
      const [row] = await t.db.query(`SELECT phone_enc, language, updated_at FROM patients WHERE id = $1`, [
        known.id,
      ]);
      expect(t.keys.decrypt(row.phone_enc)).toBe('+14155552691');
      expect(row.language).toBe('en'); // no communication: the stored language stays
      // Consent was given for the old number: the new one gets nothing until the patient consents again.
      expect(
        await t.db.query(`SELECT channel, status FROM consents WHERE patient_id = $1`, [known.id]),
      ).toEqual([]);
      expect(await count(`consent_events WHERE patient_id = $1`, [known.id])).toBe(events + 1);

      const again: IngestAnswer = (await post(bundle({ resource: moved })).expect(200)).body;
      expect(again.results[0]).toMatchObject({ outcome: 'updated', patientId: known.id });
      const [after] = await t.db.query(`SELECT phone_enc, updated_at FROM patients WHERE id = $1`, [
        known.id,
      ]);
      expect(after).toEqual({ phone_enc: row.phone_enc, updated_at: row.updated_at });
    });

    it("puts FillsService's objections in FHIR terms", async () => {
      const answer: IngestAnswer = (
        await post(
          bundle(
            { fullUrl: 'urn:uuid:ana', resource: patient() },
            { resource: dispense({ whenPrepared: new Date(Date.now() + 2 * 86400_000).toISOString() }) },
            { resource: dispense({ subject: { reference: 'Patient/nobody-here' } }) },
            { resource: dispense({ daysSupply: { value: 400, code: 'd' } }) },
          ),
        ).expect(200)
      ).body;
      expect(answer.results.map((r) => r.outcome)).toEqual(['updated', 'rejected', 'rejected', 'rejected']);
      expect(answer.operationOutcome.issue).toEqual([
        {
          severity: 'error',
          code: 'invalid',
          diagnostics: 'MedicationDispense.whenPrepared must not be in the future',
          expression: ['Bundle.entry[1].resource.whenPrepared'],
        },
        {
          severity: 'error',
          code: 'not-found',
          diagnostics: expect.stringMatching(
            /^MedicationDispense\.subject Patient\/nobody-here \(patient nobody-here\) is not a patient of this pharmacy; send the Patient/,
          ),
          expression: ['Bundle.entry[2].resource.subject'],
        },
        {
          severity: 'error',
          code: 'invalid',
          diagnostics: 'MedicationDispense.daysSupply.value must not be greater than 365',
          expression: ['Bundle.entry[3].resource.daysSupply.value'],
        },
      ]);
    });

    it('takes a batch Bundle as application/json too', async () => {
      const body: Bundle = {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [{ resource: fhirFixture('medicationrequest0302.json') }],
      };
      const answer = await request(t.http)
        .post('/fhir/r4')
        .set('Authorization', `Bearer ${integration}`)
        .send(body)
        .expect(200);
      expect(answer.body.results).toEqual([
        expect.objectContaining({ outcome: 'rejected', resourceType: 'MedicationRequest' }),
      ]);
    });
  });

  describe('refusals', () => {
    const empty: Bundle = { resourceType: 'Bundle', type: 'collection', entry: [] };

    it('answers 422 naming resourceType or type for a body that is not an accepted Bundle', async () => {
      const patient = await post(fhirFixture('patient-example-a.json')).expect(422);
      expect(JSON.stringify(patient.body.message)).toContain('resourceType must be Bundle');
      const searchset = await post({ ...empty, type: 'searchset' }).expect(422);
      expect(JSON.stringify(searchset.body.message)).toContain(
        'type must be one of collection, batch, transaction',
      );
      await post([]).expect(422);
      await request(t.http)
        .post('/fhir/r4')
        .set('Authorization', `Bearer ${integration}`)
        .set('Content-Type', 'application/fhir+json')
        .send('{"resourceType": "Bun')
        .expect(400);
    });

    it('answers 404 when a pharmacy-bound key names another pharmacy, and takes its own', async () => {
      const other = await t.given.pharmacy({ name: 'Elsewhere', smsFrom: '+14155550101' });
      await post(empty, integration, `?pharmacyId=${other.id}`).expect(404);
      await post(empty, integration, `?pharmacyId=${pharmacy.id}`).expect(200);
    });

    it('needs ?pharmacyId= with a key bound to no pharmacy', async () => {
      const unscoped = await t.given.apiKey('integration');
      const missing = await post(empty, unscoped).expect(422);
      expect(JSON.stringify(missing.body.message)).toContain('pharmacyId');
      const malformed = await post(empty, unscoped, '?pharmacyId=main-street').expect(422);
      expect(malformed.body.message).toEqual(['pharmacyId must be a UUID']);
      await post(empty, unscoped, '?pharmacyId=0b4a4c1e-3a35-4b52-8b6c-2f7d3b9d6c01').expect(404);
      const pat1AndOne = bundleOf([
        fhirFixture('patient-example-a.json'),
        fhirFixture('medicationdispense0301.json'),
      ]);
      const answer = await post(pat1AndOne, unscoped, `?pharmacyId=${pharmacy.id}`).expect(200);
      expect(answer.body.results.map((r: EntryResult) => r.outcome)).toEqual(['rejected', 'updated']);
    });

    it('answers 403 for a role other than integration (admin holds every role), 401 without a key', async () => {
      await post(empty, await t.given.apiKey('staff', pharmacy)).expect(403);
      await post(empty, await t.given.apiKey('auditor', pharmacy)).expect(403);
      await post(empty, await t.given.apiKey('admin')).expect(422); // an admin key is unscoped: it must name the pharmacy
      await post(empty, await t.given.apiKey('admin'), `?pharmacyId=${pharmacy.id}`).expect(200);
      await request(t.http).post('/fhir/r4').send(empty).expect(401);
    });
  });
});
