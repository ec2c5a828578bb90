import type { FhirResource, MedicationDispense, Patient } from 'fhir/r4';
import { fhirFixture, loadFhirFixtures } from '../../../../test/helpers/fhir-fixtures';
import {
  fhirDateTime,
  fillErrorToProblem,
  fillErrorsToProblems,
  mapPatient,
  operationOutcome,
  parseReference,
  planBundle,
  readBundle,
  type EntryPlan,
  type FillSources,
} from './fhir-mapping';

const entries = (...resources: object[]) => resources.map((resource) => ({ resource }));
const dispenseOf = (file: string) => fhirFixture(file) as MedicationDispense;
const pat1 = () => fhirFixture('patient-example-a.json') as Patient;

/** The plan of the last entry, with pat1 and the prescriptions in the same Bundle as the fixtures ship them. */
function planOf(dispense: object, ...others: object[]): EntryPlan {
  const plans = planBundle(entries(pat1(), ...others, dispense));
  return plans[plans.length - 1];
}

const reachablePatient = (overrides: Partial<Patient> = {}): Patient => ({
  resourceType: 'Patient',
  id: 'p-1',
  identifier: [
    { system: 'urn:example:ssn', value: 'SSN-1' },
    {
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
      value: 'MRN-77',
    },
  ],
  name: [
    { use: 'usual', given: ['Lu'] },
    { use: 'official', family: 'García', given: ['Lucía', 'María'] },
  ],
  telecom: [
    { system: 'email', value: 'lu@example.com' },
    { system: 'phone', use: 'home', value: '(415) 555-2671' },
    { system: 'phone', use: 'mobile', value: '415 555 2672' },
  ],
  communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'es-MX' }] }, preferred: true }],
  ...overrides,
});

describe('readBundle', () => {
  it.each([
    ['a Patient', { resourceType: 'Patient' }, 'resourceType must be Bundle, not Patient'],
    ['a string', 'a string', 'resourceType must be Bundle'],
    ['an array', [], 'resourceType must be Bundle'],
    ['null', null, 'resourceType must be Bundle'],
    [
      'a searchset',
      { resourceType: 'Bundle', type: 'searchset' },
      'type must be one of collection, batch, transaction, not searchset',
    ],
    [
      'a Bundle without type',
      { resourceType: 'Bundle' },
      'type must be one of collection, batch, transaction',
    ],
    ['entry as an object', { resourceType: 'Bundle', type: 'batch', entry: {} }, 'entry must be an array'],
    [
      '10,001 entries',
      { resourceType: 'Bundle', type: 'batch', entry: new Array(10_001).fill({}) },
      'entry must hold at most 10000 resources',
    ],
  ])('refuses %s naming the field', (_name, body, problem) => {
    const read = readBundle(body);
    expect(read.ok).toBe(false);
    if (!read.ok) expect(read.problems.join(' ')).toContain(problem);
  });

  it('takes collection, batch and transaction Bundles, with or without entries', () => {
    for (const type of ['collection', 'batch', 'transaction'])
      expect(readBundle({ resourceType: 'Bundle', type, entry: [] })).toEqual({ ok: true, entries: [] });
    expect(readBundle({ resourceType: 'Bundle', type: 'batch' })).toEqual({ ok: true, entries: [] });
  });
});

describe('Patient', () => {
  it('prefers the MR identifier, the official name, a mobile phone, and reads Spanish', () => {
    expect(mapPatient(reachablePatient())).toEqual({
      ok: true,
      patient: {
        externalId: 'MRN-77',
        firstName: 'Lucía',
        lastName: 'García',
        phone: '+14155552672',
        language: 'es',
      },
    });
  });

  it('falls back to the first identifier, then the id; leaves language alone without communication', () => {
    const noMr = mapPatient(reachablePatient({ identifier: [{ value: 'X-1' }], communication: undefined }));
    expect(noMr).toMatchObject({ ok: true, patient: { externalId: 'X-1' } });
    expect(noMr.ok && 'language' in noMr.patient).toBe(false);
    expect(mapPatient(reachablePatient({ identifier: undefined }))).toMatchObject({
      ok: true,
      patient: { externalId: 'p-1' },
    });
    const english = mapPatient(
      reachablePatient({ communication: [{ language: { coding: [{ code: 'en-US' }] } }] }),
    );
    expect(english).toMatchObject({ ok: true, patient: { language: 'en' } });
  });

  it('rejects pat1 (Donald Duck) from the fixtures: it has no telecom at all', () => {
    expect(mapPatient(pat1())).toEqual({
      ok: false,
      problems: [
        {
          code: 'required',
          path: 'telecom',
          message: expect.stringContaining('Patient.telecom has no valid phone number'),
        },
      ],
    });
  });

  it('rejects the spec example patient: its phones are Australian numbers without a country code', () => {
    const mapped = mapPatient(fhirFixture('patient-example.json') as Patient);
    expect(mapped).toEqual({
      ok: false,
      problems: [
        { code: 'invalid', path: 'telecom', message: expect.stringContaining('no valid phone number') },
      ],
    });
  });

  it('rejects a patient without a given name, and malformed shapes without throwing', () => {
    expect(mapPatient(reachablePatient({ name: [{ family: 'García' }] }))).toMatchObject({
      ok: false,
      problems: [{ code: 'required', path: 'name' }],
    });
    const junk = {
      resourceType: 'Patient',
      name: 'Lucía',
      telecom: [null, 7, { system: 'phone', value: 42 }],
      identifier: null,
    } as unknown as Patient;
    expect(mapPatient(junk)).toMatchObject({ ok: false });
  });
});

