import request from 'supertest';
import { FakeClock } from '@rxnotify/common/clock/clock';
import { CoreModule } from '@rxnotify/common/core.module';
import { startTestApp, type TestApp } from '../../../../test/helpers/app';
import type { PatientFixture, PharmacyFixture } from '../../../../test/helpers/given';
import { AdherenceModule } from './adherence.module';

const TZ = 'America/Los_Angeles';
// 03:00Z on 03-10 is 20:00 PDT on 03-09: the pharmacy's today is 2026-03-09.
const NOW = new Date('2026-03-10T03:00:00Z');

describe('GET /v1/patients/:id/adherence (real Postgres)', () => {
  let t: TestApp;
  let pharmacy: PharmacyFixture;
  let staff: string;
  let counter = 0;

  beforeAll(async () => {
    const clock = new FakeClock(NOW);
    t = await startTestApp((config) => ({
      module: class AdherenceTestModule {},
      imports: [CoreModule.forRoot(config, { app: 'test', clock }), AdherenceModule],
    }));
    pharmacy = await t.given.pharmacy({ timezone: TZ });
    staff = await t.given.apiKey('staff', pharmacy);
  });
  afterAll(async () => {
    await t.close();
  });

  /** A fill the patient picked up at noon, local time, on `pickedUp` (YYYY-MM-DD). */
  async function pickedUp(
    patient: PatientFixture,
    pickedUp: string,
    options: {
      drug?: string;
      therapeuticClass?: string;
      daysSupply?: number;
      maintenance?: boolean;
      status?: string;
      localTime?: string;
    } = {},
  ): Promise<void> {
    const at = `${pickedUp} ${options.localTime ?? '12:00'}`;
    const status = options.status ?? 'picked_up';
    await t.db.query(
      `INSERT INTO fills (pharmacy_id, patient_id, external_id, rx_number, fill_number, drug_name, quantity, days_supply,
                          refills_remaining, filled_at, status, ready_at, picked_up_at, maintenance, therapeutic_class)
       VALUES ($1, $2, $3, 'RX1', 0, $4, 30, $5, 3, ($6::timestamp AT TIME ZONE $7) - interval '1 hour', $8,
               $6::timestamp AT TIME ZONE $7, CASE WHEN $8 = 'picked_up' THEN $6::timestamp AT TIME ZONE $7 END, $9, $10)`,
      [
        patient.pharmacyId,
        patient.id,
        `F-${counter++}`,
        options.drug ?? 'Atorvastatin 20 mg',
        options.daysSupply ?? 30,
        at,
        TZ,
        status,
        options.maintenance ?? true,
        options.therapeuticClass ?? null,
      ],
    );
  }
  const get = (patientId: string, key = staff) =>
    request(t.http).get(`/v1/patients/${patientId}/adherence`).set('Authorization', `Bearer ${key}`);

  it("reports each maintenance therapy's PDC as of the pharmacy's local date", async () => {
    const patient = await t.given.patient(pharmacy);
    // Statins: 2025-12-10 (index, 90 days to today), an early refill on 01-06 shifted to 01-09, then 02-07 shifted
    // to 02-08..03-09: covered every day. Run-out 03-10.
    await pickedUp(patient, '2025-12-10', { therapeuticClass: 'Statins' });
    await pickedUp(patient, '2026-01-06', { therapeuticClass: 'Statins' });
    await pickedUp(patient, '2026-02-07', { therapeuticClass: 'Statins' });
    // Lisinopril (no class): 2025-11-30..12-29 and 2026-01-19..02-17, 60 of 100 days; run-out 02-18, 19 days ago.
    await pickedUp(patient, '2025-11-30', { drug: 'Lisinopril 10 mg' });
    await pickedUp(patient, '2026-01-19', { drug: 'Lisinopril 10 mg' });
    // Not counted: not received (ready, returned), or not a maintenance drug.
    await pickedUp(patient, '2026-02-20', { drug: 'Lisinopril 10 mg', status: 'ready' });
    await pickedUp(patient, '2026-02-21', { drug: 'Lisinopril 10 mg', status: 'returned_to_stock' });
    await pickedUp(patient, '2026-03-01', { drug: 'Amoxicillin 500 mg', maintenance: false, daysSupply: 10 });

    const response = await get(patient.id).expect(200);
    expect(response.body).toEqual({
      patientId: patient.id,
      asOf: '2026-03-09',
      therapies: [
        {
          therapy: 'Lisinopril 10 mg',
          pdc: 0.6,
          daysLate: 19,
          atRisk: true,
          daysCovered: 60,
          daysInPeriod: 100,
          firstFillDate: '2025-11-30',
          lastRunOutDate: '2026-02-18',
        },
        {
          therapy: 'Statins',
          pdc: 1,
          daysLate: 0,
          atRisk: false,
          daysCovered: 90,
          daysInPeriod: 90,
          firstFillDate: '2025-12-10',
          lastRunOutDate: '2026-03-10',
        },
      ],
    });
  });

  it('dates a pickup by its local day, and ignores fills before the 365-day window', async () => {
    const patient = await t.given.patient(pharmacy);
    await pickedUp(patient, '2025-03-09', { daysSupply: 90 }); // the day before the window opens
    await pickedUp(patient, '2026-03-09', { daysSupply: 30, localTime: '19:30' }); // 02:30Z on 03-10 (PDT): still today, locally
    const { body } = await get(patient.id).expect(200);
    expect(body.therapies).toEqual([
      expect.objectContaining({ firstFillDate: '2026-03-09', daysInPeriod: 1, daysCovered: 1, pdc: 1 }),
    ]);
  });

  it("uses the patient's own time zone over the pharmacy's", async () => {
    const patient = await t.given.patient(pharmacy, { timezone: 'Europe/Berlin' }); // 04:00 on 03-10 there
    const { body } = await get(patient.id).expect(200);
    expect(body).toEqual({ patientId: patient.id, asOf: '2026-03-10', therapies: [] });
  });

  it('writes an access-log row for the read', async () => {
    const patient = await t.given.patient(pharmacy);
    await get(patient.id).expect(200);
    const rows = await t.db.query(
      `SELECT role, pharmacy_id, patient_id, action, route FROM access_log WHERE patient_id = $1`,
      [patient.id],
    );
    expect(rows).toEqual([
      {
        role: 'staff',
        pharmacy_id: pharmacy.id,
        patient_id: patient.id,
        action: 'adherence.read',
        route: `GET /v1/patients/${patient.id}/adherence`,
      },
    ]);
  });

  it('lets an auditor read; refuses other pharmacies, unknown patients, wrong roles and bad ids', async () => {
    const patient = await t.given.patient(pharmacy);
    await get(patient.id, await t.given.apiKey('auditor', pharmacy)).expect(200);
    const other = await t.given.pharmacy({ name: 'Elsewhere', smsFrom: '+14155550101' });
    await get(patient.id, await t.given.apiKey('staff', other)).expect(404);
    await get('5b8c1f9e-2f64-4a57-9d0b-3c1e2a4f6b7d').expect(404);
    await get(patient.id, await t.given.apiKey('integration', pharmacy)).expect(403);
    await request(t.http).get(`/v1/patients/${patient.id}/adherence`).expect(401);
    await get('not-a-uuid').expect(400);
    const [{ count }] = await t.db.query(
      `SELECT count(*)::int AS count FROM access_log WHERE patient_id = $1`,
      [patient.id],
    );
    expect(count).toBe(1); // the auditor's read only
  });
});