describe('MedicationDispense', () => {
  it('maps an in-progress dispense to a ready fill (0301)', () => {
    const plan = planOf(dispenseOf('medicationdispense0301.json'));
    expect(plan).toMatchObject({ kind: 'dispense', resourceType: 'MedicationDispense', id: 'meddisp0301' });
    expect(plan.kind === 'dispense' && plan.fill).toEqual({
      externalId: 'meddisp0301',
      patientExternalId: '654321', // pat1's MR identifier, since pat1 is in the Bundle
      rxNumber: 'medrx0318',
      fillNumber: 0, // EM: emergency supply
      drugName: 'Vancomycin Hydrochloride',
      ndc: '0069-2587-10',
      quantity: 12,
      daysSupply: 3,
      refillsRemaining: 0, // medrx0318 is not in this Bundle
      filledAt: '2015-01-15T10:20:00.000Z',
      status: 'ready',
      readyAt: '2015-01-15T10:20:00.000Z',
    });
  });

  it('counts a refill code as fill 1 and reads refills remaining from a MedicationRequest in the Bundle (0302)', () => {
    const request = fhirFixture('medicationrequest0321.json'); // numberOfRepeatsAllowed: 3
    const plan = planOf(dispenseOf('medicationdispense0302.json'), request);
    expect(plan.kind === 'dispense' && plan.fill).toMatchObject({
      fillNumber: 1,
      refillsRemaining: 2,
      rxNumber: 'medrx0321',
      status: 'ready',
    });
    // whenHandedOver on an in-progress dispense is not a pickup
    expect(plan.kind === 'dispense' && plan.fill.pickedUpAt).toBeUndefined();
    const alone = planOf(dispenseOf('medicationdispense0302.json'));
    expect(alone.kind === 'dispense' && alone.fill.refillsRemaining).toBe(0);
  });

  it('reads a contained MedicationRequest too', () => {
    const dispense = dispenseOf('medicationdispense0304.json'); // FF
    const request = { ...fhirFixture('medicationrequest0321.json'), id: 'rx' } as FhirResource;
    const plan = planOf({
      ...dispense,
      contained: [...(dispense.contained ?? []), request],
      authorizingPrescription: [{ reference: '#rx' }],
    });
    expect(plan.kind === 'dispense' && plan.fill).toMatchObject({
      fillNumber: 0,
      refillsRemaining: 3,
      rxNumber: '12345689',
    });
  });

  it('maps a completed dispense to a picked-up fill, in UTC (0304)', () => {
    const plan = planOf(dispenseOf('medicationdispense0304.json'));
    expect(plan.kind === 'dispense' && plan.fill).toMatchObject({
      status: 'picked_up',
      fillNumber: 0,
      filledAt: '2015-06-25T02:13:00.000Z',
      readyAt: '2015-06-25T02:13:00.000Z',
      pickedUpAt: '2015-06-26T02:13:00.000Z',
      drugName: 'Zosyn (piperacillin/tazobactam) 4.5gm injection',
    });
  });

  it('names a compounded medication by its ingredients (0329)', () => {
    const plan = planOf(dispenseOf('medicationdispense0329.json'));
    expect(plan.kind === 'dispense' && plan.fill.drugName).toBe(
      'Salicyclic Acid + Hydrocortisone + White Petrolatum ointment',
    );
  });

  it('reads a contained Medication when the reference has no display (0314), and the first identifier (0318)', () => {
    const plan = planOf(dispenseOf('medicationdispense0314.json'));
    expect(plan.kind === 'dispense' && plan.fill.drugName).toBe(
      'Lorazepam 2mg/ml Injectable Solution (Ativan)',
    );
    const identified = planOf(dispenseOf('medicationdispense0318.json'));
    expect(identified).toMatchObject({
      id: 'meddisp0318',
      fill: { externalId: '12345689', ndc: '0378-1805-01' },
    });
  });

  it('takes date-only values as midnight UTC (0309, made completed)', () => {
    const plan = planOf({ ...dispenseOf('medicationdispense0309.json'), status: 'completed' });
    expect(plan.kind === 'dispense' && plan.fill).toMatchObject({
      filledAt: '2015-01-15T00:00:00.000Z',
      readyAt: '2015-01-15T00:00:00.000Z',
      pickedUpAt: '2016-01-15T00:00:00.000Z',
    });
  });

  it.each([
    ['medicationdispense0303.json', 'on-hold'],
    ['medicationdispense0305.json', 'entered-in-error'],
    ['medicationdispense0313.json', 'stopped'],
  ])('rejects %s naming its status %s', (file, status) => {
    expect(planOf(dispenseOf(file))).toMatchObject({
      kind: 'rejected',
      problems: [
        {
          code: 'not-supported',
          path: 'status',
          message: `status ${status} is not a dispense the patient can pick up; only preparation, in-progress, completed and cancelled are ingested`,
        },
      ],
    });
  });

  it("maps the README's example: no prescription, handed over only", () => {
    const readme = {
      resourceType: 'MedicationDispense',
      id: 'md-1',
      status: 'completed',
      subject: { reference: 'Patient/PT-1001' },
      medicationCodeableConcept: { text: 'Metformin 500 mg' },
      quantity: { value: 60 },
      daysSupply: { value: 30 },
      whenHandedOver: '2026-01-05T15:00:00Z',
    };
    expect(planBundle(entries(readme))[0]).toMatchObject({
      kind: 'dispense',
      fill: {
        externalId: 'md-1',
        patientExternalId: 'PT-1001',
        rxNumber: 'md-1',
        filledAt: '2026-01-05T15:00:00.000Z',
        pickedUpAt: '2026-01-05T15:00:00.000Z',
        status: 'picked_up',
      },
    });
  });

  it('maps preparation and cancelled', () => {
    const preparing = planOf({ ...dispenseOf('medicationdispense0301.json'), status: 'preparation' });
    expect(preparing.kind === 'dispense' && preparing.fill).toMatchObject({ status: 'in_progress' });
    expect(preparing.kind === 'dispense' && preparing.fill.readyAt).toBeUndefined();
    const cancelled = planOf({ ...dispenseOf('medicationdispense0304.json'), status: 'cancelled' });
    expect(cancelled.kind === 'dispense' && cancelled.fill).toMatchObject({ status: 'returned_to_stock' });
    expect(cancelled.kind === 'dispense' && cancelled.fill.pickedUpAt).toBeUndefined();
  });

  it('rejects meddisp008 naming daysSupply, and everything else it lacks', () => {
    const plan = planOf(dispenseOf('medicationdispenseexample8.json'));
    expect(plan.kind).toBe('rejected');
    const problems = plan.kind === 'rejected' ? plan.problems : [];
    expect(problems).toContainEqual({
      code: 'required',
      path: 'daysSupply',
      message: 'MedicationDispense.daysSupply is required to compute refill dates',
    });
    expect(problems.map((p) => p.path)).toEqual(['quantity', 'daysSupply', 'whenPrepared']);
  });

  it('refuses days supply in another unit and malformed dates', () => {
    const weeks = planOf({
      ...dispenseOf('medicationdispense0301.json'),
      daysSupply: { value: 2, code: 'wk' },
    });
    expect(weeks).toMatchObject({
      kind: 'rejected',
      problems: [{ path: 'daysSupply.code', message: expect.stringContaining('in days') }],
    });
    const month = planOf({ ...dispenseOf('medicationdispense0301.json'), whenPrepared: '2015-01' });
    expect(month).toMatchObject({
      kind: 'rejected',
      problems: [{ path: 'whenPrepared', message: expect.stringContaining('only a year or month') }],
    });
  });

  describe('the patient it is for', () => {
    const dispense = (subject: object, extra: object = {}) => ({
      ...dispenseOf('medicationdispense0301.json'),
      subject,
      ...extra,
    });
    const patientOf = (plan: EntryPlan) =>
      plan.kind === 'dispense'
        ? plan.fill.patientExternalId
        : plan.kind === 'rejected'
          ? plan.problems
          : plan.kind;

    it('is the referenced id itself when the Patient is not in the Bundle', () => {
      expect(patientOf(planBundle(entries(dispense({ reference: 'Patient/PMS-9' })))[0])).toBe('PMS-9');
      expect(
        patientOf(
          planBundle(
            entries(dispense({ reference: 'https://phms.example/fhir/Patient/PMS-9/_history/3' })),
          )[0],
        ),
      ).toBe('PMS-9');
      expect(patientOf(planBundle(entries(dispense({ identifier: { value: 'PMS-10' } })))[0])).toBe('PMS-10');
    });

    it("is the Bundle Patient's externalId, found by Type/id or by fullUrl", () => {
      const bundle = [
        { fullUrl: 'urn:uuid:7f1c', resource: reachablePatient() },
        { resource: dispense({ reference: 'urn:uuid:7f1c' }) },
        { resource: dispense({ reference: 'Patient/p-1' }) },
      ];
      const plans = planBundle(bundle);
      expect([patientOf(plans[1]), patientOf(plans[2])]).toEqual(['MRN-77', 'MRN-77']);
      expect(plans[1].kind === 'dispense' && plans[1].subject).toEqual({
        reference: 'urn:uuid:7f1c',
        patientEntry: { index: 0, rejected: false },
      });
      // pat1 itself is rejected (no phone), and the dispense says so should the patient be unknown
      const withPat1 = planBundle(entries(pat1(), dispenseOf('medicationdispense0301.json')));
      expect(withPat1[1].kind === 'dispense' && withPat1[1].subject.patientEntry).toEqual({
        index: 0,
        rejected: true,
      });
    });

    it('is a contained Patient found by its identifier, never by its local id', () => {
      const contained = { resourceType: 'Patient', id: 'p', identifier: [{ value: 'MRN-5' }] };
      expect(
        patientOf(planBundle(entries(dispense({ reference: '#p' }, { contained: [contained] })))[0]),
      ).toBe('MRN-5');
      const anonymous = planBundle(
        entries(dispense({ reference: '#p' }, { contained: [{ resourceType: 'Patient', id: 'p' }] })),
      )[0];
      expect(anonymous).toMatchObject({
        kind: 'rejected',
        problems: [{ path: 'subject', message: expect.stringContaining('without an identifier') }],
      });
    });

    it('must be a Patient, and must be there', () => {
      expect(planBundle(entries(dispense({ reference: 'Group/g1' })))[0]).toMatchObject({
        kind: 'rejected',
        problems: [{ code: 'invalid', path: 'subject.reference' }],
      });
      expect(planBundle(entries(dispense({ reference: 'urn:uuid:nowhere' })))[0]).toMatchObject({
        kind: 'rejected',
        problems: [{ code: 'not-found' }],
      });
      expect(planBundle(entries(dispense(undefined as unknown as object)))[0]).toMatchObject({
        kind: 'rejected',
        problems: [{ code: 'required', path: 'subject' }],
      });
    });
  });
});

describe('other entries', () => {
  it('rejects other resource types as not-supported, saying when one was read', () => {
    const plans = planBundle(
      entries(
        dispenseOf('medicationdispense0302.json'),
        fhirFixture('medicationrequest0321.json'),
        fhirFixture('medicationrequest0302.json'),
        { resourceType: 'Observation' },
      ),
    );
    expect(plans.slice(1)).toEqual([
      expect.objectContaining({
        kind: 'rejected',
        resourceType: 'MedicationRequest',
        problems: [
          {
            code: 'not-supported',
            path: '',
            message: expect.stringMatching(
              /^resource type MedicationRequest is not ingested; send Patient and MedicationDispense \(this MedicationRequest was read/,
            ),
          },
        ],
      }),
      expect.objectContaining({
        kind: 'rejected',
        problems: [
          {
            code: 'not-supported',
            path: '',
            message: 'resource type MedicationRequest is not ingested; send Patient and MedicationDispense',
          },
        ],
      }),
      expect.objectContaining({
        kind: 'rejected',
        problems: [
          {
            code: 'not-supported',
            path: '',
            message: 'resource type Observation is not ingested; send Patient and MedicationDispense',
          },
        ],
      }),
    ]);
  });

  it('rejects entries without a resource or a resourceType', () => {
    const plans = planBundle([
      { request: { method: 'DELETE', url: 'Patient/1' } },
      { resource: { id: 'x' } },
      'junk',
    ]);
    expect(plans.map((p) => (p.kind === 'rejected' ? p.problems[0].path : p.kind))).toEqual([
      '',
      'resourceType',
      '',
    ]);
  });

  it('plans every fixture without throwing, one plan per entry', () => {
    const fixtures = loadFhirFixtures();
    expect(planBundle(entries(...fixtures.map((f) => f.resource)))).toHaveLength(fixtures.length);
  });
});

describe("FillsService's errors in FHIR terms", () => {
  const sources: FillSources = {
    filledAt: 'whenPrepared',
    readyAt: 'whenPrepared',
    pickedUpAt: 'whenHandedOver',
    daysSupply: 'daysSupply.value',
    rxNumber: 'authorizingPrescription[0]',
    externalId: 'id',
  };
  const subject = { reference: 'Patient/pat1', patientEntry: { index: 0, rejected: true } };

  it.each([
    [
      'filledAt must not be in the future',
      'whenPrepared',
      'MedicationDispense.whenPrepared must not be in the future',
    ],
    [
      'pickedUpAt must not be before readyAt',
      'whenHandedOver',
      'MedicationDispense.whenHandedOver must not be before MedicationDispense.whenPrepared',
    ],
    [
      'daysSupply must not be greater than 365',
      'daysSupply.value',
      'MedicationDispense.daysSupply.value must not be greater than 365',
    ],
    [
      'rxNumber must be shorter than or equal to 100 characters',
      'authorizingPrescription[0]',
      'the prescription number (from authorizingPrescription) must be shorter than or equal to 100 characters',
    ],
    [
      'externalId appears again later in this batch; the later one was applied',
      'id',
      'MedicationDispense.id appears again later in this batch; the later one was applied',
    ],
  ])('%s', (error, path, message) => {
    expect(fillErrorToProblem(error, sources, subject, '654321')).toEqual({ code: 'invalid', path, message });
  });

  it('says a thing once when two fields come from one element', () => {
    const problems = fillErrorsToProblems(
      ['filledAt must not be in the future', 'readyAt must not be in the future'],
      sources,
      subject,
      '654321',
    );
    expect(problems).toEqual([
      {
        code: 'invalid',
        path: 'whenPrepared',
        message: 'MedicationDispense.whenPrepared must not be in the future',
      },
    ]);
  });

  it('explains an unknown patient, pointing at its rejected Patient entry', () => {
    expect(
      fillErrorToProblem(
        'patientExternalId does not name a known patient of this pharmacy',
        sources,
        subject,
        '654321',
      ),
    ).toEqual({
      code: 'not-found',
      path: 'subject',
      message:
        'MedicationDispense.subject Patient/pat1 (patient 654321) is not a patient of this pharmacy; its Patient entry (entry 0) was rejected',
    });
  });
});

describe('helpers', () => {
  it('reads FHIR dateTimes', () => {
    expect(fhirDateTime('2015-01-15', 'whenPrepared')).toEqual({
      ok: true,
      value: '2015-01-15T00:00:00.000Z',
    });
    expect(fhirDateTime('2015-06-25T07:13:00+05:00', 'whenPrepared')).toEqual({
      ok: true,
      value: '2015-06-25T02:13:00.000Z',
    });
    expect(fhirDateTime(undefined, 'whenPrepared')).toEqual({ ok: true });
    for (const bad of ['2015', '2015-01', '2015-02-30', '2015-01-15T10:20:00', 'yesterday', 20150115]) {
      expect(fhirDateTime(bad, 'whenPrepared')).toMatchObject({
        ok: false,
        problem: { code: 'invalid', path: 'whenPrepared' },
      });
    }
  });

  it('parses references', () => {
    expect(parseReference('Patient/pat1')).toEqual({ type: 'Patient', id: 'pat1' });
    expect(parseReference('http://x/fhir/MedicationRequest/medrx0318/_history/1')).toEqual({
      type: 'MedicationRequest',
      id: 'medrx0318',
    });
    expect(parseReference('urn:uuid:1234')).toBeNull();
  });

  it('builds one error issue per rejected entry, or one information issue', () => {
    expect(
      operationOutcome(
        [
          {
            index: 3,
            problems: [
              { code: 'required', path: 'daysSupply', message: 'a' },
              { code: 'required', path: 'quantity', message: 'b' },
            ],
          },
        ],
        5,
      ),
    ).toEqual({
      resourceType: 'OperationOutcome',
      issue: [
        {
          severity: 'error',
          code: 'required',
          diagnostics: 'a; b',
          expression: ['Bundle.entry[3].resource.daysSupply', 'Bundle.entry[3].resource.quantity'],
        },
      ],
    });
    expect(operationOutcome([], 2).issue).toEqual([
      { severity: 'information', code: 'informational', diagnostics: 'all 2 entries were accepted' },
    ]);
  });
});
